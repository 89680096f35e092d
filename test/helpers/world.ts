// A small "internet" for proxy integration tests, built inside the lo-only namespace (see netns.ts):
// extra addresses on lo stand in for public hosts, a metadata service and a private network, with canary
// servers that count every connection, and a fake DNS server that names them.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import { type Canary, type Handler, startHttpCanary, startHttpsCanary } from './canary.js';
import { type FakeDns, startFakeDns } from './fake-dns.js';
import { insideLoOnlyNamespace } from './netns.js';
import { type TestPki, testPki } from './pki.js';

export const ADDR = {
  public: '127.0.0.2',
  integration: '127.0.0.3',
  registry: '127.0.0.4',
  metadata: '169.254.169.254',
  private: '10.0.0.1',
} as const;

export interface World {
  readonly dns: FakeDns;
  readonly pki: TestPki;
  readonly publicHttp: Canary;
  readonly integration: Canary;
  readonly registry: Canary;
  readonly metadata: Canary;
  readonly privateHttp: Canary;
  readonly tokenKeyFile: string;
  /** Connections seen by the canaries that must never be reached. */
  forbiddenHits(): number;
}

const redirecting: Handler = (req, res) => {
  if (req.url.startsWith('/redirect')) {
    res.writeHead(302, { location: 'http://169.254.169.254/latest/meta-data/' });
    res.end();
    return;
  }
  res.writeHead(200, {
    'content-type': 'text/plain',
    connection: 'x-hop',
    'x-hop': 'drop me',
    'keep-alive': 'timeout=5',
  });
  res.end(`canary ${req.method} ${req.url} ${req.body}`);
};

export async function buildWorld(t: Test): Promise<World> {
  if (!insideLoOnlyNamespace()) throw new Error('buildWorld() must run inside the lo-only namespace');
  for (const a of [ADDR.metadata, ADDR.private]) execFileSync('ip', ['addr', 'add', `${a}/32`, 'dev', 'lo']);
  const pki = testPki(['api.test', 'registry.test', 'public.test', 'gh.test'], ['127.0.0.3']);
  const dns = await startFakeDns();
  const publicHttp = await startHttpCanary(ADDR.public, 0, redirecting);
  const integration = await startHttpsCanary(ADDR.integration, 443, pki, redirecting);
  const registry = await startHttpsCanary(ADDR.registry, 443, pki);
  const metadata = await startHttpCanary(ADDR.metadata, 80);
  const privateHttp = await startHttpCanary(ADDR.private, 80);
  const tokenKeyFile = join(tmpdir(), `sluice-token-key-${process.pid}`);
  writeFileSync(tokenKeyFile, 'k'.repeat(48));
  for (const name of ['public.test', 'wrongcert.test']) dns.set(name, { a: [ADDR.public] });
  dns.set('api.test', { a: [ADDR.integration] });
  dns.set('gh.test', { a: [ADDR.integration] });
  dns.set('wrongcert.test', { a: [ADDR.integration] });
  dns.set('registry.test', { a: [ADDR.registry] });
  dns.set('meta.test', { a: [ADDR.metadata] });
  dns.set('internal.test', { a: [ADDR.private] });
  t.teardown(async () => {
    await Promise.all([dns, publicHttp, integration, registry, metadata, privateHttp].map((s) => s.close()));
  });
  return {
    dns,
    pki,
    publicHttp,
    integration,
    registry,
    metadata,
    privateHttp,
    tokenKeyFile,
    forbiddenHits: () => metadata.connections + privateHttp.connections,
  };
}

export const PASSWORD = 'agent-password-123';

/** The Sluice config every integration test starts from. */
export function worldConfig(w: World, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    dns: { servers: [w.dns.server], timeoutMs: 1000, minTtlS: 0, maxTtlS: 1 },
    upstream: { caFile: w.pki.caFile, connectTimeoutMs: 1000, tunnelHelloTimeoutMs: 1000 },
    registries: ['registry.test'],
    integrations: { api: { hosts: ['api.test'] }, gh: { hosts: ['gh.test'], tunnel: true } },
    identities: {
      agent: { password: PASSWORD, integrations: ['api', 'gh'] },
      sealed: { password: PASSWORD, reads: 'none' },
    },
    tokens: { keyFile: w.tokenKeyFile },
    globalDeny: { hosts: ['blocked.test'] },
    // Loopback stands in for the internet here; the exception is bound to the test names only.
    addressGuard: { allow: [{ cidr: '127.0.0.0/8', hosts: ['*.test'] }] },
    ...extra,
  };
}
