// Target normalisation: every spelling of a host collapses to one canonical form before any decision, so
// that `EXAMPLE.com.`, `bücher.de`, `0x7f.1` and `[::ffff:127.0.0.1]` are judged as what they really are.
// Pure: no DNS, no sockets.
import { LRUCache } from 'lru-cache';
import { isIP } from 'node:net';
import { domainToASCII } from 'node:url';
import { type Deny, deny } from './codes.js';

export type HostKind = 'name' | 'ipv4' | 'ipv6';

export interface Host {
  /** Lowercase punycode name without trailing dot, or a canonical IP literal without brackets. */
  readonly host: string;
  readonly kind: HostKind;
}

export interface Target extends Host {
  readonly port: number;
}

export interface AbsoluteTarget {
  readonly scheme: 'http' | 'https';
  readonly target: Target;
  /** Whether the request named the port; `http://h:80` and `http://h` are equal but logged as written. */
  readonly explicitPort: boolean;
  /** Origin-form path and query, never empty. */
  readonly path: string;
}

export const MAX_HOST_LENGTH = 253;
export const MAX_TARGET_LENGTH = 8192;

const RULE = 'normalise';
const invalid = (detail: string): Deny => deny('EGR_INVALID_TARGET', RULE, detail);

// Anything that could split a request, smuggle a second authority, carry a zone id or be percent-decoded
// into something else is refused before the WHATWG host parser sees it.
const FORBIDDEN_IN_HOST = /[\x00-\x20\x7f%@/\\?#[\]<>^|"'`{}]/;
const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;

// Every request normalises its host, and most requests name a host seen moments ago. The result is a pure
// function of the input, so accepted hosts are remembered in a bounded LRU: a flood of distinct names evicts
// the oldest instead of emptying the memory, so the hosts in steady use stay cached. No ttl is set, so
// lru-cache reads no clock and starts no timer (firewall/ stays pure). Denials are not kept.
export const MEMO_MAX = 4096;
const memo = new LRUCache<string, Host>({ max: MEMO_MAX });

/** Normalises a bare host (no port). IPv6 must be bracketed. */
export function normaliseHost(raw: string): Host | Deny {
  const hit = memo.get(raw);
  if (hit !== undefined) return hit;
  const r = normaliseHostUncached(raw);
  if ('verdict' in r) return r;
  const frozen = Object.freeze(r);
  memo.set(raw, frozen);
  return frozen;
}

/** How many normalised hosts are remembered (for tests of the bound). */
export const memoSize = (): number => memo.size;

function normaliseHostUncached(raw: string): Host | Deny {
  if (raw.length === 0) return invalid('empty host');
  if (raw.length > MAX_HOST_LENGTH + 2) return invalid('host too long');
  if (raw.startsWith('[')) {
    if (!raw.endsWith(']')) return invalid('unterminated IPv6 literal');
    const inner = raw.slice(1, -1);
    if (inner.includes('%')) return invalid('IPv6 zone ids are not allowed');
    if (isIP(inner) !== 6) return invalid('bad IPv6 literal');
    let canonical: string;
    try {
      canonical = new URL(`http://[${inner}]/`).hostname.slice(1, -1);
    } catch {
      return invalid('bad IPv6 literal');
    }
    return { host: canonical, kind: 'ipv6' };
  }
  if (FORBIDDEN_IN_HOST.test(raw) || raw.includes(':')) return invalid('forbidden character in host');
  // domainToASCII lowercases, maps IDN to punycode and canonicalises every IPv4 spelling the WHATWG URL
  // parser accepts (0x7f.1, 0177.0.0.1, 2130706433, 127.1), returning '' for anything invalid.
  let ascii = domainToASCII(raw);
  if (ascii === '') return invalid('not a valid host name');
  if (ascii.endsWith('.')) ascii = ascii.slice(0, -1);
  if (isIP(ascii) === 4) return { host: ascii, kind: 'ipv4' };
  if (ascii.length === 0 || ascii.length > MAX_HOST_LENGTH) return invalid('bad host length');
  const labels = ascii.split('.');
  for (const label of labels) {
    if (!LABEL.test(label)) return invalid('bad label in host name');
  }
  // A name whose last label is numeric would be read as an IPv4 address by some resolvers and clients.
  if (/^[0-9]+$/.test(labels[labels.length - 1]!)) return invalid('numeric top-level label');
  return { host: ascii, kind: 'name' };
}

export function parsePort(raw: string): number | null {
  if (!/^[0-9]{1,5}$/.test(raw)) return null;
  const port = Number(raw);
  return port >= 1 && port <= 65535 ? port : null;
}

/** `host:port` or `[v6]:port` (CONNECT's authority-form, RFC 9112 §3.2.3). A port is required unless a
 * default is given. Userinfo is refused. */
export function parseAuthority(
  authority: string,
  defaultPort?: number,
): { target: Target; explicitPort: boolean } | Deny {
  if (authority.length === 0) return invalid('empty authority');
  if (authority.length > MAX_HOST_LENGTH + 8) return invalid('authority too long');
  if (authority.includes('@')) return invalid('userinfo is not allowed in a target');
  let hostPart: string;
  let portPart: string | undefined;
  if (authority.startsWith('[')) {
    const close = authority.indexOf(']');
    if (close === -1) return invalid('unterminated IPv6 literal');
    hostPart = authority.slice(0, close + 1);
    const rest = authority.slice(close + 1);
    if (rest !== '') {
      if (!rest.startsWith(':')) return invalid('garbage after IPv6 literal');
      portPart = rest.slice(1);
    }
  } else {
    const colon = authority.lastIndexOf(':');
    if (colon !== -1) {
      hostPart = authority.slice(0, colon);
      portPart = authority.slice(colon + 1);
    } else {
      hostPart = authority;
    }
  }
  let port: number;
  if (portPart === undefined) {
    if (defaultPort === undefined) return invalid('port required');
    port = defaultPort;
  } else {
    const p = parsePort(portPart);
    if (p === null) return invalid('bad port');
    port = p;
  }
  const host = normaliseHost(hostPart);
  if ('verdict' in host) return host;
  return { target: { ...host, port }, explicitPort: portPart !== undefined };
}

/** Absolute-form request target (RFC 9112 §3.2.2): `http://host[:port]/path?query`. */
export function parseAbsoluteTarget(raw: string): AbsoluteTarget | Deny {
  if (raw.length > MAX_TARGET_LENGTH) return invalid('target too long');
  // The parser in front of us rejects CR/LF, but the target is also used elsewhere: refuse controls here too.
  if (/[\x00-\x20\x7f]/.test(raw)) return invalid('control character or space in target');
  const sep = raw.indexOf('://');
  if (sep === -1) return invalid('not an absolute-form target');
  const scheme = raw.slice(0, sep).toLowerCase();
  if (scheme !== 'http' && scheme !== 'https') return invalid('scheme must be http or https');
  const rest = raw.slice(sep + 3);
  let end = rest.length;
  for (const ch of ['/', '?', '#']) {
    const i = rest.indexOf(ch);
    if (i !== -1 && i < end) end = i;
  }
  const authority = rest.slice(0, end);
  if (authority.includes('\\')) return invalid('backslash in authority');
  let path = rest.slice(end);
  if (path.includes('#')) return invalid('fragment in request target');
  if (path === '') path = '/';
  else if (path.startsWith('?')) path = '/' + path;
  const parsed = parseAuthority(authority, scheme === 'https' ? 443 : 80);
  if ('verdict' in parsed) return parsed;
  return { scheme, target: parsed.target, explicitPort: parsed.explicitPort, path };
}

/** Formats a target for logs and for `Host`: brackets IPv6, omits a default port. */
export function formatAuthority(target: Target, defaultPort?: number): string {
  const host = target.kind === 'ipv6' ? `[${target.host}]` : target.host;
  return target.port === defaultPort ? host : `${host}:${target.port}`;
}
