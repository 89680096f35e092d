// The egress policy: config compiled once into lookup structures, and decide(), the pure function that
// judges one request. Everything here is synchronous and allocation-light: it runs on every request.
import { type CompiledGuard, compileGuard, inGlobalDenyCidrs, literalException } from './address-guard.js';
import { type Deny, deny } from './codes.js';
import { checkSpecialName } from './special-names.js';
import { DEFAULT_METHODS, type Mode, type PolicyConfig, type Reads } from './config.js';
import { type HostIndex, compileHostIndex, hostMatches, hostSet, lookupHost } from './host-match.js';
import type { Target } from './normalise.js';

export interface CompiledIntegration {
  readonly name: string;
  readonly methods: ReadonlySet<string>;
  readonly tunnel: boolean;
  /** Protocols (lower-case names) an `Upgrade` may switch to: the operator's opt-in to an opaque channel. */
  readonly upgrade: ReadonlySet<string>;
  /** `integrations.<name>` and `integrations.<name>.methods`, built once rather than per decision. */
  readonly rule: string;
  readonly methodsRule: string;
}

export interface Policy {
  readonly config: PolicyConfig;
  readonly mode: Mode;
  readonly registries: HostIndex<true>;
  readonly integrations: ReadonlyMap<string, CompiledIntegration>;
  readonly integrationHosts: HostIndex<CompiledIntegration>;
  readonly globalDenyHosts: HostIndex<true>;
  readonly guard: CompiledGuard;
  /** `inspection.opaque`: hosts whose tunnels stay opaque (never inspected) when inspection is on. */
  readonly opaqueHosts: HostIndex<true>;
}

/** What one authenticated principal may do: an identity, possibly narrowed by a run token. */
export interface Rights {
  readonly identity: string;
  readonly integrations: ReadonlySet<string>;
  readonly reads: Reads;
  /** null: the global mode applies. */
  readonly mode: Mode | null;
  /** `identities.<name>.reads`, built once (rights made elsewhere may omit it). */
  readonly readsRule?: string;
}

export interface HttpEgress {
  readonly kind: 'http';
  readonly scheme: 'http' | 'https';
  /** Upper-case method as received. */
  readonly method: string;
  readonly target: Target;
  readonly hasBody: boolean;
  readonly upgrade: boolean;
  /** A real upgrade (`Connection: upgrade` with `Upgrade`): the lower-case protocol names asked for. Once the
   * origin agrees, the connection stops being HTTP and nothing in it is judged again, so it needs a granted
   * integration that lists every one of them in `upgrade:`. Absent or null: no upgrade (an `Upgrade` header
   * without `Connection: upgrade` is hop-by-hop, dropped, and judged only as a disguised write). */
  readonly upgradeTo?: readonly string[] | null;
  /** Upper-cased value of X-HTTP-Method-Override / X-HTTP-Method / X-Method-Override, if any was sent. */
  readonly methodOverride: string | null;
  /** A git smart-HTTP fetch (gitFetchOf): a POST that only reads. Judged as a read over https:// only. */
  readonly gitFetch?: boolean;
}

export interface TunnelEgress {
  readonly kind: 'tunnel';
  readonly target: Target;
  /** TLS inspection will terminate this tunnel and judge every request inside it (the caller decides: inspection
   * is on, the target is a name, and not an `inspection.opaque` host). Absent: an opaque tunnel. */
  readonly inspect?: boolean;
}

export type EgressRequest = HttpEgress | TunnelEgress;

export interface Allow {
  readonly verdict: 'allow';
  readonly rule: string;
  /** Whether Sluice originates TLS upstream (https:// targets, and every write: writes never go in cleartext). */
  readonly tls: boolean;
  readonly port: number;
  /** Report mode: the denial that enforce mode would have returned. */
  readonly wouldDeny: Deny | null;
}

export type Decision = Allow | Deny;

export interface DecideState {
  readonly killSwitch: boolean;
}

/** Headers by which a client asks the origin to treat a request as another method (a write in disguise). */
export const METHOD_OVERRIDE_HEADERS = Object.freeze([
  'x-http-method-override',
  'x-http-method',
  'x-method-override',
] as const);

export function methodOverrideOf(headers: Readonly<Record<string, string | string[] | undefined>>): string | null {
  for (const name of METHOD_OVERRIDE_HEADERS) {
    const v = headers[name];
    if (v !== undefined) return (Array.isArray(v) ? v.join(',') : v).trim().toUpperCase();
  }
  return null;
}

// RFC 9110 §7.8: Upgrade = #protocol, protocol = protocol-name ["/" protocol-version], both tokens.
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * The protocols a request asks to switch to, when it is a real upgrade (RFC 9110 §7.8 requires `upgrade` in
 * `Connection` too): lower-case names without versions, in the order asked. null: not an upgrade. 'invalid':
 * an Upgrade value that is not a list of protocol tokens.
 */
export function upgradeProtocolsOf(
  headers: Readonly<Record<string, string | string[] | undefined>>,
): readonly string[] | null | 'invalid' {
  const up = headers.upgrade;
  const conn = headers.connection;
  if (up === undefined || conn === undefined) return null;
  const tokens = (Array.isArray(conn) ? conn.join(',') : conn).split(',').map((t) => t.trim().toLowerCase());
  if (!tokens.includes('upgrade')) return null;
  const out: string[] = [];
  for (const item of (Array.isArray(up) ? up.join(',') : up).split(',')) {
    const p = item.trim();
    if (p === '') continue;
    const slash = p.indexOf('/');
    const name = slash === -1 ? p : p.slice(0, slash);
    if (!TOKEN.test(name) || (slash !== -1 && !TOKEN.test(p.slice(slash + 1)))) return 'invalid';
    out.push(name.toLowerCase());
  }
  return out.length ? out : 'invalid';
}

export const READ_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD']);

/** The largest git fetch negotiation judged as a read (gitFetchOf): some 1,300 wanted refs. */
export const GIT_FETCH_MAX_BODY_BYTES = 64 * 1024;

/**
 * git's smart-HTTP fetch (clone, fetch, ls-remote with protocol v2): `POST <repo>/git-upload-pack` with the
 * upload-pack request content type. It reads: its body is the negotiation (wants, haves, capabilities), the
 * answer is the pack. It is judged as a read over TLS only — a receive-pack (push) stays a write. Like a GET's
 * URL, the negotiation can carry bytes the client chose to a host it may read from; that is what reads allow.
 */
export function gitFetchOf(
  method: string,
  path: string,
  contentType: string | undefined,
  contentLength: string | undefined,
): boolean {
  if (method !== 'POST' || contentType?.trim().toLowerCase() !== 'application/x-git-upload-pack-request') return false;
  // Bounded like what a GET's head may carry: the negotiation of a clone is wants and haves (about 50 bytes a
  // ref), sent with a Content-Length below git's 1 MiB postBuffer. A chunked body, or one over the bound, is
  // judged as what it then is: a write (a POST of any size to any readable host would be an upload channel).
  if (contentLength === undefined || !/^[0-9]{1,7}$/.test(contentLength.trim())) return false;
  if (Number(contentLength.trim()) > GIT_FETCH_MAX_BODY_BYTES) return false;
  const q = path.indexOf('?');
  return (q === -1 ? path : path.slice(0, q)).endsWith('/git-upload-pack');
}
export const WRITE_METHODS: ReadonlySet<string> = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

export function compilePolicy(config: PolicyConfig, selfAddresses: Iterable<string> = []): Policy {
  const integrations = new Map<string, CompiledIntegration>();
  const hostEntries: [string, CompiledIntegration][] = [];
  for (const [name, i] of Object.entries(config.integrations)) {
    const rule = `integrations.${name}`;
    const compiled = Object.freeze({
      name,
      methods: new Set(i.methods ?? DEFAULT_METHODS),
      tunnel: i.tunnel,
      upgrade: new Set(i.upgrade),
      rule,
      methodsRule: `${rule}.methods`,
    });
    integrations.set(name, compiled);
    for (const h of i.hosts) hostEntries.push([h, compiled]);
  }
  return Object.freeze({
    config,
    mode: config.mode,
    registries: hostSet(config.registries),
    integrations,
    integrationHosts: compileHostIndex(hostEntries),
    globalDenyHosts: hostSet(config.globalDeny.hosts),
    guard: compileGuard(config, selfAddresses),
    opaqueHosts: hostSet(config.inspection?.opaque ?? []),
  });
}

// Rights are asked for on every authenticated request; they depend only on the compiled policy, so each
// policy keeps its own (a reload compiles a new policy, and the old rights go with it).
const rightsCache = new WeakMap<Policy, Map<string, Rights>>();

export function rightsFor(policy: Policy, identity: string): Rights | null {
  const id = Object.hasOwn(policy.config.identities, identity) ? policy.config.identities[identity] : undefined;
  if (!id) return null;
  let byName = rightsCache.get(policy);
  if (!byName) rightsCache.set(policy, (byName = new Map()));
  let rights = byName.get(identity);
  if (!rights) {
    rights = Object.freeze({
      identity,
      integrations: new Set(id.integrations),
      reads: id.reads,
      mode: id.mode,
      readsRule: `identities.${identity}.reads`,
    });
    byName.set(identity, rights);
  }
  return rights;
}

// Squid's Safe_ports, roughly: the web ports and the unprivileged range. Low ports (22, 25, 3306 is high but
// 5432 too…) are where non-HTTP services listen; plain reads have no business there.
const readPortAllowed = (port: number): boolean => port === 80 || port === 443 || port >= 1025;

const allow = (rule: string, tls: boolean, port: number): Allow => ({
  verdict: 'allow',
  rule,
  tls,
  port,
  wouldDeny: null,
});

/** Integration traffic always leaves over TLS to 443; `http://host` is how a client hands Sluice a write. */
function integrationAllow(req: HttpEgress, i: CompiledIntegration): Decision {
  const { port } = req.target;
  const ok = req.scheme === 'http' ? port === 80 : port === 443;
  if (!ok) return deny('EGR_DENY_PORT', i.rule, 'integration traffic goes over TLS to port 443 only');
  return allow(i.rule, true, 443);
}

const NO_INTEGRATIONS: readonly CompiledIntegration[] = Object.freeze([]);

function grantedIntegrations(policy: Policy, rights: Rights, host: string): readonly CompiledIntegration[] {
  const matches = lookupHost(policy.integrationHosts, host);
  if (matches.length === 0) return NO_INTEGRATIONS;
  return matches.filter((i) => rights.integrations.has(i.name));
}

const readsRule = (rights: Rights) => rights.readsRule ?? `identities.${rights.identity}.reads`;

function decideHttp(policy: Policy, rights: Rights, req: HttpEgress): Decision {
  const d = decideHttpMethod(policy, rights, req);
  if (d.verdict !== 'allow' || !req.upgradeTo) return d;
  // The method may go; the upgrade also needs an integration that permits the method and opted in to every
  // protocol asked for: after a 101 the connection is an opaque pipe, as unjudged as a tunnel.
  const { method, methodOverride } = req;
  const granted = grantedIntegrations(policy, rights, req.target.host);
  const protocols = req.upgradeTo;
  const g = granted.find(
    (i) =>
      i.methods.has(method) &&
      (methodOverride === null || i.methods.has(methodOverride)) &&
      protocols.every((p) => i.upgrade.has(p)),
  );
  if (!g) return deny('EGR_DENY_UPGRADE', granted.length ? `${granted[0]!.rule}.upgrade` : 'upgrade');
  return integrationAllow(req, g);
}

function decideHttpMethod(policy: Policy, rights: Rights, req: HttpEgress): Decision {
  const { method } = req;
  const gitFetch = req.gitFetch === true && req.scheme === 'https';
  const read = READ_METHODS.has(method) || gitFetch;
  const disguised = read && ((req.hasBody && !gitFetch) || req.upgrade || req.methodOverride !== null);

  // The common case first, and without looking up integrations it does not need.
  if (read && !disguised && rights.reads === 'public') {
    if (!readPortAllowed(req.target.port)) return deny('EGR_DENY_PORT', 'ports.read');
    return allow(readsRule(rights), req.scheme === 'https', req.target.port);
  }
  const granted = grantedIntegrations(policy, rights, req.target.host);

  if (read && !disguised) {
    const g = granted.find((i) => i.methods.has(method));
    if (g) return integrationAllow(req, g);
    // Registries are read by every identity (they were reachable by opaque tunnel before TLS inspection made
    // them readable per request): GET and HEAD over TLS to 443, nothing else.
    if (req.scheme === 'https' && req.target.port === 443 && hostMatches(policy.registries, req.target.host))
      return allow('registries', true, 443);
    return deny('EGR_DENY_READ', readsRule(rights));
  }

  if (disguised) {
    if (granted.length === 0) return deny('EGR_DENY_DISGUISED_WRITE', 'disguisedWrite');
    // The method the origin will act on is the override, if any; both must be allowed.
    const effective = req.methodOverride ?? method;
    const g = granted.find((i) => i.methods.has(method) && i.methods.has(effective));
    if (!g) return deny('EGR_DENY_METHOD', granted[0]!.methodsRule);
    return integrationAllow(req, g);
  }

  if (WRITE_METHODS.has(method)) {
    if (granted.length === 0) return deny('EGR_DENY_WRITE', 'integrations');
    const g = granted.find(
      (i) => i.methods.has(method) && (req.methodOverride === null || i.methods.has(req.methodOverride)),
    );
    if (!g) return deny('EGR_DENY_METHOD', granted[0]!.methodsRule);
    return integrationAllow(req, g);
  }

  const g = granted.find(
    (i) => i.methods.has(method) && (req.methodOverride === null || i.methods.has(req.methodOverride)),
  );
  if (!g) return deny('EGR_DENY_METHOD', granted.length ? granted[0]!.methodsRule : 'methods');
  return integrationAllow(req, g);
}

/**
 * A tunnel TLS inspection terminates: it is allowed when some request inside could be — a granted integration,
 * a registry, or a public read — because every request inside is then judged by decideHttp on its own.
 */
function decideInspectedTunnel(policy: Policy, rights: Rights, req: TunnelEgress): Decision {
  const { host, port } = req.target;
  const g = grantedIntegrations(policy, rights, host)[0];
  const registry = hostMatches(policy.registries, host);
  if (port === 443) {
    if (g) return allow(g.rule, true, 443);
    if (registry) return allow('registries', true, 443);
  }
  if (rights.reads === 'public') {
    if (!readPortAllowed(port)) return deny('EGR_DENY_PORT', 'ports.read');
    return allow(readsRule(rights), true, port);
  }
  if (g || registry) return deny('EGR_DENY_PORT', 'tunnel.port');
  return deny('EGR_DENY_READ', readsRule(rights));
}

function decideTunnel(policy: Policy, rights: Rights, req: TunnelEgress): Decision {
  if (req.inspect) return decideInspectedTunnel(policy, rights, req);
  const { host, port } = req.target;
  let rule: string | null = hostMatches(policy.registries, host) ? 'registries' : null;
  if (!rule) {
    const g = grantedIntegrations(policy, rights, host).find((i) => i.tunnel);
    if (g) rule = g.rule;
  }
  if (!rule) return deny('EGR_DENY_TUNNEL', 'tunnel');
  if (port !== 443) return deny('EGR_DENY_PORT', 'tunnel.port');
  return allow(rule, false, 443);
}

/** The transport a request would use if allowed; report mode needs it for requests it lets through. */
function transportFor(req: EgressRequest): { tls: boolean; port: number } {
  if (req.kind === 'tunnel') return { tls: req.inspect === true, port: req.target.port };
  if (READ_METHODS.has(req.method) && !req.hasBody && !req.upgrade && req.methodOverride === null) {
    return { tls: req.scheme === 'https', port: req.target.port };
  }
  return { tls: true, port: req.scheme === 'http' && req.target.port === 80 ? 443 : req.target.port };
}

/**
 * Judges one request. Evaluation order (CONTRACT §2; each step is a row of test/firewall/decide.test.ts):
 *  1. kill switch engaged → EGR_DENY_KILL_SWITCH
 *  2. host on globalDeny.hosts, or literal in globalDeny.cidrs → EGR_DENY_GLOBAL; a special-use name
 *     (special-names.ts: localhost, .onion, .invalid, .local, …) → its code, decided here so that no
 *     resolver ever sees it
 *  3. IP-literal target → EGR_DENY_IP_LITERAL unless an addressGuard.allow entry covers it
 *  4. plain HTTP: reads (GET, HEAD) need `reads: public` or a granted integration (EGR_DENY_READ, ports:
 *     EGR_DENY_PORT); a read with a body, Upgrade or method override is a write in disguise
 *     (EGR_DENY_DISGUISED_WRITE unless the host is a granted integration); writes (POST, PUT, PATCH, DELETE)
 *     only to a granted integration (EGR_DENY_WRITE) with a method it allows (EGR_DENY_METHOD); any other
 *     method only if the integration lists it (EGR_DENY_METHOD). A real upgrade (`upgradeTo`) also needs a
 *     granted integration that lists every protocol asked for in `upgrade:` (EGR_DENY_UPGRADE). Integration
 *     traffic is sent over TLS to 443.
 *     A GET or HEAD to a registry over TLS (port 443) is allowed to every identity (rule `registries`).
 *  5. tunnels (CONNECT, SOCKS5): only registries and granted integrations with tunnel: true
 *     (EGR_DENY_TUNNEL), port 443 only (EGR_DENY_PORT); the SNI check happens on the first bytes, later.
 *     An inspected tunnel (`inspect`) is allowed where a request inside could be: a granted integration or a
 *     registry on 443, or any host for a `reads: public` identity on a read port (else EGR_DENY_READ /
 *     EGR_DENY_PORT); each request inside is then judged by step 4.
 *  Report mode (global or per identity) turns a denial from steps 3–5 into an allow carrying `wouldDeny`.
 *  Steps 1 and 2 always enforce, like step 6, the address guard on every resolved address (in the dialer):
 *  a report-mode identity must not reach what the operator denied for everyone, and `globalDeny.hosts`
 *  cannot be weaker than `globalDeny.cidrs`.
 */
export function decide(policy: Policy, state: DecideState, rights: Rights, req: EgressRequest): Decision {
  if (state.killSwitch) return deny('EGR_DENY_KILL_SWITCH', 'killSwitch');
  const always = decideAlways(policy, req.target);
  if (always) return always;
  const verdict = decidePolicy(policy, rights, req);
  if (verdict.verdict === 'allow') return verdict;
  if ((rights.mode ?? policy.mode) !== 'report') return verdict;
  const t = transportFor(req);
  return { verdict: 'allow', rule: 'mode.report', tls: t.tls, port: t.port, wouldDeny: verdict };
}

/** Step 2: what no mode lifts. */
function decideAlways(policy: Policy, target: Target): Deny | null {
  if (hostMatches(policy.globalDenyHosts, target.host)) return deny('EGR_DENY_GLOBAL', 'globalDeny.hosts');
  if (target.kind === 'name') return checkSpecialName(target.host, policy.guard.allowHosts);
  const cidrRule = inGlobalDenyCidrs(policy.guard, target.host);
  return cidrRule ? deny('EGR_DENY_GLOBAL', cidrRule) : null;
}

function decidePolicy(policy: Policy, rights: Rights, req: EgressRequest): Decision {
  const { target } = req;
  if (target.kind !== 'name' && !literalException(policy.guard, target.host))
    return deny('EGR_DENY_IP_LITERAL', 'ipLiteral');
  return req.kind === 'http' ? decideHttp(policy, rights, req) : decideTunnel(policy, rights, req);
}
