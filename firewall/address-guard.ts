// The address guard: the last word on every address Sluice would connect to, whether it came from a literal
// target or from DNS. It runs after the policy has allowed a name, and it always enforces — report mode,
// integrations and registries cannot switch it off. Pure: the caller supplies the proxy's own addresses.
import { type Deny, deny, type Code } from './codes.js';
import type { PolicyConfig } from './config.js';
import { type HostIndex, hostMatches, hostSet } from './host-match.js';
import { type AddressClass, type Prefix, classifyAddress, parseRulePrefix, prefixContains } from './ranges.js';
import { SluiceError } from './errors.js';

interface RulePrefix {
  readonly prefix: Prefix;
  readonly rule: string;
}

export interface CompiledGuard {
  readonly allow: readonly (RulePrefix & { readonly hosts: HostIndex<true> })[];
  readonly deny: readonly RulePrefix[];
  readonly globalDeny: readonly RulePrefix[];
  /** Every name some `addressGuard.allow` entry is bound to: the local-use names (special-names.ts) that may
   * be resolved at all. */
  readonly allowHosts: HostIndex<true>;
  /** Where the proxy listens (addresses or prefixes); a request there would loop or reach the admin API. */
  readonly self: readonly Prefix[];
}

// The brand exists only in the type system: no value of this name is ever made, so no other module can spell
// an AddressPass as a literal. "Validated by the guard" is then something tsc checks at every connect, not a
// convention (test/types/brands.ts; eslint.config.js refuses `as AddressPass` outside this file).
declare const checkedByGuard: unique symbol;

export interface AddressPass {
  readonly [checkedByGuard]: true;
  readonly verdict: 'allow';
  /** Canonical address to dial (IPv4-mapped IPv6 unwrapped). */
  readonly address: string;
  readonly family: 4 | 6;
  readonly class: AddressClass;
  /** `unicast` or the `addressGuard.allow[i]` exception that let a special-purpose address through. */
  readonly rule: string;
}

const CLASS_CODE: Record<Exclude<AddressClass, 'public'>, Code> = {
  private: 'EGR_DENY_ADDRESS_PRIVATE',
  loopback: 'EGR_DENY_ADDRESS_LOOPBACK',
  link_local: 'EGR_DENY_ADDRESS_LINK_LOCAL',
  reserved: 'EGR_DENY_ADDRESS_RESERVED',
  embedded: 'EGR_DENY_ADDRESS_EMBEDDED',
};

// An exception may open private, loopback or reserved space for a named service; it can never open link-local
// space (cloud metadata) or IPv6 forms that smuggle an IPv4 address, whatever the config says.
const OVERRIDABLE: ReadonlySet<AddressClass> = new Set(['private', 'loopback', 'reserved']);

// Every prefix goes through parseRulePrefix: an IPv4-mapped rule (`::ffff:8.8.8.8/128`) is compiled as the
// IPv4 prefix it spells, because classifyAddress judges mapped addresses as IPv4 (CONTRACT §6).
export function compileGuard(
  config: Pick<PolicyConfig, 'addressGuard' | 'globalDeny'>,
  selfAddresses: Iterable<string>,
): CompiledGuard {
  const prefix = (cidr: string): Prefix => {
    const p = parseRulePrefix(cidr);
    if (!p) throw new SluiceError('SLUICE_ERR_INVARIANT', `unvalidated CIDR reached the guard: ${cidr}`);
    return p;
  };
  const self: Prefix[] = [];
  for (const a of selfAddresses) {
    const p = parseRulePrefix(a);
    if (!p) throw new SluiceError('SLUICE_ERR_INVARIANT', `bad self address ${a}`);
    self.push(p);
  }
  return {
    allow: config.addressGuard.allow.map((e, i) => ({
      prefix: prefix(e.cidr),
      hosts: hostSet(e.hosts),
      rule: `addressGuard.allow[${i}]`,
    })),
    deny: config.addressGuard.deny.map((c, i) => ({ prefix: prefix(c), rule: `addressGuard.deny[${i}]` })),
    globalDeny: config.globalDeny.cidrs.map((c, i) => ({ prefix: prefix(c), rule: `globalDeny.cidrs[${i}]` })),
    allowHosts: hostSet(config.addressGuard.allow.flatMap((e) => e.hosts)),
    self,
  };
}

const pass = (p: Omit<AddressPass, typeof checkedByGuard>): AddressPass => p as AddressPass;

/** Checks one address that `host` resolved to (or that `host` is, for a literal). */
export function checkAddress(guard: CompiledGuard, ip: string, host: string): AddressPass | Deny {
  const c = classifyAddress(ip);
  if (!c) return deny('EGR_DENY_ADDRESS_RESERVED', 'addressGuard.parse', 'not an IP address');
  for (const p of guard.self)
    if (prefixContains(p, c.family, c.bytes)) return deny('EGR_DENY_ADDRESS_SELF', 'addressGuard.self');
  for (const r of guard.globalDeny)
    if (prefixContains(r.prefix, c.family, c.bytes)) return deny('EGR_DENY_GLOBAL', r.rule);
  for (const r of guard.deny)
    if (prefixContains(r.prefix, c.family, c.bytes)) return deny('EGR_DENY_ADDRESS_RULE', r.rule);
  if (c.class === 'public')
    return pass({ verdict: 'allow', address: c.address, family: c.family, class: c.class, rule: 'unicast' });
  if (OVERRIDABLE.has(c.class)) {
    for (const r of guard.allow) {
      if (prefixContains(r.prefix, c.family, c.bytes) && hostMatches(r.hosts, host)) {
        return pass({ verdict: 'allow', address: c.address, family: c.family, class: c.class, rule: r.rule });
      }
    }
  }
  return deny(CLASS_CODE[c.class], `addressGuard.${c.range}`);
}

/** Every answer must pass; one blocked answer blocks the whole set (a mixed set is an attack, not a fallback). */
export function checkAnswerSet(guard: CompiledGuard, ips: readonly string[], host: string): AddressPass[] | Deny {
  if (ips.length === 0) return deny('EGR_FAIL_DNS', 'dns.empty');
  const out: AddressPass[] = [];
  for (const ip of ips) {
    const r = checkAddress(guard, ip, host);
    if (r.verdict === 'deny') return r;
    out.push(r);
  }
  return out;
}

/** Step 3 of decide(): a literal target passes only when an `addressGuard.allow` entry covers it. */
export function literalException(guard: CompiledGuard, literal: string): string | null {
  const c = classifyAddress(literal);
  if (!c) return null;
  for (const r of guard.allow) {
    if (prefixContains(r.prefix, c.family, c.bytes) && hostMatches(r.hosts, literal)) return r.rule;
  }
  return null;
}

export function inGlobalDenyCidrs(guard: CompiledGuard, literal: string): string | null {
  const c = classifyAddress(literal);
  if (!c) return null;
  for (const r of guard.globalDeny) if (prefixContains(r.prefix, c.family, c.bytes)) return r.rule;
  return null;
}
