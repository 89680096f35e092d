// What kind of place a request tried to reach, as one label from a fixed set: the metrics for denied egress
// ("who tried to reach what") group by it instead of by host, whose cardinality an attacker controls. Pure: the
// caller hands in the target as audited, the code that ended it and the policy's host lists.
import type { Code } from './codes.js';
import { classifyAddress } from './ranges.js';
import { lookupHost, hostMatches, type HostIndex } from './host-match.js';
import { specialNameOf } from './special-names.js';

/**
 * - `metadata`: a cloud instance-metadata service (credentials live there: the first thing hostile code asks).
 * - `loopback`, `private`, `link_local`, `reserved`: special-purpose space, by the address Sluice refused or
 *   the special-use name it never resolved (`localhost` is loopback, `.local`/`.internal`/`home.arpa` private).
 * - `self`: the proxy's own addresses.
 * - `unresolvable`: a name no global DNS answers (`.onion`, `.invalid`, `.alt`, `.arpa`).
 * - `integration`: a host of a configured integration (granted to the identity or not); the name goes in its own
 *   label, bounded by the config like identities.
 * - `registry`: a package registry.
 * - `public`: any other host.
 * - `unknown`: the request ended before it named a target (an authentication failure, a malformed request).
 */
export const DESTINATION_CLASSES = Object.freeze([
  'metadata',
  'loopback',
  'private',
  'link_local',
  'reserved',
  'self',
  'unresolvable',
  'integration',
  'registry',
  'public',
  'unknown',
] as const);

export type DestinationClass = (typeof DESTINATION_CLASSES)[number];

export interface Destination {
  readonly class: DestinationClass;
  /** The integration whose hosts matched, for `integration` only. */
  readonly integration: string | null;
}

/** The policy's host lists, as compiled (policy.ts): `Policy` satisfies it. */
export interface DestinationLists {
  readonly registries: HostIndex<true>;
  readonly integrationHosts: HostIndex<{ readonly name: string }>;
}

// Instance-metadata endpoints of the major clouds. 169.254.169.254 serves AWS, GCP, Azure, OpenStack,
// DigitalOcean and Oracle; 169.254.170.2 is the ECS task credential endpoint; 169.254.170.23 and fd00:ec2::23
// EKS Pod Identity; fd00:ec2::254 AWS IMDS over IPv6; 100.100.100.200 Alibaba Cloud; 192.0.0.192 Oracle's
// legacy endpoint. Several sit outside link-local space, so the address class alone would miss them.
const METADATA_ADDRESSES: ReadonlySet<string> = new Set([
  '169.254.169.254',
  '169.254.170.2',
  '169.254.170.23',
  '100.100.100.200',
  '192.0.0.192',
  'fd00:ec2::254',
  'fd00:ec2::23',
]);

// Names the metadata services answer to: GCE resolves `metadata` and `metadata.google.internal` (and serves
// `metadata.goog`), EC2 `instance-data` and `instance-data.ec2.internal`.
const METADATA_NAMES: ReadonlySet<string> = new Set([
  'metadata',
  'metadata.google.internal',
  'metadata.goog',
  'instance-data',
  'instance-data.ec2.internal',
]);

// A name the address guard refused is classed by what it resolved to: the code says which space.
const ADDRESS_CODE_CLASS: Readonly<Partial<Record<Code, DestinationClass>>> = {
  EGR_DENY_ADDRESS_PRIVATE: 'private',
  EGR_DENY_ADDRESS_LOOPBACK: 'loopback',
  EGR_DENY_ADDRESS_LINK_LOCAL: 'link_local',
  EGR_DENY_ADDRESS_RESERVED: 'reserved',
  EGR_DENY_ADDRESS_EMBEDDED: 'reserved',
  EGR_DENY_ADDRESS_SELF: 'self',
};

const of = (cls: DestinationClass): Destination => ({ class: cls, integration: null });
const UNKNOWN = Object.freeze(of('unknown'));

/**
 * Classes one audited target. `host` is the normalised target host (a name, or an IP literal without brackets),
 * `code` the code the request ended with (null when allowed). The order is the answer's precedence: metadata
 * first (whatever list also names it), then what the address or the special-use name says, then the policy's
 * lists — a registry name that resolved to a private address is reported as `private`, which is what it reached.
 */
export function classifyDestination(lists: DestinationLists, host: string | null, code: Code | null): Destination {
  if (host === null || host === '') return UNKNOWN;
  const literal = classifyAddress(host);
  if (literal) {
    if (METADATA_ADDRESSES.has(literal.address)) return of('metadata');
    if (code === 'EGR_DENY_ADDRESS_SELF') return of('self');
    if (literal.class !== 'public') return of(literal.class === 'embedded' ? 'reserved' : literal.class);
  } else {
    if (METADATA_NAMES.has(host)) return of('metadata');
    const special = specialNameOf(host);
    if (special)
      return of(special.kind === 'loopback' ? 'loopback' : special.kind === 'local-use' ? 'private' : 'unresolvable');
    const byAddress = code === null ? undefined : ADDRESS_CODE_CLASS[code];
    if (byAddress) return of(byAddress);
  }
  const integration = lookupHost(lists.integrationHosts, host)[0];
  if (integration) return { class: 'integration', integration: integration.name };
  if (hostMatches(lists.registries, host)) return of('registry');
  return of('public');
}
