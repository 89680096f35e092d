// IANA special-purpose address registries (IPv4 and IPv6) and the prefix arithmetic over them.
// Sources: https://www.iana.org/assignments/iana-ipv4-special-registry and
// https://www.iana.org/assignments/iana-ipv6-special-registry, plus multicast and the deprecated ranges that
// still route on some hosts (site-local fec0::/10, IPv4-compatible ::/96). A range being "globally reachable"
// in the registry does not make it a safe egress target, so every entry is denied.
import ipaddr from 'ipaddr.js';
import { isIP } from 'node:net';
import { SluiceError } from './errors.js';

export type AddressClass = 'public' | 'private' | 'loopback' | 'link_local' | 'reserved' | 'embedded';

export interface Prefix {
  readonly family: 4 | 6;
  readonly bytes: Uint8Array;
  readonly bits: number;
  readonly text: string;
}

interface SpecialRange extends Prefix {
  readonly class: Exclude<AddressClass, 'public'>;
  readonly name: string;
}

/** Parses an IP address into bytes; v6 text is canonicalised by the WHATWG parser first because ipaddr.js
 * reads `::127.0.0.1` as the IPv4-mapped `::ffff:7f00:1` instead of the IPv4-compatible `::7f00:1`. */
export function addressBytes(ip: string): { family: 4 | 6; bytes: Uint8Array } | null {
  const family = isIP(ip);
  if (family === 4) return { family, bytes: Uint8Array.from(ipaddr.IPv4.parse(ip).toByteArray()) };
  if (family !== 6 || ip.includes('%')) return null;
  let text = ip;
  if (ip.includes('.')) {
    try {
      text = new URL(`http://[${ip}]/`).hostname.slice(1, -1);
    } catch {
      return null;
    }
  }
  try {
    return { family: 6, bytes: Uint8Array.from(ipaddr.IPv6.parse(text).toByteArray()) };
  } catch {
    return null;
  }
}

export function parsePrefix(cidr: string): Prefix | null {
  const slash = cidr.lastIndexOf('/');
  const addr = slash === -1 ? cidr : cidr.slice(0, slash);
  const parsed = addressBytes(addr);
  if (!parsed) return null;
  const max = parsed.family === 4 ? 32 : 128;
  let bits = max;
  if (slash !== -1) {
    const tail = cidr.slice(slash + 1);
    if (!/^\d{1,3}$/.test(tail)) return null;
    bits = Number(tail);
    if (bits > max) return null;
  }
  return { family: parsed.family, bytes: parsed.bytes, bits, text: cidr };
}

export function prefixContains(prefix: Prefix, family: 4 | 6, bytes: Uint8Array): boolean {
  if (prefix.family !== family) return false;
  const whole = prefix.bits >> 3;
  for (let i = 0; i < whole; i++) if (prefix.bytes[i] !== bytes[i]) return false;
  const rest = prefix.bits & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return ((prefix.bytes[whole]! ^ bytes[whole]!) & mask) === 0;
}

function range(cidr: string, cls: SpecialRange['class'], name: string): SpecialRange {
  const p = parsePrefix(cidr);
  if (!p) throw new SluiceError('SLUICE_ERR_INVARIANT', `bad built-in range ${cidr}`);
  return { ...p, class: cls, name };
}

// First match wins, so narrower ranges come before the ranges that contain them.
export const V4_SPECIAL: readonly SpecialRange[] = Object.freeze([
  range('0.0.0.0/8', 'reserved', 'this-network'),
  range('10.0.0.0/8', 'private', 'rfc1918'),
  range('100.64.0.0/10', 'private', 'shared-cgnat'),
  range('127.0.0.0/8', 'loopback', 'loopback'),
  range('169.254.0.0/16', 'link_local', 'link-local'),
  range('172.16.0.0/12', 'private', 'rfc1918'),
  range('192.0.0.0/24', 'reserved', 'ietf-protocol-assignments'),
  range('192.0.2.0/24', 'reserved', 'documentation'),
  range('192.31.196.0/24', 'reserved', 'as112'),
  range('192.52.193.0/24', 'reserved', 'amt'),
  range('192.88.99.0/24', 'reserved', '6to4-relay-anycast'),
  range('192.168.0.0/16', 'private', 'rfc1918'),
  range('192.175.48.0/24', 'reserved', 'as112-direct-delegation'),
  range('198.18.0.0/15', 'reserved', 'benchmarking'),
  range('198.51.100.0/24', 'reserved', 'documentation'),
  range('203.0.113.0/24', 'reserved', 'documentation'),
  range('224.0.0.0/4', 'reserved', 'multicast'),
  range('240.0.0.0/4', 'reserved', 'reserved-future'),
]);

export const V6_SPECIAL: readonly SpecialRange[] = Object.freeze([
  range('::1/128', 'loopback', 'loopback'),
  range('::/128', 'reserved', 'unspecified'),
  range('::/96', 'embedded', 'ipv4-compatible'),
  range('::ffff:0:0:0/96', 'embedded', 'ipv4-translated-siit'),
  range('64:ff9b::/96', 'embedded', 'nat64'),
  range('64:ff9b:1::/48', 'embedded', 'nat64-local'),
  range('100::/64', 'reserved', 'discard-only'),
  range('100:0:0:1::/64', 'reserved', 'dummy-prefix'),
  range('2001::/32', 'embedded', 'teredo'),
  range('2001::/23', 'reserved', 'ietf-protocol-assignments'),
  range('2001:db8::/32', 'reserved', 'documentation'),
  range('2002::/16', 'embedded', '6to4'),
  range('2620:4f:8000::/48', 'reserved', 'as112-direct-delegation'),
  range('3fff::/20', 'reserved', 'documentation'),
  range('5f00::/16', 'reserved', 'srv6-sids'),
  range('fc00::/7', 'private', 'unique-local'),
  range('fe80::/10', 'link_local', 'link-local'),
  range('fec0::/10', 'private', 'site-local-deprecated'),
  range('ff00::/8', 'reserved', 'multicast'),
]);

const GLOBAL_UNICAST_V6 = range('2000::/3', 'reserved', 'not-global-unicast');
const MAPPED_V6 = range('::ffff:0:0/96', 'embedded', 'ipv4-mapped');

/** The first address of a prefix (host bits cleared): `10.1.2.3/8` → 10.0.0.0. */
function networkBytes(p: Prefix): Uint8Array {
  const out = p.bytes.slice();
  for (let bit = p.bits; bit < out.length * 8; bit++) out[bit >> 3] = out[bit >> 3]! & ~(0x80 >> (bit & 7));
  return out;
}

/**
 * A prefix written in a rule (addressGuard.allow/deny, globalDeny.cidrs, the proxy's own addresses), as the
 * guard compares it. The guard judges an IPv4-mapped address (`::ffff:8.8.8.8`) as the IPv4 address it is —
 * that is what the kernel dials — so a mapped prefix (`::ffff:0:0/96` or longer) is the IPv4 prefix it
 * spells: `::ffff:8.8.8.8/128` is `8.8.8.8/32`. Left as IPv6 it could never match anything, and a deny rule
 * written that way would fail open. Every other IPv6 prefix stays IPv6, embedded forms included: `::8.8.8.8`
 * (IPv4-compatible) and `64:ff9b::8.8.8.8` (NAT64) are IPv6 addresses the guard always denies as embedded,
 * and a rule naming them says nothing about 8.8.8.8 itself (config.ts warns, or refuses an exception).
 */
export function parseRulePrefix(cidr: string): Prefix | null {
  const p = parsePrefix(cidr);
  if (!p || p.family !== 6 || p.bits < MAPPED_V6.bits || !prefixContains(MAPPED_V6, 6, p.bytes)) return p;
  const bits = p.bits - MAPPED_V6.bits;
  const bytes = networkBytes({ ...p, family: 4, bytes: p.bytes.slice(12), bits });
  return { family: 4, bytes, bits, text: `${bytes.join('.')}/${bits}` };
}

/** Whether an IPv6 prefix shorter than /96 takes in the whole IPv4-mapped range (`::/0`, `::/64`, `::ffff:0:0/95`):
 * such a rule still matches IPv6 destinations only, since a mapped address is judged as IPv4. */
export function coversMappedRange(p: Prefix): boolean {
  return p.family === 6 && p.bits < MAPPED_V6.bits && prefixContains(p, 6, MAPPED_V6.bytes);
}

/** The embedded-IPv4 range (NAT64, 6to4, Teredo, IPv4-compatible, SIIT) that holds every address of an IPv6
 * prefix, or null. Those addresses are always denied: a rule inside one can neither open nor close anything
 * else. The IPv4-compatible range starts with `::` and `::1`, which are not embedded; a prefix holding them
 * is not inside it. */
export function embeddedRangeOf(p: Prefix): { readonly name: string; readonly ipv4: string | null } | null {
  if (p.family !== 6) return null;
  const first = networkBytes(p);
  for (const r of V6_SPECIAL) {
    if (r.class !== 'embedded' || r.bits > p.bits || !prefixContains(r, 6, first)) continue;
    if (classifyAddress(ipaddr.fromByteArray([...first]).toString())?.class !== 'embedded') return null;
    // The /96 forms carry the IPv4 address in their last 32 bits: name it, for the hint.
    const ipv4 = r.bits === 96 ? `${first.slice(12).join('.')}/${p.bits - 96}` : null;
    return { name: r.name, ipv4 };
  }
  return null;
}

export interface Classification {
  readonly family: 4 | 6;
  /** The address that would be dialled: IPv4-mapped IPv6 is unwrapped to its IPv4 form. */
  readonly address: string;
  readonly bytes: Uint8Array;
  readonly class: AddressClass;
  readonly range: string;
}

/** Classifies an IP address string; null when the input is not an IP address at all. Pure. */
export function classifyAddress(ip: string): Classification | null {
  const parsed = addressBytes(ip);
  if (!parsed) return null;
  let { family, bytes } = parsed;
  if (family === 6 && prefixContains(MAPPED_V6, 6, bytes)) {
    family = 4;
    bytes = bytes.slice(12);
  }
  const address = family === 4 ? bytes.join('.') : ipaddr.fromByteArray([...bytes]).toString();
  const table = family === 4 ? V4_SPECIAL : V6_SPECIAL;
  for (const r of table) {
    if (prefixContains(r, family, bytes)) return { family, address, bytes, class: r.class, range: r.name };
  }
  if (family === 6 && !prefixContains(GLOBAL_UNICAST_V6, 6, bytes)) {
    return { family, address, bytes, class: 'reserved', range: GLOBAL_UNICAST_V6.name };
  }
  // Belt and braces: ipaddr.js must agree that the address is plain unicast.
  const kind = ipaddr.fromByteArray([...bytes]).range();
  if (kind !== 'unicast') return { family, address, bytes, class: 'reserved', range: `ipaddr:${kind}` };
  return { family, address, bytes, class: 'public', range: 'unicast' };
}
