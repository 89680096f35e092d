// Special-use domain names (the IANA registry RFC 6761 set up, and the names reserved since): names that
// the global DNS never answers, or answers only for a private network. Sluice judges them before any
// resolver sees them, in decide() step 2, in every mode: a query for `localhost` or `x.onion` sent upstream
// leaks what the workload is after, and an upstream that answers `localhost` with a public address would
// otherwise be dialled. Pure: a table and a suffix walk.
import { type Deny, deny } from './codes.js';
import { type HostIndex, hostMatches } from './host-match.js';

/**
 * - `loopback`: names the host itself. Denied as loopback, always; an `addressGuard.allow` exception cannot
 *   open it (the names are never resolved, so there is no address to bind an exception to: an operator who
 *   means a loopback service writes its IP literal).
 * - `unresolvable`: never exists in the global DNS. Refused as a DNS failure (what an RFC-conforming resolver
 *   answers: NXDOMAIN), without a lookup.
 * - `local-use`: exists only on a private network (link-local multicast, a home network, a private zone).
 *   Denied as a private address without a lookup, unless an `addressGuard.allow` entry is bound to the name:
 *   then it is resolved like any other name and every answer still goes through the address guard.
 */
export type SpecialNameKind = 'loopback' | 'unresolvable' | 'local-use';

export interface SpecialName {
  readonly kind: SpecialNameKind;
  /** The registered suffix that matched (`localhost`, `onion`, `home.arpa`, …). */
  readonly suffix: string;
}

// A name matches its own entry or any entry that is a suffix of it at a label boundary; the longest wins
// (`home.arpa` before `arpa`). Deliberately absent, and so resolved like any other name: `test` and
// `example` (RFC 6761 §6.2 and §6.5 say software SHOULD NOT treat them specially, and test rigs rely on
// that), and private names that no RFC reserves (`corp`, `lan`, `home`): the address guard judges their answers.
export const SPECIAL_NAMES: ReadonlyMap<string, SpecialNameKind> = new Map<string, SpecialNameKind>([
  ['localhost', 'loopback'], // RFC 6761 §6.3
  ['invalid', 'unresolvable'], // RFC 6761 §6.4
  ['onion', 'unresolvable'], // RFC 7686 §2: resolvers answer NXDOMAIN; only Tor reaches these
  ['alt', 'unresolvable'], // RFC 9476: names outside the DNS by definition
  // RFC 3172: infrastructure only — reverse mapping (in-addr.arpa, ip6.arpa), ipv4only.arpa (RFC 7050),
  // resolver.arpa (RFC 9462). Nothing under it names a web host; its only A records are special-purpose.
  ['arpa', 'unresolvable'],
  ['home.arpa', 'local-use'], // RFC 8375: home networks
  ['local', 'local-use'], // RFC 6762 §3: multicast DNS on the local link (and some Active Directory zones)
  ['internal', 'local-use'], // ICANN, 2024: reserved for private use, never delegated (metadata.google.internal)
]);

// Every entry ends in one of these labels; decide() runs this on every request, and almost every name's last
// label is not one of them, so one slice and one lookup answer it.
const LAST_LABELS: ReadonlySet<string> = new Set([...SPECIAL_NAMES.keys()].map((n) => n.slice(n.lastIndexOf('.') + 1)));

/** The special-use suffix a normalised name falls under, or null for an ordinary name. Pure. */
export function specialNameOf(host: string): SpecialName | null {
  if (!LAST_LABELS.has(host.slice(host.lastIndexOf('.') + 1))) return null;
  let rest = host;
  for (;;) {
    const kind = SPECIAL_NAMES.get(rest);
    if (kind !== undefined) return { kind, suffix: rest };
    const dot = rest.indexOf('.');
    if (dot === -1) return null;
    rest = rest.slice(dot + 1);
  }
}

/**
 * decide()'s verdict on a special-use name, or null when the name may go to the resolver. `exceptions` holds
 * the names bound to `addressGuard.allow` entries: only those lift a local-use name.
 */
export function checkSpecialName(host: string, exceptions: HostIndex<unknown>): Deny | null {
  const s = specialNameOf(host);
  if (!s) return null;
  const rule = `specialUse.${s.suffix}`;
  switch (s.kind) {
    case 'loopback':
      return deny('EGR_DENY_ADDRESS_LOOPBACK', rule, 'RFC 6761: localhost names this host; it is never sent to DNS');
    case 'unresolvable':
      return deny('EGR_FAIL_DNS', rule, 'a special-use name that the DNS never resolves; not looked up');
    case 'local-use':
      if (hostMatches(exceptions, host)) return null;
      return deny(
        'EGR_DENY_ADDRESS_PRIVATE',
        rule,
        'a local-use name; bind an addressGuard.allow entry to it to resolve it',
      );
  }
}
