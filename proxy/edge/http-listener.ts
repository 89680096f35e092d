// The HTTP proxy listener: absolute-form requests, CONNECT and Upgrade, parsed by Node's llhttp in strict
// mode — which already refuses CL+TE, duplicate Content-Length, bad Transfer-Encoding, obs-fold, bare LF
// and control characters in the target. What it refuses is answered 400 EGR_BAD_REQUEST and the
// connection is closed: after a framing error nothing that follows on that connection can be trusted.
import { type IncomingMessage, type Server, createServer } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { deny } from '../../firewall/codes.js';
import { renderDeny, renderDenyRaw } from './http-render.js';
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

export function createHttpListener(pipeline: Pipeline, limits: HttpListenerLimits): Server {
  const refuse = (socket: Duplex) => {
    const d = deny('EGR_BAD_REQUEST', 'http.version');
    renderDenyRaw(socket, d, pipeline.refuse('http', clientAddress(socket as Socket), d));
  };

  const server = createServer({
    // An absolute-form target carries the authority; Host is replaced anyway (RFC 9112 §3.2.2).
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

  server.on('request', (req, res) => {
    if (badVersion(req)) return refuse(req.socket);
    void pipeline.http({
      listener: 'http',
      clientAddr: clientAddress(req.socket),
      credentials: credentialsOf(req),
      req,
      res,
      reject: (d, id) => renderDeny(res, d, id),
    });
  });

  server.on('connect', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const s = socket as Socket;
    s.on('error', () => s.destroy());
    if (badVersion(req)) return refuse(s);
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
    if (badVersion(req)) return refuse(socket);
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
