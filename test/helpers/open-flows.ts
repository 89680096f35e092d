// Long-lived flows through a running Sluice, one of each kind, for tests that close them: a CONNECT tunnel with
// TLS completed through it, an upgraded connection (WebSocket to a recording origin), and a chunked upload
// still being sent.
import { type ClientRequest, request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { waitFor } from './harness.js';

/** Resolves when the socket (or request) has closed. */
export const closed = (s: { destroyed: boolean; once(event: 'close', cb: () => void): unknown }): Promise<void> =>
  new Promise((r) => (s.destroyed ? r() : void s.once('close', () => r())));

/** CONNECT `authority`, then a TLS handshake with `servername` through the tunnel. */
export async function openTunnel(port: number, authority: string, auth: string, ca: string): Promise<TLSSocket> {
  const socket: Socket = connect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  await new Promise<void>((r, j) => socket.once('connect', () => r()).once('error', j));
  socket.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\nProxy-Authorization: ${auth}\r\n\r\n`);
  let head = '';
  await new Promise<void>((resolve, reject) => {
    const onData = (c: Buffer) => {
      head += c.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      socket.removeListener('data', onData);
      socket.pause();
      if (/^HTTP\/1\.1 200 /.test(head)) resolve();
      else reject(new Error(head));
    };
    socket.on('data', onData);
  });
  const tls = tlsConnect({ socket, servername: authority.split(':')[0], ca });
  tls.on('error', () => undefined);
  await new Promise<void>((r, j) => tls.once('secureConnect', () => r()).once('error', j));
  return tls;
}

export interface Pipe {
  readonly socket: Socket;
  readonly received: () => string;
}

/** A WebSocket upgrade to `url` (absolute form): resolves once the 101 arrived; rejects on anything else. */
export async function openUpgrade(port: number, url: string, auth: string): Promise<Pipe> {
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  let text = '';
  socket.on('data', (c: Buffer) => (text += c.toString('latin1')));
  await new Promise<void>((r) => socket.once('connect', () => r()));
  const host = new URL(url).host;
  socket.write(
    `GET ${url} HTTP/1.1\r\nHost: ${host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nProxy-Authorization: ${auth}\r\n\r\n`,
  );
  await waitFor(() => text.includes('\r\n\r\n') || socket.destroyed, 10_000);
  if (!/^HTTP\/1\.1 101 /.test(text)) throw new Error(`no 101: ${text}`);
  return { socket, received: () => text };
}

export interface Upload {
  readonly req: ClientRequest;
  /** Sends one more chunk (ignored once the request is gone). */
  send(chunk: string): void;
  /** Resolves when the client's connection is gone (closed by Sluice, or finished). */
  readonly done: Promise<void>;
  /** The response status, once one arrived (0 before). */
  status(): number;
}

/** A chunked POST to `url` through the proxy, left open after its first chunk. */
export function startUpload(port: number, url: string, auth: string, first: string): Upload {
  const req = request({
    host: '127.0.0.1',
    port,
    method: 'POST',
    path: url,
    agent: false,
    headers: { 'proxy-authorization': auth, 'transfer-encoding': 'chunked', 'content-type': 'text/plain' },
  });
  let status = 0;
  req.on('error', () => undefined);
  req.on('response', (res) => {
    status = res.statusCode ?? 0;
    res.resume();
  });
  req.write(first);
  const done = new Promise<void>((r) => req.once('close', () => r()));
  return {
    req,
    send(chunk) {
      if (!req.destroyed && req.writable) req.write(chunk);
    },
    done,
    status: () => status,
  };
}
