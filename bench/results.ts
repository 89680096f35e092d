// Turns the raw runs into bench/RESULTS.md: medians of the interleaved rounds, ratios against Squid and
// against direct, and the issue's targets marked as held or not.
import type { DecideBench } from './decide-bench.js';
import { median } from './env.js';
import { PROXIES, type TargetName } from './world.js';
import type { BulkResult, ConnectResult, HoldResult, WrkResult } from './workloads.js';

export const WORKLOADS = ['ka1', 'ka50', 'ka500', 'conn1', 'conn32', 'bulk-tunnel', 'bulk-forward'] as const;
export type Workload = (typeof WORKLOADS)[number];

type Failed = { error: string };

export interface Results {
  startedAt: string;
  machine: { cpu: string; cores: number; memoryGiB: number; kernel: string; os: string; commit: string };
  versions: Record<string, string>;
  options: { rounds: number; seconds: number; tunnels: number; sluiceVia: string; quick: boolean };
  /** RSS right after start, before any traffic. */
  idleKiB: Partial<Record<TargetName, number>>;
  runs: Partial<Record<Workload, Partial<Record<TargetName, unknown[]>>>>;
  memory: Partial<Record<TargetName, (HoldResult & { idleKiB: number }) | Failed>> | null;
  reload: {
    seconds: number;
    signalsSent: number;
    reloadsApplied: number | null;
    reloadsFailed: number | null;
    requests: number;
    failedRequests: number;
    rps: number;
    p99Ms: number;
    survived: boolean;
  } | null;
  decide: DecideBench | null;
}

const LABEL: Record<TargetName, string> = { direct: 'direct', sluice: 'Sluice', squid: 'Squid', tinyproxy: 'tinyproxy', node: 'Node http-proxy', 'sluice-b': 'Sluice (B)' };

const ok = <T>(xs: unknown[] | undefined): T[] => (xs ?? []).filter((x): x is T => !!x && !(x as Failed).error);

function stat<T>(r: Results, w: Workload, t: TargetName, pick: (x: T) => number | null): number | null {
  const xs = ok<T>(r.runs[w]?.[t]).map(pick).filter((x): x is number => x !== null && Number.isFinite(x));
  return xs.length ? median(xs) : null;
}

const fmt = (x: number | null, digits = 0): string => (x === null ? '–' : x.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }));
const ratio = (a: number | null, b: number | null): string => (a === null || b === null || b === 0 ? '–' : `${(a / b).toFixed(2)}×`);

interface Row {
  readonly figure: string;
  readonly values: Partial<Record<TargetName, number | null>>;
  readonly digits?: number;
  /** Ratio column: Sluice ÷ Squid. */
  readonly ratio?: boolean;
}

function errorsNote(r: Results, TARGETS: readonly TargetName[]): string[] {
  const notes: string[] = [];
  for (const w of WORKLOADS) {
    for (const t of TARGETS) {
      const runs = r.runs[w]?.[t] ?? [];
      const failed = runs.filter((x) => (x as Failed)?.error).length;
      const errs = ok<WrkResult | ConnectResult>(runs).reduce((n, x) => n + ((x as WrkResult).errors ?? 0), 0);
      if (failed) notes.push(`${w} / ${LABEL[t]}: ${failed} run(s) failed (${String(((runs.find((x) => (x as Failed)?.error) as Failed).error)).split('\n')[0]})`);
      if (errs) notes.push(`${w} / ${LABEL[t]}: ${errs} failed request(s) or connection(s) over all rounds`);
    }
  }
  return notes;
}

export function renderResults(r: Results): string {
  const compared = Object.values(r.runs).some((byTarget) => byTarget?.['sluice-b']) || !!r.memory?.['sluice-b'];
  const PROXY_COLUMNS: TargetName[] = compared ? [...PROXIES, 'sluice-b'] : [...PROXIES];
  const TARGETS: TargetName[] = ['direct', ...PROXY_COLUMNS];
  const v = (w: Workload, pick: (x: never) => number | null) =>
    Object.fromEntries(TARGETS.map((t) => [t, stat(r, w, t, pick as (x: unknown) => number | null)])) as Record<TargetName, number | null>;
  const ka = (w: Workload) => ({
    rps: v(w, (x: WrkResult) => x.rps),
    p99: v(w, (x: WrkResult) => x.p99Ms),
    cpu: v(w, (x: WrkResult) => x.cpuUsPerRequest),
    rss: v(w, (x: WrkResult) => (x.rssPeakKiB === null ? null : x.rssPeakKiB / 1024)),
  });
  const ka1 = ka('ka1');
  const ka50 = ka('ka50');
  const ka500 = ka('ka500');
  const conn = (w: Workload) => ({
    rate: v(w, (x: ConnectResult) => x.perSecond),
    p99: v(w, (x: ConnectResult) => x.totalP99Ms),
    cpu: v(w, (x: ConnectResult) => x.cpuUsPerConnection),
    established: v(w, (x: ConnectResult) => x.establishedP50Ms),
    tls: v(w, (x: ConnectResult) => x.tlsP50Ms),
  });
  const c1 = conn('conn1');
  const c32 = conn('conn32');
  const bt = { mb: v('bulk-tunnel', (x: BulkResult) => x.mbPerS), cpu: v('bulk-tunnel', (x: BulkResult) => x.cpuMsPerMiB) };
  const bf = { mb: v('bulk-forward', (x: BulkResult) => x.mbPerS), cpu: v('bulk-forward', (x: BulkResult) => x.cpuMsPerMiB) };
  const mem = (pick: (m: HoldResult & { idleKiB: number }) => number) =>
    Object.fromEntries(PROXY_COLUMNS.map((t) => {
      const m = r.memory?.[t];
      return [t, m && !(m as Failed).error ? pick(m as HoldResult & { idleKiB: number }) : null];
    })) as Partial<Record<TargetName, number | null>>;
  const idle = Object.fromEntries(PROXY_COLUMNS.map((t) => [t, r.idleKiB[t] === undefined ? null : r.idleKiB[t]! / 1024]));
  const withTunnels = mem((m) => m.withTunnelsKiB / 1024);
  const perTunnel = mem((m) => m.perTunnelKiB);
  const vsDirect = (x: Record<TargetName, number | null>) =>
    Object.fromEntries(PROXY_COLUMNS.map((t) => [t, x[t] !== null && x.direct ? x[t]! / x.direct : null]));

  const rows: Row[] = [
    { figure: 'keep-alive GET, 1 connection: req/s', values: ka1.rps, ratio: true },
    { figure: '  p99 latency, ms', values: ka1.p99, digits: 2, ratio: true },
    { figure: '  proxy CPU, µs/request', values: ka1.cpu, digits: 1, ratio: true },
    { figure: '**keep-alive GET, 50 connections: req/s**', values: ka50.rps, ratio: true },
    { figure: '  ÷ direct', values: vsDirect(ka50.rps), digits: 2 },
    { figure: '  **p99 latency, ms**', values: ka50.p99, digits: 2, ratio: true },
    { figure: '  **proxy CPU, µs/request**', values: ka50.cpu, digits: 1, ratio: true },
    { figure: '  peak RSS under load, MiB', values: ka50.rss, digits: 1, ratio: true },
    { figure: 'keep-alive GET, 500 connections: req/s', values: ka500.rps, ratio: true },
    { figure: '  p99 latency, ms', values: ka500.p99, digits: 2, ratio: true },
    { figure: '  proxy CPU, µs/request', values: ka500.cpu, digits: 1, ratio: true },
    { figure: '  peak RSS under load, MiB', values: ka500.rss, digits: 1, ratio: true },
    { figure: 'CONNECT + TLS + GET, 1 at a time: connections/s', values: c1.rate, ratio: true },
    { figure: '  CONNECT setup (CONNECT → 200), median ms', values: c1.established, digits: 2, ratio: true },
    { figure: '  CONNECT → TLS established, median ms', values: c1.tls, digits: 2, ratio: true },
    { figure: '**CONNECT + TLS + GET, 32 concurrent: connections/s**', values: c32.rate, ratio: true },
    { figure: '  ÷ direct', values: vsDirect(c32.rate), digits: 2 },
    { figure: '  p99 per connection, ms', values: c32.p99, digits: 1, ratio: true },
    { figure: '  proxy CPU, µs/connection', values: c32.cpu, digits: 0, ratio: true },
    { figure: '**bulk through a CONNECT tunnel (TLS, 10 MiB): MB/s**', values: bt.mb, ratio: true },
    { figure: '  proxy CPU, ms/MiB', values: bt.cpu, digits: 2, ratio: true },
    { figure: 'bulk by forwarding (HTTP, 10 MiB): MB/s', values: bf.mb, ratio: true },
    { figure: '  proxy CPU, ms/MiB', values: bf.cpu, digits: 2, ratio: true },
    { figure: 'RSS idle (fresh start), MiB', values: idle, digits: 1, ratio: true },
    { figure: `**RSS with ${r.options.tunnels.toLocaleString('en-US')} idle tunnels, MiB**`, values: withTunnels, digits: 1, ratio: true },
    { figure: '**RSS per idle tunnel, KiB**', values: perTunnel, digits: 1, ratio: true },
  ];

  const out: string[] = [];
  out.push('# Benchmark results', '');
  out.push(`Generated by \`npm run bench\` on ${r.startedAt.slice(0, 16).replace('T', ' ')} UTC; raw runs in \`bench/.work/results.json\`.`, '');
  out.push('## Machine and versions', '');
  out.push(`- ${r.machine.cpu}, ${r.machine.cores} cores, ${r.machine.memoryGiB} GiB; ${r.machine.os}, Linux ${r.machine.kernel}`);
  out.push(`- Sluice ${r.machine.commit} (compiled dist, Node ${r.versions.node}; started as ${r.options.sluiceVia === 'cli' ? '`sluice serve`' : 'the bench child, which is `sluice serve` plus SIGHUP reload'})`);
  out.push(`- Squid ${r.versions.squid}, tinyproxy ${r.versions.tinyproxy}, http-proxy ${r.versions.httpProxy} (Node peer), nginx ${r.versions.nginx} (origin), wrk ${r.versions.wrk}, curl ${r.versions.curl}, OpenSSL ${r.versions.openssl}`);
  out.push(`- ${r.options.rounds} interleaved round(s) of ${r.options.seconds} s per run; every figure is the median over the rounds.`, '');
  out.push('**Read with care:** the machine has 2 cores, shared with the load generators, the origin, and other');
  out.push("engineers' test runs; throughput figures move by ±20 % between runs. Proxy CPU per request (utime + stime from");
  out.push('`/proc/<pid>/stat`) is the robust figure; ratios within one run are comparable, absolute numbers less so.', '');
  out.push('## Results', '');
  out.push(`| figure | ${TARGETS.map((t) => LABEL[t]).join(' | ')} | Sluice ÷ Squid |${compared ? ' B ÷ Sluice |' : ''}`);
  out.push(`|---|${TARGETS.map(() => '---:').join('|')}|---:|${compared ? '---:|' : ''}`);
  for (const row of rows) {
    const cells = TARGETS.map((t) => (row.values[t] === undefined ? '' : fmt(row.values[t] ?? null, row.digits ?? 0)));
    const ab = compared ? ` ${row.ratio ? ratio(row.values['sluice-b'] ?? null, row.values.sluice ?? null) : ''} |` : '';
    out.push(`| ${row.figure} | ${cells.join(' | ')} | ${row.ratio ? ratio(row.values.sluice ?? null, row.values.squid ?? null) : ''} |${ab}`);
  }
  out.push('');
  if (r.decide) {
    out.push(`**\`decide()\` with ${r.decide.hosts.toLocaleString('en-US')} hosts in policy:** median ${fmt(r.decide.medianNs)} ns of CPU per call over every shape below (in-process, compiled dist, batches of 50,000 calls).`, '');
    out.push('| request shape | outcome | median ns | fastest batch, ns |', '|---|---|---:|---:|');
    for (const c of r.decide.cases) out.push(`| ${c.name} | ${c.outcome} | ${fmt(c.medianNs)} | ${fmt(c.minNs ?? null)} |`);
    out.push('');
  }
  if (r.reload) {
    const x = r.reload;
    out.push(`**Hot reload 10/s under load (Sluice):** ${x.signalsSent} SIGHUPs in ${x.seconds} s during keep-alive GETs at 50 connections;`);
    out.push(`${x.reloadsApplied ?? '?'} reloads applied, ${x.reloadsFailed ?? '?'} rejected; ${x.requests.toLocaleString('en-US')} requests, **${x.failedRequests} failed**`);
    out.push(`(${fmt(x.rps)} req/s, p99 ${fmt(x.p99Ms, 2)} ms)${x.survived ? '' : '; **Sluice died during the run**'}.`, '');
  }
  out.push('## Targets (issue 7)', '');
  const s = (t: TargetName, x: Record<TargetName, number | null> | Partial<Record<TargetName, number | null>>) => x[t] ?? null;
  const check = (label: string, held: boolean | null, detail: string) => out.push(`- ${held === null ? '– not measured' : held ? '✅ holds' : '❌ does not hold'}: ${label} — ${detail}`);
  const both = (a: number | null, b: number | null) => a !== null && b !== null;
  const rpsRatio = both(s('sluice', ka50.rps), s('squid', ka50.rps)) ? s('sluice', ka50.rps)! / s('squid', ka50.rps)! : null;
  check('keep-alive GET at 50 connections ≥ 1.5× Squid req/s', rpsRatio === null ? null : rpsRatio >= 1.5, `${ratio(s('sluice', ka50.rps), s('squid', ka50.rps))}`);
  check('proxy CPU ≤ 50 µs/request at 50 connections', s('sluice', ka50.cpu) === null ? null : s('sluice', ka50.cpu)! <= 50, `${fmt(s('sluice', ka50.cpu), 1)} µs (Squid ${fmt(s('squid', ka50.cpu), 1)} µs)`);
  check('p99 ≤ Squid\'s at 50 connections', both(s('sluice', ka50.p99), s('squid', ka50.p99)) ? s('sluice', ka50.p99)! <= s('squid', ka50.p99)! : null, `${fmt(s('sluice', ka50.p99), 2)} ms vs ${fmt(s('squid', ka50.p99), 2)} ms`);
  const cRatio = both(s('sluice', c32.rate), s('squid', c32.rate)) ? s('sluice', c32.rate)! / s('squid', c32.rate)! : null;
  check('CONNECT + GET per connection at 32 concurrent ≥ 1.2× Squid', cRatio === null ? null : cRatio >= 1.2, ratio(s('sluice', c32.rate), s('squid', c32.rate)));
  const bRatio = both(s('sluice', bt.mb), s('squid', bt.mb)) ? s('sluice', bt.mb)! / s('squid', bt.mb)! : null;
  check('bulk through a tunnel ≥ 1.0× Squid MB/s', bRatio === null ? null : bRatio >= 1.0, ratio(s('sluice', bt.mb), s('squid', bt.mb)));
  check('≤ 15 KiB RSS per idle tunnel', perTunnel.sluice == null ? null : perTunnel.sluice <= 15, `${fmt(perTunnel.sluice ?? null, 1)} KiB (Squid ${fmt(perTunnel.squid ?? null, 1)} KiB)`);
  check(`≤ 130 MiB RSS with ${r.options.tunnels} tunnels`, withTunnels.sluice == null ? null : withTunnels.sluice <= 130, `${fmt(withTunnels.sluice ?? null, 1)} MiB`);
  check('decide() with 10,000 hosts ≤ 1 µs median', r.decide ? r.decide.medianNs <= 1000 : null, r.decide ? `${fmt(r.decide.medianNs)} ns` : '');
  check('hot reload 10/s under load: 0 failed requests', r.reload ? r.reload.failedRequests === 0 && r.reload.survived : null, r.reload ? `${r.reload.failedRequests} failed` : '');
  out.push('');
  const notes = errorsNote(r, TARGETS);
  if (r.memory) {
    for (const t of PROXY_COLUMNS) {
      const m = r.memory[t];
      if (m && !(m as Failed).error && (m as HoldResult).errors) notes.push(`memory / ${LABEL[t]}: ${(m as HoldResult).errors} tunnel(s) failed to open (${(m as HoldResult).firstError})`);
      if (m && (m as Failed).error) notes.push(`memory / ${LABEL[t]}: ${(m as Failed).error}`);
    }
  }
  if (notes.length) out.push('## Errors seen', '', ...notes.map((n) => `- ${n}`), '');
  out.push(METHOD);
  return out.join('\n');
}

const METHOD = `## How it was measured

- **Everything on loopback.** nginx serves a ${128}-byte file and a 10 MiB file on \`127.0.0.71:8080\` (HTTP) and
  \`127.0.0.72:443\` (TLS, a throwaway ECDSA P-256 certificate made by openssl for this run, session resumption off).
  Sluice and the peers listen on \`127.0.0.1\`, each started in the foreground with its own config in
  \`bench/.work/\` and stopped by PID.
- **Names.** Every proxy is given the names \`origin.bench.test\` and \`tls.bench.test\`. Sluice resolves them through its
  normal resolver against a fake DNS server on loopback (TTL 300 s) and reaches the loopback origins through
  \`addressGuard.allow\` exceptions bound to those names. Squid, tinyproxy and the Node peer run in a private mount
  namespace whose \`/etc/hosts\` is a bind mount of the bench's hosts file (the host's own file is never touched).
- **Configurations.** Sluice: the shipped defaults, one identity with an scrypt \`passwordHash\` sent as Basic
  \`Proxy-Authorization\` on every request, audit log on (pino's normal stdout destination, sent to a file), metrics on.
  Squid: \`cache deny all\` (no caching: every request reaches the origin), access log on, otherwise defaults.
  tinyproxy: defaults, \`LogLevel Info\` to a file, \`ConnectPort 443\`. Node peer (\`bench/node-peer.ts\`): http-proxy with
  a keep-alive agent, no authentication and no logging. The peers run without authentication.
- **Workloads.** Keep-alive GETs: wrk (2 threads) with \`bench/wrk-absolute.lua\` sending absolute-form requests
  (origin-form for direct). CONNECT + TLS + GET: \`bench/connect-client.ts\` in its own process — CONNECT, TLS
  handshake through the tunnel, one \`Connection: close\` GET, close. Bulk: curl downloading the 10 MiB file through a
  CONNECT tunnel (https) and by forwarding (http). Memory: each proxy restarted, warmed with a second of
  CONNECT cycles, then the given number of tunnels opened (TLS established through each) and left idle; per-tunnel
  RSS is (RSS with tunnels − RSS before) ÷ tunnels. Hot reload: SIGHUP to Sluice every 100 ms (the config file
  alternates a registry) while wrk runs 50 keep-alive connections; a failed request is any wrk connect, read,
  write, timeout or non-2xx/3xx error.
- **Rounds.** Within a round each workload runs against every target, in an order rotated from round to round;
  CPU is utime + stime of the proxy's process (all threads) from \`/proc/<pid>/stat\` over the run.

## Reproduce

\`\`\`sh
npm ci
npm run bench                           # installs nginx-light, squid, tinyproxy, wrk, curl if missing (apt-get)
npm run bench -- --quick                # one short round
npm run bench -- --only ka50,conn32     # some workloads; see bench/run.ts for the list
npm run bench -- --profile              # node --cpu-prof on Sluice; top self-time frames
\`\`\`
`;
