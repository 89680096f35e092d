// The injector's HTTPS endpoint: the API server POSTs AdmissionReviews to /inject/namespace and /inject/pod
// (one path per webhook of the MutatingWebhookConfiguration, see inject.ts); /healthz answers probes. The
// certificate, the key, the injection config and the CA certificate are files (a Secret from cert-manager or
// the chart, a ConfigMap), polled and swapped in place: a rotated certificate or a changed template needs no
// restart, and a config that does not validate keeps the last good one.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { type IncomingMessage, type ServerResponse } from 'node:http';
import { type Server, createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { type InjectionConfig, loadInjectionConfig } from './injection-config.js';
import { type Scope, review } from './inject.js';
import { SluiceError } from '../../firewall/errors.js';

/** The API server sends at most its request size limit (3 MiB); a bigger body is not a review. */
export const MAX_BODY_BYTES = 4 * 1024 * 1024;

export interface WebhookServerOptions {
  readonly configFile: string;
  readonly certFile: string;
  readonly keyFile: string;
  readonly host: string;
  readonly port: number;
  readonly logger: Logger;
  /** How often the files are checked for changes (ms). */
  readonly pollMs?: number;
}

export interface WebhookServer {
  readonly port: number;
  /** Re-read every file now; what changed and validates is swapped in. */
  refresh(): void;
  close(): Promise<void>;
}

const digest = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
const PATHS: Record<string, Scope> = { '/inject/namespace': 'namespace', '/inject/pod': 'pod' };

/** A member of an untrusted JSON body as an object, `{}` when it is not one (for the log line and the uid). */
const objectOf = (v: unknown): Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
const requestOf = (body: unknown): { uid: string } & Record<string, unknown> => {
  const req = objectOf(objectOf(body).request);
  return { ...req, uid: typeof req.uid === 'string' ? req.uid : '' };
};

export async function startWebhookServer(o: WebhookServerOptions): Promise<WebhookServer> {
  const log = o.logger;
  const first = loadInjectionConfig(o.configFile);
  if (!first.ok) throw new SluiceError('SLUICE_ERR_CONFIG', `${o.configFile}: ${first.problems.join('; ')}`);
  let config: InjectionConfig = first.config;
  let configDigest = digest(readFileSync(o.configFile));
  let tls = { cert: readFileSync(o.certFile), key: readFileSync(o.keyFile) };
  let tlsDigest = digest(Buffer.concat([tls.cert, tls.key]));
  let caCert: string | null = null;

  const readCa = () => {
    if (!config.caCertFile) return null;
    try {
      const pem = readFileSync(config.caCertFile, 'utf8');
      return /-----BEGIN CERTIFICATE-----[\s\S]+-----END CERTIFICATE-----/.test(pem) ? pem : null;
    } catch {
      return null;
    }
  };
  caCert = readCa();

  const server: Server = createServer({ cert: tls.cert, key: tls.key, minVersion: 'TLSv1.2' }, (req, res) =>
    handle(req, res),
  );
  server.headersTimeout = 10_000;
  server.requestTimeout = 15_000;

  function send(res: ServerResponse, status: number, body: unknown) {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
  }

  function handle(req: IncomingMessage, res: ServerResponse) {
    const path = (req.url ?? '').split('?')[0]!;
    if (req.method === 'GET' && path === '/healthz') return send(res, 200, { ok: true });
    const scope = PATHS[path];
    if (!scope) return send(res, 404, { error: 'not found' });
    if (req.method !== 'POST') return send(res, 405, { error: 'POST an AdmissionReview' });
    const chunks: Buffer[] = [];
    let size = 0;
    let tooBig = false;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) tooBig = true;
      else chunks.push(c);
    });
    req.on('error', () => res.destroy());
    req.on('end', () => {
      let body: unknown;
      try {
        body = tooBig ? null : JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        body = null;
      }
      let outcome;
      try {
        outcome = review(body, scope, config, caCert);
      } catch (err) {
        // A bug in the injector must not let a pod through uncontained: deny, and say so.
        log.error({ err }, 'webhook.internal_error');
        const uid = requestOf(body).uid;
        return send(res, 200, {
          apiVersion: 'admission.k8s.io/v1',
          kind: 'AdmissionReview',
          response: { uid, allowed: false, status: { code: 500, message: 'sluice injector: internal error' } },
        });
      }
      const req0 = requestOf(body);
      const pod = objectOf(req0.object);
      const metadata = objectOf(pod.metadata);
      log[outcome.result === 'injected' || outcome.result === 'skipped' ? 'info' : 'warn'](
        {
          'review.uid': outcome.review.response.uid,
          namespace: typeof req0.namespace === 'string' ? req0.namespace : undefined,
          pod: metadata.name ?? metadata.generateName,
          scope,
          result: outcome.result,
          reason: outcome.reason,
          bytes: tooBig ? size : undefined,
        },
        'webhook.review',
      );
      send(res, 200, outcome.review);
    });
  }

  function refresh() {
    try {
      const cert = readFileSync(o.certFile);
      const key = readFileSync(o.keyFile);
      const d = digest(Buffer.concat([cert, key]));
      if (d !== tlsDigest) {
        server.setSecureContext({ cert, key, minVersion: 'TLSv1.2' });
        tls = { cert, key };
        tlsDigest = d;
        log.info('webhook.tls_reloaded');
      }
    } catch (err) {
      // A half-rotated pair (new cert, old key) is refused by setSecureContext: keep serving the old one.
      log.warn({ reason: (err as Error).message }, 'webhook.tls_reload_failed');
    }
    try {
      const bytes = readFileSync(o.configFile);
      const d = digest(bytes);
      if (d !== configDigest) {
        const next = loadInjectionConfig(o.configFile);
        if (next.ok) {
          config = next.config;
          log.info('webhook.config_reloaded');
        } else log.warn({ problems: next.problems }, 'webhook.config_reload_failed');
        configDigest = d;
      }
    } catch (err) {
      log.warn({ reason: (err as Error).message }, 'webhook.config_reload_failed');
    }
    caCert = readCa() ?? caCert;
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => resolve());
  });
  const timer = setInterval(refresh, o.pollMs ?? 5_000);
  timer.unref();
  log.info({ address: `${o.host}:${(server.address() as AddressInfo).port}`, mode: config.mode }, 'webhook.listening');
  return {
    port: (server.address() as AddressInfo).port,
    refresh,
    close: () =>
      new Promise<void>((resolve) => {
        clearInterval(timer);
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
