// An HTTPS origin that records everything it receives — every request Node's parser sees, and every raw byte
// on every connection — so a test can prove that bytes Sluice must hold never arrived. Integration traffic
// always leaves over TLS to 443, so it listens on 443 of its own loopback address (inside the lo-only namespace).
//   /ws…      Upgrade: websocket → 101, then echoes what arrives as `echo:<bytes>`
//   /other…   Upgrade → 101 to a protocol nobody asked for (h2c)
//   /upload…  reads the body, recording each chunk, and answers only when it ends
//   /stall…   sends the response head and then nothing
//   anything else (an upgrade included): 200 with `plain <method> <url>`
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { TestPki } from './pki.js';

export interface Seen {
  readonly method: string;
  readonly url: string;
  readonly host: string | undefined;
  readonly upgrade: string | undefined;
}

export interface RecordingOrigin {
  readonly host: string;
  /** Requests as Node's parser saw them, upgrades included. */
  readonly requests: Seen[];
  /** Every byte received, per connection, in order. */
  readonly raw: () => string;
  /** Bytes received on upgraded connections after the switch. */
  readonly afterSwitch: () => string;
  /** Chunks of /upload bodies as they arrived; and how many uploads were cut off before their end. */
  readonly uploadChunks: string[];
  readonly uploadsAborted: () => number;
  /** Open upgraded connections (the origin's end of each pipe). */
  readonly pipes: Set<Socket>;
  close(): Promise<void>;
}

export async function startRecordingOrigin(host: string, pki: TestPki): Promise<RecordingOrigin> {
  const raw: Buffer[] = [];
  const after: Buffer[] = [];
  const requests: Seen[] = [];
  const uploadChunks: string[] = [];
  const pipes = new Set<Socket>();
  let aborted = 0;
  const server: Server = createServer({ key: pki.keyPem, cert: pki.certPem });
  server.on('secureConnection', (s: TLSSocket) => {
    s.on('data', (c: Buffer) => raw.push(c));
    s.on('error', () => undefined);
  });
  const seen = (req: IncomingMessage) =>
    requests.push({
      method: req.method ?? '',
      url: req.url ?? '',
      host: req.headers.host,
      upgrade: req.headers.upgrade,
    });
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    seen(req);
    const url = req.url ?? '';
    if (url.startsWith('/upload')) {
      req.on('data', (c: Buffer) => uploadChunks.push(c.toString('latin1')));
      req.on('end', () => res.end('uploaded'));
      req.on('aborted', () => aborted++);
      res.on('close', () => {
        if (!req.complete) aborted++;
      });
      return;
    }
    if (url.startsWith('/stall')) {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('first bytes');
      return;
    }
    res.end(`plain ${req.method} ${url}`);
  });
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    seen(req);
    socket.on('error', () => undefined);
    const url = req.url ?? '';
    if (url.startsWith('/ws') && /websocket/i.test(String(req.headers.upgrade))) {
      socket.write(
        'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n',
      );
      pipes.add(socket);
      socket.on('close', () => pipes.delete(socket));
      const echo = (c: Buffer) => {
        after.push(c);
        socket.write(`echo:${c.toString('latin1')}`);
      };
      if (head.length) echo(head);
      socket.on('data', echo);
      return;
    }
    if (url.startsWith('/other')) {
      socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n');
      socket.on('data', (c: Buffer) => after.push(c));
      return;
    }
    // Declines the upgrade: an ordinary answer on a connection that stays HTTP. Pipelined requests that follow
    // would be answered too, if they came: Node's parser saw them, and they are recorded in `raw`.
    const body = `plain ${req.method} ${url}`;
    socket.write(`HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    socket.end();
  });
  await new Promise<void>((r) => server.listen(443, host, r));
  return {
    host,
    requests,
    raw: () => Buffer.concat(raw).toString('latin1'),
    afterSwitch: () => Buffer.concat(after).toString('latin1'),
    uploadChunks,
    uploadsAborted: () => aborted,
    pipes,
    close: () =>
      new Promise((r) => {
        for (const p of pipes) p.destroy();
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
