// Forwarding of absolute-form HTTP requests through the dialer's undici Agent. The upstream request is
// rebuilt from the client's: hop-by-hop headers and proxy credentials are dropped, `Host` is the target
// (RFC 9112 §3.2.2: a proxy replaces it with the authority of the absolute-form target), and the body streams
// through without buffering. An upgrade is sent the same way and becomes a pipe only if the origin answers 101
// with a protocol that was asked for (forwardUpgrade).
import { type IncomingMessage, type ServerResponse, STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import { type Duplex, type Readable, type Writable, pipeline } from 'node:stream';
import type { Dispatcher } from 'undici';
import { type Deny, deny } from '../../firewall/codes.js';
import { DialDenied } from './dialer.js';
import { type FlowLink, splice } from './splice.js';
import { requestVia, responseVia } from '../edge/http-validate.js';
import type { ResponseScrubber } from '../broker/broker.js';
import { HEADERS_INVALIDATED_BY_SCRUB } from '../broker/response-body.js';

export interface ForwardPlan {
  /** `http://host:port` or `https://host:port`; the dialer resolves and validates `host` again on connect. */
  readonly origin: string;
  readonly path: string;
  readonly method: string;
  /** `host[:port]` for the Host header. */
  readonly authority: string;
  /** What the broker stage changed: headers and body to send instead of the client's, and the response scrubber. */
  readonly brokered?: BrokeredRequest;
}

/** The credential broker's changes to a request (proxy/pipeline/broker-stage.ts). */
export interface BrokeredRequest {
  /** Client request headers to forward instead of the client's (the handle replaced, Accept-Encoding narrowed). */
  readonly rawHeaders: readonly string[];
  /** The body to send instead of the request stream (its peeked prefix first); null when there is none. */
  readonly body: Readable | null;
  /** Non-null when the response must be scrubbed. */
  readonly scrub: ResponseScrubber | null;
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
  'connection',
  'keep-alive',
  'proxy-authorization',
  'proxy-authenticate',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
  'expect',
  'http2-settings',
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
export function upstreamRequestHeaders(
  raw: readonly string[],
  authority: string,
  keepUpgrade = false,
  httpVersion = '1.1',
): string[] {
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
  if (code === 'UND_ERR_INVALID_ARG' || code === 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH')
    return deny('EGR_BAD_REQUEST', 'forward', code);
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

function headerValues(headers: readonly string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < headers.length; i += 2)
    if (headers[i]!.length === name.length && headers[i]!.toLowerCase() === name) out.push(headers[i + 1]!);
  return out;
}

/** Response headers after scrubbing: secrets replaced, and what a rewritten (or decoded) body invalidates dropped. */
function scrubbedResponseHeaders(headers: readonly string[], kept: ReadonlySet<string>): string[] {
  const out: string[] = [];
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!.toLowerCase();
    if (HEADERS_INVALIDATED_BY_SCRUB.includes(name) && !kept.has(name)) continue;
    out.push(headers[i]!, headers[i + 1]!);
  }
  return out;
}

const KEEP_ENCODING: ReadonlySet<string> = new Set(['content-encoding']);
const KEEP_NOTHING: ReadonlySet<string> = new Set();

/** `flow`: the request's entry in the flow registry. Closing it (kill switch, expiry, revocation) aborts the
 * upstream request and the client's connection, an upload still arriving included; so does the idle timeout
 * (the listener's socket timeout, limits.idleTimeoutMs), reported through the flow. */
export function forwardHttp(
  agent: Pick<Dispatcher, 'dispatch'>,
  plan: ForwardPlan,
  req: IncomingMessage,
  res: ServerResponse,
  flow?: FlowLink,
): Promise<ForwardResult | Deny> {
  return new Promise((resolve) => {
    let bytesDown = 0;
    let status = 0;
    let done = false;
    let abortUpstream: ((reason?: Error) => void) | null = null;
    const finish = (r: ForwardResult | Deny) => {
      if (done) return;
      done = true;
      res.removeListener('close', onClientClose);
      res.removeListener('timeout', onIdle);
      resolve(r);
    };
    // Only the first finish counts: a late error after completion must not charge this request's bytes twice.
    const result = (aborted: boolean): ForwardResult => ({
      status,
      bytesUp: done ? 0 : bytesReadFor(req),
      bytesDown,
      aborted,
    });
    const onClientClose = () => {
      if (res.writableFinished) return;
      abortUpstream?.(new Error('client closed'));
      finish(result(true));
    };
    res.on('close', onClientClose);
    // Finish first: aborting makes undici report an error at once, which must not become this request's outcome.
    // Before the response has started the client is told why (the pipeline renders the denial) and the
    // connection closes after it, taking any upload still arriving along; after, the connection is cut.
    const cut = (why: Deny | null) => {
      if (why && !res.headersSent) {
        res.shouldKeepAlive = false;
        finish(why);
        abortUpstream?.(new Error('flow closed by Sluice'));
        return;
      }
      finish(result(true));
      abortUpstream?.(new Error('flow closed by Sluice'));
      res.destroy();
    };
    // With a listener, the server leaves the timed-out socket to us instead of destroying it unannounced.
    const onIdle = () => (flow ? flow.idle() : cut(null));
    res.on('timeout', onIdle);
    flow?.bind(cut);
    if (done) return;
    const brokered = plan.brokered;
    const body = brokered?.body ?? (requestHasBody(req) ? req : null);
    const scrub = brokered?.scrub ?? null;
    // Without a scrubber the body goes straight to the client; with one, through its stages (bounded memory:
    // backpressure runs from the client back to undici through them).
    let sink: Writable = res;
    const handler: Dispatcher.DispatchHandler = {
      onConnect(abort) {
        abortUpstream = abort;
        if (done) abort(new Error('client closed'));
      },
      onHeaders(statusCode, rawHeaders, resume, statusText) {
        if (statusCode < 200) return true;
        status = statusCode;
        const headers = downstreamResponseHeaders(rawHeaders as unknown as Buffer[]);
        if (!scrub) {
          res.writeHead(statusCode, statusText, headers);
          res.on('drain', resume);
          return true;
        }
        // A credential's host answered: headers and body are scanned for the secret before any byte is sent.
        const encoding = headerValues(headers, 'content-encoding');
        const stages = scrub.bodyStages(encoding);
        if (!Array.isArray(stages)) {
          finish(deny('EGR_FAIL_UPSTREAM', 'credentials', (stages as { refuse: string }).refuse));
          abortUpstream?.(new Error('unscannable response'));
          return false;
        }
        const decoded = scrub.decodingOf(encoding) !== null;
        res.writeHead(
          statusCode,
          statusText,
          scrubbedResponseHeaders(scrub.headers(headers), decoded ? KEEP_NOTHING : KEEP_ENCODING),
        );
        sink = stages[0]!;
        sink.on('drain', resume);
        // An error in a stage (a broken or bombing encoding) cuts the response: never let it through unscanned.
        pipeline([...stages, res] as unknown as [NodeJS.ReadableStream, NodeJS.WritableStream], (err) => {
          if (!err) return finish(result(false));
          abortUpstream?.(new Error('response scrub failed'));
          res.destroy();
          finish(result(true));
        });
        return true;
      },
      onData(chunk) {
        bytesDown += chunk.length;
        return sink.write(chunk);
      },
      onComplete() {
        if (sink !== res) return void sink.end();
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
          headers: upstreamRequestHeaders(
            brokered?.rawHeaders ?? req.rawHeaders,
            plan.authority,
            false,
            req.httpVersion,
          ),
          body,
        },
        handler,
      );
    } catch (err) {
      finish(mapUpstreamError(err));
    }
  });
}

export interface UpgradeArgs {
  readonly plan: ForwardPlan;
  /** The client's Upgrade value, sent as is, and the protocol names it asks for (lower case). */
  readonly upgrade: string;
  readonly protocols: readonly string[];
  readonly req: IncomingMessage;
  readonly client: Duplex;
  /** What the client sent after the request head. Held: it is sent only once the origin has switched. */
  readonly head: Buffer;
  readonly idleTimeoutMs: number;
  readonly flow?: FlowLink;
}

/** How long a refused upgrade's connection drains what the client still sends after the answer, before it is
 * closed (closing with unread bytes would send a reset that can overtake the answer). */
const LINGER_MS = 2000;

function headerValue(raw: readonly Buffer[], name: string): string | null {
  for (let i = 0; i < raw.length; i += 2)
    if (raw[i]!.toString('latin1').toLowerCase() === name) return raw[i + 1]!.toString('latin1');
  return null;
}

function responseHead(status: number, headers: readonly string[], extra: string): string {
  let text = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}\r\n`;
  for (let i = 0; i < headers.length; i += 2) text += `${headers[i]}: ${headers[i + 1]}\r\n`;
  return `${text}${extra}\r\n`;
}

/**
 * A request carrying `Connection: upgrade` that policy allowed. The request head goes upstream through the
 * dialer's Agent (validated address, TLS for integrations) and undici's HTTP/1.1 parser (llhttp) reads the
 * answer. Nothing the client sent after its request head moves until then: those bytes belong to the new
 * protocol if the origin switches, and to no one if it does not.
 * - `101 Switching Protocols` naming a protocol that was asked for: the 101 is relayed, the held bytes follow,
 *   and the two sockets are spliced (idle timeout, flow registry).
 * - A 101 to another protocol: 502, closed; the origin is not speaking what policy allowed.
 * - Any other answer: relayed as an ordinary response with `Connection: close`, and the connection ends there.
 *   What the client pipelined after the upgrade request was never judged, so it is dropped, not parsed.
 */
export function forwardUpgrade(agent: Pick<Dispatcher, 'dispatch'>, a: UpgradeArgs): Promise<ForwardResult | Deny> {
  const { client, plan } = a;
  return new Promise((resolve) => {
    let done = false;
    let status = 0;
    let bytesDown = 0;
    let answered = false;
    let abortUpstream: ((reason?: Error) => void) | null = null;
    let upstream: Socket | null = null;
    let resumeUpstream: (() => void) | null = null;
    const finish = (r: ForwardResult | Deny) => {
      if (done) return;
      done = true;
      client.removeListener('close', onClientClose);
      resolve(r);
    };
    const result = (aborted: boolean): ForwardResult => ({ status, bytesUp: 0, bytesDown, aborted });
    // Before any answer was relayed, the client is told why (the pipeline renders the denial and closes).
    const cut = (why: Deny | null) => {
      if (why && !answered) {
        finish(why);
        abortUpstream?.(new Error('flow closed by Sluice'));
        upstream?.destroy();
        return;
      }
      finish(result(true));
      abortUpstream?.(new Error('flow closed by Sluice'));
      upstream?.destroy();
      client.destroy();
    };
    const onClientClose = () => {
      finish(result(true));
      abortUpstream?.(new Error('client closed'));
      upstream?.destroy();
    };
    client.on('close', onClientClose);
    a.flow?.bind(cut);
    if (done) return;
    /** The connection ends after an ordinary answer: flush it, drain what the client still sends, then close. */
    const endClient = () => {
      client.end();
      client.resume();
      setTimeout(() => client.destroy(), LINGER_MS).unref();
    };
    const handler: Dispatcher.DispatchHandler = {
      onConnect(abort) {
        abortUpstream = abort;
        if (done) abort(new Error('client closed'));
      },
      onHeaders(statusCode, rawHeaders, resume) {
        if (statusCode < 200) return true;
        status = statusCode;
        answered = true;
        client.write(
          responseHead(
            statusCode,
            downstreamResponseHeaders(rawHeaders as unknown as Buffer[]),
            'connection: close\r\n',
          ),
        );
        resumeUpstream = resume;
        client.on('drain', resume);
        return true;
      },
      onData(chunk) {
        bytesDown += chunk.length;
        return client.write(chunk);
      },
      onComplete() {
        if (resumeUpstream) client.removeListener('drain', resumeUpstream);
        finish(result(false));
        endClient();
      },
      onUpgrade(statusCode, rawHeaders, socket) {
        const raw = rawHeaders as unknown as Buffer[];
        const value = headerValue(raw, 'upgrade');
        const chosen = value?.split(',')[0]!.trim().split('/')[0]!.toLowerCase() ?? '';
        upstream = socket as Socket;
        if (done) return void upstream.destroy();
        if (statusCode !== 101 || !a.protocols.includes(chosen)) {
          upstream.destroy();
          return finish(
            deny('EGR_FAIL_UPSTREAM', 'upgrade', 'the origin switched to a protocol that was not asked for'),
          );
        }
        status = 101;
        answered = true;
        client.write(responseHead(101, downstreamResponseHeaders(raw), `connection: upgrade\r\nupgrade: ${value}\r\n`));
        // Counted from the switch: a pooled connection may have carried other requests before.
        const w0 = upstream.bytesWritten;
        const r0 = upstream.bytesRead;
        if (a.head.length) upstream.write(a.head);
        client.removeListener('close', onClientClose);
        void splice(client, upstream, { idleTimeoutMs: a.idleTimeoutMs, flow: a.flow }).then((s) =>
          finish({ status: 101, bytesUp: s.bytesUp - w0, bytesDown: s.bytesDown - r0, aborted: false }),
        );
      },
      onError(err) {
        if (!answered) return finish(mapUpstreamError(err));
        client.destroy();
        finish(result(true));
      },
    };
    try {
      agent.dispatch(
        {
          origin: plan.origin,
          path: plan.path,
          method: plan.method as Dispatcher.HttpMethod,
          // undici writes `connection: upgrade` and `upgrade` itself.
          headers: upstreamRequestHeaders(
            plan.brokered?.rawHeaders ?? a.req.rawHeaders,
            plan.authority,
            false,
            a.req.httpVersion,
          ),
          upgrade: a.upgrade,
          headersTimeout: a.idleTimeoutMs,
          bodyTimeout: a.idleTimeoutMs,
        },
        handler,
      );
    } catch (err) {
      finish(mapUpstreamError(err));
    }
  });
}
