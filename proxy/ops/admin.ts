// The admin listener: /healthz, /readyz and /metrics for the platform, and two mutating endpoints —
// POST /v1/kill-switch and POST /v1/reload — behind a bearer token read from a file. It is a separate
// listener on its own address; the proxy refuses to reach it (the proxy's own addresses are denied).
// GET /metrics (which names identities) and GET /v1/kill-switch need the token too when `admin.protectReads`
// is on, the default beyond loopback; /healthz and /readyz never do (probes carry no secret, and say nothing).
// The credential broker adds POST /v1/handles (issue a handle for a run) and POST /v1/runs/revoke (end a
// run's handles), both behind the token; the handle appears in that one response and nowhere else.
import { timingSafeEqual, createHash } from 'node:crypto';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { Logger } from 'pino';
import { parseDuration } from '../../firewall/config.js';
import type { HandleRequest, IssueOutcome, RevokeOutcome } from '../broker/issue.js';

export interface ReloadOutcome {
  readonly ok: boolean;
  readonly issues: readonly string[];
  readonly restartRequired: readonly string[];
}

/** The exposition /metrics serves: a prom-client Registry, or the primary's aggregate of its workers'. */
export interface MetricsSource {
  readonly contentType: string;
  metrics(): Promise<string>;
}

export interface AdminDeps {
  readonly metrics: MetricsSource;
  readonly logger: Logger;
  /** The bearer token, or null when none is configured (mutating endpoints are then disabled). */
  readonly token: () => Buffer | null;
  /** GET /metrics and GET /v1/kill-switch require the bearer token too (config `admin.protectReads`). */
  readonly protectReads: () => boolean;
  readonly ready: () => boolean;
  readonly killSwitch: () => boolean;
  /** Resolves once every process that serves traffic applies it (with workers: each one has answered). */
  setKillSwitch(engaged: boolean): void | Promise<void>;
  reload(): Promise<ReloadOutcome>;
  /** The credential broker's issue and revoke (absent or null: no credential configured → 404). */
  readonly handles?: () => HandleAdmin | null;
}

export interface HandleAdmin {
  issue(req: HandleRequest): IssueOutcome;
  /** Resolves once every process that serves traffic has the revocation (with workers: each one answered). */
  revoke(run: string): Promise<RevokeOutcome>;
}

const ADMIN_PATHS = new Set(['/v1/kill-switch', '/v1/reload', '/v1/handles', '/v1/runs/revoke']);

function parseJson(body: string | null): Record<string, unknown> | null {
  if (body === null) return null;
  try {
    const v: unknown = JSON.parse(body);
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

const MAX_BODY = 4096;

const digest = (b: Buffer) => createHash('sha256').update(b).digest();

function authorised(req: IncomingMessage, token: Buffer | null): boolean {
  if (!token) return false;
  const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(req.headers.authorization ?? '');
  if (!m) return false;
  // Compare digests so the comparison is constant-time whatever the lengths.
  return timingSafeEqual(digest(Buffer.from(m[1]!)), digest(token));
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  const text = typeof body === 'string' ? body : JSON.stringify(body) + '\n';
  res.writeHead(status, {
    'content-type': typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/json',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(text);
}

function readBody(req: IncomingMessage): Promise<string | null> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        resolve(null);
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', () => resolve(null));
  });
}

export function createAdminListener(deps: AdminDeps): Server {
  const server = createServer({ headersTimeout: 5000, requestTimeout: 10000, maxHeaderSize: 8192 }, (req, res) => {
    void handle(req, res).catch((err: unknown) => {
      deps.logger.error({ err: String(err) }, 'admin.error');
      if (!res.headersSent) send(res, 500, { error: 'internal error' });
    });
  });

  /** Answers 403 (no token configured) or 401 (missing or wrong token) and returns true; false: authorised. */
  function refuseUnauthorised(req: IncomingMessage, res: ServerResponse, path: string | undefined): boolean {
    const token = deps.token();
    if (!token) {
      send(res, 403, { error: 'admin API disabled: no admin.tokenFile is configured' });
      return true;
    }
    if (authorised(req, token)) return false;
    deps.logger.warn({ path }, 'admin.unauthorised');
    send(res, 401, { error: 'bearer token required' }, { 'www-authenticate': 'Bearer realm="sluice-admin"' });
    return true;
  }

  async function handle(req: IncomingMessage, res: ServerResponse) {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' || req.method === 'HEAD') {
      if (path === '/healthz') return send(res, 200, 'ok\n');
      if (path === '/readyz') return deps.ready() ? send(res, 200, 'ready\n') : send(res, 503, 'not ready\n');
      if (
        (path === '/metrics' || path === '/v1/kill-switch') &&
        deps.protectReads() &&
        refuseUnauthorised(req, res, path)
      )
        return;
      if (path === '/metrics') {
        const text = await deps.metrics.metrics();
        res.writeHead(200, { 'content-type': deps.metrics.contentType, 'cache-control': 'no-store' });
        return res.end(text);
      }
      if (path === '/v1/kill-switch') return send(res, 200, { engaged: deps.killSwitch() });
      return send(res, 404, { error: 'not found' });
    }
    if (req.method !== 'POST') return send(res, 405, { error: 'method not allowed' }, { allow: 'GET, HEAD, POST' });
    if (!ADMIN_PATHS.has(path ?? '')) return send(res, 404, { error: 'not found' });
    if (refuseUnauthorised(req, res, path)) return;
    if (path === '/v1/handles' || path === '/v1/runs/revoke') return handles(req, res, path);
    if (path === '/v1/kill-switch') {
      const body = await readBody(req);
      let engaged: unknown;
      try {
        engaged = body === null ? undefined : (JSON.parse(body) as { engaged?: unknown }).engaged;
      } catch {
        engaged = undefined;
      }
      if (typeof engaged !== 'boolean') return send(res, 400, { error: 'body must be {"engaged": true|false}' });
      await deps.setKillSwitch(engaged);
      deps.logger.warn({ engaged, source: 'admin' }, 'kill_switch');
      return send(res, 200, { engaged: deps.killSwitch() });
    }
    const outcome = await deps.reload();
    return send(res, outcome.ok ? 200 : 422, {
      result: outcome.ok ? 'success' : 'error',
      issues: outcome.issues,
      restartRequired: outcome.restartRequired,
    });
  }

  async function handles(req: IncomingMessage, res: ServerResponse, path: string) {
    const admin = deps.handles?.() ?? null;
    if (!admin) return send(res, 404, { error: 'no credentials are configured' });
    const body = parseJson(await readBody(req));
    if (!body) return send(res, 400, { error: 'body must be a JSON object' });
    if (path === '/v1/runs/revoke') {
      const r = await admin.revoke(typeof body.run === 'string' ? body.run : '');
      if (!r.ok) return send(res, r.status, { error: r.error });
      deps.logger.warn({ run: r.run, shared: r.shared }, 'admin.run_revoked');
      return send(res, 200, { run: r.run, until: r.untilS, shared: r.shared });
    }
    const ttlS =
      typeof body.ttl === 'string'
        ? parseDuration(body.ttl)
        : typeof body.ttlSeconds === 'number'
          ? body.ttlSeconds
          : null;
    if (ttlS === null) return send(res, 400, { error: 'ttl is required', hint: 'e.g. {"ttl": "30m"}' });
    const r = admin.issue({
      run: typeof body.run === 'string' ? body.run : '',
      identity: typeof body.identity === 'string' ? body.identity : '',
      credential: typeof body.credential === 'string' ? body.credential : '',
      ttlS,
    });
    if (!r.ok) return send(res, r.status, r.hint === undefined ? { error: r.error } : { error: r.error, hint: r.hint });
    // The handle goes to the caller only: the log names its id.
    deps.logger.info(
      { run: body.run, credential: r.credential, 'credential.handle': r.handleId },
      'admin.handle_issued',
    );
    return send(res, 200, {
      handle: r.handle,
      handleId: r.handleId,
      credential: r.credential,
      integration: r.integration,
      expiresAt: r.expiresAtS,
    });
  }

  return server;
}
