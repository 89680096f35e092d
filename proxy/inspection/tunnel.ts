// The carrier of an inspected tunnel, as egress/tunnel.ts is of an opaque one: the client is told the tunnel is
// open, its ClientHello must name the tunnel host (the same check as an opaque tunnel's, and never lifted by
// report mode: a leaf is minted only for the name that was decided on), then a leaf is minted and the session
// core (session.ts) terminates TLS. Every request read inside goes back to the pipeline's own http / upgrade
// path as `METHOD https://host/path`, carrying the tunnel's id; nothing here judges a request.
// No upstream connection belongs to the tunnel itself: each request inside is forwarded through the dialer's
// pool once it is allowed, so nothing leaves for the destination before a request was judged.
import type { Socket } from 'node:net';
import { type Deny, deny, isDeny } from '../../firewall/codes.js';
import type { Credentials } from '../auth/identity.js';
import { renderDeny, renderDenyRaw } from '../edge/http-render.js';
import { requestRefusal } from '../edge/http-validate.js';
import type { DialPlan } from '../egress/dialer.js';
import type { FlowLink } from '../egress/splice.js';
import { readClientHello } from '../egress/tunnel.js';
import type { Listener } from '../ops/audit.js';
import type { HttpEdge, InspectedRequest, UpgradeEdge } from '../pipeline/pipeline.js';
import type { LeafIssuer } from './leaves.js';
import type { InnerRequest, InnerUpgrade, Inspector, SessionHandlers } from './session.js';

/** What a process inspects with: rebuilt when the CA or the leaf settings change (a reload). */
export interface InspectionRuntime {
  readonly issuer: LeafIssuer;
  readonly inspector: Inspector;
}

export interface InspectedTunnelArgs {
  readonly client: Socket;
  /** Bytes the client sent after its request, already read by the listener. */
  readonly head: Buffer;
  /** The tunnel host's validated plan: the SNI check reads the name from it. */
  readonly plan: DialPlan;
  /** Normalised host name and port of the CONNECT / SOCKS5 request. */
  readonly host: string;
  readonly port: number;
  /** The tunnel's audit record id: every request inside carries it. */
  readonly tunnelId: string;
  readonly helloTimeoutMs: number;
  readonly accept: () => void;
  readonly flow: FlowLink;
  readonly runtime: InspectionRuntime;
  /** Who opened the tunnel: each request inside is authenticated again with the same credentials. */
  readonly edge: {
    readonly listener: Listener;
    readonly clientAddr: string;
    readonly credentials: Credentials | null | 'malformed';
  };
  /** The pipeline's own paths, the very ones absolute-form requests take. */
  readonly http: (edge: HttpEdge) => Promise<void>;
  readonly upgrade: (edge: UpgradeEdge) => Promise<void>;
  /**
   * Audits something the session refused by itself (h2 preface, broken framing, CONNECT inside); returns the
   * record id.
   */
  readonly refused: (d: Deny) => string;
}

export interface InspectedTunnelResult {
  /** Why the tunnel ended without a session, or the client's handshake failure (EGR_CLIENT_TLS). */
  readonly deny: Deny | null;
  /** The negotiated TLS version, once the handshake completed. */
  readonly protocol: string | null;
  readonly requests: number;
  readonly bytesUp: number;
  readonly bytesDown: number;
}

/** Before anything is judged: the request must name the tunnel host (421), then RFC 9110/9112 as on the listener. */
function refusalOf(r: InnerRequest | InnerUpgrade): Deny | null {
  if (!r.authority.ok) return deny('EGR_MISDIRECTED', 'inspection.authority', `Host ${r.authority.reason}`);
  return requestRefusal(r.req);
}

export async function runInspected(a: InspectedTunnelArgs): Promise<InspectedTunnelResult> {
  const { client } = a;
  const ended = (d: Deny, protocol: string | null = null, requests = 0): InspectedTunnelResult => {
    client.destroy();
    return { deny: d, protocol, requests, bytesUp: client.bytesRead, bytesDown: client.bytesWritten };
  };
  client.setNoDelay(true);
  // Until the session exists, closing the flow closes the client: the ClientHello wait and the mint see it.
  a.flow.bind(() => client.destroy());
  a.accept();
  const hello = await readClientHello({ client, head: a.head, plan: a.plan, helloTimeoutMs: a.helloTimeoutMs });
  if (client.destroyed || !hello.bytes || hello.bytes.length === 0)
    return ended(hello.sni ?? deny('EGR_FAIL_UPSTREAM', 'inspection', 'client went away'));
  if (hello.sni) return ended(hello.sni);
  const leaf = await a.runtime.issuer.leafFor(a.host);
  if (isDeny(leaf)) return ended(leaf);
  if (client.destroyed) return ended(deny('EGR_FAIL_UPSTREAM', 'inspection', 'client went away'));

  const inside = (r: InnerRequest | InnerUpgrade): InspectedRequest => ({
    tunnelId: a.tunnelId,
    url: r.url,
    refusal: refusalOf(r),
  });
  const handlers: SessionHandlers = {
    request(r) {
      // RFC 9112 §9.3: no persistent connection with an HTTP/1.0 client.
      if (r.req.httpVersionMinor === 0) r.res.shouldKeepAlive = false;
      void a.http({
        ...a.edge,
        req: r.req,
        res: r.res,
        reject: (d, id) => renderDeny(r.res, d, id),
        inspected: inside(r),
      });
    },
    upgrade(u) {
      u.socket.on('error', () => u.socket.destroy());
      void a.upgrade({
        ...a.edge,
        req: u.req,
        socket: u.socket,
        head: u.head,
        reject: (d, id) => renderDenyRaw(u.socket, d, id),
        inspected: inside(u),
      });
    },
    refused: (d) => a.refused(d),
  };
  const session = a.runtime.inspector.inspect({
    socket: client,
    head: hello.bytes,
    leaf,
    facts: { host: a.host, port: a.port, tunnelId: a.tunnelId },
    handlers,
  });
  // The ClientHello bytes now belong to the TLS layer; the tunnel may stay open for hours without them.
  hello.bytes = null;
  if (isDeny(session)) return ended(session);
  a.flow.bind(() => session.destroy());
  const handshake = await session.handshake;
  const summary = await session.closed;
  const protocol = handshake.ok ? handshake.protocol : null;
  return {
    deny: handshake.ok ? null : handshake,
    protocol,
    requests: summary.requests,
    bytesUp: client.bytesRead,
    bytesDown: client.bytesWritten,
  };
}
