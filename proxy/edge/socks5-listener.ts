// The SOCKS5 listener (RFC 1928 + RFC 1929 username/password) on node:net, driving the sans-io codec. It
// owns only the conversation: greeting and credentials are read here, then the pipeline takes over and asks
// for the request once the identity stage has passed (the RFC 1929 status must precede the request). A
// SOCKS5 CONNECT is judged exactly like an HTTP CONNECT: same identity, decide(), dialer and SNI check.
import { type Server, type Socket, createServer } from 'node:net';
import { type Deny, deny } from '../../firewall/codes.js';
import { clientAddress } from './http-listener.js';
import type { Pipeline } from '../pipeline/pipeline.js';
import {
  type Decoded,
  MAX_MESSAGE_BYTES,
  METHOD,
  decodeGreeting,
  decodeRequest,
  decodeUserPass,
  encodeAuthStatus,
  encodeDenyReply,
  encodeMethod,
  encodeReply,
} from './socks5-codec.js';

export interface Socks5ListenerLimits {
  /** How long a client may take to send its greeting and credentials, and then its request. */
  readonly headersTimeoutMs: number;
  /** Cap on the bytes buffered during the handshake (pipelined data included). */
  readonly maxHeaderBytes: number;
}

/** A net.Server that, like http.Server, can drop every connection it holds (used by Sluice's stop()). */
export type Socks5Server = Server & { closeAllConnections(): void };

type Read<T> = Decoded<T> | { readonly state: 'closed' } | { readonly state: 'too-large' };

/** Reads one codec message at a time from a paused socket; bytes past the message stay for the next read. */
function createReader(socket: Socket, capBytes: number) {
  let buf: Buffer = Buffer.alloc(0);
  return {
    /** What the client sent past the last message (early data for the tunnel); empties the buffer. */
    rest(): Buffer {
      const r = buf;
      buf = Buffer.alloc(0);
      return r;
    },
    next<T>(decode: (b: Uint8Array) => Decoded<T>): Promise<Read<T>> {
      return new Promise((resolve) => {
        let done = false;
        const finish = (r: Read<T>) => {
          if (done) return;
          done = true;
          socket.removeListener('data', onData);
          socket.removeListener('close', onClose);
          socket.pause();
          resolve(r);
        };
        const check = () => {
          const r = decode(buf);
          if (r.state === 'ok') buf = buf.subarray(r.used);
          if (r.state !== 'need-more') finish(r);
        };
        const onData = (chunk: Buffer) => {
          buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
          if (buf.length > capBytes) return finish({ state: 'too-large' });
          check();
        };
        const onClose = () => finish({ state: 'closed' });
        if (buf.length > 0) check();
        if (done) return;
        if (socket.destroyed) return finish({ state: 'closed' });
        socket.on('data', onData);
        socket.once('close', onClose);
        socket.resume();
      });
    },
  };
}

// After a refusal the client may still be sending (a pipelined request, TLS bytes). Closing with unread data
// makes the kernel send RST, which can overtake the reply; so half-close, drain, and give up after a while
// (a fixed deadline: a client that keeps sending must not keep the socket open).
function closeWith(socket: Socket, bytes: Buffer | null, lingerMs: number): void {
  if (bytes === null || socket.destroyed || !socket.writable) {
    socket.destroy();
    return;
  }
  socket.end(bytes);
  socket.resume();
  const timer = setTimeout(() => socket.destroy(), lingerMs);
  socket.once('close', () => clearTimeout(timer));
}

export function createSocks5Listener(pipeline: Pipeline, limits: Socks5ListenerLimits): Socks5Server {
  const connections = new Set<Socket>();
  const capBytes = Math.max(limits.maxHeaderBytes, MAX_MESSAGE_BYTES);
  const linger = limits.headersTimeoutMs;

  async function converse(socket: Socket): Promise<void> {
    const clientAddr = clientAddress(socket);
    const reader = createReader(socket, capBytes);
    // Greeting and credentials share one deadline; the request gets its own once the status is sent.
    let timedOut = false;
    const deadline = () =>
      setTimeout(() => {
        timedOut = true;
        socket.destroy();
      }, limits.headersTimeoutMs);
    let timer = deadline();

    const greeting = await reader.next(decodeGreeting);
    if (greeting.state !== 'ok') {
      clearTimeout(timer);
      if (greeting.state === 'error') {
        pipeline.refuse('socks5', clientAddr, greeting.deny);
        closeWith(socket, greeting.reply, linger);
      } else if (greeting.state === 'too-large') {
        pipeline.refuse('socks5', clientAddr, deny('EGR_BAD_REQUEST', 'socks5.greeting', 'handshake too large'));
        socket.destroy();
      }
      // Closed or timed out before a greeting: there is no request to answer or record (as for HTTP).
      return;
    }
    socket.write(encodeMethod(METHOD.userPass));

    const auth = await reader.next(decodeUserPass);
    clearTimeout(timer);
    if (auth.state === 'too-large') {
      pipeline.refuse('socks5', clientAddr, deny('EGR_BAD_REQUEST', 'socks5.auth', 'handshake too large'));
      socket.destroy();
      return;
    }
    // Gone before sending credentials: nothing to answer or record.
    if (auth.state === 'closed' || auth.state === 'need-more') return;
    // A malformed RFC 1929 message is a credential failure, judged by the identity stage like a malformed
    // Proxy-Authorization header (so that failed-credential accounting sees it too).
    const credentials = auth.state === 'ok' ? auth.value : 'malformed';

    let phase: 'auth' | 'request' | 'open' = 'auth';
    const readRequest = async () => {
      socket.write(encodeAuthStatus(true));
      phase = 'request';
      timer = deadline();
      const r = await reader.next(decodeRequest);
      clearTimeout(timer);
      if (r.state === 'ok')
        return { target: { kind: 'host-port', host: r.value.host, port: r.value.port } as const, head: reader.rest() };
      if (r.state === 'error') return r.deny;
      if (r.state === 'too-large') return deny('EGR_BAD_REQUEST', 'socks5.request', 'handshake too large');
      return deny(
        'EGR_BAD_REQUEST',
        'socks5.request',
        timedOut ? 'no request in time' : 'client closed before its request',
      );
    };

    await pipeline.tunnel({
      listener: 'socks5',
      clientAddr,
      credentials,
      socket,
      target: readRequest,
      accept: () => {
        phase = 'open';
        // BND.ADDR/PORT: the upstream connection is opened only after the ClientHello is checked, so there is
        // no bound address yet; RFC 1928 clients use it only for BIND.
        socket.write(encodeReply(0x00));
      },
      reject: (d: Deny) => {
        // RFC 1929: a failed status and then the server closes. Later, a full RFC 1928 reply.
        if (phase === 'auth') closeWith(socket, encodeAuthStatus(false), linger);
        else if (phase === 'request') closeWith(socket, encodeDenyReply(d), linger);
        else socket.destroy();
      },
    });
  }

  const server = createServer({ noDelay: true, pauseOnConnect: true }, (socket) => {
    connections.add(socket);
    socket.once('close', () => connections.delete(socket));
    socket.on('error', () => socket.destroy());
    // The pipeline turns its own failures into denials; this catches a bug in the conversation itself.
    converse(socket).catch(() => {
      pipeline.refuse('socks5', clientAddress(socket), deny('EGR_INTERNAL', 'socks5.listener'));
      socket.destroy();
    });
  }) as Socks5Server;

  server.closeAllConnections = () => {
    for (const s of connections) s.destroy();
  };
  return server;
}
