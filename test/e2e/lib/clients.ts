// Puts it together for the real-client tests: the topology (the workload behind Sluice's docker-mode rules),
// the stand-ins, Sluice listening on the workload network, and the environment a workload gets — the usual proxy
// variables and the tool's CA variable, nothing else (no user config: HOME is a fresh directory, and nothing of the
// test process leaks in).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import { type Harness, startSluice, waitFor } from '../../helpers/harness.js';
import { requirePrerequisites } from '../../containment/topology.js';
import { isolate } from '../../helpers/netns.js';
import { PASSWORD } from '../../helpers/world.js';
import { bareEnv } from './artifacts.js';
import { type Served, type StandIns, startStandIns } from './stand-ins.js';
import { type RunOptions, type RunResult, createTopology } from './topology.js';

const HTTP_PORT = 3128;
const SOCKS5_PORT = 1080;
const DNS_PORT = 53;

/** Each tool's own variable for the test CA (docs/clients.md says which replace and which add to the system store). */
export const CA_VARIABLE = {
  curl: 'CURL_CA_BUNDLE',
  git: 'GIT_SSL_CAINFO',
  pip: 'PIP_CERT',
  requests: 'REQUESTS_CA_BUNDLE',
  node: 'NODE_EXTRA_CA_CERTS',
  npm: 'NPM_CONFIG_CAFILE',
} as const;

export interface Clients {
  readonly world: StandIns;
  readonly sluice: Harness;
  /** `10.99.0.1:1080`. */
  readonly socksAddress: string;
  /** A fresh directory for the tool's HOME, caches and output. */
  scratch(): string;
  /** The usual variables, both cases, plus `extra` (the tool's CA variable). */
  env(home: string, extra?: Record<string, string>): Record<string, string>;
  run(cmd: string, args: readonly string[], opts: RunOptions): Promise<RunResult>;
  /** The audit record Sluice wrote for a request to `host` with this code on this listener (waits for the
   * pipeline's `finally`). */
  decision(host: string, code: string | null, listener?: 'http' | 'socks5'): Promise<Record<string, unknown>>;
}

/** `extra`: config sections added to the clients' Sluice (test/e2e/inspection.test.ts adds `inspection`). */
export async function startClients(
  t: Test,
  served: Served = {},
  extra: Record<string, unknown> = {},
): Promise<Clients> {
  const topo = await createTopology(t, { proxyPorts: [HTTP_PORT, SOCKS5_PORT], dnsPort: DNS_PORT });
  const world = await startStandIns(t, served);
  const sluice = await startSluice(t, {
    listen: {
      http: `${topo.sluiceHost}:${HTTP_PORT}`,
      socks5: `${topo.sluiceHost}:${SOCKS5_PORT}`,
      admin: null,
      dns: `${topo.sluiceHost}:${DNS_PORT}`,
    },
    dns: { servers: [world.dns.server], timeoutMs: 1000, minTtlS: 0, maxTtlS: 1 },
    upstream: { caFile: world.pki.caFile, connectTimeoutMs: 2000, tunnelHelloTimeoutMs: 10000 },
    // git.test is a git host listed as a registry (like github.com in a real list); forge.test is not.
    registries: ['registry.test', 'pypi.test', 'git.test'],
    integrations: { api: { hosts: ['api.test'] } },
    identities: { agent: { password: PASSWORD, integrations: ['api'], reads: 'public' } },
    // Loopback stands in for the internet; the exception is bound to the test names only.
    addressGuard: { allow: [{ cidr: '127.0.0.0/8', hosts: ['*.test'] }] },
    ...extra,
  });
  // Before any client runs: the docker rules are in place as rendered, the direct path is blocked from the
  // workload and Sluice answers it. Without that, the tests' "nothing bypasses Sluice" checks would be moot.
  const verified = await topo.verify();
  t.equal(verified.status, 0, 'setup.sh verify: the rules are in place, the direct path is blocked, Sluice answers', {
    stderr: verified.stderr,
  });
  if (verified.status !== 0) throw new Error(`setup.sh verify failed: ${verified.stderr}`);
  // What HTTP_PROXY and HTTPS_PROXY hold: an http:// URL with the credential as userinfo.
  const proxyUrl = `http://agent:${PASSWORD}@${topo.sluiceHost}:${HTTP_PORT}`;
  const noProxy = 'localhost,127.0.0.1,::1';
  return {
    world,
    sluice,
    socksAddress: `${topo.sluiceHost}:${SOCKS5_PORT}`,
    scratch: () => mkdtempSync(join(tmpdir(), 'sluice-e2e-client-')),
    env: (home, extra = {}) => ({
      ...bareEnv(home),
      http_proxy: proxyUrl,
      HTTP_PROXY: proxyUrl,
      https_proxy: proxyUrl,
      HTTPS_PROXY: proxyUrl,
      no_proxy: noProxy,
      NO_PROXY: noProxy,
      ...extra,
    }),
    run: (cmd, args, opts) => topo.run(cmd, args, opts),
    decision: (host, code, listener = 'http') =>
      waitFor(() =>
        sluice.decisions().find((d) => d['target.host'] === host && d.code === code && d.listener === listener),
      ),
  };
}

/** wget has no CA variable: WGETRC names a wgetrc file, and that file names the CA. */
export function wgetrcFor(home: string, caFile: string): string {
  const file = join(home, 'wgetrc');
  writeFileSync(file, `ca_certificate = ${caFile}\n`);
  return file;
}

/** isolate(), with room for real programs on two shared cores: the 300 s bound (tap's is 120 s here) is for
 * a hang, not a duration under test. Call it first thing: the lo-only re-run inherits it. Inside, the
 * containment topology's prerequisites (root, iproute2, iptables): skipped loudly without them, failed in CI. */
export function isolateClients(t: Test, moduleUrl: string): boolean {
  t.setTimeout(300_000);
  return isolate(t, moduleUrl) && requirePrerequisites(t, [], 'real-client tests');
}

/** Skips a test loudly when a client program is missing (CI installs them: see PACKAGES in .ci/run). */
export function requireTool(t: Test, what: string, cmd: string, args: readonly string[]): boolean {
  const r = spawnSync(cmd, args, { stdio: 'ignore' });
  if (r.status === 0) return true;
  t.comment(
    `LOUD: ${what} is not installed (\`${cmd} ${args.join(' ')}\` failed); its real-client tests are SKIPPED. .ci/run installs it.`,
  );
  t.pass(`${what} tests`, { skip: `${what} not installed` });
  return false;
}

/** Debian's python3 (with python3-requests and python3-pip), not a pyenv or venv one that may lack them. */
export const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

/** With SLUICE_E2E_SHOW=1, prints what a tool printed: that is how docs/clients.md records each denial. */
export function show(t: Test, label: string, r: RunResult): void {
  if (process.env.SLUICE_E2E_SHOW) t.comment(`--- ${label} (exit ${r.code})\n${r.output}`);
}
