// The stages of a request, in order, one list per edge kind: HTTP_STAGES (absolute-form requests, and every
// request read inside an inspected tunnel), UPGRADE_STAGES, TUNNEL_STAGES. pipeline.ts runs a list with one
// driver; docs/ARCHITECTURE.md "Request lifecycle" draws the same lists (test/proxy/lifecycle-doc.test.ts).
// A stage reads what the stages before it produced (its own result goes on the request under its name), records
// what it learnt on the audit record, and returns its result or a Deny. Stages never call each other; a stage
// that throws is a bug (the driver denies EGR_INTERNAL, and still releases the admission slot and ends the flow).
import { type Code, type Deny, deny, isDeny } from '../../firewall/codes.js';
import {
  type AbsoluteTarget,
  type Target,
  formatAuthority,
  normaliseHost,
  parseAbsoluteTarget,
  parseAuthority,
} from '../../firewall/normalise.js';
import {
  type Allow,
  type EgressRequest,
  type HttpEgress,
  decide,
  gitFetchOf,
  methodOverrideOf,
  upgradeProtocolsOf,
} from '../../firewall/policy.js';
import { hostMatches } from '../../firewall/host-match.js';
import { type Admitted, UNLIMITED } from '../auth/admission.js';
import type { Principal } from '../auth/identity.js';
import type { DialPlan } from '../egress/dialer.js';
import {
  type ForwardPlan,
  type ForwardResult,
  forwardHttp,
  forwardUpgrade,
  requestHasBody,
} from '../egress/forward.js';
import { runTunnel } from '../egress/tunnel.js';
import { type InspectionRuntime, runInspected } from '../inspection/tunnel.js';
import type { OpenRecord } from '../ops/audit.js';
import type { Flow } from '../runtime/flows.js';
import { type Brokered, brokerStage } from './broker-stage.js';
import type {
  EdgeBase,
  HttpEdge,
  Pipeline,
  PipelineDeps,
  RawTunnelTarget,
  TunnelEdge,
  TunnelRequest,
  UpgradeEdge,
} from './pipeline.js';

/** What a stage may use besides the request: the pipeline's dependencies, and the pipeline itself (an inspected
 * tunnel hands the requests it reads back to it). */
export interface StageEnv {
  readonly deps: PipelineDeps;
  readonly pipeline: Pipeline;
}

/** What a request has before any stage. */
interface RequestFixed {
  readonly edge: EdgeBase;
  readonly rec: OpenRecord;
  readonly kind: 'forward' | 'upgrade' | 'tunnel';
}

/** A request on its way through the stages: the edge, its record, and each passed stage's result by name. */
export interface RequestBase extends RequestFixed {
  identity: Identified;
  admission: Admitted;
  flow: Flow;
}

export interface Identified {
  readonly principal: Principal;
  /** The run-token key generation the credential was checked under (flows remember it). */
  readonly keyGeneration: number;
}

export interface HttpRequestState extends RequestBase {
  readonly edge: HttpEdge | UpgradeEdge;
  target: AbsoluteTarget;
  /** UPGRADE_STAGES only: the protocols asked for. */
  upgrade: readonly string[];
  decision: { readonly request: HttpEgress; readonly allow: Allow };
  broker: { readonly brokered: Brokered | null; readonly tls: boolean; readonly port: number };
  dial: DialPlan;
  forward: ForwardResult;
}

export interface TunnelRequestState extends RequestBase {
  readonly edge: TunnelEdge;
  target: { readonly target: Target; readonly request: TunnelRequest };
  decision: { readonly request: EgressRequest; readonly allow: Allow; readonly inspection: InspectionRuntime | null };
  dial: DialPlan;
  tunnel: null;
}

type Result<T> = T | Deny | Promise<T | Deny>;

/** One stage; `name` is also where its result is kept on the request. */
export interface StageOf<R, K extends keyof R> {
  readonly name: K;
  /** The codes this stage itself denies with (a bug anywhere is EGR_INTERNAL, from the driver). */
  readonly codes: readonly Code[];
  /** The stage hands the client to something that answers it (a tunnel): its Deny is recorded, not rendered. */
  readonly answers?: boolean;
  run(r: R, env: StageEnv): Result<R[K]>;
}

type StageName<R> = Exclude<keyof R & string, keyof RequestFixed>;
export type Stage<R> = { [K in StageName<R>]: StageOf<R, K> }[StageName<R>];

/** A flow Sluice closed while a stage awaited (kill switch, token expiry, identity removed) denies with why. */
export const FLOW_CLOSED_CODES = ['EGR_DENY_KILL_SWITCH', 'EGR_AUTH_EXPIRED', 'EGR_AUTH_INVALID'] as const;

const identity: StageOf<RequestBase, 'identity'> = {
  name: 'identity',
  codes: ['EGR_AUTH_REQUIRED', 'EGR_AUTH_INVALID', 'EGR_AUTH_EXPIRED', 'EGR_LIMIT_RATE'],
  async run({ edge, rec }, { deps }) {
    // Read before authenticate(), which checks a run token synchronously against the key of this moment.
    const keyGeneration = deps.tokenKeyGeneration?.() ?? 0;
    // The identity stage applies the failed-credential throttle itself (it alone knows which checks cost scrypt).
    const principal = await deps.identities.authenticate(edge.credentials, edge.clientAddr);
    if (isDeny(principal)) return principal;
    rec.identified(principal);
    return { principal, keyGeneration };
  },
};

const admission: StageOf<RequestBase, 'admission'> = {
  name: 'admission',
  codes: ['EGR_LIMIT_RATE', 'EGR_LIMIT_CONCURRENCY'],
  run: (r, { deps }) => (deps.admission ? deps.admission.admit(r.identity.principal) : UNLIMITED),
};

const httpTarget: StageOf<HttpRequestState, 'target'> = {
  name: 'target',
  // An inspected request is refused here if it does not name the tunnel's host (421) or breaks RFC 9110/9112.
  codes: ['EGR_INVALID_TARGET', 'EGR_MISDIRECTED', 'EGR_BAD_REQUEST', 'EGR_UNSUPPORTED'],
  run({ edge, rec }) {
    const inside = edge.inspected;
    if (inside?.refusal) return inside.refusal;
    const target = parseAbsoluteTarget(inside?.url ?? edge.req.url ?? '');
    if (isDeny(target)) return target;
    rec.target(target.target.host, target.target.port, target.path);
    return target;
  },
};

const upgrade: StageOf<HttpRequestState, 'upgrade'> = {
  name: 'upgrade',
  codes: ['EGR_BAD_REQUEST', 'EGR_UNSUPPORTED'],
  run({ edge: { req } }) {
    const protocols = upgradeProtocolsOf(req.headers);
    if (protocols === null || protocols === 'invalid')
      return deny('EGR_BAD_REQUEST', 'http.upgrade', 'Upgrade is not a list of protocols');
    // The bytes after an upgrade request's head belong to the new protocol; a body there would be smuggled.
    if (requestHasBody(req)) return deny('EGR_UNSUPPORTED', 'http.upgrade', 'an upgrade request with a body');
    return protocols;
  },
};

const httpDecision: StageOf<HttpRequestState, 'decision'> = {
  name: 'decision',
  codes: [
    'EGR_DENY_KILL_SWITCH',
    'EGR_DENY_GLOBAL',
    'EGR_DENY_IP_LITERAL',
    'EGR_DENY_READ',
    'EGR_DENY_WRITE',
    'EGR_DENY_DISGUISED_WRITE',
    'EGR_DENY_METHOD',
    'EGR_DENY_PORT',
    'EGR_DENY_UPGRADE',
  ],
  run(r, { deps }) {
    const { req } = r.edge;
    const { scheme, target, path } = r.target;
    // Set by the upgrade stage, which only UPGRADE_STAGES hold.
    const upgradeTo = (r.upgrade as readonly string[] | undefined) ?? null;
    const request: HttpEgress = {
      kind: 'http',
      scheme,
      method: req.method ?? '',
      target,
      hasBody: requestHasBody(req),
      upgrade: upgradeTo !== null || req.headers.upgrade !== undefined,
      upgradeTo,
      methodOverride: methodOverrideOf(req.headers),
      gitFetch: gitFetchOf(req.method ?? '', path, req.headers['content-type'], req.headers['content-length']),
    };
    const allow = decide(deps.policy(), deps.state(), r.identity.principal, request);
    if (isDeny(allow)) return allow;
    r.rec.decided(allow.rule, allow.wouldDeny);
    return { request, allow };
  },
};

/** Registers an allowed request as a flow: synchronously after decide(), so nothing that closes flows misses it
 * (a kill switch, an expiry or a revocation that lands while it resolves or connects reaches it too). */
const flow: StageOf<
  RequestBase & { decision: { readonly request: EgressRequest; readonly inspection?: InspectionRuntime | null } },
  'flow'
> = {
  name: 'flow',
  codes: [],
  run: ({ decision, identity, kind }, { deps }) =>
    deps.flows.open(decision.inspection ? 'inspected' : kind, {
      principal: identity.principal,
      request: decision.request,
      keyGeneration: identity.keyGeneration,
    }),
};

const broker: StageOf<HttpRequestState, 'broker'> = {
  name: 'broker',
  // A handle replaced or refused; never lifted by report mode.
  codes: [
    'EGR_BAD_REQUEST',
    'EGR_DENY_CREDENTIAL_SCOPE',
    'EGR_DENY_CREDENTIAL_EXPIRED',
    'EGR_DENY_CREDENTIAL_REVOKED',
    'EGR_DENY_CREDENTIAL_FOREIGN',
    ...FLOW_CLOSED_CODES,
  ],
  async run(r, { deps }) {
    const { tls, port } = r.decision.allow;
    const b = deps.broker?.() ?? null;
    if (!b) return { brokered: null, tls, port };
    const { request } = r.decision;
    const result = await brokerStage({
      broker: b,
      principal: r.identity.principal,
      req: r.edge.req,
      host: r.target.target.host,
      path: r.target.path,
      method: request.method,
      upstreamTls: tls,
      scheme: r.target.scheme,
      port: r.target.target.port,
      upgrade: request.upgrade,
      hasBody: request.hasBody,
      peekTimeoutMs: deps.timeouts().idleTimeoutMs,
    });
    if (!result.ok) {
      r.rec.brokered(result.audit);
      return result.deny;
    }
    r.rec.brokered(result.brokered?.audit ?? null);
    if (r.flow.closed?.deny) return r.flow.closed.deny;
    return result.tlsUpgrade
      ? { brokered: result.brokered, tls: true, port: 443 }
      : { brokered: result.brokered, tls, port };
  },
};

const DIAL_CODES: readonly Code[] = [
  'EGR_FAIL_DNS',
  'EGR_FAIL_DNS_TIMEOUT',
  'EGR_LIMIT_CONCURRENCY',
  'EGR_DENY_GLOBAL',
  'EGR_DENY_ADDRESS_PRIVATE',
  'EGR_DENY_ADDRESS_LOOPBACK',
  'EGR_DENY_ADDRESS_LINK_LOCAL',
  'EGR_DENY_ADDRESS_RESERVED',
  'EGR_DENY_ADDRESS_EMBEDDED',
  'EGR_DENY_ADDRESS_SELF',
  'EGR_DENY_ADDRESS_RULE',
  ...FLOW_CLOSED_CODES,
];

/** Resolve and validate: the name was judged by decide(), before any resolver saw it (denied names never leak
 * into DNS). */
async function prepareDial(
  r: { readonly flow: Flow; readonly rec: OpenRecord },
  host: Target,
  { deps }: StageEnv,
): Promise<DialPlan | Deny> {
  const plan = await deps.dialer.prepare(host);
  if (isDeny(plan)) return plan;
  r.flow.addresses = plan.addresses;
  if (r.flow.closed?.deny) return r.flow.closed.deny;
  return plan;
}

const httpDial: StageOf<HttpRequestState, 'dial'> = {
  name: 'dial',
  codes: DIAL_CODES,
  async run(r, env) {
    const plan = await prepareDial(r, r.target.target, env);
    if (isDeny(plan)) return plan;
    r.rec.stage({ dnsMs: plan.dnsMs, dialAddress: plan.addresses[0]?.address ?? null });
    return plan;
  },
};

const FORWARD_CODES: readonly Code[] = [
  'EGR_FAIL_CONNECT_REFUSED',
  'EGR_FAIL_CONNECT_UNREACHABLE',
  'EGR_FAIL_CONNECT_TIMEOUT',
  'EGR_FAIL_UPSTREAM',
  'EGR_UPSTREAM_TLS',
  'EGR_BAD_REQUEST',
  ...FLOW_CLOSED_CODES,
];

function forwardPlanOf(r: HttpRequestState): ForwardPlan {
  const { tls, port, brokered } = r.broker;
  const upstreamTarget = { ...r.target.target, port };
  return {
    origin: `${tls ? 'https' : 'http'}://${formatAuthority(upstreamTarget)}`,
    path: r.target.path,
    method: r.decision.request.method,
    authority: formatAuthority(upstreamTarget, tls ? 443 : 80),
    ...(brokered ? { brokered } : {}),
  };
}

function forwarded(r: HttpRequestState, result: ForwardResult | Deny): ForwardResult | Deny {
  if (isDeny(result)) return r.flow.closed?.deny ?? result;
  r.rec.stage({ status: result.status, bytesUp: result.bytesUp, bytesDown: result.bytesDown });
  if (result.aborted) r.rec.note('response cut short');
  const scrub = r.broker.brokered?.scrub;
  if (scrub) r.rec.scrubbed(scrub.replaced);
  return result;
}

const forward: StageOf<HttpRequestState, 'forward'> = {
  name: 'forward',
  codes: FORWARD_CODES,
  async run(r, { deps }) {
    const edge = r.edge as HttpEdge;
    return forwarded(r, await forwardHttp(deps.dialer, forwardPlanOf(r), edge.req, edge.res, r.flow));
  },
};

const forwardUpgraded: StageOf<HttpRequestState, 'forward'> = {
  name: 'forward',
  codes: FORWARD_CODES,
  async run(r, { deps }) {
    const edge = r.edge as UpgradeEdge;
    const result = await forwardUpgrade(deps.dialer, {
      plan: forwardPlanOf(r),
      upgrade: String(edge.req.headers.upgrade),
      protocols: r.upgrade,
      req: edge.req,
      client: edge.socket,
      head: edge.head,
      idleTimeoutMs: deps.timeouts().idleTimeoutMs,
      flow: r.flow,
    });
    return forwarded(r, result);
  },
};

export function normaliseTunnelTarget(t: RawTunnelTarget): Target | Deny {
  if (t.kind === 'authority') {
    const r = parseAuthority(t.authority);
    return isDeny(r) ? r : r.target;
  }
  if (!Number.isInteger(t.port) || t.port < 1 || t.port > 65535)
    return deny('EGR_INVALID_TARGET', 'normalise', 'bad port');
  const host = normaliseHost(t.host.includes(':') ? `[${t.host}]` : t.host);
  return isDeny(host) ? host : { ...host, port: t.port };
}

const tunnelTarget: StageOf<TunnelRequestState, 'target'> = {
  name: 'target',
  // Asked of the edge only now: SOCKS5 (RFC 1929) answers the credentials before the client sends its request.
  codes: ['EGR_INVALID_TARGET', 'EGR_BAD_REQUEST', 'EGR_UNSUPPORTED', 'EGR_UNSUPPORTED_ADDRESS_TYPE'],
  async run({ edge, rec }) {
    const request = await edge.target();
    if (isDeny(request)) return request;
    const target = normaliseTunnelTarget(request.target);
    if (isDeny(target)) return target;
    rec.target(target.host, target.port);
    return { target, request };
  },
};

const tunnelDecision: StageOf<TunnelRequestState, 'decision'> = {
  name: 'decision',
  codes: [
    'EGR_DENY_KILL_SWITCH',
    'EGR_DENY_GLOBAL',
    'EGR_DENY_IP_LITERAL',
    'EGR_DENY_TUNNEL',
    'EGR_DENY_PORT',
    'EGR_DENY_READ',
  ],
  run(r, { deps }) {
    const { target } = r.target;
    // TLS inspection: a name that is not `inspection.opaque` is inspected, never spliced.
    const runtime = deps.inspection?.() ?? null;
    const inspect = runtime !== null && target.kind === 'name' && !hostMatches(deps.policy().opaqueHosts, target.host);
    const request: EgressRequest = inspect ? { kind: 'tunnel', target, inspect } : { kind: 'tunnel', target };
    const allow = decide(deps.policy(), deps.state(), r.identity.principal, request);
    if (isDeny(allow)) return allow;
    r.rec.decided(allow.rule, allow.wouldDeny);
    return { request, allow, inspection: inspect ? runtime : null };
  },
};

const tunnelDial: StageOf<TunnelRequestState, 'dial'> = {
  name: 'dial',
  codes: DIAL_CODES,
  async run(r, env) {
    const plan = await prepareDial(r, r.target.target, env);
    if (isDeny(plan)) return plan;
    r.rec.stage({ dnsMs: plan.dnsMs });
    return plan;
  },
};

const tunnel: StageOf<TunnelRequestState, 'tunnel'> = {
  name: 'tunnel',
  // Spliced: the SNI check, then bytes both ways; inspected: TLS terminated, each request inside goes through
  // HTTP_STAGES / UPGRADE_STAGES with the tunnel's record id.
  codes: [
    'EGR_DENY_SNI_MISMATCH',
    'EGR_CLIENT_TLS',
    'EGR_FAIL_CONNECT_REFUSED',
    'EGR_FAIL_CONNECT_UNREACHABLE',
    'EGR_FAIL_CONNECT_TIMEOUT',
    'EGR_FAIL_UPSTREAM',
    'EGR_UPSTREAM_TLS',
    ...FLOW_CLOSED_CODES,
  ],
  answers: true,
  async run(r, { deps, pipeline }) {
    const { edge, rec, flow } = r;
    const { target, request } = r.target;
    const t = deps.timeouts();
    const inspection = r.decision.inspection;
    if (inspection) {
      rec.insideOf(rec.id);
      const result = await runInspected({
        client: edge.socket,
        head: request.head,
        plan: r.dial,
        host: target.host,
        port: target.port,
        tunnelId: rec.id,
        helloTimeoutMs: t.tunnelHelloTimeoutMs,
        accept: () => edge.accept(),
        flow,
        runtime: inspection,
        edge: { listener: edge.listener, clientAddr: edge.clientAddr, credentials: edge.credentials },
        http: pipeline.http,
        upgrade: pipeline.upgrade,
        refused: (d) => refuseInside(deps, rec, d),
      });
      // The bytes that went upstream are on the records of the requests inside; this one says how many there were.
      rec.note(`${result.requests} request(s) inside${result.protocol ? ` over ${result.protocol}` : ''}`);
      return result.deny ? (flow.closed?.deny ?? result.deny) : null;
    }
    const result = await runTunnel({
      client: edge.socket,
      head: request.head,
      plan: r.dial,
      port: r.decision.allow.port,
      dialer: deps.dialer,
      helloTimeoutMs: t.tunnelHelloTimeoutMs,
      idleTimeoutMs: t.idleTimeoutMs,
      accept: () => edge.accept(),
      flow,
      sniMode: r.identity.principal.mode ?? deps.policy().mode,
    });
    rec.stage({
      dialAddress: result.address,
      connectMs: result.connectMs,
      bytesUp: result.bytesUp,
      bytesDown: result.bytesDown,
    });
    rec.wouldHaveDenied(result.wouldDeny);
    // The client was already told the tunnel is open; runTunnel closed it. Only the record remains. A tunnel
    // Sluice closed before it was spliced reports why it was closed rather than what that did to it.
    return result.deny ? (flow.closed?.deny ?? result.deny) : null;
  },
};

/** What an inspected session refused by itself: a record of its own, in the tunnel. */
function refuseInside(deps: PipelineDeps, tunnel: OpenRecord, d: Deny): string {
  const rec = deps.audit.begin(tunnel.listener, tunnel.clientAddr);
  rec.identified({ identity: tunnel.identity, runId: tunnel.run });
  if (tunnel.targetHost !== null && tunnel.targetPort !== null) rec.target(tunnel.targetHost, tunnel.targetPort);
  rec.insideOf(tunnel.id);
  rec.deny(d);
  rec.end();
  return rec.id;
}

export const HTTP_STAGES: readonly Stage<HttpRequestState>[] = [
  identity,
  admission,
  httpTarget,
  httpDecision,
  flow,
  broker,
  httpDial,
  forward,
];

export const UPGRADE_STAGES: readonly Stage<HttpRequestState>[] = [
  identity,
  admission,
  httpTarget,
  upgrade,
  httpDecision,
  flow,
  broker,
  httpDial,
  forwardUpgraded,
];

export const TUNNEL_STAGES: readonly Stage<TunnelRequestState>[] = [
  identity,
  admission,
  tunnelTarget,
  tunnelDecision,
  flow,
  tunnelDial,
  tunnel,
];
