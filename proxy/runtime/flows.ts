// Every open flow in one registry: a CONNECT/SOCKS5 tunnel, an upgraded connection, a forwarded request still in
// flight. Whatever ends a right — the kill switch, a run token's expiry, a reload that takes a grant away, a new
// token key, shutdown — must reach all of them, not only the kinds someone remembered; and each is counted by kind.
//
// A kind is a row of FLOW_KINDS; the registry, the gauge and the close paths know kinds only through that table,
// so a new one (an inspected TLS session) plugs in with a row and a carrier that binds its own close.
// Each flow keeps what allowed it (principal, request, the addresses it may reach), so that a reload can judge it
// again under the new policy — the same decide() a new request meets — and close it if it would now be denied.
import { checkAnswerSet } from '../../firewall/address-guard.js';
import { type Deny, deny, isDeny } from '../../firewall/codes.js';
import { type EgressRequest, type Policy, type Rights, decide, rightsFor } from '../../firewall/policy.js';
import type { Principal } from '../auth/identity.js';
import type { FlowLink } from '../egress/splice.js';
import type { CloseReason } from '../ops/audit.js';

export interface FlowKindSpec {
  /** Its bytes pass unjudged (an opaque channel); `sluice_active_tunnels` counts these. */
  readonly opaque: boolean;
  /** A graceful shutdown closes it at once ('close': it has no natural end) or lets it finish ('finish'). */
  readonly drain: 'close' | 'finish';
}

export const FLOW_KINDS = Object.freeze({
  tunnel: { opaque: true, drain: 'close' },
  upgrade: { opaque: true, drain: 'close' },
  forward: { opaque: false, drain: 'finish' },
  // A TLS session Sluice terminates: each request inside is judged and is a `forward` flow of its own. Closing
  // it ends the session (and with it any request inside still in flight). At a graceful shutdown the inspector
  // ends idle sessions at once and the others after their last answer (Inspector.drain), so it 'finish'es.
  inspected: { opaque: false, drain: 'finish' },
} as const satisfies Record<string, FlowKindSpec>);

export type FlowKind = keyof typeof FLOW_KINDS;
export const FLOW_KIND_NAMES = Object.freeze(Object.keys(FLOW_KINDS) as FlowKind[]);

export type { CloseReason };

export interface FlowGrant {
  readonly principal: Principal;
  readonly request: EgressRequest;
  /** The token-key generation a run token was verified under (configured identities: unused). */
  readonly keyGeneration: number;
}

export interface FlowClose {
  readonly reason: CloseReason;
  /** The denial that ended it, for the record and for a flow closed before it carried anything; null for idle. */
  readonly deny: Deny | null;
}

export interface Flow extends FlowLink {
  readonly kind: FlowKind;
  readonly grant: FlowGrant;
  /** Set once Sluice has closed the flow. */
  readonly closed: FlowClose | null;
  /** The addresses the flow may connect to, once the dialer validated them (a reload checks them again). The
   * dialer's own list, kept by reference: registering a flow copies nothing. */
  addresses: readonly { readonly address: string }[];
  close(reason: CloseReason, why: Deny | null): void;
  /** The flow is over (its carrier returned): the registry forgets it. */
  end(): void;
}

export interface FlowRegistry {
  open(kind: FlowKind, grant: FlowGrant): Flow;
  count(kind: FlowKind): number;
  readonly size: number;
  /** Closes every open flow (of the kinds `which` accepts); returns how many. */
  closeAll(reason: CloseReason, why: Deny | null, which?: (kind: FlowKind) => boolean): number;
  /** Closes, as revoked, every flow `judge` now refuses; returns how many. */
  rejudge(judge: (flow: Flow) => Deny | null): number;
  /** Closes the flows whose run token expired by `nowMs` (ms since the epoch); returns how many. */
  expire(nowMs: number): number;
}

const NO_ADDRESSES: readonly { readonly address: string }[] = Object.freeze([]);

class OpenFlow implements Flow {
  addresses = NO_ADDRESSES;
  closed: FlowClose | null = null;
  /** A denial report mode lifted after decide() (a tunnel's SNI check): it applies again if report mode ends. */
  lifted: Deny | null = null;
  private closer: ((why: Deny | null) => void) | null = null;
  private done = false;

  constructor(
    readonly kind: FlowKind,
    readonly grant: FlowGrant,
    private readonly registry: Registry,
  ) {}

  bind(close: (why: Deny | null) => void): void {
    if (this.closed) close(this.closed.deny);
    else this.closer = close;
  }

  close(reason: CloseReason, why: Deny | null): void {
    if (this.closed || this.done) return;
    this.closed = { reason, deny: why };
    const close = this.closer;
    this.closer = null;
    close?.(why);
  }

  idle(): void {
    this.close('idle', null);
  }

  liftedByReport(d: Deny): void {
    this.lifted = d;
  }

  end(): void {
    if (this.done) return;
    this.done = true;
    this.closer = null;
    this.registry.remove(this);
  }
}

class Registry implements FlowRegistry {
  private readonly byKind = new Map<FlowKind, Set<OpenFlow>>(FLOW_KIND_NAMES.map((k) => [k, new Set()]));
  /** Flows opened with a run token: the only ones that can expire. */
  private readonly expiring = new Set<OpenFlow>();

  open(kind: FlowKind, grant: FlowGrant): Flow {
    const flow = new OpenFlow(kind, grant, this);
    this.byKind.get(kind)!.add(flow);
    if (grant.principal.expiresAtMs !== undefined) this.expiring.add(flow);
    return flow;
  }

  remove(flow: OpenFlow): void {
    this.byKind.get(flow.kind)!.delete(flow);
    this.expiring.delete(flow);
  }

  count(kind: FlowKind): number {
    return this.byKind.get(kind)!.size;
  }

  get size(): number {
    let n = 0;
    for (const set of this.byKind.values()) n += set.size;
    return n;
  }

  private each(fn: (flow: OpenFlow) => boolean, which?: (kind: FlowKind) => boolean): number {
    let n = 0;
    for (const [kind, set] of this.byKind) {
      if (which && !which(kind)) continue;
      // A close can end the flow at once (and delete it from the set): iterate over a copy.
      for (const flow of [...set]) if (!flow.closed && fn(flow)) n++;
    }
    return n;
  }

  closeAll(reason: CloseReason, why: Deny | null, which?: (kind: FlowKind) => boolean): number {
    return this.each((flow) => {
      flow.close(reason, why);
      return true;
    }, which);
  }

  rejudge(judge: (flow: Flow) => Deny | null): number {
    return this.each((flow) => {
      const d = judge(flow);
      if (!d) return false;
      flow.close('revoked', d);
      return true;
    });
  }

  expire(nowMs: number): number {
    let n = 0;
    for (const flow of [...this.expiring]) {
      if (flow.closed || nowMs < flow.grant.principal.expiresAtMs!) continue;
      flow.close('token-expired', deny('EGR_AUTH_EXPIRED', 'identity.token', 'the run token expired'));
      n++;
    }
    return n;
  }
}

export function createFlowRegistry(): FlowRegistry {
  return new Registry();
}

/**
 * Judges an open flow again under `policy`: null while its grant still holds, else the denial that applies now.
 * The flow's own principal and original request go through decide() as a new request would (the kill switch
 * aside: it closes flows itself), then the addresses it was allowed to reach through the new guard.
 * `changedCredentials`: configured identities whose password or hash the reload changed.
 */
export function judgeAgain(policy: Policy, flow: Flow, changedCredentials: ReadonlySet<string>): Deny | null {
  const { principal, request } = flow.grant;
  const base = rightsFor(policy, principal.identity);
  if (!base) return deny('EGR_AUTH_INVALID', 'identity', 'the identity was removed');
  let rights: Rights = base;
  if (principal.runId === null) {
    if (changedCredentials.has(principal.identity))
      return deny('EGR_AUTH_INVALID', 'identity', 'the credential was changed');
  } else {
    // A run token keeps its narrowing: it can lose integrations with its identity, never gain any.
    rights = { ...base, integrations: new Set([...base.integrations].filter((i) => principal.integrations.has(i))) };
  }
  const d = decide(policy, { killSwitch: false }, rights, request);
  if (isDeny(d)) return d;
  const lifted = (flow as Partial<OpenFlow>).lifted;
  if (lifted && (rights.mode ?? policy.mode) !== 'report') return lifted;
  if (flow.addresses.length) {
    const checked = checkAnswerSet(
      policy.guard,
      flow.addresses.map((a) => a.address),
      request.target.host,
    );
    if (isDeny(checked)) return checked;
  }
  return null;
}
