// decide() micro-benchmark: a policy holding 10,000 host patterns (registries, integration hosts with
// wildcards, global denials), and the request shapes the proxy judges most. Reports the median CPU time of
// one call per shape, measured over batches so that the clock's own cost and resolution disappear.
import { formatIssue, validateConfig } from '../settings/config.js';
import { type EgressRequest, compilePolicy, decide, rightsFor } from '../firewall/policy.js';
import { type Target, normaliseHost } from '../firewall/normalise.js';

export interface DecideCase {
  readonly name: string;
  readonly medianNs: number;
  /** The fastest batch: the least disturbed by other work on the machine. */
  readonly minNs: number;
  readonly outcome: string;
}

export interface DecideBench {
  readonly hosts: number;
  readonly cases: readonly DecideCase[];
  /** Median over every call of every case. */
  readonly medianNs: number;
}

export function buildPolicyConfig(hosts = 10_000): Record<string, unknown> {
  const registries: string[] = [];
  const integrations: Record<string, { hosts: string[]; tunnel: boolean; methods?: string[] }> = {};
  const globalDeny: string[] = [];
  const nReg = Math.floor(hosts * 0.4);
  const nDeny = Math.floor(hosts * 0.1);
  const nInt = hosts - nReg - nDeny;
  for (let i = 0; i < nReg; i++) registries.push(`pkg${i}.registry${i % 97}.example`);
  for (let i = 0; i < nInt; i++) {
    const name = `svc${Math.floor(i / 25)}`;
    const list = (integrations[name] ??= { hosts: [], tunnel: i % 2 === 0 });
    list.hosts.push(i % 10 === 0 ? `*.${name}-${i}.example` : `api${i}.${name}.example`);
  }
  for (let i = 0; i < nDeny; i++) globalDeny.push(i % 4 === 0 ? `*.paste${i}.example` : `drop${i}.paste.example`);
  const granted = Object.keys(integrations).filter((_, i) => i % 4 === 0);
  return {
    listen: { http: '127.0.0.1:3128', socks5: null, admin: null },
    registries,
    integrations,
    identities: { agent: { password: 'bench-password-123', integrations: granted, reads: 'public' } },
    globalDeny: { hosts: globalDeny, cidrs: ['203.0.113.0/24'] },
  };
}

const target = (host: string, port: number): Target => {
  const h = normaliseHost(host);
  if ('verdict' in h) throw new Error(`bad bench host ${host}`);
  return { ...h, port };
};

const http = (method: string, host: string, extra: Partial<{ hasBody: boolean }> = {}): EgressRequest => ({
  kind: 'http',
  scheme: 'http',
  method,
  target: target(host, 80),
  hasBody: extra.hasBody ?? false,
  upgrade: false,
  methodOverride: null,
});

export function runDecideBench(opts: { hosts?: number; batch?: number; batches?: number } = {}): DecideBench {
  const hosts = opts.hosts ?? 10_000;
  const r = validateConfig(buildPolicyConfig(hosts));
  if (!r.ok) throw new Error(r.issues.map(formatIssue).join('\n'));
  const policy = compilePolicy(r.config, ['127.0.0.1']);
  const rights = rightsFor(policy, 'agent');
  if (!rights) throw new Error('no bench identity');
  const state = { killSwitch: false };
  const cases: [string, EgressRequest][] = [
    ['GET public host (reads: public)', http('GET', 'www.news-site.example')],
    ['CONNECT registry', { kind: 'tunnel', target: target('pkg1234.registry70.example', 443) }],
    ['CONNECT not a registry', { kind: 'tunnel', target: target('files.unknown-host.example', 443) }],
    ['POST granted integration (exact)', http('POST', 'api4001.svc160.example', { hasBody: true })],
    ['POST granted integration (wildcard)', http('POST', 'deep.x.svc0-0.example', { hasBody: true })],
    ['POST not an integration', http('POST', 'www.news-site.example', { hasBody: true })],
    ['GET global deny (wildcard)', http('GET', 'a.b.paste8.example')],
  ];
  const batch = opts.batch ?? 50_000;
  const batches = opts.batches ?? 25;
  let sink = 0;
  const all: number[] = [];
  const out: DecideCase[] = [];
  for (const [name, req] of cases) {
    const first = decide(policy, state, rights, req);
    const outcome = first.verdict === 'allow' ? `allow (${first.rule})` : `deny ${first.code}`;
    for (let i = 0; i < batch; i++) sink += decide(policy, state, rights, req).verdict.length; // warm-up
    const per: number[] = [];
    for (let b = 0; b < batches; b++) {
      // CPU time, not wall time: on a shared machine a batch can be preempted, and that is not decide()'s cost.
      const t0 = process.cpuUsage();
      for (let i = 0; i < batch; i++) sink += decide(policy, state, rights, req).verdict.length;
      const d = process.cpuUsage(t0);
      per.push(((d.user + d.system) * 1000) / batch);
    }
    all.push(...per);
    per.sort((a, b) => a - b);
    out.push({ name, medianNs: per[per.length >> 1]!, minNs: per[0]!, outcome });
  }
  if (sink === 42) process.stderr.write(''); // keeps the calls observable
  all.sort((a, b) => a - b);
  return { hosts, cases: out, medianNs: all[all.length >> 1]! };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const r = runDecideBench();
  for (const c of r.cases)
    process.stdout.write(
      `${c.medianNs.toFixed(0).padStart(6)} ns (fastest batch ${c.minNs.toFixed(0).padStart(5)} ns)  ${c.name}: ${c.outcome}\n`,
    );
  process.stdout.write(`median ${r.medianNs.toFixed(0)} ns over ${r.hosts} hosts\n`);
}
