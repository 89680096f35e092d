// A broker world for integration tests, inside the lo-only namespace: a TLS integration (api.test) that
// echoes what it receives and can answer with the real secret in several shapes, a second integration
// (other.test), a public host (public.test), fake DNS naming them, and the files a broker needs (key, sealed
// secret, token key, revocation list).
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { Test } from 'tap';
import { issueToken } from '../../proxy/auth/run-token.js';
import {
  type BrokerCanary,
  type Canary,
  type Handler,
  brokerCanary,
  startHttpCanary,
  startHttpsCanary,
} from '../helpers/canary.js';
import { type FakeDns, startFakeDns } from '../helpers/fake-dns.js';
import { basic } from '../helpers/harness.js';
import { type TestPki, testPki } from '../helpers/pki.js';

export const CREDENTIAL = 'api-token';
export const RUN = 'run-1';
export const PASSWORD = 'agent-password-123';
export const TOKEN_KEY = 'k'.repeat(48);

export interface BrokerWorld {
  readonly dir: string;
  readonly pki: TestPki;
  readonly dns: FakeDns;
  readonly api: Canary;
  readonly other: Canary;
  readonly publicHttp: Canary;
  readonly canary: BrokerCanary;
  readonly files: {
    readonly key: string;
    readonly sealed: string;
    readonly tokenKey: string;
    readonly revocations: string;
  };
  /** Proxy-Authorization for a run token of `run` (default RUN) as `identity` (default agent). */
  auth(o?: { run?: string | null; identity?: string; ttlS?: number }): string;
  config(extra?: Record<string, unknown>): Record<string, unknown>;
}

function apiHandler(secret: () => string): Handler {
  return (req, res) => {
    const s = secret();
    const path = req.url.split('?')[0];
    if (path === '/leak/split') {
      // The secret split across two writes (two chunks on the wire), a pause between them.
      const text = `token=${s};`;
      const cut = 10;
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write(text.slice(0, cut));
      setTimeout(() => res.end(text.slice(cut)), 50);
      return;
    }
    if (path === '/leak/gzip') {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-encoding': 'gzip' });
      res.end(gzipSync(`gzipped ${s} end`));
      return;
    }
    if (path === '/leak/compress') {
      // A coding Sluice cannot decode: it cannot be scanned, so it must not be delivered.
      res.writeHead(200, { 'content-type': 'text/plain', 'content-encoding': 'compress' });
      res.end(`not really compressed ${s}`);
      return;
    }
    if (path === '/leak/bomb') {
      // 64 MiB of zeros in ~64 KiB of gzip, the secret at the very end.
      res.writeHead(200, { 'content-type': 'text/plain', 'content-encoding': 'gzip' });
      res.end(gzipSync(Buffer.concat([Buffer.alloc(64 * 1024 * 1024), Buffer.from(s)])));
      return;
    }
    if (path === '/leak/base64') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(`b64=${Buffer.from(`user:${s}`).toString('base64')}`);
      return;
    }
    if (path === '/leak/header') {
      res.writeHead(200, { 'content-type': 'text/plain', 'x-token': s, 'content-length': '2' });
      res.end('ok');
      return;
    }
    if (path === '/leak/big') {
      // Many chunks, the secret in several places, none buffered whole.
      res.writeHead(200, { 'content-type': 'text/plain' });
      for (let i = 0; i < 200; i++) res.write(`${'x'.repeat(997)}${i % 50 === 0 ? s : ''}\n`);
      res.end();
      return;
    }
    // The echo: what a reflecting endpoint returns (headers and body), which must never hand back the secret.
    res.writeHead(200, {
      'content-type': 'application/json',
      'x-echo-authorization': String(req.headers.authorization ?? ''),
    });
    res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body: req.body }));
  };
}

export async function buildBrokerWorld(t: Test): Promise<BrokerWorld> {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-broker-'));
  const pki = testPki(['api.test', 'other.test', 'git.test'], []);
  const dns = await startFakeDns();
  const canary = brokerCanary({ credential: CREDENTIAL, run: RUN, identity: 'agent' });
  const api = await startHttpsCanary(
    '127.0.0.3',
    443,
    pki,
    apiHandler(() => canary.secret),
  );
  const other = await startHttpsCanary(
    '127.0.0.4',
    443,
    pki,
    apiHandler(() => canary.secret),
  );
  const publicHttp = await startHttpCanary('127.0.0.5', 80);
  dns.set('api.test', { a: ['127.0.0.3'] });
  dns.set('other.test', { a: ['127.0.0.4'] });
  dns.set('public.test', { a: ['127.0.0.5'] });
  const files = {
    key: join(dir, 'broker.key'),
    sealed: join(dir, `${CREDENTIAL}.sealed`),
    tokenKey: join(dir, 'token.key'),
    revocations: join(dir, 'revoked.jsonl'),
  };
  writeFileSync(files.key, canary.keyMaterial, { mode: 0o600 });
  writeFileSync(files.sealed, canary.sealed, { mode: 0o600 });
  writeFileSync(files.tokenKey, TOKEN_KEY, { mode: 0o600 });
  chmodSync(dir, 0o700);
  t.teardown(async () => {
    await Promise.all([dns, api, other, publicHttp].map((s) => s.close()));
  });
  return {
    dir,
    pki,
    dns,
    api,
    other,
    publicHttp,
    canary,
    files,
    auth(o = {}) {
      const identity = o.identity ?? 'agent';
      const run = o.run === undefined ? RUN : o.run;
      const token = issueToken(Buffer.from(TOKEN_KEY), {
        sub: identity,
        ttlS: o.ttlS ?? 600,
        nowS: Math.floor(Date.now() / 1000),
        ...(run === null ? {} : { run }),
      });
      return basic(identity, token);
    },
    config(extra = {}) {
      return {
        dns: { servers: [dns.server], timeoutMs: 1000, minTtlS: 0, maxTtlS: 1 },
        upstream: { caFile: pki.caFile, connectTimeoutMs: 1000 },
        integrations: { api: { hosts: ['api.test'] }, other: { hosts: ['other.test'] } },
        identities: {
          agent: { password: PASSWORD, integrations: ['api', 'other'] },
          bot: { password: PASSWORD, integrations: ['api'] },
        },
        tokens: { keyFile: files.tokenKey },
        addressGuard: { allow: [{ cidr: '127.0.0.0/8', hosts: ['*.test'] }] },
        secrets: { keyFile: files.key, handles: { maxTtl: '8h', revocationFile: files.revocations, pollMs: 100 } },
        credentials: {
          [CREDENTIAL]: {
            integration: 'api',
            inject: { type: 'header', name: 'Authorization', template: 'Bearer {secret}' },
            source: { sealedFile: files.sealed },
          },
        },
        ...extra,
      };
    },
  };
}
