// Turns the raw runs into bench/RESULTS.md: medians of the interleaved rounds, ratios against Squid and
// against direct, and the issue's targets marked as held or not.
import type { BrokerBench } from './broker-bench.js';
import type { DecideBench } from './decide-bench.js';
import { median } from './env.js';
import type { Latencies } from './hostile-client.js';
import type {
  BombResult,
  BudgetResult,
  FloodResult,
  InspectResult,
  SmpResult,
  StallResult,
  StartupResult,
} from './studies.js';
import { PROXIES, type TargetName } from './world.js';
import type { BulkResult, ConnectResult, HoldResult, WrkResult } from './workloads.js';

/** Run against every target in interleaved rounds. */
export const WORKLOADS = [
  'ka1',
  'ka50',
  'ka500',
  'conn1',
  'conn32',
  'bulk-tunnel',
  'bulk-forward',
  'int-write',
  'https-read',
] as const;
export type Workload = (typeof WORKLOADS)[number];
/** Run on their own, after the rounds. */
export const STUDIES = [
  'budget',
  'stalls',
  'startup',
  'smp',
  'dns-bomb',
  'login-flood',
  'mitm-ka50',
  'mitm-conn32',
  'mitm-memory',
  'memory',
  'reload',
  'decide',
  'broker',
] as const;
export type Study = (typeof STUDIES)[number];

type Failed = { error: string };

export interface Results {
  startedAt: string;
  machine: { cpu: string; cores: number; memoryGiB: number; kernel: string; os: string; commit: string };
  versions: Record<string, string>;
  options: { rounds: number; seconds: number; tunnels: number; sluiceVia: string; quick: boolean; only: string | null };
  /** RSS right after start, before any traffic. */
  idleKiB: Partial<Record<TargetName, number>>;
  /** Proxies that could not start (left out of every workload). */
  failedToStart: Partial<Record<TargetName, string>>;
  /** The machine's 1-minute load average at the start and the end of the run (others share it). */
  loadAvg?: { start: number; end: number | null };
  studyErrors?: Partial<Record<Study, string>>;
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
  budget: (BudgetResult | Failed)[];
  stalls: { runs: StallResult[]; syncIo: { warnings: number; top: string[]; requests: number } | Failed } | null;
  startup: StartupResult | Failed | null;
  smp: SmpResult | null;
  bomb: BombResult | Failed | null;
  flood: FloodResult | Failed | null;
  inspection: InspectResult | null;
  /** The credential broker's micro-benchmarks (bench/broker-bench.ts); absent in runs made before it. */
  broker?: BrokerBench | null;
}

const LABEL: Record<TargetName, string> = {
  direct: 'direct',
  sluice: 'Sluice',
  squid: 'Squid',
  tinyproxy: 'tinyproxy',
  node: 'Node http-proxy',
  floor: 'floor',
  'sluice-b': 'Sluice (B)',
  'sluice-smp': 'Sluice workers: auto',
  'squid-smp': 'Squid SMP workers',
  'squid-bump': 'Squid ssl_bump',
  mitmproxy: 'mitmproxy',
  'sluice-hostile': 'Sluice (hostile)',
  'sluice-inspect': 'Sluice inspection',
  'sluice-quiet': 'Sluice quiet (no audit lines)',
  'sluice-young': 'Sluice young (16 MiB semi-space)',
};

const ok = <T>(xs: unknown[] | undefined): T[] => (xs ?? []).filter((x): x is T => !!x && !(x as Failed).error);

function stat<T>(r: Results, w: Workload, t: TargetName, pick: (x: T) => number | null): number | null {
  const xs = ok<T>(r.runs[w]?.[t])
    .map(pick)
    .filter((x): x is number => x !== null && Number.isFinite(x));
  return xs.length ? median(xs) : null;
}

const fmt = (x: number | null, digits = 0): string =>
  x === null ? '–' : x.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const ratio = (a: number | null, b: number | null): string =>
  a === null || b === null || b === 0 ? '–' : `${(a / b).toFixed(2)}×`;

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
      if (failed)
        notes.push(
          `${w} / ${LABEL[t]}: ${failed} run(s) failed (${String((runs.find((x) => (x as Failed)?.error) as Failed).error).split('\n')[0]})`,
        );
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
    Object.fromEntries(TARGETS.map((t) => [t, stat(r, w, t, pick as (x: unknown) => number | null)])) as Record<
      TargetName,
      number | null
    >;
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
  const bt = {
    mb: v('bulk-tunnel', (x: BulkResult) => x.mbPerS),
    cpu: v('bulk-tunnel', (x: BulkResult) => x.cpuMsPerMiB),
  };
  const bf = {
    mb: v('bulk-forward', (x: BulkResult) => x.mbPerS),
    cpu: v('bulk-forward', (x: BulkResult) => x.cpuMsPerMiB),
  };
  const mem = (pick: (m: HoldResult & { idleKiB: number }) => number) =>
    Object.fromEntries(
      PROXY_COLUMNS.map((t) => {
        const m = r.memory?.[t];
        return [t, m && !(m as Failed).error ? pick(m as HoldResult & { idleKiB: number }) : null];
      }),
    ) as Partial<Record<TargetName, number | null>>;
  const idle = Object.fromEntries(
    PROXY_COLUMNS.map((t) => [t, r.idleKiB[t] === undefined ? null : r.idleKiB[t]! / 1024]),
  );
  const withTunnels = mem((m) => m.withTunnelsKiB / 1024);
  const perTunnel = mem((m) => m.perTunnelKiB);
  const vsDirect = (x: Record<TargetName, number | null>) =>
    Object.fromEntries(PROXY_COLUMNS.map((t) => [t, x[t] !== null && x.direct ? x[t]! / x.direct : null]));

  const iw = ka('int-write');
  const hr = ka('https-read');

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
    { figure: '  **proxy CPU, µs/connection**', values: c32.cpu, digits: 0, ratio: true },
    { figure: '**integration write (POST → TLS upstream), 50 connections: req/s**', values: iw.rps, ratio: true },
    { figure: '  p99 latency, ms', values: iw.p99, digits: 2, ratio: true },
    { figure: '  proxy CPU, µs/request', values: iw.cpu, digits: 1, ratio: true },
    { figure: '**`https://` absolute-form GET, 50 connections: req/s**', values: hr.rps, ratio: true },
    { figure: '  p99 latency, ms', values: hr.p99, digits: 2, ratio: true },
    { figure: '  proxy CPU, µs/request', values: hr.cpu, digits: 1, ratio: true },
    { figure: '**bulk through a CONNECT tunnel (TLS, 10 MiB): MB/s**', values: bt.mb, ratio: true },
    { figure: '  proxy CPU, ms/MiB', values: bt.cpu, digits: 2, ratio: true },
    { figure: 'bulk by forwarding (HTTP, 10 MiB): MB/s', values: bf.mb, ratio: true },
    { figure: '  proxy CPU, ms/MiB', values: bf.cpu, digits: 2, ratio: true },
    { figure: 'RSS idle (fresh start), MiB', values: idle, digits: 1, ratio: true },
    {
      figure: `**RSS with ${r.options.tunnels.toLocaleString('en-US')} idle tunnels, MiB**`,
      values: withTunnels,
      digits: 1,
      ratio: true,
    },
    { figure: '**RSS per idle tunnel, KiB**', values: perTunnel, digits: 1, ratio: true },
  ];
  const hasFloor = PROXY_COLUMNS.includes('floor');

  const out: string[] = [];
  out.push('# Benchmark results', '');
  out.push(
    `Generated by \`npm run bench${r.options.quick || r.options.only ? ' --' : ''}${r.options.quick ? ' --quick' : ''}${r.options.only ? ` --only ${r.options.only}` : ''}\` on ${r.startedAt.slice(0, 16).replace('T', ' ')} UTC, Sluice commit ${r.machine.commit}; raw runs in \`bench/.work/results.json\`.`,
    '',
  );
  out.push('## Machine and versions', '');
  out.push(
    `- ${r.machine.cpu}, ${r.machine.cores} cores, ${r.machine.memoryGiB} GiB; ${r.machine.os}, Linux ${r.machine.kernel}`,
  );
  out.push(
    `- Sluice ${r.machine.commit} (compiled dist, Node ${r.versions.node}; started as ${r.options.sluiceVia === 'cli' ? '`sluice serve`' : 'the bench child, which is `sluice serve` plus SIGHUP reload'})`,
  );
  out.push(
    `- Squid ${r.versions.squid} (Debian's squid-openssl build), tinyproxy ${r.versions.tinyproxy}, http-proxy ${r.versions.httpProxy} (Node peer), undici ${r.versions.undici ?? '?'} (Sluice and the floor), nginx ${r.versions.nginx} (origin), wrk ${r.versions.wrk}, curl ${r.versions.curl}, OpenSSL ${r.versions.openssl}${r.inspection ? `, mitmproxy ${r.versions.mitmproxy}` : ''}`,
  );
  out.push(
    `- ${r.options.rounds} interleaved round(s) of ${r.options.seconds} s per run; every figure is the median over the rounds.`,
    '',
  );
  out.push(
    '**Read with care: a shared machine.** It has 2 cores, shared with the load generators, the origin, and other',
  );
  out.push(
    "engineers' test runs going on at the same time; throughput figures move by ±20 % between runs. Proxy CPU per request",
  );
  out.push(
    '(utime + stime from `/proc/<pid>/stat`) is the robust figure; ratios within one run are comparable, absolute numbers less so.',
  );
  if (r.loadAvg)
    out.push(
      `Load average (1 min) at the start of this run ${r.loadAvg.start.toFixed(2)}, at the end ${r.loadAvg.end === null ? '?' : r.loadAvg.end.toFixed(2)}.`,
    );
  out.push('');
  const failedStart = Object.entries(r.failedToStart ?? {});
  if (failedStart.length)
    out.push(
      `Could not start (left out): ${failedStart.map(([t, e]) => `${LABEL[t as TargetName] ?? t} (${e})`).join('; ')}.`,
      '',
    );

  out.push('## Issue 18: the table re-measured', '');
  const s = (t: TargetName, x: Record<TargetName, number | null> | Partial<Record<TargetName, number | null>>) =>
    x[t] ?? null;
  const cols: TargetName[] = ['sluice', 'squid', 'node', 'floor'];
  out.push(
    '| figure | Sluice | Squid | Node http-proxy peer | floor | Sluice ÷ floor | Sluice ÷ Squid | Sluice ÷ Node peer |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
  );
  const idleStart = r.startup && !('error' in r.startup) ? median(r.startup.sluiceIdleKiB) / 1024 : null;
  const r18: [string, Partial<Record<TargetName, number | null>>, number][] = [
    ['keep-alive GET c=50, proxy CPU µs/request', ka50.cpu, 1],
    ['keep-alive GET c=50, req/s', ka50.rps, 0],
    ['keep-alive GET c=1, p99 ms', ka1.p99, 2],
    ['keep-alive GET c=50, p99 ms', ka50.p99, 2],
    ['CONNECT+TLS+GET c=32, proxy CPU µs/connection', c32.cpu, 0],
    ['RSS idle (fresh start, bench child), MiB', idle, 1],
  ];
  for (const [label, x, d] of r18) {
    out.push(
      `| ${label} | ${cols.map((t) => fmt(s(t, x), d)).join(' | ')} | ${ratio(s('sluice', x), s('floor', x))} | ${ratio(s('sluice', x), s('squid', x))} | ${ratio(s('sluice', x), s('node', x))} |`,
    );
  }
  if (idleStart !== null)
    out.push(
      `| RSS idle, \`sluice serve\` 1 s after ready (median of ${(r.startup as StartupResult).sluiceIdleKiB.length} starts), MiB | ${fmt(idleStart, 1)} | | | | | | |`,
    );
  out.push('');

  out.push('## All workloads', '');
  out.push(
    `| figure | ${TARGETS.map((t) => LABEL[t]).join(' | ')} | Sluice ÷ Squid |${hasFloor ? ' Sluice ÷ floor |' : ''}${compared ? ' B ÷ Sluice |' : ''}`,
  );
  out.push(`|---|${TARGETS.map(() => '---:').join('|')}|---:|${hasFloor ? '---:|' : ''}${compared ? '---:|' : ''}`);
  for (const row of rows) {
    const cells = TARGETS.map((t) => (row.values[t] === undefined ? '' : fmt(row.values[t] ?? null, row.digits ?? 0)));
    const fl = hasFloor ? ` ${row.ratio ? ratio(row.values.sluice ?? null, row.values.floor ?? null) : ''} |` : '';
    const ab = compared
      ? ` ${row.ratio ? ratio(row.values['sluice-b'] ?? null, row.values.sluice ?? null) : ''} |`
      : '';
    out.push(
      `| ${row.figure} | ${cells.join(' | ')} | ${row.ratio ? ratio(row.values.sluice ?? null, row.values.squid ?? null) : ''} |${fl}${ab}`,
    );
  }
  out.push('');
  out.push(
    'The integration write sends Sluice `POST http://api.bench.test/echo` (an integration: Sluice sends it over TLS,',
  );
  out.push(
    'trusting the bench CA through `upstream.caFile`, to the loopback origin through an `addressGuard.allow` exception',
  );
  out.push(
    'bound to the name) and the peers `POST https://api.bench.test/echo`: the same upstream work. tinyproxy cannot',
  );
  out.push('originate TLS and sits those two out.', '');

  renderBudget(r, out);
  renderStalls(r, out);
  renderStartup(r, out);
  renderSmp(r, out);
  renderHostile(r, out);
  renderInspection(r, out);
  renderBroker(r, out);

  if (r.decide) {
    out.push(
      `**\`decide()\` with ${r.decide.hosts.toLocaleString('en-US')} hosts in policy:** median ${fmt(r.decide.medianNs)} ns of CPU per call over every shape below (in-process, compiled dist, batches of 50,000 calls).`,
      '',
    );
    out.push('| request shape | outcome | median ns | fastest batch, ns |', '|---|---|---:|---:|');
    for (const c of r.decide.cases)
      out.push(`| ${c.name} | ${c.outcome} | ${fmt(c.medianNs)} | ${fmt(c.minNs ?? null)} |`);
    out.push('');
  }
  if (r.reload) {
    const x = r.reload;
    out.push(
      `**Hot reload 10/s under load (Sluice):** ${x.signalsSent} SIGHUPs in ${x.seconds} s during keep-alive GETs at 50 connections;`,
    );
    out.push(
      `${x.reloadsApplied ?? '?'} reloads applied, ${x.reloadsFailed ?? '?'} rejected; ${x.requests.toLocaleString('en-US')} requests, **${x.failedRequests} failed**`,
    );
    out.push(
      `(${fmt(x.rps)} req/s, p99 ${fmt(x.p99Ms, 2)} ms)${x.survived ? '' : '; **Sluice died during the run**'}.`,
      '',
    );
  }

  out.push('## Targets (issue 18)', '');
  const check = (label: string, held: boolean | null, detail: string) =>
    out.push(`- ${held === null ? '– not measured' : held ? '✅ holds' : '❌ does not hold'}: ${label} — ${detail}`);
  const both = (a: number | null, b: number | null) => a !== null && b !== null;
  const le = (a: number | null, b: number | null, k = 1) => (both(a, b) ? a! <= k * b! : null);
  check(
    'CPU/request at keep-alive c=50 ≤ 1.25× the floor',
    le(s('sluice', ka50.cpu), s('floor', ka50.cpu), 1.25),
    `${fmt(s('sluice', ka50.cpu), 1)} vs floor ${fmt(s('floor', ka50.cpu), 1)} µs (${ratio(s('sluice', ka50.cpu), s('floor', ka50.cpu))})`,
  );
  check(
    "CPU/request at keep-alive c=50 ≤ Squid's",
    le(s('sluice', ka50.cpu), s('squid', ka50.cpu)),
    `${fmt(s('sluice', ka50.cpu), 1)} vs ${fmt(s('squid', ka50.cpu), 1)} µs`,
  );
  check(
    "CONNECT setup CPU ≤ the Node peer's",
    le(s('sluice', c32.cpu), s('node', c32.cpu)),
    `${fmt(s('sluice', c32.cpu))} vs ${fmt(s('node', c32.cpu))} µs/connection (floor ${fmt(s('floor', c32.cpu))})`,
  );
  check(
    "CONNECT setup CPU ≤ 1.5× Squid's",
    le(s('sluice', c32.cpu), s('squid', c32.cpu), 1.5),
    `${ratio(s('sluice', c32.cpu), s('squid', c32.cpu))} (${fmt(s('squid', c32.cpu))} µs)`,
  );
  check(
    "p99 at c=1 ≤ 1.5× the Node peer's",
    le(s('sluice', ka1.p99), s('node', ka1.p99), 1.5),
    `${fmt(s('sluice', ka1.p99), 2)} vs ${fmt(s('node', ka1.p99), 2)} ms`,
  );
  check(
    "p99 at c=50 ≤ Squid's",
    le(s('sluice', ka50.p99), s('squid', ka50.p99)),
    `${fmt(s('sluice', ka50.p99), 2)} vs ${fmt(s('squid', ka50.p99), 2)} ms`,
  );
  const idleMiB = idleStart ?? (idle.sluice as number | null);
  check('idle RSS ≤ 50 MiB', idleMiB === null ? null : idleMiB <= 50, `${fmt(idleMiB, 1)} MiB`);
  const readyMs = r.startup && !('error' in r.startup) ? median(r.startup.sluiceReadyMs) : null;
  check('`sluice serve` to ready ≤ 300 ms', readyMs === null ? null : readyMs <= 300, `${fmt(readyMs)} ms (median)`);
  const smpRps = (n: string) => (r.smp?.runs[n]?.length ? median(r.smp.runs[n]!.map((x) => x.rps)) : null);
  check(
    `workers: auto ≥ 1.2× Squid SMP req/s (${r.smp?.workers ?? '?'} workers each)`,
    both(smpRps('sluice-smp'), smpRps('squid-smp')) ? smpRps('sluice-smp')! >= 1.2 * smpRps('squid-smp')! : null,
    ratio(smpRps('sluice-smp'), smpRps('squid-smp')),
  );
  check(
    `≤ 130 MiB RSS with ${r.options.tunnels} idle tunnels`,
    withTunnels.sluice == null ? null : withTunnels.sluice <= 130,
    `${fmt(withTunnels.sluice ?? null, 1)} MiB`,
  );
  out.push('');
  out.push('Earlier targets (the first performance round), same run:', '');
  check(
    'bulk through a tunnel ≥ 1.0× Squid MB/s',
    both(s('sluice', bt.mb), s('squid', bt.mb)) ? s('sluice', bt.mb)! >= s('squid', bt.mb)! : null,
    ratio(s('sluice', bt.mb), s('squid', bt.mb)),
  );
  check(
    '≤ 15 KiB RSS per idle tunnel',
    perTunnel.sluice == null ? null : perTunnel.sluice <= 15,
    `${fmt(perTunnel.sluice ?? null, 1)} KiB (Squid ${fmt(perTunnel.squid ?? null, 1)} KiB)`,
  );
  check(
    'decide() with 10,000 hosts ≤ 1 µs median',
    r.decide ? r.decide.medianNs <= 1000 : null,
    r.decide ? `${fmt(r.decide.medianNs)} ns` : '',
  );
  check(
    'hot reload 10/s under load: 0 failed requests',
    r.reload ? r.reload.failedRequests === 0 && r.reload.survived : null,
    r.reload ? `${r.reload.failedRequests} failed` : '',
  );
  out.push('');
  const notes = errorsNote(r, TARGETS);
  if (r.memory) {
    for (const t of PROXY_COLUMNS) {
      const m = r.memory[t];
      if (m && !(m as Failed).error && (m as HoldResult).errors)
        notes.push(
          `memory / ${LABEL[t]}: ${(m as HoldResult).errors} tunnel(s) failed to open (${(m as HoldResult).firstError})`,
        );
      if (m && (m as Failed).error) notes.push(`memory / ${LABEL[t]}: ${(m as Failed).error}`);
    }
  }
  for (const [k, e] of Object.entries(r.studyErrors ?? {})) notes.push(`${k}: ${e}`);
  if (notes.length) out.push('## Errors seen', '', ...notes.map((n) => `- ${n}`), '');
  out.push(METHOD);
  return out.join('\n');
}

const isFailed = (x: unknown): x is Failed => !!x && typeof (x as Failed).error === 'string';

/** The median of several profiled runs of one target and workload, stage by stage. */
function medianBudget(runs: BudgetResult[]):
  | {
      usPerUnit: number;
      requests: number;
      n: number;
      rows: { stage: string; percent: number | null; usPerRequest: number }[];
    }
  | undefined {
  if (!runs.length) return undefined;
  const stages = [...new Set(runs.flatMap((b) => b.rows.map((x) => x.stage)))];
  return {
    usPerUnit: median(runs.map((b) => b.usPerUnit)),
    requests: median(runs.map((b) => b.run.requests)),
    n: runs.length,
    rows: stages.map((stage) => {
      const xs = runs.map((b) => b.rows.find((x) => x.stage === stage));
      const pcts = xs.map((x) => x?.percent).filter((v): v is number => typeof v === 'number');
      return {
        stage,
        percent: pcts.length ? median(pcts) : null,
        usPerRequest: median(xs.map((x) => x?.usPerRequest ?? 0)),
      };
    }),
  };
}

function renderBudget(r: Results, out: string[]): void {
  const ok = r.budget.filter((b): b is BudgetResult => !isFailed(b));
  if (!ok.length) return;
  out.push('## Per-request CPU budget (from a profile)', '');
  out.push(
    '`node --cpu-prof` on a fresh process, keep-alive GETs at 50 connections (and CONNECT + TLS + GET at 32) for',
  );
  out.push(
    'twice the round length after a warm-up, in interleaved rounds; `bench/profile-budget.ts` charges each sample of the',
  );
  out.push(
    "workload window to a stage by the innermost frame of Sluice's code or a library on its stack (Node internals only",
  );
  out.push("when there is none), and turns shares of the main thread into µs with the main thread's CPU time");
  out.push(
    '(`/proc/<pid>/task/<pid>`) over the same window; the other threads are one row. Each cell is the median over the',
  );
  out.push('rounds. The profiler adds a little; compare Sluice with the floor, measured the same way.', '');
  for (const w of ['ka50', 'conn32'] as const) {
    const sl = medianBudget(ok.filter((b) => b.target === 'sluice' && b.workload === w));
    const fl = medianBudget(ok.filter((b) => b.target === 'floor' && b.workload === w));
    const qu = medianBudget(ok.filter((b) => b.target === 'sluice-quiet' && b.workload === w));
    if (!sl && !fl) continue;
    const unit = w === 'ka50' ? 'request' : 'connection';
    out.push(
      `**${w === 'ka50' ? 'Keep-alive GET, 50 connections' : 'CONNECT + TLS + GET, 32 concurrent'}** — Sluice ${sl ? fmt(sl.usPerUnit, 1) : '–'} µs per ${unit} (median of ${sl?.n ?? 0} profiled runs, ~${sl ? sl.requests.toLocaleString('en-US') : '–'} ${unit}s each), floor ${fl ? fmt(fl.usPerUnit, 1) : '–'} µs${qu ? `, Sluice writing no audit lines (\`log.level: warn\`, diagnosis only) ${fmt(qu.usPerUnit, 1)} µs` : ''}:`,
      '',
    );
    out.push(
      `| stage | Sluice % of main thread | Sluice µs/${unit} | floor µs/${unit} | Sluice − floor, µs |${qu ? ' Sluice, no audit lines, µs |' : ''}`,
      `|---|---:|---:|---:|---:|${qu ? '---:|' : ''}`,
    );
    const stages = [...new Set([...(sl?.rows ?? []), ...(fl?.rows ?? [])].map((x) => x.stage))];
    for (const st of stages) {
      const a = sl?.rows.find((x) => x.stage === st);
      const b = fl?.rows.find((x) => x.stage === st);
      const q = qu?.rows.find((x) => x.stage === st);
      out.push(
        `| ${st} | ${a?.percent == null ? '' : `${a.percent.toFixed(1)} %`} | ${fmt(a?.usPerRequest ?? 0, 1)} | ${fmt(b?.usPerRequest ?? 0, 1)} | ${fmt((a?.usPerRequest ?? 0) - (b?.usPerRequest ?? 0), 1)} |${qu ? ` ${fmt(q?.usPerRequest ?? 0, 1)} |` : ''}`,
      );
    }
    if (w === 'conn32') {
      const sum = (b: ReturnType<typeof medianBudget>) =>
        (b?.rows ?? [])
          .filter((x) => x.stage === 'tunnel' || x.stage === 'socket I/O, unattributed')
          .reduce((a, x) => a + x.usPerRequest, 0);
      out.push(
        `| *tunnel + socket I/O together* (the floor's tunnel is stream.pipe, whose frames are Node's own) | | ${fmt(sum(sl), 1)} | ${fmt(sum(fl), 1)} | ${fmt(sum(sl) - sum(fl), 1)} |`,
      );
    }
    out.push(
      `| **total** (median of the totals) | | **${sl ? fmt(sl.usPerUnit, 1) : '–'}** | **${fl ? fmt(fl.usPerUnit, 1) : '–'}** | **${sl && fl ? fmt(sl.usPerUnit - fl.usPerUnit, 1) : '–'}** |${qu ? ` **${fmt(qu.usPerUnit, 1)}** |` : ''}`,
      '',
    );
  }
}

function renderStalls(r: Results, out: string[]): void {
  const st = r.stalls;
  if (!st || !st.runs.length) return;
  out.push('## What stalls the event loop', '');
  out.push(
    'Each Node proxy restarted with `bench/loop-monitor.js` preloaded (`--import`: `monitorEventLoopDelay` at 1 ms',
  );
  out.push(
    "resolution, a PerformanceObserver on 'gc', event-loop utilisation), plus two Sluice variants for diagnosis:",
  );
  out.push(
    '**quiet** (`log.level: warn`: no audit lines are written) and **young** (`--max-semi-space-size=16`: fewer',
  );
  out.push(
    `scavenges). Keep-alive GETs at 1 and 50 connections, ${r.options.rounds} interleaved round(s), medians. The monitor`,
  );
  out.push('wakes the loop every 1 ms, so these p99s are for diagnosis; the tables above hold the figures.', '');
  out.push(
    '| proxy | load | req/s | p99 ms | loop delay p50 / p99 / max, ms | loop busy | scavenges /s, mean ms, max ms | mark-compacts /s, max ms | GC pause, % of wall time |',
    '|---|---|---:|---:|---|---:|---|---|---:|',
  );
  const names = [...new Set(st.runs.map((x) => x.target))];
  const label = (n: string) =>
    n === 'sluice-quiet'
      ? 'Sluice quiet (no audit lines)'
      : n === 'sluice-young'
        ? 'Sluice young (16 MiB semi-space)'
        : (LABEL[n as TargetName] ?? n);
  for (const w of ['ka1', 'ka50'] as const) {
    for (const n of names) {
      const xs = st.runs.filter((x) => x.target === n && x.workload === w && x.loop);
      if (!xs.length) continue;
      const m = (f: (x: StallResult) => number) => median(xs.map(f));
      const gcOf = (x: StallResult, k: string) => x.loop!.gc[k] ?? { count: 0, totalMs: 0, maxMs: 0, over1ms: 0 };
      const gcTotal = (x: StallResult) => Object.values(x.loop!.gc).reduce((a, g) => a + g.totalMs, 0);
      out.push(
        `| ${label(n)} | c=${w === 'ka1' ? 1 : 50} | ${fmt(m((x) => x.load.rps))} | ${fmt(
          m((x) => x.load.p99Ms),
          2,
        )} | ${fmt(
          m((x) => x.loop!.loopDelayMs.p50),
          2,
        )} / ${fmt(
          m((x) => x.loop!.loopDelayMs.p99),
          2,
        )} / ${fmt(
          m((x) => x.loop!.loopDelayMs.max),
          1,
        )} | ${fmt(
          m((x) => x.loop!.utilisation),
          2,
        )} | ${fmt(
          m((x) => gcOf(x, 'scavenge').count / x.loop!.seconds),
          1,
        )}, ${fmt(
          m((x) => gcOf(x, 'scavenge').totalMs / Math.max(1, gcOf(x, 'scavenge').count)),
          2,
        )}, ${fmt(
          m((x) => gcOf(x, 'scavenge').maxMs),
          2,
        )} | ${fmt(
          m((x) => gcOf(x, 'mark-compact').count / x.loop!.seconds),
          2,
        )}, ${fmt(
          m((x) => gcOf(x, 'mark-compact').maxMs),
          2,
        )} | ${fmt(
          m((x) => (100 * gcTotal(x)) / (x.loop!.seconds * 1000)),
          1,
        )} |`,
      );
    }
  }
  out.push('');
  if (isFailed(st.syncIo)) out.push(`Sync I/O: not measured (${st.syncIo.error}).`, '');
  else
    out.push(
      `Sync I/O (\`--trace-sync-io\`, ${st.syncIo.requests.toLocaleString('en-US')} keep-alive GETs at 50 connections): ${st.syncIo.warnings} synchronous call(s)${st.syncIo.top.length ? `: ${st.syncIo.top.map((t) => `\`${t}\``).join('; ')}` : ''}.`,
      '',
    );
}

function renderStartup(r: Results, out: string[]): void {
  if (!r.startup) return;
  out.push('## Start-up and idle footprint', '');
  if (isFailed(r.startup)) {
    out.push(`Not measured: ${r.startup.error}`, '');
    return;
  }
  const x = r.startup;
  const list = (xs: number[]) => xs.map((v) => fmt(v)).join(', ');
  out.push(`| process | spawn → ready, median ms | each start, ms | RSS 1 s after ready, MiB |`, '|---|---:|---|---:|');
  out.push(
    `| \`sluice serve\` (spawn → listeners accept and \`/readyz\` is 200) | ${fmt(median(x.sluiceReadyMs))} | ${list(x.sluiceReadyMs)} | ${fmt(median(x.sluiceIdleKiB) / 1024, 1)} |`,
  );
  if ('readyMs' in x.snapshot) {
    out.push(
      `| Sluice from a V8 startup snapshot (bench/snapshot-entry.ts, bundled) | ${fmt(median(x.snapshot.readyMs))} | ${list(x.snapshot.readyMs)} | ${fmt(median(x.snapshot.idleKiB) / 1024, 1)} |`,
    );
    out.push(
      `| the same entry point without the snapshot | ${fmt(median(x.snapshot.plainMs))} | ${list(x.snapshot.plainMs)} | |`,
    );
  }
  out.push(
    `| the floor peer (Node + undici's Agent; spawn → accepts) | ${fmt(median(x.floorReadyMs))} | ${list(x.floorReadyMs)} | |`,
  );
  out.push(
    `| Node alone (a bare node:http server; spawn → accepts) | ${fmt(median(x.nodeReadyMs))} | ${list(x.nodeReadyMs)} | |`,
  );
  out.push('');
  if ('notBuilt' in x.snapshot) out.push(`V8 startup snapshot: not measured — ${x.snapshot.notBuilt}.`, '');
  if (x.startupProfile) {
    const p = x.startupProfile;
    out.push(
      `Where \`sluice serve\`'s start-up CPU goes (one \`--cpu-prof\` start, ${fmt(p.busyMs)} ms busy on the main thread; innermost package on the stack): ${p.areas.map((a) => `${a.area} ${fmt(a.ms)} ms`).join(', ')}.`,
    );
    if (p.topModules.length)
      out.push(
        `Sluice's own modules: ${p.topModules.map((m) => `${m.module.replace('sluice ', '')} ${fmt(m.ms)} ms`).join(', ')}.`,
      );
    out.push('');
  }
}

function renderSmp(r: Results, out: string[]): void {
  if (!r.smp) return;
  const x = r.smp;
  out.push(`## One machine: \`workers: auto\` (${x.workers}) against Squid's SMP \`workers ${x.workers}\``, '');
  out.push(
    'Keep-alive GETs at 50 connections, interleaved with the single-process Sluice and Squid; CPU is the whole process tree.',
    '',
  );
  out.push('| proxy | req/s | p99 ms | CPU µs/request | peak RSS MiB |', '|---|---:|---:|---:|---:|');
  for (const n of ['sluice-smp', 'squid-smp', 'sluice', 'squid']) {
    const runs = x.runs[n];
    if (!runs?.length) {
      if (x.errors[n]) out.push(`| ${LABEL[n as TargetName]} | ${x.errors[n]} | | | |`);
      continue;
    }
    const m = (f: (w: WrkResult) => number | null) => median(runs.map(f).filter((v): v is number => v !== null));
    out.push(
      `| ${LABEL[n as TargetName]} | ${fmt(m((w) => w.rps))} | ${fmt(
        m((w) => w.p99Ms),
        2,
      )} | ${fmt(
        m((w) => w.cpuUsPerRequest),
        1,
      )} | ${fmt(
        m((w) => (w.rssPeakKiB === null ? null : w.rssPeakKiB / 1024)),
        1,
      )} |`,
    );
  }
  out.push('');
}

function lat(l: Latencies | undefined): string {
  if (!l || !l.n) return '–';
  return `p50 ${fmt(l.p50Ms, 1)} / p99 ${fmt(l.p99Ms, 1)} / max ${fmt(l.maxMs, 1)} ms (n=${l.n}; ${Object.entries(
    l.statuses,
  )
    .map(([k, v]) => `${k}: ${v}`)
    .join(', ')})`;
}

function renderHostile(r: Results, out: string[]): void {
  if (!r.bomb && !r.flood) return;
  out.push('## Hostile workloads (against the current `dist/`)', '');
  if (r.bomb) {
    if (isFailed(r.bomb)) out.push(`**DNS-answer bomb:** not measured — ${r.bomb.error}`, '');
    else {
      const b = r.bomb;
      const mib = (k: number) => fmt(k / 1024, 1);
      out.push(
        `**DNS-answer bomb:** ${b.names.toLocaleString('en-US')} names under \`bomb.bench.test\`, each answering ${'1,500'} A records (over TCP after a truncated UDP reply: ${b.dns.truncated} truncated, ${b.dns.tcp} TCP queries), fetched through a fresh Sluice at 16 concurrent.`,
      );
      out.push(
        `Sluice RSS **${mib(b.rssBeforeKiB)} MiB before → ${mib(b.rssAfterKiB)} MiB after** (peak ${mib(b.rssPeakKiB)}, ${mib(b.rssSettledKiB)} five seconds later)${b.survived ? '' : '; **Sluice died**'}.`,
      );
      if (b.client)
        out.push(
          `Bomb requests: ${lat(b.client.bomb)} in ${fmt(b.client.seconds, 1)} s. Another client's keep-alive GETs meanwhile: ${lat(b.client.probe)}.`,
        );
      out.push('');
    }
  }
  if (r.flood) {
    if (isFailed(r.flood)) out.push(`**Login flood:** not measured — ${r.flood.error}`, '');
    else {
      const f = r.flood;
      const ks = (k: { engageMs: number | null; releaseMs: number | null } | null) =>
        k
          ? `engaged after ${k.engageMs === null ? 'never (timeout)' : `${fmt(k.engageMs)} ms`}, released after ${k.releaseMs === null ? 'never (timeout)' : `${fmt(k.releaseMs)} ms`}`
          : '–';
      out.push(
        `**Login flood:** ${f.floodConcurrency} concurrent loops of wrong passwords from 127.0.0.1 (each a new connection) for ${fmt(f.floodMs / 1000)} s, against a fresh Sluice (Sluice CPU ${fmt(f.cpuS, 1)} s, peak RSS ${fmt(f.rssPeakKiB / 1024, 1)} MiB).`,
        '',
      );
      out.push('| who | latency |', '|---|---|');
      out.push(`| the flood's own requests | ${lat(f.flood)} |`);
      out.push(`| other identities' first login (uncached, from 127.0.0.2) | ${lat(f.victimsFirstLogin)} |`);
      out.push(`| a verified credential on new connections (127.0.0.3) | ${lat(f.cachedNewConnection)} |`);
      out.push(`| an open keep-alive connection (127.0.0.3) | ${lat(f.keepAliveProbe)} |`);
      out.push('');
      out.push(
        `Kill switch (\`killSwitch.file\`; time from creating the file to the first new request denied — a new connection every 5 ms from 127.0.0.4 with a verified credential — then from removing it to the first allowed): before the flood ${ks(f.killSwitchBefore)}; **during a second flood of the same size from a fresh address (127.0.0.5) ${ks(f.killSwitchDuring)}**.`,
        '',
      );
    }
  }
}

function renderInspection(r: Results, out: string[]): void {
  const x = r.inspection;
  if (!x) return;
  out.push('## TLS inspection (prepared for Sluice)', '');
  out.push(
    `Squid ${r.versions.squid} with ssl_bump (the squid-openssl build, \`security_file_certgen\` helpers; its CPU and RSS include them) and mitmproxy ${r.versions.mitmproxy ?? ''}, each`,
  );
  out.push(
    'intercepting with a bench CA; the client trusts that CA, the proxies verify the origin against the bench certificate.',
  );
  out.push(
    x.sluice
      ? 'Sluice took part with `inspection` configured.'
      : '**Sluice does not intercept yet**: it joins these rows automatically once its config schema has `inspection` (see `inspectionConfig` in bench/world.ts).',
    '',
  );
  const names = ['direct', 'squid-bump', 'mitmproxy', 'sluice-inspect'].filter(
    (n) => x.ka50[n] || x.conn32[n] || x.memory[n],
  );
  out.push(
    '| figure | ' + names.map((n) => LABEL[n as TargetName]).join(' | ') + ' |',
    `|---|${names.map(() => '---:').join('|')}|`,
  );
  const med = (xs: number[]) => (xs.length ? median(xs) : null);
  const row = (label: string, f: (n: string) => number | null, d = 0) =>
    out.push(`| ${label} | ${names.map((n) => fmt(f(n), d)).join(' | ')} |`);
  row('HTTPS GET inside 50 intercepted keep-alive tunnels: req/s', (n) =>
    med((x.ka50[n] ?? []).map((k) => k.requests / k.seconds)),
  );
  row(
    '  proxy CPU, µs/request',
    (n) => med((x.ka50[n] ?? []).filter((k) => k.cpuS !== null).map((k) => (k.cpuS! * 1e6) / Math.max(1, k.requests))),
    1,
  );
  row('  p99 ms', (n) => med((x.ka50[n] ?? []).map((k) => k.p99Ms)), 2);
  row(
    '  peak RSS, MiB',
    (n) => med((x.ka50[n] ?? []).filter((k) => k.rssPeakKiB !== null).map((k) => k.rssPeakKiB! / 1024)),
    1,
  );
  row('new intercepted tunnel per request, 32 concurrent: connections/s', (n) =>
    med((x.conn32[n] ?? []).map((k) => k.perSecond)),
  );
  row('  proxy CPU, µs/connection', (n) =>
    med((x.conn32[n] ?? []).filter((k) => k.cpuUsPerConnection !== null).map((k) => k.cpuUsPerConnection!)),
  );
  row('  p99 per connection, ms', (n) => med((x.conn32[n] ?? []).map((k) => k.totalP99Ms)), 1);
  const m = (n: string) =>
    x.memory[n] && !isFailed(x.memory[n])
      ? (x.memory[n] as { idleKiB: number; withLeavesKiB: number; hosts: number })
      : null;
  row('RSS idle, MiB', (n) => (m(n) ? m(n)!.idleKiB / 1024 : null), 1);
  row(
    `RSS after ${x.memory['squid-bump'] && !isFailed(x.memory['squid-bump']) ? (x.memory['squid-bump'] as { hosts: number }).hosts : 'N'} distinct hosts (leaves cached), MiB`,
    (n) => (m(n) ? m(n)!.withLeavesKiB / 1024 : null),
    1,
  );
  out.push('');
  const errs = [
    ...Object.entries(x.errors),
    ...Object.entries(x.memory)
      .filter(([, v]) => isFailed(v))
      .map(([k, v]) => [`memory ${k}`, (v as Failed).error]),
  ];
  if (errs.length) out.push(`Errors: ${errs.map(([k, e]) => `${k}: ${e}`).join('; ')}.`, '');
}

/**
 * The issue's targets for the broker: injection adds at most 5 µs of CPU per request, scanning runs at 1 GB/s or
 * more.
 */
export function renderBroker(r: Pick<Results, 'broker'>, out: string[]): void {
  const b = r.broker;
  if (!b) return;
  out.push('## Credential broker', '');
  out.push(
    'In-process, compiled dist (`bench/broker-bench.ts`): CPU time per call, the median of 15 batches of 20,000 calls; scanning in MB/s of body on one core, the median of 7 passes over a ~5 MB body.',
    '',
  );
  out.push('| per request | ns |', '|---|---:|');
  for (const [k, v] of Object.entries(b.requestNs)) out.push(`| ${k} | ${fmt(v)} |`);
  out.push('', '| response scanning | MB/s |', '|---|---:|');
  for (const [k, v] of Object.entries(b.scanMBps)) out.push(`| ${k} | ${fmt(v)} |`);
  out.push('');
  const injected = b.requestNs['credential host, Bearer handle injected'];
  const response = b.requestNs['response: scrubber + header scrub'];
  const added = injected !== undefined && response !== undefined ? (injected + response) / 1000 : null;
  const slowest = Object.values(b.scanMBps).length ? Math.min(...Object.values(b.scanMBps)) : null;
  const mark = (held: boolean | null) => (held === null ? '– not measured' : held ? '✅ holds' : '❌ does not hold');
  out.push(
    `- ${mark(added === null ? null : added <= 5)}: injection adds ≤ 5 µs of CPU per request — ${added === null ? '–' : `${fmt(added, 1)} µs`} (the check with the handle cached, plus the response scrubber and its header pass; a request without the broker pays none of it)`,
  );
  out.push(
    `- ${mark(slowest === null ? null : slowest >= 1000)}: response scanning ≥ 1 GB/s per core — slowest case ${slowest === null ? '–' : `${fmt(slowest)} MB/s`}`,
    '',
  );
}

const METHOD = `## How it was measured

- **A shared machine.** 2 cores, shared by Sluice, every peer, the load generators, the origin and other
  engineers' test runs going on at the same time. Rounds are interleaved (each workload against every target, in
  an order rotated from round to round) and every figure is a median; CPU per request is the robust figure.
- **Everything on loopback.** nginx serves a 128-byte file, a 10 MiB file and \`/echo\` (200 to any method) on
  \`127.0.0.71:8080\` (HTTP) and \`127.0.0.72:443\` (TLS, a throwaway ECDSA P-256 certificate for \`tls.bench.test\`,
  \`api.bench.test\` and \`*.mitm.bench.test\`, made by openssl for this run, session resumption off). Sluice and the
  peers listen on \`127.0.0.1\`, each started in the foreground with its own config in \`bench/.work/\` and stopped by PID.
- **Names.** Sluice resolves the bench's names through its normal resolver against the bench's DNS server on
  loopback (\`bench/bench-dns.ts\`, UDP and TCP, TTL 300 s) and reaches the loopback origins through
  \`addressGuard.allow\` exceptions bound to those names. Squid, tinyproxy, mitmproxy, the Node peer and the floor run
  in a private mount namespace whose \`/etc/hosts\` is a bind mount of the bench's hosts file (the host's own file is
  never touched).
- **Configurations.** Sluice: the shipped defaults, one identity with an scrypt \`passwordHash\` sent as Basic
  \`Proxy-Authorization\` on every request, audit log on (pino's normal stdout destination, sent to a file), metrics on,
  \`upstream.caFile\` the bench certificate, one integration (\`api.bench.test\`, POST). Squid (the squid-openssl build of
  Debian's 5.7: the GnuTLS build fails to read an https origin's TLS 1.3 responses): \`cache deny all\`, access log on,
  \`tls_outgoing_options cafile=\` the bench certificate. tinyproxy: defaults, \`LogLevel Info\`, \`ConnectPort 443\`. Node
  peer (\`bench/node-peer.ts\`): http-proxy with keep-alive agents, no authentication, no logging. **Floor**
  (\`bench/floor-peer.ts\`): Node's HTTP server with the options Sluice's listener sets, the same undici Agent (same
  import, same keep-alive settings) whose connect hook dials an address resolved once per name with \`noDelay\` and one
  shared TLS context, as Sluice's dialer does, the same hop-by-hop header rules; no authentication, policy, log or
  metrics; CONNECT is resolve, connect, 200, \`pipe\`. It gets the same \`Proxy-Authorization\` bytes as Sluice. The
  peers run without authentication.
- **Workloads.** Keep-alive requests: wrk (2 threads) with \`bench/wrk-absolute.lua\` sending absolute-form requests
  (origin-form for direct). CONNECT + TLS + GET: \`bench/connect-client.ts\` in its own process — CONNECT, TLS handshake
  through the tunnel, one \`Connection: close\` GET, close. Bulk: curl downloading the 10 MiB file through a CONNECT
  tunnel (https) and by forwarding (http). Memory: each proxy restarted, warmed with a second of CONNECT cycles, then
  the given number of tunnels opened (TLS established through each) and left idle; per-tunnel RSS is (RSS with
  tunnels − RSS before) ÷ tunnels. Hot reload: SIGHUP to Sluice every 100 ms while wrk runs 50 keep-alive connections.
  Start-up: \`sluice serve\` spawned with an admin listener, \`/readyz\` polled every 2 ms until 200. One machine:
  \`workers: auto\` against Squid's \`workers\` at the same count (Squid's SMP kids get a run directory of their own in
  the private mount namespace). DNS-answer bomb and login flood: \`bench/hostile-client.ts\`, against a fresh Sluice
  (\`sluice serve\`, with \`killSwitch.file\` and 20 more identities). TLS inspection: \`bench/connect-client.ts\` in
  \`inside\` mode (keep-alive GETs inside established tunnels) and \`cycle\` mode, trusting the bench interception CA.
- **CPU** is utime + stime of the proxy's process and its children (all threads) from \`/proc/<pid>/stat\` over the run.

## Reproduce

\`\`\`sh
npm ci
npm run bench                           # installs nginx-light, squid, tinyproxy, wrk, curl, mitmproxy if missing (apt-get)
npm run bench -- --quick                # one short round of everything
npm run bench -- --only ka50,conn32     # some workloads; see bench/run.ts for the list
npm run bench -- --profile              # node --cpu-prof on Sluice and the floor; top frames and the stage budget
\`\`\`
`;
