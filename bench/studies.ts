// The workloads that are more than "one load generator against every target": the per-request CPU budget from
// a profile, what stalls the event loop, start-up and idle footprint, one machine (`workers: auto` against
// Squid's SMP workers), the hostile workloads (DNS-answer bomb, login flood with the kill switch) and the TLS
// inspection workloads. Each returns its figures or `{ error }`; none throws into the run.
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmSync, statSync, unlinkSync } from 'node:fs';
import { get } from 'node:http';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import {
  cpuSeconds,
  ensureDir,
  freePort,
  rssKiB,
  rssSampler,
  sleep,
  startForeground,
  threadCpuSeconds,
  waitForPort,
} from './env.js';
import type { HostileArgs, Latencies } from './hostile-client.js';
import { type BudgetRow, type CpuOfRun, budget, perRequest } from './profile-budget.js';
import { MITM_HOSTS, ORIGIN, type Proxy, type ProxyName, SMALL_PATH, type World, bombHost, mitmHost } from './world.js';
import { type ConnectResult, type WrkResult, clientArgs, connectCycle, keepAliveGet } from './workloads.js';
import type { InsideResult } from './connect-client.js';
import { buildSnapshot } from './snapshot-build.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const distDir = fileURLToPath(new URL('..', import.meta.url));

export type Failed = { error: string };
const failed = (e: unknown): Failed => ({
  error: String((e as Error)?.message ?? e)
    .split('\n')[0]!
    .slice(0, 300),
});

export interface Ctx {
  readonly world: World;
  readonly seconds: number;
  readonly rounds: number;
  readonly quick: boolean;
  readonly log: (s: string) => void;
  /** Node flags each proxy gets at its next start (mutable: profiles and preloads are set here). */
  readonly flags: Map<ProxyName, string[]>;
}

function jsonLine<T>(out: string, tag = 'BENCH_JSON'): T {
  const line = out.split('\n').find((l) => l.startsWith(`${tag} `));
  if (!line) throw new Error(`no ${tag} line in:\n${out.slice(-2000)}`);
  return JSON.parse(line.slice(tag.length + 1)) as T;
}

function runNode(script: string, args: unknown, timeoutMs = 600_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [join(here, script), JSON.stringify(args)],
      { timeout: timeoutMs, maxBuffer: 64 << 20 },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`${script} failed: ${err.message}\n${stderr}`));
        else resolve(stdout);
      },
    );
  });
}

async function restart(p: Proxy): Promise<void> {
  await p.stop();
  await p.start();
}

// ─── 1. The per-request CPU budget ──────────────────────────────────────────────────────────────────────────

export interface BudgetResult {
  readonly target: ProxyName;
  readonly workload: 'ka50' | 'conn32';
  readonly run: CpuOfRun;
  /** CPU per request (or connection) of the whole process in the profiled run. */
  readonly usPerUnit: number;
  readonly rows: readonly BudgetRow[];
  readonly profile: string;
}

/** node --cpu-prof on a fresh process, the workload after a warm-up; the samples of the workload window only. */
export async function profileBudget(
  ctx: Ctx,
  target: ProxyName,
  workload: 'ka50' | 'conn32',
): Promise<BudgetResult | Failed> {
  const p = ctx.world.proxies.get(target);
  if (!p || p.failed) return { error: `${target} is not running` };
  const dir = ensureDir(join(ctx.world.dir, `prof-${target}-${workload}`));
  ctx.log(`budget: ${target} ${workload} under node --cpu-prof`);
  for (const f of readdirSync(dir)) rmSync(join(dir, f));
  const before = ctx.flags.get(target) ?? [];
  try {
    ctx.flags.set(target, [...before, '--cpu-prof', `--cpu-prof-dir=${dir}`]);
    await p.stop();
    const started = performance.now();
    await p.start();
    await keepAliveGet(p, 10, 1); // warm-up (JIT, pools), left out
    if (workload === 'conn32') await connectCycle(p, ctx.world.caFile, 4, 1);
    const pid = p.proc().pid;
    const main0 = threadCpuSeconds(pid);
    const total0 = cpuSeconds(pid);
    const skipMs = performance.now() - started;
    const secs = ctx.seconds * 2;
    const r = workload === 'ka50' ? await keepAliveGet(p, 50, secs) : await connectCycle(p, ctx.world.caFile, 32, secs);
    const untilMs = performance.now() - started;
    const run: CpuOfRun = {
      requests: workload === 'ka50' ? (r as WrkResult).requests : (r as ConnectResult).connections,
      mainCpuS: threadCpuSeconds(pid) - main0,
      totalCpuS: cpuSeconds(pid) - total0,
    };
    await p.stop();
    const file = readdirSync(dir)
      .filter((f) => f.endsWith('.cpuprofile'))
      .sort()[0];
    if (!file) return { error: `no profile written in ${dir}` };
    // The profile's clock starts when the process does, a little after spawn: a few ms of slack either side.
    const b = budget(join(dir, file), skipMs, untilMs);
    return {
      target,
      workload,
      run,
      usPerUnit: (run.totalCpuS * 1e6) / Math.max(1, run.requests),
      rows: perRequest(b, run),
      profile: join(dir, file),
    };
  } catch (e) {
    return failed(e);
  } finally {
    ctx.flags.set(target, before);
    await p.stop().catch(() => undefined);
    if (!p.lazy)
      await p
        .start()
        .catch((e: unknown) => ctx.log(`${target} did not come back after profiling: ${(e as Error).message}`));
  }
}

// ─── 3. What stalls the loop ────────────────────────────────────────────────────────────────────────────────

export interface LoopStats {
  readonly seconds: number;
  readonly loopDelayMs: {
    p50: number;
    p90: number;
    p99: number;
    p999: number;
    max: number;
    mean: number;
    samples: number;
  };
  readonly utilisation: number;
  readonly gc: Record<string, { count: number; totalMs: number; maxMs: number; over1ms: number }>;
  readonly activeResources: Record<string, number>;
  readonly heapUsedMiB: number;
}

export interface StallResult {
  readonly target: ProxyName;
  readonly workload: 'ka1' | 'ka50';
  readonly load: WrkResult;
  readonly loop: LoopStats | null;
  /** --trace-sync-io warnings during the workload (Sluice only). */
  readonly syncIoWarnings: number | null;
  readonly syncIoTop: readonly string[];
}

const LOOP_FILE = () => process.env.BENCH_LOOP_FILE!;

async function loopDump(pid: number): Promise<LoopStats | null> {
  const file = LOOP_FILE();
  const before = existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean).length : 0;
  process.kill(pid, 'SIGWINCH');
  for (let i = 0; i < 100; i++) {
    await sleep(50);
    const lines = existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : [];
    if (lines.length > before) return JSON.parse(lines[lines.length - 1]!) as LoopStats;
  }
  return null;
}

export const STALL_TARGETS: readonly ProxyName[] = ['sluice', 'sluice-quiet', 'sluice-young', 'node', 'floor'];

/**
 * Every Node proxy (and two Sluice variants: no audit lines written, a larger young generation) restarted with
 * the loop monitor preloaded; keep-alive GETs at 1 and 50 connections in interleaved rounds, with loop delay and
 * GC pauses recorded over each run. Then a short run of Sluice with --trace-sync-io counts synchronous calls.
 */
export async function stalls(
  ctx: Ctx,
): Promise<{ runs: StallResult[]; syncIo: { warnings: number; top: string[]; requests: number } | Failed }> {
  const preload = ['--import', `file://${join(here, 'loop-monitor.js')}`];
  const up: Proxy[] = [];
  const saved = new Map<ProxyName, string[]>();
  const runs: StallResult[] = [];
  for (const n of STALL_TARGETS) {
    const p = ctx.world.proxies.get(n);
    if (!p || p.failed) continue;
    saved.set(n, ctx.flags.get(n) ?? []);
    ctx.flags.set(n, [...(ctx.flags.get(n) ?? []), ...preload]);
    try {
      await restart(p);
      await keepAliveGet(p, 10, 1);
      up.push(p);
    } catch (e) {
      ctx.log(`stalls: ${n} did not start: ${failed(e).error}`);
    }
  }
  try {
    for (let r = 0; r < ctx.rounds; r++) {
      for (const w of ['ka1', 'ka50'] as const) {
        for (let i = 0; i < up.length; i++) {
          const p = up[(i + r) % up.length]!;
          ctx.log(`stalls round ${r + 1}/${ctx.rounds} ${w} ${p.name}`);
          try {
            const pid = p.proc().pid;
            await loopDump(pid); // reset
            const load = await keepAliveGet(p, w === 'ka1' ? 1 : 50, ctx.seconds);
            runs.push({
              target: p.name,
              workload: w,
              load,
              loop: await loopDump(pid),
              syncIoWarnings: null,
              syncIoTop: [],
            });
          } catch (e) {
            ctx.log(`  failed: ${failed(e).error}`);
          }
        }
      }
    }
  } finally {
    for (const p of up) {
      ctx.flags.set(p.name, saved.get(p.name) ?? []);
      await p.stop();
      if (!p.lazy)
        await p.start().catch((e: unknown) => ctx.log(`${p.name} did not come back: ${(e as Error).message}`));
    }
  }
  return { runs, syncIo: await syncIo(ctx) };
}

/** Sluice with --trace-sync-io for a short keep-alive run: how many synchronous calls, and where from. */
async function syncIo(ctx: Ctx): Promise<{ warnings: number; top: string[]; requests: number } | Failed> {
  const p = ctx.world.proxies.get('sluice');
  if (!p || p.failed) return { error: 'sluice is not running' };
  const errLog = join(ctx.world.dir, 'logs', 'sluice.err');
  const before = ctx.flags.get('sluice') ?? [];
  try {
    ctx.flags.set('sluice', [...before, '--trace-sync-io']);
    await restart(p);
    await keepAliveGet(p, 10, 1);
    const from = existsSync(errLog) ? statSync(errLog).size : 0;
    const load = await keepAliveGet(p, 50, 2);
    const text = readFileSync(errLog).subarray(from).toString('utf8');
    const parts = text.split('WARNING: Detected use of sync API').slice(1);
    const tops = new Map<string, number>();
    for (const part of parts) {
      const lines = part
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => l.startsWith('at '));
      const key = `${lines[0] ?? '?'} ← ${lines.find((l) => l.includes('/dist/')) ?? '?'}`.replace(
        /file:\/\/\S*\/dist\//g,
        'dist/',
      );
      tops.set(key, (tops.get(key) ?? 0) + 1);
    }
    return {
      warnings: parts.length,
      requests: load.requests,
      top: [...tops.entries()]
        .sort((a, b) => b[1] - a[1])
        .slice(0, 5)
        .map(([f, n]) => `${n}× ${f}`),
    };
  } catch (e) {
    return failed(e);
  } finally {
    ctx.flags.set('sluice', before);
    await restart(p).catch(() => undefined);
  }
}

// ─── 4. Start-up and idle footprint ─────────────────────────────────────────────────────────────────────────

export interface StartupResult {
  /** `sluice serve`: spawn → /readyz 200 (listeners accept), ms, each start. */
  readonly sluiceReadyMs: number[];
  /** RSS one second after ready, KiB, each start. */
  readonly sluiceIdleKiB: number[];
  /** The same with a V8 startup snapshot, when one could be built (else why not). */
  readonly snapshot:
    | { readyMs: number[]; idleKiB: number[]; /** The same entry point without the snapshot. */ plainMs: number[] }
    | { notBuilt: string };
  /** Node alone: spawn → a bare node:http server accepts. */
  readonly nodeReadyMs: number[];
  /** The floor peer: spawn → accepts (Node + undici's Agent). */
  readonly floorReadyMs: number[];
  /** Where `sluice serve`'s start-up CPU goes (self time by area, from one --cpu-prof start). */
  readonly startupProfile: {
    busyMs: number;
    areas: { area: string; ms: number }[];
    topModules: { module: string; ms: number }[];
  } | null;
}

function httpStatus(port: number, path: string): Promise<number> {
  return new Promise((resolve) => {
    const req = get({ host: '127.0.0.1', port, path, agent: false, timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', () => resolve(0));
    req.on('timeout', () => {
      req.destroy();
      resolve(0);
    });
  });
}

/** Spawns argv and measures until `ready()` says so; then the RSS a second later; then stops it. */
async function timeStart(
  argv: string[],
  ready: () => Promise<boolean>,
  logDir: string,
  name: string,
  env?: Record<string, string>,
): Promise<{ ms: number; idleKiB: number }> {
  const t0 = performance.now();
  const fg = startForeground(name, argv, { logDir, ...(env ? { env: { ...process.env, ...env } } : {}) });
  try {
    for (;;) {
      if (await ready()) break;
      if (fg.child.exitCode !== null)
        throw new Error(`${name} exited (${fg.child.exitCode}); see ${logDir}/${name}.err`);
      if (performance.now() - t0 > 30_000) throw new Error(`${name} not ready after 30 s`);
      await sleep(2);
    }
    const ms = performance.now() - t0;
    await sleep(1000);
    return { ms, idleKiB: rssKiB(fg.pid) };
  } finally {
    await fg.stop();
  }
}

const accepts = (port: number) => () =>
  waitForPort('127.0.0.1', port, 1).then(
    () => true,
    () => false,
  );

export async function startup(ctx: Ctx, starts: number): Promise<StartupResult | Failed> {
  try {
    const logDir = join(ctx.world.dir, 'logs');
    const config = join(ctx.world.dir, 'sluice-startup.yaml');
    const port = await freePort();
    const admin = await freePort();
    ctx.world.writeStartupConfig(config, port, admin);
    const cli = join(distDir, 'proxy/cli.js');
    const ready = async () => (await httpStatus(admin, '/readyz')) === 200;
    const sluiceReadyMs: number[] = [];
    const sluiceIdleKiB: number[] = [];
    const nodeReadyMs: number[] = [];
    const floorReadyMs: number[] = [];
    for (let i = 0; i < starts; i++) {
      const s = await timeStart([process.execPath, cli, 'serve', '--config', config], ready, logDir, 'sluice-startup');
      sluiceReadyMs.push(s.ms);
      sluiceIdleKiB.push(s.idleKiB);
      const nodePort = await freePort();
      nodeReadyMs.push(
        (
          await timeStart(
            [process.execPath, '-e', `require('node:http').createServer().listen(${nodePort}, '127.0.0.1')`],
            accepts(nodePort),
            logDir,
            'node-startup',
          )
        ).ms,
      );
      const floorPort = await freePort();
      floorReadyMs.push(
        (
          await timeStart(
            [process.execPath, join(here, 'floor-peer.js'), `127.0.0.1:${floorPort}`],
            accepts(floorPort),
            logDir,
            'floor-startup',
          )
        ).ms,
      );
    }
    const snapshot = await snapshotStarts(ctx, config, admin, starts, ready);
    const startupProfile = await startupCpuProfile(ctx, config, admin);
    return { sluiceReadyMs, sluiceIdleKiB, snapshot, nodeReadyMs, floorReadyMs, startupProfile };
  } catch (e) {
    return failed(e);
  }
}

/**
 * With a V8 startup snapshot (bench/snapshot-build.ts: Sluice bundled into one CommonJS script, the snapshot
 * built from it) against the same entry point without one, in the same starts. When the snapshot cannot be
 * built, says why.
 */
async function snapshotStarts(
  ctx: Ctx,
  config: string,
  admin: number,
  starts: number,
  ready: () => Promise<boolean>,
): Promise<StartupResult['snapshot']> {
  const built = await buildSnapshot(ctx.world.dir);
  if ('notBuilt' in built) return built;
  const logDir = join(ctx.world.dir, 'logs');
  const env = { BENCH_SNAPSHOT_CONFIG: config };
  const readyMs: number[] = [];
  const idleKiB: number[] = [];
  const plainMs: number[] = [];
  for (let i = 0; i < starts; i++) {
    const s = await timeStart([process.execPath, '--snapshot-blob', built.blob], ready, logDir, 'sluice-snapshot', env);
    readyMs.push(s.ms);
    idleKiB.push(s.idleKiB);
    plainMs.push(
      (
        await timeStart(
          [process.execPath, join(here, 'snapshot-entry.js')],
          ready,
          logDir,
          'sluice-snapshot-entry',
          env,
        )
      ).ms,
    );
  }
  void admin;
  return { readyMs, idleKiB, plainMs };
}

async function startupCpuProfile(ctx: Ctx, config: string, admin: number): Promise<StartupResult['startupProfile']> {
  const dir = ensureDir(join(ctx.world.dir, 'prof-startup'));
  for (const f of readdirSync(dir)) rmSync(join(dir, f));
  await timeStart(
    [
      process.execPath,
      '--cpu-prof',
      `--cpu-prof-dir=${dir}`,
      join(distDir, 'proxy/cli.js'),
      'serve',
      '--config',
      config,
    ],
    async () => (await httpStatus(admin, '/readyz')) === 200,
    join(ctx.world.dir, 'logs'),
    'sluice-startup-prof',
  );
  const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
  if (!file) return null;
  const p = JSON.parse(readFileSync(join(dir, file), 'utf8')) as {
    nodes: { id: number; callFrame: { functionName: string; url: string }; children?: number[] }[];
    samples: number[];
    timeDeltas: number[];
  };
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  // Charge each sample to the innermost module of the product or a dependency on its stack (module
  // evaluation and what it calls), else to Node / V8 itself.
  const moduleOf = (id: number): string => {
    for (let x: number | undefined = id; x !== undefined; x = parent.get(x)) {
      const url = byId.get(x)!.callFrame.url;
      const m = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
      if (m) return m[1]!;
      const d = /\/dist\/(.+)$/.exec(url);
      if (d) return `sluice ${d[1]}`;
    }
    const fn = byId.get(id)!.callFrame.functionName;
    return fn === '(garbage collector)' ? 'GC' : fn === '(program)' ? '(program: V8/Node native)' : 'node internals';
  };
  const ms = new Map<string, number>();
  let busy = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const n = byId.get(p.samples[i]!)!;
    if (n.callFrame.functionName === '(idle)') continue;
    const dt = p.timeDeltas[i] ?? 0;
    busy += dt;
    const m = moduleOf(n.id);
    ms.set(m, (ms.get(m) ?? 0) + dt);
  }
  const areaOf = (m: string) =>
    m.startsWith('sluice ') ? 'sluice' : ['node internals', 'GC', '(program: V8/Node native)'].includes(m) ? m : m;
  const areas = new Map<string, number>();
  for (const [m, us] of ms) areas.set(areaOf(m), (areas.get(areaOf(m)) ?? 0) + us);
  const sorted = (m: Map<string, number>) => [...m.entries()].sort((a, b) => b[1] - a[1]);
  return {
    busyMs: busy / 1000,
    areas: sorted(areas)
      .slice(0, 12)
      .map(([area, us]) => ({ area, ms: us / 1000 })),
    topModules: sorted(ms)
      .filter(([m]) => m.startsWith('sluice '))
      .slice(0, 8)
      .map(([module, us]) => ({ module, ms: us / 1000 })),
  };
}

// ─── 5. One machine: workers: auto against Squid's SMP workers ──────────────────────────────────────────────

export interface SmpResult {
  readonly workers: number;
  readonly runs: Record<string, WrkResult[]>;
  readonly errors: Record<string, string>;
}

export async function smp(ctx: Ctx, connections: number): Promise<SmpResult> {
  const names: ProxyName[] = ['sluice-smp', 'squid-smp'];
  const runs: Record<string, WrkResult[]> = {};
  const errors: Record<string, string> = {};
  const up: Proxy[] = [];
  for (const n of names) {
    const p = ctx.world.proxies.get(n);
    if (!p) {
      errors[n] = 'not configured';
      continue;
    }
    try {
      ctx.log(`smp: starting ${n}`);
      await p.start();
      await sleep(1000);
      await keepAliveGet(p, 10, 1);
      up.push(p);
    } catch (e) {
      errors[n] = failed(e).error;
      ctx.log(`  ${n} failed: ${errors[n]}`);
    }
  }
  // The single-process Sluice and Squid in the same rounds, for the ratio to one process.
  for (const n of ['sluice', 'squid'] as const) {
    const p = ctx.world.proxies.get(n);
    if (p && !p.failed) up.push(p);
  }
  for (let r = 0; r < ctx.rounds; r++) {
    for (let i = 0; i < up.length; i++) {
      const p = up[(i + r) % up.length]!;
      ctx.log(`smp round ${r + 1}/${ctx.rounds} ${p.name} (${connections} connections)`);
      try {
        (runs[p.name] ??= []).push(await keepAliveGet(p, connections, ctx.seconds));
      } catch (e) {
        errors[p.name] = failed(e).error;
      }
    }
  }
  for (const p of up) if (p.lazy) await p.stop();
  return { workers: ctx.world.smpWorkers, runs, errors };
}

// ─── 6. Hostile workloads ───────────────────────────────────────────────────────────────────────────────────

export interface BombResult {
  readonly names: number;
  readonly rssBeforeKiB: number;
  readonly rssPeakKiB: number;
  readonly rssAfterKiB: number;
  /** After 5 s more, idle. */
  readonly rssSettledKiB: number;
  readonly survived: boolean;
  readonly client: { seconds: number; bomb: Latencies; probe: Latencies } | null;
  readonly dns: { udp: number; tcp: number; truncated: number };
}

async function withHostile<T>(ctx: Ctx, body: (p: Proxy) => Promise<T>): Promise<T | Failed> {
  const p = ctx.world.proxies.get('sluice-hostile');
  if (!p) return { error: 'sluice-hostile is not configured' };
  try {
    await p.start();
    await sleep(1000);
    return await body(p);
  } catch (e) {
    return failed(e);
  } finally {
    await p.stop();
  }
}

export function dnsBomb(ctx: Ctx, names: number): Promise<BombResult | Failed> {
  return withHostile(ctx, async (p) => {
    const pid = p.proc().pid;
    const dns0 = { ...ctx.world.dns.stats };
    const rssBeforeKiB = rssKiB(pid);
    const sampler = rssSampler(pid, 100);
    const args: HostileArgs = {
      mode: 'bomb',
      proxy: { host: '127.0.0.1', port: p.port },
      auth: p.auth!,
      probeUrl: `http://${ORIGIN.http.name}:${ORIGIN.http.port}${SMALL_PATH}`,
      names: Array.from({ length: names }, (_, i) => bombHost(i)),
      bombPort: ORIGIN.http.port,
      concurrency: 16,
      timeoutMs: 60_000,
    };
    let client: BombResult['client'] = null;
    try {
      client = jsonLine(await runNode('hostile-client.js', args));
    } catch (e) {
      ctx.log(`dns bomb client: ${failed(e).error}`);
    }
    const survived = existsSync(`/proc/${pid}/stat`);
    const rssAfterKiB = survived ? rssKiB(pid) : 0;
    await sleep(5000);
    const rssPeakKiB = sampler.stop();
    const s = ctx.world.dns.stats;
    return {
      names,
      rssBeforeKiB,
      rssPeakKiB,
      rssAfterKiB,
      rssSettledKiB: survived ? rssKiB(pid) : 0,
      survived,
      client,
      dns: { udp: s.udp - dns0.udp, tcp: s.tcp - dns0.tcp, truncated: s.truncated - dns0.truncated },
    };
  });
}

export interface FloodResult {
  readonly floodConcurrency: number;
  readonly floodMs: number;
  readonly flood: Latencies;
  readonly victimsFirstLogin: Latencies;
  readonly cachedNewConnection: Latencies;
  readonly keepAliveProbe: Latencies;
  readonly killSwitchBefore: { engageMs: number | null; releaseMs: number | null } | null;
  readonly killSwitchDuring: { engageMs: number | null; releaseMs: number | null } | null;
  readonly rssPeakKiB: number;
  readonly cpuS: number;
}

export function loginFlood(ctx: Ctx, concurrency: number, floodMs: number): Promise<FloodResult | Failed> {
  return withHostile(ctx, async (p) => {
    const pid = p.proc().pid;
    if (existsSync(ctx.world.hostile.killFile)) unlinkSync(ctx.world.hostile.killFile);
    const sampler = rssSampler(pid, 200);
    const cpu0 = cpuSeconds(pid);
    const args: HostileArgs = {
      mode: 'flood',
      proxy: { host: '127.0.0.1', port: p.port },
      auth: p.auth!,
      probeUrl: `http://${ORIGIN.http.name}:${ORIGIN.http.port}${SMALL_PATH}`,
      user: 'bench',
      floodConcurrency: concurrency,
      floodMs,
      victims: [...ctx.world.victims].map(([user, pass]) => ({ user, pass })),
      killFile: ctx.world.hostile.killFile,
      timeoutMs: 120_000,
    };
    const r = jsonLine<Omit<FloodResult, 'rssPeakKiB' | 'cpuS'>>(await runNode('hostile-client.js', args, 900_000));
    if (existsSync(ctx.world.hostile.killFile)) unlinkSync(ctx.world.hostile.killFile);
    return { ...r, rssPeakKiB: sampler.stop(), cpuS: cpuSeconds(pid) - cpu0 };
  });
}

// ─── 7. TLS inspection ──────────────────────────────────────────────────────────────────────────────────────

export interface InspectResult {
  /** Per target: HTTPS GETs inside 50 intercepted keep-alive tunnels. */
  readonly ka50: Record<string, (InsideResult & { cpuS: number | null; rssPeakKiB: number | null })[]>;
  /** Per target: a new intercepted tunnel per request, 32 concurrent. */
  readonly conn32: Record<string, ConnectResult[]>;
  /** Per target: RSS idle, and after one connection to each of MITM_HOSTS distinct hosts (leaves cached). */
  readonly memory: Record<
    string,
    { idleKiB: number; withLeavesKiB: number; hosts: number; errors: number; firstError: string | null } | Failed
  >;
  readonly errors: Record<string, string>;
  /** Whether Sluice took part (it does once it has `inspection`). */
  readonly sluice: boolean;
}

export async function inspection(
  ctx: Ctx,
  which: ReadonlySet<'mitm-ka50' | 'mitm-conn32' | 'mitm-memory'>,
): Promise<InspectResult> {
  const names: ProxyName[] = [
    'squid-bump',
    'mitmproxy',
    ...(ctx.world.sluiceInspects ? (['sluice-inspect'] as const) : []),
  ];
  const res: InspectResult = { ka50: {}, conn32: {}, memory: {}, errors: {}, sluice: ctx.world.sluiceInspects };
  const up: Proxy[] = [];
  for (const n of names) {
    const p = ctx.world.proxies.get(n);
    if (!p) {
      res.errors[n] = 'not available';
      continue;
    }
    try {
      ctx.log(`inspection: starting ${n}`);
      await p.start();
      up.push(p);
    } catch (e) {
      res.errors[n] = failed(e).error;
      ctx.log(`  ${n} failed: ${res.errors[n]}`);
    }
  }
  const mitmCa = ctx.world.mitmCa.cert;
  const targets: (Proxy | null)[] = [null, ...up];
  const label = (p: Proxy | null) => p?.name ?? 'direct';
  const measure = async <T>(p: Proxy | null, body: () => Promise<T>) => {
    const pid = p ? p.proc().pid : null;
    const cpu0 = pid ? cpuSeconds(pid) : 0;
    const s = pid ? rssSampler(pid) : null;
    const r = await body();
    return { ...r, cpuS: pid ? cpuSeconds(pid) - cpu0 : null, rssPeakKiB: s ? s.stop() : null };
  };
  for (let r = 0; r < ctx.rounds; r++) {
    for (let i = 0; i < targets.length; i++) {
      const p = targets[(i + r) % targets.length]!;
      const ca = p ? mitmCa : ctx.world.caFile;
      if (which.has('mitm-ka50')) {
        ctx.log(`inspection round ${r + 1}/${ctx.rounds} ka50 ${label(p)}`);
        try {
          const args = clientArgs(p, ca, { mode: 'inside', concurrency: 50, durationMs: ctx.seconds * 1000 });
          const x = await measure(p, async () => jsonLine<InsideResult>(await runNode('connect-client.js', args)));
          (res.ka50[label(p)] ??= []).push(x);
        } catch (e) {
          res.errors[`ka50 ${label(p)}`] = failed(e).error;
        }
      }
      if (which.has('mitm-conn32')) {
        ctx.log(`inspection round ${r + 1}/${ctx.rounds} conn32 ${label(p)}`);
        try {
          (res.conn32[label(p)] ??= []).push(await connectCycle(p, ca, 32, ctx.seconds));
        } catch (e) {
          res.errors[`conn32 ${label(p)}`] = failed(e).error;
        }
      }
    }
  }
  if (which.has('mitm-memory')) {
    const hosts = ctx.quick ? 200 : MITM_HOSTS;
    for (const p of up) {
      ctx.log(`inspection memory: ${p.name} (${hosts} distinct hosts)`);
      try {
        await restart(p);
        await sleep(1000);
        const idleKiB = rssKiB(p.proc().pid);
        const r = await connectCycle(p, mitmCa, 16, 600, {
          count: hosts,
          names: Array.from({ length: hosts }, (_, i) => mitmHost(i)),
        });
        await sleep(2000);
        res.memory[p.name] = {
          idleKiB,
          withLeavesKiB: rssKiB(p.proc().pid),
          hosts: r.connections,
          errors: r.errors,
          firstError: r.firstError,
        };
      } catch (e) {
        res.memory[p.name] = failed(e);
      }
    }
  }
  for (const p of up) await p.stop();
  return res;
}
