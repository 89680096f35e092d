// The RFC 9110 / RFC 9112 MUSTs on a request that llhttp (strict mode) leaves to the server: Host (one, valid,
// required in HTTP/1.1), Transfer-Encoding in HTTP/1.0 and codings Sluice cannot decode, content on CONNECT,
// and Max-Forwards on TRACE/OPTIONS. Run by the listener before any identity, policy or DNS work; the table in
// docs/ARCHITECTURE.md ("HTTP conformance") lists every MUST with the layer and the test that holds it.
// Also the Via field Sluice adds to what it forwards (RFC 9110 §7.6.3).
import type { IncomingMessage } from 'node:http';
import { type Deny, deny } from '../../firewall/codes.js';

// RFC 9110 §7.2: Host = uri-host [ ":" port ], uri-host from RFC 3986 (IP-literal, IPv4address or reg-name).
// Empty is valid syntax (a target without authority); userinfo, paths, spaces and lists are not.
const HOST_VALUE =
  /^(?:\[(?:[0-9A-Fa-f:.]+|v[0-9A-Fa-f]+\.[A-Za-z0-9\-._~!$&'()*+,;=:]+)\]|(?:[A-Za-z0-9\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})*)(?::[0-9]*)?$/;

/** Sluice's own maximum for Max-Forwards (RFC 9110 §7.6.2 lets a recipient cap the decremented value). */
export const MAX_FORWARDS_CAP = 255;

/** Values of every field line named `lower` (already lower case), in order. */
function fieldLines(raw: readonly string[], lower: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === lower.length && name.toLowerCase() === lower) out.push(raw[i + 1]!);
  }
  return out;
}

const bad = (rule: string, detail: string) => deny('EGR_BAD_REQUEST', rule, detail);

/** RFC 9112 §3.2: a server MUST answer 400 to an HTTP/1.1 request without Host, with more than one Host field
 * line, or with an invalid Host value. The value is then ignored: the target's authority is what counts. */
function hostRefusal(req: IncomingMessage): Deny | null {
  const hosts = fieldLines(req.rawHeaders, 'host');
  if (hosts.length > 1) return bad('http.host', 'more than one Host field');
  if (hosts.length === 0) return req.httpVersionMinor >= 1 ? bad('http.host', 'HTTP/1.1 request without Host') : null;
  return HOST_VALUE.test(hosts[0]!) ? null : bad('http.host', 'invalid Host value');
}

/** RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 request means faulty framing. Sluice decodes chunked only:
 * any other coding would leave the content coded while the field naming it is dropped as hop-by-hop. llhttp has
 * already refused chunked that is not final or applied twice (§6.3, §6.1). */
function transferRefusal(req: IncomingMessage): Deny | null {
  const lines = fieldLines(req.rawHeaders, 'transfer-encoding');
  if (lines.length === 0) return null;
  if (req.httpVersionMinor === 0) return bad('http.framing', 'Transfer-Encoding in an HTTP/1.0 request');
  for (const line of lines) {
    for (const member of line.split(',')) {
      const coding = member.split(';')[0]!.trim().toLowerCase();
      if (coding !== '' && coding !== 'chunked')
        return deny('EGR_UNSUPPORTED', 'http.framing', 'transfer coding other than chunked');
    }
  }
  return null;
}

/** RFC 9110 §7.6.2: an intermediary MUST check and update Max-Forwards on TRACE and OPTIONS; at 0 it MUST NOT
 * forward and answers as the final recipient (501: Sluice serves neither method itself). Decrements in place. */
function maxForwardsRefusal(req: IncomingMessage): Deny | null {
  if (req.method !== 'TRACE' && req.method !== 'OPTIONS') return null;
  const raw = req.rawHeaders;
  let at = -1;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.toLowerCase() !== 'max-forwards') continue;
    if (at !== -1) return bad('http.max-forwards', 'more than one Max-Forwards field');
    at = i + 1;
  }
  if (at === -1) return null;
  const value = raw[at]!.trim();
  if (!/^[0-9]{1,16}$/.test(value)) return bad('http.max-forwards', 'Max-Forwards is not a number');
  const n = Number(value);
  if (n === 0) return deny('EGR_UNSUPPORTED', 'http.max-forwards', 'Max-Forwards: 0 (Sluice is the final recipient)');
  const next = String(Math.min(n - 1, MAX_FORWARDS_CAP));
  raw[at] = next;
  req.headers['max-forwards'] = next;
  return null;
}

/** Checks for a request that will be forwarded (plain or Upgrade). Null: well-formed. */
export function requestRefusal(req: IncomingMessage): Deny | null {
  return hostRefusal(req) ?? transferRefusal(req) ?? maxForwardsRefusal(req);
}

/** Checks for CONNECT: Host as for any request, and no content (RFC 9110 §9.3.6): bytes after the head belong
 * to the tunnel, so a body announced by Content-Length or Transfer-Encoding is ambiguous framing. */
export function connectRefusal(req: IncomingMessage): Deny | null {
  const host = hostRefusal(req);
  if (host) return host;
  const cl = fieldLines(req.rawHeaders, 'content-length');
  if (fieldLines(req.rawHeaders, 'transfer-encoding').length > 0 || cl.some((v) => v.trim() !== '0')) {
    return bad('http.framing', 'CONNECT with content');
  }
  return null;
}

/** RFC 9110 §10.1.1: the only expectation is 100-continue; Sluice answers any other with 501. */
export const unknownExpectation = (): Deny =>
  deny('EGR_UNSUPPORTED', 'http.expect', 'expectation other than 100-continue');

// RFC 9110 §7.6.3: a proxy MUST send Via on each message it forwards. Sluice uses a pseudonym, never a host
// name or version, and as a portal out of a private network it replaces the received-by of every member the
// client sent (names of hosts inside) with a pseudonym too, keeping each member's protocol.
export const VIA_PSEUDONYM = 'sluice';
const HIDDEN = 'hidden';

/** `received-protocol = [ protocol-name "/" ] protocol-version`, the version as Via carries them (`1.1`, `HTTP/2`). */
const VIA_PROTOCOL = /^(?:[A-Za-z][A-Za-z0-9+.-]{0,15}\/)?[0-9][0-9.]{0,7}$/;

/** `received-protocol` of each member of the Via lines, comments dropped (`HTTP/1.1 a (x, y)` → `1.1`). A member
 * that is not `protocol received-by` is dropped, not kept: its one token may be a host name from inside
 * (`Via: build-runner-7`), which the protocol slot would otherwise carry out. */
function viaProtocols(lines: readonly string[]): string[] {
  const out: string[] = [];
  for (const line of lines) {
    for (const member of line.replace(/\([^)]*\)/g, '').split(',')) {
      const [proto, by] = member.trim().split(/[ \t]+/);
      if (!proto || !by || !VIA_PROTOCOL.test(proto)) continue;
      // "HTTP/1.1" and "1.1" are the same protocol; another name keeps its name.
      out.push(/^http\//i.test(proto) ? proto.slice(5) : proto);
    }
  }
  return out;
}

/** The Via value for the upstream request: the client's members, hidden, then Sluice's. */
export function requestVia(raw: readonly string[], httpVersion: string): string {
  const members = viaProtocols(fieldLines(raw, 'via')).map((p) => `${p} ${HIDDEN}`);
  members.push(`${httpVersion} ${VIA_PSEUDONYM}`);
  return members.join(', ');
}

/** The Via value for the response to the client: the origin side's chain as received, then Sluice's (undici
 * speaks HTTP/1.1 upstream). */
export function responseVia(upstream: string | null): string {
  return upstream ? `${upstream}, 1.1 ${VIA_PSEUDONYM}` : `1.1 ${VIA_PSEUDONYM}`;
}
