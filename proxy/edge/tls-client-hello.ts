// Reads the server_name of a TLS ClientHello (RFC 8446 §4.1.2, RFC 6066 §3) from the first bytes a client
// sends into a tunnel, so that a CONNECT to a registry cannot carry a handshake for another host (domain
// fronting). Sans-io: feed it the bytes seen so far; it answers need-more, ok or invalid. The handshake
// message may span several records; reassembly is capped.

export type HelloResult =
  | { readonly state: 'need-more' }
  | { readonly state: 'invalid'; readonly reason: string }
  /** `ech`: the hello carries an encrypted name (ECH, its outer marker, or draft ESNI), so `sni` may be a front. */
  | { readonly state: 'ok'; readonly sni: string | null; readonly ech: boolean; readonly sniCount: number };

export const MAX_HELLO_BYTES = 64 * 1024;

const NEED_MORE: HelloResult = Object.freeze({ state: 'need-more' });
const invalid = (reason: string): HelloResult => ({ state: 'invalid', reason });

const EXT_SERVER_NAME = 0x0000;
const EXT_ECH = 0xfe0d;
const EXT_ECH_OUTER = 0xfd00;
// draft-ietf-tls-esni (≤ -02) "encrypted_server_name": the real name travels encrypted and server_name may
// name a front, exactly as with ECH. Still sent by deployed clients; unreadable, so reported like ECH.
const EXT_ESNI = 0xffce;

export function parseClientHello(buf: Buffer): HelloResult {
  // Reassemble the handshake layer from consecutive handshake records.
  const parts: Buffer[] = [];
  let have = 0;
  let off = 0;
  let needed = -1;
  while (true) {
    if (buf.length < off + 5) return buf.length > MAX_HELLO_BYTES ? invalid('too large') : NEED_MORE;
    const type = buf[off]!;
    if (type !== 22) return invalid(off === 0 ? 'not a TLS handshake' : 'interleaved non-handshake record');
    if (buf[off + 1] !== 3) return invalid('bad record version');
    const len = buf.readUInt16BE(off + 3);
    if (len === 0 || len > 16384 + 256) return invalid('bad record length');
    if (buf.length < off + 5 + len) return buf.length > MAX_HELLO_BYTES ? invalid('too large') : NEED_MORE;
    parts.push(buf.subarray(off + 5, off + 5 + len));
    have += len;
    off += 5 + len;
    if (needed === -1 && have >= 4) {
      const hs = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
      if (hs[0] !== 1) return invalid('first handshake message is not a ClientHello');
      needed = 4 + hs.readUIntBE(1, 3);
      if (needed > MAX_HELLO_BYTES) return invalid('ClientHello too large');
    }
    if (needed !== -1 && have >= needed) break;
    if (off > MAX_HELLO_BYTES) return invalid('too large');
  }
  const hs = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  return parseHelloBody(hs.subarray(4, needed));
}

function parseHelloBody(b: Buffer): HelloResult {
  let p = 0;
  const need = (n: number) => p + n <= b.length;
  if (!need(2 + 32)) return invalid('truncated');
  p += 2 + 32; // legacy_version, random
  if (!need(1)) return invalid('truncated');
  const sid = b[p]!;
  p += 1;
  if (sid > 32 || !need(sid)) return invalid('bad session id');
  p += sid;
  if (!need(2)) return invalid('truncated');
  const cs = b.readUInt16BE(p);
  p += 2;
  if (cs < 2 || cs % 2 !== 0 || !need(cs)) return invalid('bad cipher suites');
  p += cs;
  if (!need(1)) return invalid('truncated');
  const comp = b[p]!;
  p += 1;
  if (comp < 1 || !need(comp)) return invalid('bad compression methods');
  p += comp;
  if (p === b.length) return { state: 'ok', sni: null, ech: false, sniCount: 0 };
  if (!need(2)) return invalid('truncated');
  const extLen = b.readUInt16BE(p);
  p += 2;
  if (p + extLen !== b.length) return invalid('extensions length mismatch');
  let sni: string | null = null;
  let sniCount = 0;
  let ech = false;
  const seen = new Set<number>();
  while (p < b.length) {
    if (!need(4)) return invalid('truncated extension');
    const type = b.readUInt16BE(p);
    const len = b.readUInt16BE(p + 2);
    p += 4;
    if (!need(len)) return invalid('truncated extension');
    if (seen.has(type)) return invalid('duplicate extension');
    seen.add(type);
    if (type === EXT_ECH || type === EXT_ECH_OUTER || type === EXT_ESNI) ech = true;
    if (type === EXT_SERVER_NAME) {
      const r = parseServerName(b.subarray(p, p + len));
      if (typeof r === 'string') return invalid(r);
      sni = r.name;
      sniCount = r.count;
    }
    p += len;
  }
  return { state: 'ok', sni, ech, sniCount };
}

function parseServerName(e: Buffer): { name: string | null; count: number } | string {
  if (e.length < 2) return 'bad server_name';
  const listLen = e.readUInt16BE(0);
  if (listLen + 2 !== e.length) return 'bad server_name list';
  let p = 2;
  let name: string | null = null;
  let count = 0;
  while (p < e.length) {
    if (p + 3 > e.length) return 'bad server_name entry';
    const type = e[p]!;
    const len = e.readUInt16BE(p + 1);
    p += 3;
    if (p + len > e.length) return 'bad server_name entry';
    if (type === 0) {
      count++;
      const raw = e.subarray(p, p + len);
      // RFC 6066: ASCII host name, no trailing dot required; anything outside printable ASCII is refused.
      for (const c of raw) if (c < 0x21 || c > 0x7e) return 'bad server_name bytes';
      name = raw.toString('ascii');
    }
    p += len;
  }
  return { name, count };
}
