// The SOCKS5 wire format (RFC 1928) with username/password sub-negotiation (RFC 1929), sans-io: each decoder
// takes the bytes buffered so far and answers need-more, ok (with how many bytes the message used), or an
// error carrying the denial and the bytes to send before closing. Decoders never throw and never read past
// one message: what follows it (a pipelined request, early TLS data) stays for the caller.
//
// Sluice speaks only what it can police: CONNECT, with credentials required. Replies are always complete
// 10- or 22-byte RFC 1928 replies; clients that get a truncated reply report garbage instead of the cause.
import ipaddr from 'ipaddr.js';
import { isIP } from 'node:net';
import { CODES, type Deny, deny } from '../../firewall/codes.js';

export const SOCKS5_VERSION = 0x05;
export const SOCKS4_VERSION = 0x04;
/** RFC 1929 §2: the version of the username/password sub-negotiation. */
export const AUTH_VERSION = 0x01;

export const METHOD = Object.freeze({ noAuth: 0x00, gssapi: 0x01, userPass: 0x02, noAcceptable: 0xff });
export const CMD = Object.freeze({ connect: 0x01, bind: 0x02, udpAssociate: 0x03 });
export const ATYP = Object.freeze({ ipv4: 0x01, domain: 0x03, ipv6: 0x04 });

/** The longest message of the handshake: an RFC 1929 request with a 255-byte username and password. */
export const MAX_MESSAGE_BYTES = 1 + 1 + 255 + 1 + 255;

export type Decoded<T> =
  | { readonly state: 'need-more' }
  | { readonly state: 'ok'; readonly value: T; readonly used: number }
  /** `reply`: what to send before closing (null: close without a word, the peer is not speaking SOCKS). */
  | { readonly state: 'error'; readonly deny: Deny; readonly reply: Buffer | null };

export interface Greeting {
  readonly methods: readonly number[];
}

export interface UserPass {
  readonly user: string;
  readonly pass: string;
}

export interface ConnectRequest {
  readonly atyp: number;
  /** Dotted IPv4, full-form IPv6 (no brackets), or the domain exactly as sent (decoded as UTF-8). */
  readonly host: string;
  readonly port: number;
}

const NEED_MORE = Object.freeze({ state: 'need-more' }) as Decoded<never>;

const ok = <T>(value: T, used: number): Decoded<T> => ({ state: 'ok', value, used });
const error = (d: Deny, reply: Buffer | null): Decoded<never> => ({ state: 'error', deny: d, reply });

// UTF-8 with fatal errors: a name or credential that is not valid UTF-8 is refused, never "repaired" into
// a different string than the one the client meant.
const utf8 = new TextDecoder('utf-8', { fatal: true });
function decodeUtf8(b: Uint8Array): string | null {
  try {
    return utf8.decode(b);
  } catch {
    return null;
  }
}

/** The method-selection message (RFC 1928 §3). */
export const encodeMethod = (method: number): Buffer => Buffer.from([SOCKS5_VERSION, method]);

/** The RFC 1929 status: 0x00 success; any other value is a failure after which the server closes. */
export const encodeAuthStatus = (success: boolean): Buffer => Buffer.from([AUTH_VERSION, success ? 0x00 : 0x01]);

/** A SOCKS4 reply "request rejected or failed" (CD 91), so a SOCKS4 client reports a refusal, not a hang. */
export const SOCKS4_REJECT = Buffer.from([0x00, 0x5b, 0, 0, 0, 0, 0, 0]);

/** An RFC 1928 §6 reply: 10 bytes with an IPv4 BND.ADDR, 22 with an IPv6 one. */
export function encodeReply(
  rep: number,
  bound: { readonly address: string; readonly port: number } = { address: '0.0.0.0', port: 0 },
): Buffer {
  const v6 = isIP(bound.address) === 6 ? ipaddr.IPv6.parse(bound.address).toByteArray() : null;
  const out = Buffer.alloc(v6 ? 22 : 10);
  out[0] = SOCKS5_VERSION;
  out[1] = rep & 0xff;
  out[2] = 0x00;
  if (v6) {
    out[3] = ATYP.ipv6;
    out.set(v6, 4);
  } else {
    out[3] = ATYP.ipv4;
    if (isIP(bound.address) === 4) out.set(ipaddr.IPv4.parse(bound.address).toByteArray(), 4);
  }
  out.writeUInt16BE(bound.port & 0xffff, out.length - 2);
  return out;
}

/** The reply that renders a denial: its REP byte is the code's entry in the codes table. */
export const encodeDenyReply = (d: Deny): Buffer => encodeReply(CODES[d.code].socks);

const formatIpv6 = (b: Uint8Array): string => {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((b[i]! << 8) | b[i + 1]!).toString(16));
  return groups.join(':');
};

/** RFC 1928 §3: VER NMETHODS METHODS… — Sluice selects username/password or nothing. */
export function decodeGreeting(buf: Uint8Array): Decoded<Greeting> {
  if (buf.length < 1) return NEED_MORE;
  if (buf[0] === SOCKS4_VERSION)
    return error(deny('EGR_UNSUPPORTED', 'socks5.greeting', 'SOCKS4/4a is not supported'), SOCKS4_REJECT);
  if (buf[0] !== SOCKS5_VERSION) return error(deny('EGR_BAD_REQUEST', 'socks5.greeting', 'not a SOCKS greeting'), null);
  if (buf.length < 2) return NEED_MORE;
  const n = buf[1]!;
  const refuse = encodeMethod(METHOD.noAcceptable);
  if (n === 0) return error(deny('EGR_BAD_REQUEST', 'socks5.greeting', 'no methods offered'), refuse);
  if (buf.length < 2 + n) return NEED_MORE;
  const methods = [...buf.subarray(2, 2 + n)];
  // Credentials are how a request gets an identity: a client offering only "no auth" gets nothing.
  if (!methods.includes(METHOD.userPass))
    return error(deny('EGR_AUTH_REQUIRED', 'socks5.greeting', 'username/password not offered'), refuse);
  return ok({ methods }, 2 + n);
}

/** RFC 1929 §2: VER(1) ULEN UNAME PLEN PASSWD. A malformed message is a credential failure, as in HTTP. */
export function decodeUserPass(buf: Uint8Array): Decoded<UserPass> {
  const fail = (detail: string) => error(deny('EGR_AUTH_INVALID', 'socks5.auth', detail), encodeAuthStatus(false));
  if (buf.length < 1) return NEED_MORE;
  if (buf[0] !== AUTH_VERSION) return fail('bad sub-negotiation version');
  if (buf.length < 2) return NEED_MORE;
  const ulen = buf[1]!;
  if (ulen === 0) return fail('empty username');
  if (buf.length < 2 + ulen + 1) return NEED_MORE;
  const plen = buf[2 + ulen]!;
  const end = 3 + ulen + plen;
  if (buf.length < end) return NEED_MORE;
  const user = decodeUtf8(buf.subarray(2, 2 + ulen));
  // An empty password (PLEN 0, sent by some clients) is well-formed; the identity stage refuses it.
  const pass = decodeUtf8(buf.subarray(3 + ulen, end));
  if (user === null || pass === null) return fail('credentials are not UTF-8');
  return ok({ user, pass }, end);
}

/** RFC 1928 §4: VER CMD RSV ATYP DST.ADDR DST.PORT. Only CONNECT is served. */
export function decodeRequest(buf: Uint8Array): Decoded<ConnectRequest> {
  const fail = (d: Deny) => error(d, encodeDenyReply(d));
  if (buf.length < 1) return NEED_MORE;
  if (buf[0] !== SOCKS5_VERSION) return fail(deny('EGR_BAD_REQUEST', 'socks5.request', 'bad version'));
  if (buf.length < 2) return NEED_MORE;
  const cmd = buf[1]!;
  // BIND and UDP ASSOCIATE would open paths the tunnel rules cannot see.
  if (cmd !== CMD.connect)
    return fail(
      deny(
        'EGR_UNSUPPORTED',
        'socks5.request',
        cmd === CMD.bind ? 'BIND' : cmd === CMD.udpAssociate ? 'UDP ASSOCIATE' : 'unknown command',
      ),
    );
  if (buf.length < 3) return NEED_MORE;
  if (buf[2] !== 0x00) return fail(deny('EGR_BAD_REQUEST', 'socks5.request', 'reserved byte is not zero'));
  if (buf.length < 4) return NEED_MORE;
  const atyp = buf[3]!;
  let host: string | null;
  let at: number;
  if (atyp === ATYP.ipv4) {
    if (buf.length < 10) return NEED_MORE;
    host = `${buf[4]}.${buf[5]}.${buf[6]}.${buf[7]}`;
    at = 8;
  } else if (atyp === ATYP.ipv6) {
    if (buf.length < 22) return NEED_MORE;
    host = formatIpv6(buf.subarray(4, 20));
    at = 20;
  } else if (atyp === ATYP.domain) {
    if (buf.length < 5) return NEED_MORE;
    const len = buf[4]!;
    if (len === 0) return fail(deny('EGR_INVALID_TARGET', 'socks5.request', 'empty domain name'));
    if (buf.length < 5 + len + 2) return NEED_MORE;
    host = decodeUtf8(buf.subarray(5, 5 + len));
    if (host === null) return fail(deny('EGR_INVALID_TARGET', 'socks5.request', 'domain name is not UTF-8'));
    at = 5 + len;
  } else {
    return fail(deny('EGR_UNSUPPORTED_ADDRESS_TYPE', 'socks5.request', `ATYP ${atyp}`));
  }
  const port = (buf[at]! << 8) | buf[at + 1]!;
  return ok({ atyp, host, port }, at + 2);
}
