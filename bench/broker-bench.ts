// Credential broker micro-benchmarks (run directly: `node dist/bench/broker-bench.js` after
// `tsc -p bench/tsconfig.json`; not part of `npm run bench`'s workloads):
//  - CPU per request of the request check: no handle toward a public host (the cost every request pays once
//    credentials are configured), and a Bearer injection toward the credential's host (handle cached, as
//    from its second use on), against the same request not checked at all;
//  - response scanning throughput, MB/s on one core, for realistic bodies and chunk sizes.
import { validateConfig } from '../settings/config.js';
import { createBroker } from '../proxy/broker/broker.js';
import { issueHandle, openHandle } from '../proxy/broker/handle.js';
import { deriveBrokerKeys } from '../proxy/broker/keys.js';
import type { BrokerRequest } from '../proxy/broker/request-check.js';
import { SecretScanner, patternsForSecret } from '../proxy/broker/secret-scanner.js';
import { SecretValue } from '../proxy/broker/secret-value.js';

const cpuNs = (fn: () => void, n: number): number => {
  const t0 = process.cpuUsage();
  fn();
  const d = process.cpuUsage(t0);
  return ((d.user + d.system) * 1000) / n;
};
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

export interface BrokerBench {
  readonly requestNs: Record<string, number>;
  readonly scanMBps: Record<string, number>;
}

export function runBrokerBench(): BrokerBench {
  const r = validateConfig({
    integrations: { github: { hosts: ['api.github.com', 'github.com'] } },
    identities: { agent: { password: 'bench-password-123', integrations: ['github'] } },
    secrets: { keyFile: '/k', handles: { maxTtl: '8h' } },
    credentials: {
      'github-api': {
        integration: 'github',
        inject: { type: 'header', name: 'Authorization', template: 'Bearer {secret}' },
        source: { file: '/s' },
      },
    },
  });
  if (!r.ok) throw new Error('config');
  const keys = deriveBrokerKeys(Buffer.from('BenchKeyMaterial-0123456789abcdefABCDEF'));
  const secret = 'ghp_R8x2Kq9LmN4pZ7vB1cD3eF5gH6jK0aS2dF4g';
  const nowS = Math.floor(Date.now() / 1000);
  const broker = createBroker({
    config: r.config,
    material: { keys, secrets: new Map([['github-api', new SecretValue(Buffer.from(secret))]]) },
    revocations: { status: () => 'active', revokeLocal: () => undefined },
    nowMs: () => nowS * 1000,
    append: async () => undefined,
  });
  const handle = issueHandle(keys.handle, {
    run: 'run-1',
    identity: 'agent',
    credential: 'github-api',
    expS: nowS + 3600,
  });
  const headers = [
    'User-Agent',
    'curl/8.5.0',
    'Accept',
    'application/vnd.github+json',
    'Accept-Encoding',
    'gzip, deflate, br',
    'Content-Type',
    'application/json',
    'Content-Length',
    '57',
    'X-GitHub-Api-Version',
    '2022-11-28',
  ];
  const principal = { identity: 'agent', run: 'run-1', integrations: new Set(['github']) };
  const base: BrokerRequest = {
    principal,
    method: 'POST',
    host: 'api.github.com',
    upstreamTls: true,
    rawHeaders: headers,
    path: '/repos/o/r/issues?per_page=100',
    bodyPrefix: Buffer.from('{"title":"bench","body":"a benchmark issue body, nothing more"}'),
  };
  const cases: Record<string, BrokerRequest> = {
    'public host, no handle': { ...base, host: 'www.example.org' },
    'public host, no handle, %-encoded query': {
      ...base,
      host: 'www.example.org',
      path: '/search?q=a%20b%2Fc&x=%7B%7D',
    },
    'credential host, no handle (narrowed, scrub plan)': base,
    'credential host, Bearer handle injected': {
      ...base,
      rawHeaders: [...headers, 'Authorization', `Bearer ${handle}`],
    },
  };
  const requestNs: Record<string, number> = {};
  let sink = 0;
  const batch = 20_000;
  for (const [name, req] of Object.entries(cases)) {
    for (let i = 0; i < batch; i++) sink += broker.checkRequest(req).verdict.length;
    const per: number[] = [];
    for (let b = 0; b < 15; b++)
      per.push(
        cpuNs(() => {
          for (let i = 0; i < batch; i++) sink += broker.checkRequest(req).verdict.length;
        }, batch),
      );
    requestNs[name] = median(per);
  }
  // A handle's first use on a replica: one AES-GCM open (afterwards it is cached).
  {
    const per: number[] = [];
    for (let b = 0; b < 15; b++)
      per.push(
        cpuNs(() => {
          for (let i = 0; i < batch; i++) sink += openHandle(keys.handle, handle).ok ? 1 : 0;
        }, batch),
      );
    requestNs['open a handle (first use on a replica, uncached)'] = median(per);
  }
  // The response side of an injected request: a scrubber built from the plan, headers scrubbed once.
  const injected = broker.checkRequest(cases['credential host, Bearer handle injected']!);
  if (injected.verdict === 'allow' && injected.scrub) {
    const plan = injected.scrub;
    const resHeaders = [
      'Content-Type',
      'application/json',
      'Date',
      'Tue, 01 Jan 2030 00:00:00 GMT',
      'ETag',
      '"abc"',
      'X-RateLimit-Remaining',
      '4999',
    ];
    for (let i = 0; i < batch; i++) sink += broker.responseScrubber(plan).headers(resHeaders).length;
    const per: number[] = [];
    for (let b = 0; b < 15; b++)
      per.push(
        cpuNs(() => {
          for (let i = 0; i < batch; i++) sink += broker.responseScrubber(plan).headers(resHeaders).length;
        }, batch),
      );
    requestNs['response: scrubber + header scrub'] = median(per);
  }

  const patterns = patternsForSecret(Buffer.from(secret), handle);
  const json = Buffer.from(
    JSON.stringify(
      Array.from({ length: 60_000 }, (_, i) => ({
        id: i,
        login: `user${i}`,
        url: `https://api.github.com/users/user${i}`,
        site_admin: false,
      })),
    ),
  );
  const random = Buffer.from(Array.from({ length: json.length }, (_, i) => (i * 2654435761) >>> 24));
  const scanMBps: Record<string, number> = {};
  // Two passes over every case, the first only to warm the JIT for all of them.
  const bodies = [
    ['JSON, 16 KiB chunks', json],
    ['binary, 16 KiB chunks', random],
    ['JSON, 64 KiB chunks', json],
    ['binary, 64 KiB chunks', random],
  ] as const;
  for (const [name, body] of [...bodies, ...bodies]) {
    const chunk = name.includes('64') ? 65536 : 16384;
    const per: number[] = [];
    for (let rep = 0; rep < 9; rep++) {
      const s = new SecretScanner(patterns);
      const t0 = process.cpuUsage();
      for (let at = 0; at < body.length; at += chunk)
        for (const o of s.write(body.subarray(at, at + chunk))) sink += o.length;
      for (const o of s.end()) sink += o.length;
      const d = process.cpuUsage(t0);
      if (rep > 1) per.push(body.length / ((d.user + d.system) / 1e6) / 1e6); // the first two warm the JIT
    }
    scanMBps[`${name} (${patterns.length} patterns)`] = median(per);
  }
  if (sink === 42) process.stderr.write('');
  return { requestNs, scanMBps };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const r = runBrokerBench();
  for (const [k, v] of Object.entries(r.requestNs))
    process.stdout.write(`${v.toFixed(0).padStart(7)} ns/request  ${k}\n`);
  for (const [k, v] of Object.entries(r.scanMBps))
    process.stdout.write(`${v.toFixed(0).padStart(7)} MB/s        ${k}\n`);
}
