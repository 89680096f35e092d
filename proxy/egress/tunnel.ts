// Opaque tunnels (HTTP CONNECT and SOCKS5 CONNECT). The client is told the tunnel is open, its first bytes
// must be a TLS ClientHello whose SNI is the tunnel host, and only then is the upstream connection opened
// (to an address the dialer already validated). Until then no packet leaves for the destination.
import type { Socket } from 'node:net';
import { type Deny, deny, isDeny } from '../../firewall/codes.js';
import type { Dialer, DialPlan } from './dialer.js';
import { type FlowLink, SPLICE_READS, splice } from './splice.js';
import { parseClientHello } from '../edge/tls-client-hello.js';

export interface TunnelResult {
  /** Set when the tunnel was refused or failed after the client was told it was open. */
  readonly deny: Deny | null;
  /** Report mode: the SNI denial that enforce mode would have applied. */
  readonly wouldDeny: Deny | null;
  readonly address: string | null;
  readonly connectMs: number | null;
  readonly bytesUp: number;
  readonly bytesDown: number;
}

export interface TunnelArgs {
  readonly client: Socket;
  /** Bytes the client sent after its request, already read by the listener. */
  readonly head: Buffer;
  readonly plan: DialPlan;
  readonly port: number;
  readonly dialer: Dialer;
  readonly helloTimeoutMs: number;
  readonly idleTimeoutMs: number;
  /** Tells the client the tunnel is open (HTTP 200 or a SOCKS5 success reply). */
  readonly accept: () => void;
  /** The tunnel's entry in the flow registry: the kill switch, expiry and revocation close it through this. */
  readonly flow?: FlowLink;
  /** 'report' logs an SNI mismatch as a would-be denial and lets the tunnel through. */
  readonly sniMode: 'enforce' | 'report';
}

function sniMatches(plan: DialPlan, sni: string | null): boolean {
  if (plan.host.kind !== 'name') return sni === null; // RFC 6066 forbids IP literals in SNI
  if (sni === null) return false;
  let name = sni.toLowerCase();
  if (name.endsWith('.')) name = name.slice(0, -1);
  return name === plan.host.host;
}

export type HelloArgs = Pick<TunnelArgs, 'client' | 'head' | 'plan' | 'helloTimeoutMs'>;

/** Waits for a complete ClientHello and checks it; resolves with the bytes read so far and the SNI verdict.
 * Inspected tunnels (proxy/inspection/tunnel.ts) make the same check before any leaf is minted. */
export function readClientHello(args: HelloArgs): Promise<{ bytes: Buffer | null; sni: Deny | null }> {
  const { client, plan } = args;
  return new Promise((resolve) => {
    let buf = args.head;
    let done = false;
    const finish = (sni: Deny | null) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      client.removeListener('data', onData);
      client.removeListener('close', onClose);
      client.pause();
      resolve({ bytes: buf, sni });
    };
    const check = () => {
      if (buf.length === 0) return;
      const hello = parseClientHello(buf);
      if (hello.state === 'need-more') return;
      if (hello.state === 'invalid')
        return finish(deny('EGR_DENY_SNI_MISMATCH', 'tunnel.sni', `not a ClientHello: ${hello.reason}`));
      if (hello.ech) return finish(deny('EGR_DENY_SNI_MISMATCH', 'tunnel.sni', 'encrypted ClientHello'));
      if (hello.sniCount > 1) return finish(deny('EGR_DENY_SNI_MISMATCH', 'tunnel.sni', 'several server names'));
      if (!sniMatches(plan, hello.sni))
        return finish(
          deny(
            'EGR_DENY_SNI_MISMATCH',
            'tunnel.sni',
            hello.sni === null ? 'no SNI' : 'SNI differs from the tunnel host',
          ),
        );
      finish(null);
    };
    const onData = (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      check();
    };
    const onClose = () => finish(deny('EGR_DENY_SNI_MISMATCH', 'tunnel.sni', 'client closed before a ClientHello'));
    const timer = setTimeout(
      () => finish(deny('EGR_DENY_SNI_MISMATCH', 'tunnel.sni', 'no ClientHello in time')),
      args.helloTimeoutMs,
    );
    client.on('data', onData);
    client.once('close', onClose);
    client.resume();
    check();
  });
}

export async function runTunnel(args: TunnelArgs): Promise<TunnelResult> {
  const { client } = args;
  const refused = (d: Deny, address: string | null = null, connectMs: number | null = null): TunnelResult => {
    client.destroy();
    return { deny: d, wouldDeny: null, address, connectMs, bytesUp: 0, bytesDown: 0 };
  };
  client.setNoDelay(true);
  // Until the sockets are spliced, closing the flow closes the client: the ClientHello wait and the dial see it.
  args.flow?.bind(() => client.destroy());
  args.accept();
  const hello = await readClientHello(args);
  // A client that never sent a byte, or left, gets nothing in report mode either.
  if (client.destroyed || !hello.bytes || hello.bytes.length === 0)
    return refused(hello.sni ?? deny('EGR_FAIL_UPSTREAM', 'tunnel', 'client went away'));
  if (hello.sni && args.sniMode === 'enforce') return refused(hello.sni);
  const conn = await args.dialer.connect(args.plan, args.port, false, SPLICE_READS);
  if (isDeny(conn)) return refused(conn);
  const upstream = conn.socket;
  if (client.destroyed) {
    upstream.destroy();
    return refused(deny('EGR_FAIL_UPSTREAM', 'tunnel', 'client went away'), conn.address, conn.connectMs);
  }

  if (hello.sni) args.flow?.liftedByReport(hello.sni);
  upstream.write(hello.bytes);
  // The tunnel may stay open for hours; its first bytes need not stay with it.
  hello.bytes = null;
  const spliced = await splice(client, upstream as Socket, {
    idleTimeoutMs: args.idleTimeoutMs,
    flow: args.flow,
    upstreamReads: SPLICE_READS,
  });
  return { deny: null, wouldDeny: hello.sni, address: conn.address, connectMs: conn.connectMs, ...spliced };
}
