// The pipeline: the one place where the order of the stages is written down.
//   listener → identity → normalise → decide() → flow registered → broker (HTTP only) → dialer (resolve →
//   validate → connect) → forward (response scrubbed by the broker) | upgrade | tunnel → audit + metrics
//   (always, in `finally`)
// Every allowed request becomes a flow in the registry the moment decide() allows it, before any await, so a
// kill switch, an expiry or a revocation that lands while it resolves or connects reaches it too.
// A tunnel's target is asked of the edge after identity: SOCKS5 (RFC 1929) answers the credentials before
// the client sends its request.
// An inspected tunnel (TLS inspection on, a name that is not `inspection.opaque`) is decided as a tunnel, then each
// request inside comes back through `http` / `upgrade` — the same stages as an absolute-form request — with
// `inspected` on its edge.
// Stages return `T | Deny` and never call each other; a thrown error is a bug, logged and turned into a
// deny (EGR_INTERNAL). Listeners hand in an edge (their half of the conversation) and render any denial.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { type Deny, deny, isDeny } from '../../firewall/codes.js';
import {
  type Target,
  formatAuthority,
  normaliseHost,
  parseAbsoluteTarget,
  parseAuthority,
} from '../../firewall/normalise.js';
import {
  type Allow,
  type DecideState,
  type EgressRequest,
  type HttpEgress,
  type Policy,
  decide,
  gitFetchOf,
  methodOverrideOf,
  upgradeProtocolsOf,
} from '../../firewall/policy.js';
import type { Admission } from '../auth/admission.js';
import type { Audit, AuditRecord, Listener } from '../ops/audit.js';
import type { Dialer, DialPlan } from '../egress/dialer.js';
import {
  type ForwardPlan,
  type ForwardResult,
  forwardHttp,
  forwardUpgrade,
  requestHasBody,
} from '../egress/forward.js';
import type { Flow, FlowKind, FlowRegistry } from '../runtime/flows.js';
import type { Credentials, IdentityStore, Principal } from '../auth/identity.js';
import { scrubText } from '../ops/redact.js';
import { runTunnel } from '../egress/tunnel.js';
import { hostMatches } from '../../firewall/host-match.js';
import { type InspectionRuntime, runInspected } from '../inspection/tunnel.js';
import type { Broker } from '../broker/broker.js';
import { brokerStage } from './broker-stage.js';

export interface PipelineDeps {
  readonly policy: () => Policy;
  readonly state: () => DecideState;
  readonly identities: IdentityStore;
  readonly dialer: Dialer;
  readonly audit: Audit;
  readonly flows: FlowRegistry;
  /** Changes whenever the run-token key does: flows opened with a token remember the key it was checked under. */
  readonly tokenKeyGeneration?: () => number;
  readonly logger: Logger;
  readonly admission?: Admission;
  readonly timeouts: () => { readonly tunnelHelloTimeoutMs: number; readonly idleTimeoutMs: number };
  /** The credential broker (null or absent: no credential configured). */
  readonly broker?: () => Broker | null;
  /** TLS inspection's leaf issuer and session core; null (or absent): inspection is off, every tunnel is opaque. */
  readonly inspection?: () => InspectionRuntime | null;
}

/** A request read inside an inspected tunnel (proxy/inspection/tunnel.ts). */
export interface InspectedRequest {
  /** The tunnel's own audit record id. */
  readonly tunnelId: string;
  /** `https://host[:port]/path`: what is judged, built from the tunnel's host, never from `Host`. */
  readonly url: string;
  /** Refused before any stage (Host not the tunnel's → EGR_MISDIRECTED; RFC 9110/9112 checks), else null. */
  readonly refusal: Deny | null;
}

interface EdgeBase {
  readonly listener: Listener;
  readonly clientAddr: string;
  readonly credentials: Credentials | null | 'malformed';
  /** Renders a denial to the client (HTTP status or SOCKS reply). Only called before anything else was sent. */
  reject(d: Deny, requestId: string): void;
}

export interface HttpEdge extends EdgeBase {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly inspected?: InspectedRequest;
}

export interface UpgradeEdge extends EdgeBase {
  readonly req: IncomingMessage;
  readonly socket: Duplex;
  readonly head: Buffer;
  readonly inspected?: InspectedRequest;
}

export type RawTunnelTarget =
  | { readonly kind: 'authority'; readonly authority: string }
  | { readonly kind: 'host-port'; readonly host: string; readonly port: number };

export interface TunnelRequest {
  readonly target: RawTunnelTarget;
  /** Bytes the client sent after its request, already read by the listener; replayed upstream. */
  readonly head: Buffer;
}

export interface TunnelEdge extends EdgeBase {
  /** Asked for only once the identity stage has passed: SOCKS5 must send the RFC 1929 success status before
   * the client sends its request. HTTP CONNECT already holds it. */
  target(): Promise<TunnelRequest | Deny>;
  readonly socket: Socket;
  /** Tells the client its tunnel is open (HTTP 200 / SOCKS5 success). */
  accept(): void;
}

export interface Pipeline {
  http(edge: HttpEdge): Promise<void>;
  upgrade(edge: UpgradeEdge): Promise<void>;
  tunnel(edge: TunnelEdge): Promise<void>;
  /** A request the listener could not even parse: audited, then rendered by the listener. */
  refuse(listener: Listener, clientAddr: string, d: Deny): string;
}

function normaliseTunnelTarget(t: RawTunnelTarget): Target | Deny {
  if (t.kind === 'authority') {
    const r = parseAuthority(t.authority);
    return isDeny(r) ? r : r.target;
  }
  if (!Number.isInteger(t.port) || t.port < 1 || t.port > 65535)
    return deny('EGR_INVALID_TARGET', 'normalise', 'bad port');
  const host = normaliseHost(t.host.includes(':') ? `[${t.host}]` : t.host);
  return isDeny(host) ? host : { ...host, port: t.port };
}

export function createPipeline(deps: PipelineDeps): Pipeline {
  const { audit, dialer } = deps;

  async function identify(edge: EdgeBase, rec: AuditRecord): Promise<Identified | Deny> {
    const { admission } = deps;
    // Read before authenticate(), which checks a run token synchronously against the key of this moment.
    const keyGeneration = deps.tokenKeyGeneration?.() ?? 0;
    // The identity stage applies the failed-credential throttle itself (it alone knows which checks cost scrypt).
    const principal = await deps.identities.authenticate(edge.credentials, edge.clientAddr);
    if (isDeny(principal)) return principal;
    rec.identity = principal.identity;
    rec.run = principal.runId;
    const release = admission ? admission.admit(principal, rec) : () => {};
    return isDeny(release) ? release : { principal, release, keyGeneration };
  }

  type Identified = { principal: Principal; release: () => void; keyGeneration: number };

  /** Registers an allowed request as a flow: synchronously after decide(), so nothing that closes flows misses it. */
  const openFlow = (kind: FlowKind, who: Identified, request: EgressRequest): Flow =>
    deps.flows.open(kind, { principal: who.principal, request, keyGeneration: who.keyGeneration });

  /** After a flow: its record says why Sluice closed it, if it did. */
  function closeRecord(rec: AuditRecord, flow: Flow | null): void {
    flow?.end();
    const closed = flow?.closed;
    if (!closed) return;
    rec.close = closed.reason;
    if (closed.deny && rec.verdict === 'allow')
      rec.detail = closed.deny.detail ? `${closed.deny.code}: ${closed.deny.detail}` : closed.deny.code;
  }

  function internal(rec: AuditRecord, err: unknown): Deny {
    // The cause is logged (scrubbed), never sent to the client.
    deps.logger.error({ err: scrubText(String((err as Error)?.stack ?? err)), id: rec.id }, 'pipeline.internal_error');
    return deny('EGR_INTERNAL', 'internal');
  }

  /** Stages shared by plain and upgrade requests, up to a validated dial plan. */
  async function prepareHttp(
    edge: HttpEdge | UpgradeEdge,
    rec: AuditRecord,
    kind: 'forward' | 'upgrade',
  ): Promise<Prepared | Deny | Refused> {
    const { req } = edge;
    rec.method = req.method ?? null;
    // ── TLS inspection: a request inside an inspected tunnel ──
    const inside = edge.inspected;
    if (inside) {
      rec.tunnel = inside.tunnelId;
      rec.inspected = true;
    }
    // ── end TLS inspection ──
    const who = await identify(edge, rec);
    if (isDeny(who)) return who;
    if (inside?.refusal) return { ...who, d: inside.refusal };
    const target = parseAbsoluteTarget(inside?.url ?? req.url ?? '');
    if (isDeny(target)) return { ...who, d: target };
    rec.targetHost = target.target.host;
    rec.targetPort = target.target.port;
    rec.targetPath = target.path;
    let upgradeTo: readonly string[] | null = null;
    if (kind === 'upgrade') {
      const protocols = upgradeProtocolsOf(req.headers);
      if (protocols === null || protocols === 'invalid')
        return { ...who, d: deny('EGR_BAD_REQUEST', 'http.upgrade', 'Upgrade is not a list of protocols') };
      // The bytes after an upgrade request's head belong to the new protocol; a body there would be smuggled.
      if (requestHasBody(req))
        return { ...who, d: deny('EGR_UNSUPPORTED', 'http.upgrade', 'an upgrade request with a body') };
      upgradeTo = protocols;
    }
    const egress: HttpEgress = {
      kind: 'http',
      scheme: target.scheme,
      method: req.method ?? '',
      target: target.target,
      hasBody: requestHasBody(req),
      upgrade: upgradeTo !== null || req.headers.upgrade !== undefined,
      upgradeTo,
      methodOverride: methodOverrideOf(req.headers),
      gitFetch: gitFetchOf(req.method ?? '', target.path, req.headers['content-type'], req.headers['content-length']),
    };
    const decision = decide(deps.policy(), deps.state(), who.principal, egress);
    if (isDeny(decision)) return { ...who, d: decision };
    rec.rule = decision.rule;
    rec.wouldDeny = decision.wouldDeny?.code ?? null;
    const flow = openFlow(kind, who, egress);
    // ── broker stage (broker-stage.ts): a handle replaced or refused; never lifted by report mode ──
    const broker = deps.broker?.() ?? null;
    let brokered = null;
    let { tls, port } = decision;
    if (broker) {
      const b = await brokerStage({
        broker,
        principal: who.principal,
        req,
        host: target.target.host,
        path: target.path,
        method: egress.method,
        upstreamTls: decision.tls,
        scheme: target.scheme,
        port: target.target.port,
        upgrade: egress.upgrade,
        hasBody: egress.hasBody,
        peekTimeoutMs: deps.timeouts().idleTimeoutMs,
      });
      if (!b.ok) {
        rec.credential = b.audit;
        return { ...who, flow, d: b.deny };
      }
      brokered = b.brokered;
      if (b.tlsUpgrade) ({ tls, port } = { tls: true, port: 443 });
      rec.credential = brokered?.audit ?? null;
      if (flow.closed?.deny) return { ...who, flow, d: flow.closed.deny };
    }
    // ── end broker stage ──
    // The name was judged above, before any resolver saw it: denied names never leak into DNS.
    const plan = await dialer.prepare(target.target);
    if (isDeny(plan)) return { ...who, flow, d: plan };
    flow.addresses = plan.addresses;
    if (flow.closed?.deny) return { ...who, flow, d: flow.closed.deny };
    rec.dnsMs = plan.dnsMs;
    rec.dialAddress = plan.addresses[0]?.address ?? null;
    const upstreamTarget = { ...target.target, port };
    const authority = formatAuthority(upstreamTarget, tls ? 443 : 80);
    const forward: ForwardPlan = {
      origin: `${tls ? 'https' : 'http'}://${formatAuthority(upstreamTarget)}`,
      path: target.path,
      method: egress.method,
      authority,
      ...(brokered ? { brokered } : {}),
    };
    return { ...who, flow, d: null, plan, decision, forward, upgradeTo };
  }

  type Prepared = Identified & {
    flow: Flow;
    d: null;
    plan: DialPlan;
    decision: Allow;
    forward: ForwardPlan;
    upgradeTo: readonly string[] | null;
  };
  type Refused = Identified & { flow?: Flow; d: Deny };

  const self: Pipeline = {
    http: (edge) => httpLike(edge, 'forward', (r) => forwardHttp(dialer, r.forward, edge.req, edge.res, r.flow)),

    upgrade: (edge) =>
      httpLike(edge, 'upgrade', (r) =>
        forwardUpgrade(dialer, {
          plan: r.forward,
          upgrade: String(edge.req.headers.upgrade),
          protocols: r.upgradeTo!,
          req: edge.req,
          client: edge.socket,
          head: edge.head,
          idleTimeoutMs: deps.timeouts().idleTimeoutMs,
          flow: r.flow,
        }),
      ),

    async tunnel(edge) {
      const rec = audit.begin(edge.listener, edge.clientAddr);
      rec.method = 'CONNECT';
      let release: (() => void) | null = null;
      let flow: Flow | null = null;
      try {
        const who = await identify(edge, rec);
        if (isDeny(who)) return fail(edge, rec, who);
        release = who.release;
        const request = await edge.target();
        if (isDeny(request)) return fail(edge, rec, request);
        const target = normaliseTunnelTarget(request.target);
        if (isDeny(target)) return fail(edge, rec, target);
        rec.targetHost = target.host;
        rec.targetPort = target.port;
        // ── TLS inspection: a name that is not `inspection.opaque` is inspected, never spliced ──
        const inspection = deps.inspection?.() ?? null;
        const inspect =
          inspection !== null && target.kind === 'name' && !hostMatches(deps.policy().opaqueHosts, target.host);
        const egress: EgressRequest = inspect ? { kind: 'tunnel', target, inspect } : { kind: 'tunnel', target };
        // ── end TLS inspection ──
        const decision = decide(deps.policy(), deps.state(), who.principal, egress);
        if (isDeny(decision)) return fail(edge, rec, decision);
        rec.rule = decision.rule;
        rec.wouldDeny = decision.wouldDeny?.code ?? null;
        flow = openFlow(inspect ? 'inspected' : 'tunnel', who, egress);
        const plan = await dialer.prepare(target);
        if (isDeny(plan)) return fail(edge, rec, plan);
        flow.addresses = plan.addresses;
        if (flow.closed?.deny) return fail(edge, rec, flow.closed.deny);
        rec.dnsMs = plan.dnsMs;
        const t = deps.timeouts();
        // ── TLS inspection ──
        if (inspect) {
          rec.inspected = true;
          rec.tunnel = rec.id;
          const result = await runInspected({
            client: edge.socket,
            head: request.head,
            plan,
            host: target.host,
            port: target.port,
            tunnelId: rec.id,
            helloTimeoutMs: t.tunnelHelloTimeoutMs,
            accept: () => edge.accept(),
            flow,
            runtime: inspection!,
            edge: { listener: edge.listener, clientAddr: edge.clientAddr, credentials: edge.credentials },
            http: self.http,
            upgrade: self.upgrade,
            refused: (d) => refuseInside(rec, d),
          });
          // The bytes that went upstream are on the records of the requests inside; this one says how many there were.
          rec.detail = `${result.requests} request(s) inside${result.protocol ? ` over ${result.protocol}` : ''}`;
          if (result.deny) audit.denied(rec, flow.closed?.deny ?? result.deny);
          return;
        }
        // ── end TLS inspection ──
        const mode = who.principal.mode ?? deps.policy().mode;
        const result = await runTunnel({
          client: edge.socket,
          head: request.head,
          plan,
          port: decision.port,
          dialer,
          helloTimeoutMs: t.tunnelHelloTimeoutMs,
          idleTimeoutMs: t.idleTimeoutMs,
          accept: () => edge.accept(),
          flow,
          sniMode: mode,
        });
        rec.dialAddress = result.address;
        rec.connectMs = result.connectMs;
        rec.bytesUp = result.bytesUp;
        rec.bytesDown = result.bytesDown;
        if (result.wouldDeny && !rec.wouldDeny) rec.wouldDeny = result.wouldDeny.code;
        // The client was already told the tunnel is open; runTunnel closed it. Only the record remains. A tunnel
        // Sluice closed before it was spliced reports why it was closed rather than what that did to it.
        if (result.deny) audit.denied(rec, flow.closed?.deny ?? result.deny);
      } catch (err) {
        fail(edge, rec, internal(rec, err));
      } finally {
        release?.();
        closeRecord(rec, flow);
        audit.end(rec);
      }
    },

    refuse(listener, clientAddr, d) {
      const rec = audit.begin(listener, clientAddr);
      audit.denied(rec, d);
      audit.end(rec);
      return rec.id;
    },
  };
  return self;

  /** What an inspected session refused by itself: a record of its own, in the tunnel. */
  function refuseInside(tunnel: AuditRecord, d: Deny): string {
    const rec = audit.begin(tunnel.listener, tunnel.clientAddr);
    rec.identity = tunnel.identity;
    rec.run = tunnel.run;
    rec.targetHost = tunnel.targetHost;
    rec.targetPort = tunnel.targetPort;
    rec.tunnel = tunnel.id;
    rec.inspected = true;
    audit.denied(rec, d);
    audit.end(rec);
    return rec.id;
  }

  /** Plain requests and upgrades: the same stages, then their own way of forwarding. */
  async function httpLike(
    edge: HttpEdge | UpgradeEdge,
    kind: 'forward' | 'upgrade',
    send: (r: Prepared) => Promise<ForwardResult | Deny>,
  ): Promise<void> {
    const rec = audit.begin(edge.listener, edge.clientAddr);
    let release: (() => void) | null = null;
    let flow: Flow | null = null;
    try {
      const r = await prepareHttp(edge, rec, kind);
      if (isDeny(r)) return fail(edge, rec, r);
      release = r.release;
      flow = r.flow ?? null;
      if (r.d) return fail(edge, rec, r.d);
      const result = await send(r);
      if (isDeny(result)) return fail(edge, rec, flow?.closed?.deny ?? result);
      rec.status = result.status;
      rec.bytesUp = result.bytesUp;
      rec.bytesDown = result.bytesDown;
      if (result.aborted) rec.detail = 'response cut short';
      if (rec.credential && r.forward.brokered?.scrub) rec.credential.scrubbed = r.forward.brokered.scrub.replaced;
    } catch (err) {
      fail(edge, rec, internal(rec, err));
    } finally {
      release?.();
      closeRecord(rec, flow);
      audit.end(rec);
    }
  }

  function fail(edge: EdgeBase, rec: AuditRecord, d: Deny): void {
    audit.denied(rec, d);
    try {
      edge.reject(d, rec.id);
    } catch (err) {
      deps.logger.error({ err, id: rec.id }, 'pipeline.render_failed');
    }
  }
}
