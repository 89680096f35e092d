// Canary servers on loopback addresses: they count every connection, so a test can prove that a blocked
// request never opened one. And canary values of the credential broker (brokerCanary, at the end): a key,
// a secret, a sealed blob and handles that no log, metric, error body or admin response may hold.
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TestPki } from './pki.js';
import { base64Cores, percentEncodings } from '../../proxy/broker/encodings.js';
import { issueHandle } from '../../proxy/broker/handle.js';
import { deriveBrokerKeys } from '../../proxy/broker/keys.js';
import { sealSecret } from '../../proxy/broker/sealed.js';

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
  res.writeHead(200, {
    'content-type': 'text/plain',
    connection: 'x-hop',
    'x-hop': 'drop me',
    'keep-alive': 'timeout=5',
  });
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
      const seen = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        rawHeaders: req.rawHeaders,
        body: Buffer.concat(chunks).toString(),
      };
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

export function startHttpsCanary(
  host: string,
  port: number,
  pki: TestPki,
  handler: Handler = defaultHandler,
): Promise<Canary> {
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

// ── Credential broker canaries ──────────────────────────────────────────────────────────────────────────
// Values that must never appear in a log line, a metric, an error body or an admin response: the broker's
// key, a credential's secret in every form the response scanner knows, its sealed blob, and handles
// (handles belong only to the workload that holds them and to the admin response that issued them).

export interface BrokerCanary {
  /** Content for secrets.keyFile. */
  readonly keyMaterial: string;
  /** The credential's real secret (what the upstream canary must see, and nothing else). */
  readonly secret: string;
  /** Content for the credential's source.sealedFile. */
  readonly sealed: string;
  /** A handle for `run`/`identity`. */
  readonly handle: string;
  /** Another handle (another run, identity or expiry), added to `forms`. */
  issue(o?: { run?: string; identity?: string; expS?: number }): string;
  /** Every string that must not leak, by name (secret forms, key, sealed blob, handles issued so far). */
  readonly forms: Readonly<Record<string, string>>;
  /** Names of the forms found in `text`; `allow` names forms that may appear there (e.g. 'handle' in the
   * admin response that issued it). */
  leaks(text: string, allow?: readonly string[]): string[];
}

export function brokerCanary(o: { credential: string; run?: string; identity?: string; expS?: number }): BrokerCanary {
  // Distinctive, so a hit cannot be a coincidence; long enough for every base64 alignment to be specific.
  const keyMaterial = `CanaryBrokerKey-${'7f3a9Q2xLm4R'.repeat(3)}`;
  const secret = 'ghp_CanaryBrokerSecret0123456789AbCdEfGh';
  const keys = deriveBrokerKeys(Buffer.from(keyMaterial));
  const sealed = sealSecret(keys.seal, o.credential, Buffer.from(secret));
  const handles: string[] = [];
  const handle = (h: { run?: string; identity?: string; expS?: number } = {}) => {
    const made = issueHandle(keys.handle, {
      run: h.run ?? o.run ?? 'canary-run',
      identity: h.identity ?? o.identity ?? 'agent',
      credential: o.credential,
      expS: h.expS ?? o.expS ?? Math.floor(Date.now() / 1000) + 3600,
    });
    handles.push(made);
    return made;
  };
  const first = handle();
  const forms = (): Record<string, string> => {
    const out: Record<string, string> = { secret, key: keyMaterial, sealed, sealedBody: sealed.split('.').pop()! };
    base64Cores(Buffer.from(secret)).forEach((c, i) => (out[`secret.${c.alphabet}.${c.shift}.${i}`] = c.text));
    percentEncodings(secret).forEach((p, i) => (out[`secret.percent.${i}`] = p));
    base64Cores(Buffer.from(keyMaterial)).forEach((c, i) => (out[`key.${c.alphabet}.${c.shift}.${i}`] = c.text));
    handles.forEach((h, i) => {
      out[i === 0 ? 'handle' : `handle.${i}`] = h;
      // The body alone, too: a log that cut the prefix off still leaks the capability.
      out[i === 0 ? 'handleBody' : `handleBody.${i}`] = h.slice(10);
    });
    return out;
  };
  return {
    keyMaterial,
    secret,
    sealed,
    handle: first,
    issue: handle,
    get forms() {
      return forms();
    },
    leaks(text, allow = []) {
      return Object.entries(forms())
        .filter(
          ([name, value]) =>
            !allow.some(
              (a) => name === a || name.startsWith(`${a}.`) || name === `${a}Body` || name.startsWith(`${a}Body.`),
            ) && text.includes(value),
        )
        .map(([name]) => name);
    },
  };
}
