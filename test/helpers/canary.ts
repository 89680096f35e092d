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

/** Secrets a client can put in a request, each unique enough to grep for in every log line, metric and error
 * body (test/proxy/operations.test.ts). `paths` are the forms that live in the URL path itself. */
export const CANARY_SECRETS = Object.freeze({
  proxyPass: 'CanaryProxyPass-7f3a9',
  bearer: 'CanaryBearer-ab12cd34ef56',
  userinfo: 'CanaryUserInfo-9d8c7b',
  query: 'CanaryQueryValue-5e4f3a',
  body: 'CanaryBodySecret-1a2b3c',
  ghp: 'ghp_CanaryGithubToken0123456789abcdef',
  webhook: 'Kq2Zx9Lm4Pd8Rt3Vb6NhCw7J',
  botToken: 'AAHcanaryB0tT0k3nXyZ9qW2eR4tY6uI8oP',
  matrixSession: 'CanaryJsession42',
  matrixToken: 'CanaryMatrixTok',
  keyOnly: 'CanaryKeyOnly9x8y7z',
});

/** Request paths that carry a canary in the path itself: a webhook, a bot token, matrix parameters, a key-only
 * query, a token shape as a segment. */
export const CANARY_PATHS: readonly string[] = [
  `/services/T0CANARY1/B0CANARY2/${CANARY_SECRETS.webhook}`,
  `/bot123456789:${CANARY_SECRETS.botToken}/sendMessage`,
  `/app;jsessionid=${CANARY_SECRETS.matrixSession};token=${CANARY_SECRETS.matrixToken}/x`,
  `/hook?${CANARY_SECRETS.keyOnly}`,
  `/path/${CANARY_SECRETS.ghp}`,
];
