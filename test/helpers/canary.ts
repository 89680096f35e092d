// Canary servers on loopback addresses: they count every connection, so a test can prove that a blocked
// request never opened one.
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TestPki } from './pki.js';

export interface SeenRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingMessage['headers'];
  readonly rawHeaders: string[];
  readonly body: string;
}

export interface Canary {
  readonly host: string;
  readonly port: number;
  readonly connections: number;
  readonly requests: SeenRequest[];
  close(): Promise<void>;
}

export type Handler = (req: SeenRequest, res: ServerResponse) => void;

const defaultHandler: Handler = (req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain', connection: 'x-hop', 'x-hop': 'drop me', 'keep-alive': 'timeout=5' });
  res.end(`canary ${req.method} ${req.url}`);
};

async function start(server: Server, host: string, port: number, handler: Handler): Promise<Canary> {
  let connections = 0;
  const requests: SeenRequest[] = [];
  server.on('connection', () => connections++);
  server.on('secureConnection', () => undefined);
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const seen = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders, body: Buffer.concat(chunks).toString() };
      requests.push(seen);
      handler(seen, res);
    });
  });
  await new Promise<void>((r) => server.listen(port, host, r));
  return {
    host,
    port: (server.address() as AddressInfo).port,
    get connections() {
      return connections;
    },
    requests,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

export function startHttpCanary(host: string, port = 0, handler: Handler = defaultHandler): Promise<Canary> {
  return start(createHttpServer(), host, port, handler);
}

export function startHttpsCanary(host: string, port: number, pki: TestPki, handler: Handler = defaultHandler): Promise<Canary> {
  return start(createHttpsServer({ key: pki.keyPem, cert: pki.certPem }), host, port, handler);
}
