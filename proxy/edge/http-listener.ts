// The HTTP proxy listener: absolute-form requests, CONNECT and Upgrade, parsed by Node's llhttp in strict
// mode — which already refuses CL+TE, duplicate Content-Length, bad Transfer-Encoding, obs-fold, bare LF
// and control characters in the target. What it refuses is answered 400 EGR_BAD_REQUEST and the
// connection is closed: after a framing error nothing that follows on that connection can be trusted.
// The RFC 9110/9112 checks llhttp leaves to the server (Host, HTTP/1.0 framing, Max-Forwards) are in
// http-validate.ts; `Expect: 100-continue` is answered only once the request is allowed (see below).
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { type Deny, deny } from '../../firewall/codes.js';
import { renderDeny, renderDenyRaw } from './http-render.js';
import { connectRefusal, requestRefusal, unknownExpectation } from './http-validate.js';
import { parseBasic } from '../auth/identity.js';
import type { Pipeline } from '../pipeline/pipeline.js';

export interface HttpListenerLimits {
  readonly headersTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly maxHeaderBytes: number;
}

export const clientAddress = (socket: { remoteAddress?: string | undefined }): string => {
  const a = socket.remoteAddress ?? '';
  return a.startsWith('::ffff:') ? a.slice(7) : a;
};

// A keep-alive client sends the same Proxy-Authorization on every request: parse it once per connection.
const lastCredentials = new WeakMap<object, { header: string; parsed: ReturnType<typeof parseBasic> }>();

const credentialsOf = (req: IncomingMessage, keepAlive = true) => {
  const h = req.headers['proxy-authorization'];
  if (h === undefined) return null;
  const header = Array.isArray(h) ? h.join(',') : h;
  // A CONNECT's socket becomes the tunnel and carries no further request: nothing to remember for it.
  if (!keepAlive) return parseBasic(header);
  const seen = lastCredentials.get(req.socket);
  if (seen && seen.header === header) return seen.parsed;
  const parsed = parseBasic(header);
  lastCredentials.set(req.socket, { header, parsed });
  return parsed;
};

// llhttp accepts an HTTP/0.9 request line (no version) and then still parses headers after it; a request
// line broken by a bare LF becomes one. Only HTTP/1.x is spoken here.
const badVersion = (req: IncomingMessage) => req.httpVersionMajor !== 1;

/** Why a request (plain or Upgrade) is refused before any other stage, or null. */
const malformed = (req: IncomingMessage): Deny | null =>
  badVersion(req) ? deny('EGR_BAD_REQUEST', 'http.version') : requestRefusal(req);

export function createHttpListener(pipeline: Pipeline, limits: HttpListenerLimits): Server {
  const refuse = (socket: Duplex, d: Deny) => {
    renderDenyRaw(socket, d, pipeline.refuse('http', clientAddress(socket as Socket), d));
  };

  const server = createServer({
    // Host is checked in http-validate.ts (answered with a code and audited); upstream it is replaced by the
    // target's authority anyway (RFC 9112 §3.2.2).
    requireHostHeader: false,
    maxHeaderSize: limits.maxHeaderBytes,
    headersTimeout: limits.headersTimeoutMs,
    // Bodies may stream for long; the idle timeout below bounds stalls instead.
    requestTimeout: 0,
    keepAliveTimeout: 5000,
    connectionsCheckingInterval: Math.min(1000, limits.headersTimeoutMs),
    insecureHTTPParser: false,
    noDelay: true,
  });
  server.timeout = limits.idleTimeoutMs;

  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    if (badVersion(req)) return refuse(req.socket, deny('EGR_BAD_REQUEST', 'http.version'));
    const bad = requestRefusal(req);
    if (bad) return renderDeny(res, bad, pipeline.refuse('http', clientAddress(req.socket), bad));
    // RFC 9112 §9.3: a proxy MUST NOT keep a persistent connection with an HTTP/1.0 client.
    if (req.httpVersionMinor === 0) res.shouldKeepAlive = false;
    void pipeline.http({
      listener: 'http',
      clientAddr: clientAddress(req.socket),
      credentials: credentialsOf(req),
      req,
      res,
      reject: (d, id) => renderDeny(res, d, id),
    });
  };
  server.on('request', onRequest);

  // RFC 9110 §10.1.1 (HTTP/1.1 only; Node ignores the expectation in 1.0, as it must): `100 Continue` goes out
  // when the forwarder starts reading the body — after identity, policy and the address guard — so a refused
  // request gets its final status without the client sending the body (Node then closes the connection).
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    const read = req._read;
    req._read = function (this: IncomingMessage, n: number) {
      req._read = read;
      if (!res.headersSent && !res.writableEnded) res.writeContinue();
      return read.call(this, n);
    };
    onRequest(req, res);
  });
  server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => {
    const d = unknownExpectation();
    renderDeny(res, d, pipeline.refuse('http', clientAddress(req.socket), d));
  });

  server.on('connect', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const s = socket as Socket;
    s.on('error', () => s.destroy());
    const bad = badVersion(req) ? deny('EGR_BAD_REQUEST', 'http.version') : connectRefusal(req);
    if (bad) return refuse(s, bad);
    // The edge lives as long as the tunnel: it must not hold the request (an IncomingMessage and its
    // stream state, per idle tunnel), only what the pipeline reads from it.
    const authority = req.url ?? '';
    void pipeline.tunnel({
      listener: 'http',
      clientAddr: clientAddress(s),
      credentials: credentialsOf(req, false),
      target: async () => ({ target: { kind: 'authority', authority }, head }),
      socket: s,
      accept: () => {
        s.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      },
      reject: (d, id) => renderDenyRaw(s, d, id),
    });
  });

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    const bad = malformed(req);
    if (bad) return refuse(socket, bad);
    void pipeline.upgrade({
      listener: 'http',
      clientAddr: clientAddress(socket as Socket),
      credentials: credentialsOf(req),
      req,
      socket,
      head,
      reject: (d, id) => renderDenyRaw(socket, d, id),
    });
  });

  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    const code = err.code ?? '';
    // Resets and header-read timeouts (slowloris) get no answer: there was no request to answer.
    if (code === 'ECONNRESET' || code === 'ERR_HTTP_REQUEST_TIMEOUT' || !socket.writable) {
      socket.destroy();
      return;
    }
    const d = deny('EGR_BAD_REQUEST', 'http.parse', code);
    const id = pipeline.refuse('http', clientAddress(socket as Socket), d);
    renderDenyRaw(socket, d, id);
  });

  return server;
}
