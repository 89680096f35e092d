// The pipeline: one driver that runs a request through its edge kind's list of stages (stages.ts), in order:
//   HTTP_STAGES      identity → admission → target → decision → flow → broker → dial → forward
//   UPGRADE_STAGES   identity → admission → target → upgrade → decision → flow → broker → dial → forward
//   TUNNEL_STAGES    identity → admission → target → decision → flow → dial → tunnel
// then, always (in `finally`): the admission slot released, the flow ended, the one audit record written.
// docs/ARCHITECTURE.md "Request lifecycle" draws them with the codes each stage can deny with.
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
import type { DecideState, Policy } from '../../firewall/policy.js';
import type { Admission } from '../auth/admission.js';
import type { Audit, Listener, OpenRecord } from '../ops/audit.js';
import type { Dialer } from '../egress/dialer.js';
import type { FlowRegistry } from '../runtime/flows.js';
import type { Credentials, IdentityStore } from '../auth/identity.js';
import { scrubText } from '../ops/redact.js';
import type { InspectionRuntime } from '../inspection/tunnel.js';
import type { Broker } from '../broker/broker.js';
import {
  HTTP_STAGES,
  type HttpRequestState,
  type RequestBase,
  type Stage,
  type StageEnv,
  TUNNEL_STAGES,
  type TunnelRequestState,
  UPGRADE_STAGES,
} from './stages.js';

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

export interface EdgeBase {
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

/** The request before any stage ran: the stages' results are filled in, by name, as they pass. */
type Fresh<R extends RequestBase> = Pick<R, 'edge' | 'rec' | 'kind'> & Partial<Omit<R, 'edge' | 'rec' | 'kind'>>;

export function createPipeline(deps: PipelineDeps): Pipeline {
  const { audit } = deps;

  function internal(rec: OpenRecord, err: unknown): Deny {
    // The cause is logged (scrubbed), never sent to the client.
    deps.logger.error({ err: scrubText(String((err as Error)?.stack ?? err)), id: rec.id }, 'pipeline.internal_error');
    return deny('EGR_INTERNAL', 'internal');
  }

  function refuse(edge: EdgeBase, rec: OpenRecord, d: Deny): void {
    rec.deny(d);
    try {
      edge.reject(d, rec.id);
    } catch (err) {
      deps.logger.error({ err, id: rec.id }, 'pipeline.render_failed');
    }
  }

  /** The one driver: each stage in order until one denies; then, whatever happened, the request is let go. */
  async function drive<R extends RequestBase>(stages: readonly Stage<R>[], r: Fresh<R>): Promise<void> {
    const { edge, rec } = r;
    try {
      for (const stage of stages) {
        // A stage reads only what the stages before it produced: to it, the request is complete so far.
        let out = stage.run(r as R, env);
        // Synchronous stages (admission, decision, flow) cost no turn of the event loop.
        if (out instanceof Promise) out = await out;
        if (isDeny(out)) {
          // A stage that has handed the client on (a tunnel) answered it itself: its deny is only recorded.
          if (stage.answers) rec.deny(out);
          else refuse(edge, rec, out);
          return;
        }
        (r as Record<string, unknown>)[stage.name] = out;
      }
    } catch (err) {
      refuse(edge, rec, internal(rec, err));
    } finally {
      r.admission?.release();
      const { flow } = r;
      if (flow) {
        flow.end();
        if (flow.closed) rec.closed(flow.closed);
      }
      rec.end();
    }
  }

  const self: Pipeline = {
    http(edge) {
      const rec = audit.begin(edge.listener, edge.clientAddr);
      rec.request(edge.req.method ?? null);
      if (edge.inspected) rec.insideOf(edge.inspected.tunnelId);
      return drive<HttpRequestState>(HTTP_STAGES, { edge, rec, kind: 'forward' });
    },

    upgrade(edge) {
      const rec = audit.begin(edge.listener, edge.clientAddr);
      rec.request(edge.req.method ?? null);
      if (edge.inspected) rec.insideOf(edge.inspected.tunnelId);
      return drive<HttpRequestState>(UPGRADE_STAGES, { edge, rec, kind: 'upgrade' });
    },

    tunnel(edge) {
      const rec = audit.begin(edge.listener, edge.clientAddr);
      rec.request('CONNECT');
      return drive<TunnelRequestState>(TUNNEL_STAGES, { edge, rec, kind: 'tunnel' });
    },

    refuse(listener, clientAddr, d) {
      const rec = audit.begin(listener, clientAddr);
      rec.deny(d);
      rec.end();
      return rec.id;
    },
  };
  const env: StageEnv = { deps, pipeline: self };
  return self;
}
