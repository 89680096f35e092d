// Forwarding of absolute-form HTTP requests through the dialer's undici Agent. The upstream request is
// rebuilt from the client's: hop-by-hop headers and proxy credentials are dropped, `Host` is the target
// (RFC 9112 §3.2.2: a proxy replaces it with the authority of the absolute-form target), and the body streams
// through without buffering. Upgrades (WebSocket to an integration) are piped raw after the same checks.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Dispatcher } from 'undici';
import { type Deny, deny, isDeny } from '../../firewall/codes.js';
import { DialDenied, type Dialer, type DialPlan } from './dialer.js';
import { splice } from './splice.js';
import { requestVia, responseVia } from '../edge/http-validate.js';

export interface ForwardPlan {
  /** `http://host:port` or `https://host:port`; the dialer resolves and validates `host` again on connect. */
  readonly origin: string;
  readonly path: string;
  readonly method: string;
  /** `host[:port]` for the Host header. */
  readonly authority: string;
}

export interface ForwardResult {
  readonly status: number;
  readonly bytesUp: number;
  readonly bytesDown: number;
  /** The response was cut short (client went away or upstream broke mid-body). */
  readonly aborted: boolean;
}

// RFC 9110 §7.6.1 hop-by-hop fields, the proxy's own, and the ones undici manages itself.
const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-authorization', 'proxy-authenticate', 'proxy-connection', 'te', 'trailer',
  'transfer-encoding', 'upgrade', 'host', 'expect', 'http2-settings',
]);

function connectionTokens(raw: readonly string[]): Set<string> | null {
  let tokens: Set<string> | null = null;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.length === 10 && raw[i]!.toLowerCase() === 'connection') {
      for (const t of raw[i + 1]!.split(',')) {
        const name = t.trim().toLowerCase();
        if (name) (tokens ??= new Set()).add(name);
      }
    }
  }
  return tokens;
}

/** Client request headers as they go upstream (flat name/value list, duplicates and order kept). `Via` is
 * replaced by Sluice's (RFC 9110 §7.6.3, http-validate.ts). */
export function upstreamRequestHeaders(raw: readonly string[], authority: string, keepUpgrade = false, httpVersion = '1.1'): string[] {
  const extra = connectionTokens(raw);
  const out: string[] = ['host', authority];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (HOP_BY_HOP.has(name) || extra?.has(name)) {
      if (!(keepUpgrade && name === 'upgrade')) continue;
    }
    if (name === 'via') continue;
    out.push(raw[i]!, raw[i + 1]!);
  }
  out.push('via', requestVia(raw, httpVersion));
  if (keepUpgrade) out.push('connection', 'upgrade');
  return out;
}

/** Upstream response headers as they go to the client. */
export function downstreamResponseHeaders(raw: readonly Buffer[]): string[] {
  const names: string[] = [];
  for (let i = 0; i < raw.length; i += 2) names.push(raw[i]!.toString('latin1'), raw[i + 1]!.toString('latin1'));
  const extra = connectionTokens(names);
  const out: string[] = [];
  let via: string | null = null;
  for (let i = 0; i < names.length; i += 2) {
    const name = names[i]!.toLowerCase();
    if (HOP_BY_HOP.has(name) || extra?.has(name)) continue;
    if (name === 'via') via = via === null ? names[i + 1]! : `${via}, ${names[i + 1]!}`;
    else out.push(names[i]!, names[i + 1]!);
  }
  out.push('Via', responseVia(via));
  return out;
}

function mapUpstreamError(err: unknown): Deny {
  if (err instanceof DialDenied) return err.deny;
  const code = (err as { code?: string })?.code ?? '';
  if (code === 'UND_ERR_CONNECT_TIMEOUT') return deny('EGR_FAIL_CONNECT_TIMEOUT', 'forward');
  if (code === 'UND_ERR_INVALID_ARG' || code === 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH') return deny('EGR_BAD_REQUEST', 'forward', code);
  return deny('EGR_FAIL_UPSTREAM', 'forward', code || String((err as Error)?.message ?? err).slice(0, 120));
}

/** Whether the client announced a body (any Transfer-Encoding, or a non-zero Content-Length). */
export const requestHasBody = (req: IncomingMessage): boolean => {
  const cl = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (cl !== undefined && cl !== '0');
};

// A keep-alive socket's bytesRead grows over all its requests; each request is charged what was read since
// the previous one on that socket finished (its head and body).
const readSoFar = new WeakMap<object, number>();
function bytesReadFor(req: IncomingMessage): number {
  const socket = req.socket;
  if (!socket) return 0;
  const total = socket.bytesRead;
  const before = readSoFar.get(socket) ?? 0;
  readSoFar.set(socket, total);
  return total - before;
}

export function forwardHttp(agent: Dispatcher, plan: ForwardPlan, req: IncomingMessage, res: ServerResponse): Promise<ForwardResult | Deny> {
  return new Promise((resolve) => {
    let bytesDown = 0;
    let status = 0;
    let done = false;
    let abortUpstream: ((reason?: Error) => void) | null = null;
    const finish = (r: ForwardResult | Deny) => {
      if (done) return;
      done = true;
      res.removeListener('close', onClientClose);
      resolve(r);
    };
    // Only the first finish counts: a late error after completion must not charge this request's bytes twice.
    const result = (aborted: boolean): ForwardResult => ({ status, bytesUp: done ? 0 : bytesReadFor(req), bytesDown, aborted });
    const onClientClose = () => {
      if (res.writableFinished) return;
      abortUpstream?.(new Error('client closed'));
      finish(result(true));
    };
    res.on('close', onClientClose);
    const body = requestHasBody(req) ? req : null;
    const handler: Dispatcher.DispatchHandler = {
      onConnect(abort) {
        abortUpstream = abort;
        if (done) abort(new Error('client closed'));
      },
      onHeaders(statusCode, rawHeaders, resume, statusText) {
        if (statusCode < 200) return true;
        status = statusCode;
        res.writeHead(statusCode, statusText, downstreamResponseHeaders(rawHeaders as unknown as Buffer[]));
        res.on('drain', resume);
        return true;
      },
      onData(chunk) {
        bytesDown += chunk.length;
        return res.write(chunk);
      },
      onComplete() {
        res.end();
        finish(result(false));
      },
      onError(err) {
        if (!res.headersSent) return finish(mapUpstreamError(err));
        res.destroy();
        finish(result(true));
      },
    };
    try {
      agent.dispatch(
        {
          origin: plan.origin,
          path: plan.path,
          method: plan.method as Dispatcher.HttpMethod,
          headers: upstreamRequestHeaders(req.rawHeaders, plan.authority, false, req.httpVersion),
          body,
        },
        handler,
      );
    } catch (err) {
      finish(mapUpstreamError(err));
    }
  });
}

/** A request carrying `Upgrade` that policy allowed: connect (validated address, TLS for integrations), send the
 * request head, then splice the two sockets. The response, 101 or not, flows back unparsed. */
export async function forwardUpgrade(
  dialer: Dialer, dialPlan: DialPlan, port: number, tls: boolean, plan: ForwardPlan, req: IncomingMessage, client: Duplex, head: Buffer,
): Promise<ForwardResult | Deny> {
  const conn = await dialer.connect(dialPlan, port, tls);
  if (isDeny(conn)) return conn;
  const upstream = conn.socket;
  if (client.destroyed) {
    upstream.destroy();
    return { status: 0, bytesUp: 0, bytesDown: 0, aborted: true };
  }
  const headers = upstreamRequestHeaders(req.rawHeaders, plan.authority, true, req.httpVersion);
  let headText = `${plan.method} ${plan.path} HTTP/1.1\r\n`;
  for (let i = 0; i < headers.length; i += 2) headText += `${headers[i]}: ${headers[i + 1]}\r\n`;
  upstream.write(headText + '\r\n');
  if (head.length) upstream.write(head);
  const spliced = await splice(client, upstream);
  return { status: 101, ...spliced, aborted: false };
}
