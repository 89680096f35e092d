// `npm run bench`: Sluice against Squid, tinyproxy, a Node http-proxy peer and the floor (a bare forwarder on
// Sluice's own stack), and direct to the origin, on loopback, in interleaved rounds; medians go to
// bench/RESULTS.md. Never part of `npm test`.
//
//   npm run bench                       the full run (≈ 30 min on 2 cores)
//   npm run bench -- --quick            one short round, for trying the harness
//   npm run bench -- --only ka50,conn32 some workloads: the interleaved ones (ka1 ka50 ka500 conn1 conn32
//                                       bulk-tunnel bulk-forward int-write https-read) and the studies (budget
//                                       stalls startup smp dns-bomb login-flood mitm-ka50 mitm-conn32
//                                       mitm-memory memory reload decide); --targets sluice,squid some targets
//   npm run bench -- --profile          node --cpu-prof on Sluice under ka50 and conn32 (or --only reload…)
//   npm run bench -- --sluice cli       start `sluice serve` instead of the bench child (reload needs SIGHUP)
//   npm run bench -- --workers 2        the multi-worker experiment: Sluice as 2 processes sharing its port
//                                       (with --compare, Sluice B is the one with workers)
//   npm run bench -- --compare DIR      also run the Sluice compiled in DIR (a copy of dist/) as "Sluice (B)",
//                                       in the same interleaved rounds: an A/B of a change on a noisy machine
//   npm run bench -- --node-flags=--max-semi-space-size=4
//                                       Node flags for Sluice (with --compare: for Sluice B only)
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { runDecideBench, type DecideBench } from './decide-bench.js';
import { runBrokerBench } from './broker-bench.js';
import {
  INSPECTION_PACKAGES,
  cpuSeconds,
  ensureDir,
  ensurePackages,
  isAlive,
  rssKiB,
  sleep,
  versionOf,
} from './env.js';
import { formatBudget, budget } from './profile-budget.js';
import { formatSummary, summarise } from './profile-top.js';
import { STUDIES, renderResults, type Results, type Study, WORKLOADS, type Workload } from './results.js';
import { type Ctx, dnsBomb, inspection, loginFlood, profileBudget, smp, stalls, startup } from './studies.js';
import { type Proxy, type ProxyName, type TargetName, type World, startWorld } from './world.js';
import { bulk, connectCycle, holdTunnels, httpsRead, integrationWrite, keepAliveGet } from './workloads.js';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const log = (s: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${s}\n`);

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    rounds: { type: 'string' },
    seconds: { type: 'string' },
    only: { type: 'string' },
    targets: { type: 'string' },
    compare: { type: 'string' },
    workers: { type: 'string' },
    'node-flags': { type: 'string' },
    tunnels: { type: 'string' },
    profile: { type: 'boolean', default: false },
    sluice: { type: 'string', default: 'child' },
    out: { type: 'string' },
    workdir: { type: 'string' },
  },
});

const quick = values.quick;
const rounds = Number(values.rounds ?? (quick ? 1 : 3));
const seconds = Number(values.seconds ?? (quick ? 2 : 5));
const tunnels = Number(values.tunnels ?? 5000);
const only = values.only ? new Set(values.only.split(',')) : null;
const want = (w: Workload | Study) => !only || only.has(w);
if (only) {
  const known = new Set<string>([...WORKLOADS, ...STUDIES]);
  const unknown = [...only].filter((w) => !known.has(w));
  if (unknown.length && !values.profile)
    throw new Error(`--only: unknown workload(s) ${unknown.join(', ')}; known: ${[...known].join(' ')}`);
}
const sluiceVia = values.sluice === 'cli' ? 'cli' : 'child';
const workdir = values.workdir ?? join(repo, 'bench/.work');
const outFile = values.out ?? join(repo, 'bench/RESULTS.md');

function rotate<T>(xs: readonly T[], by: number): T[] {
  const k = by % xs.length;
  return [...xs.slice(k), ...xs.slice(0, k)];
}

async function one(world: World, w: Workload, target: TargetName): Promise<unknown> {
  const proxy: Proxy | null = target === 'direct' ? null : world.proxies.get(target)!;
  switch (w) {
    case 'ka1':
      return keepAliveGet(proxy, 1, seconds);
    case 'ka50':
      return keepAliveGet(proxy, 50, seconds);
    case 'ka500':
      return keepAliveGet(proxy, 500, seconds);
    case 'conn1':
      return connectCycle(proxy, world.caFile, 1, seconds);
    case 'conn32':
      return connectCycle(proxy, world.caFile, 32, seconds);
    case 'bulk-tunnel':
      return bulk(proxy, world.caFile, 'tunnel', quick ? 2 : 10);
    case 'bulk-forward':
      return bulk(proxy, world.caFile, 'forward', quick ? 2 : 10);
    case 'int-write':
      return integrationWrite(proxy, 50, seconds);
    case 'https-read':
      return httpsRead(proxy, 50, seconds);
  }
}

/** tinyproxy cannot originate TLS for an absolute-form https:// request. */
const skips = (w: Workload, t: TargetName) => (w === 'int-write' || w === 'https-read') && t === 'tinyproxy';

/** Restarts a proxy when a workload killed it, so one crash costs one figure, not the run. */
async function ensureUp(p: Proxy): Promise<void> {
  if (p.failed) throw new Error(`${p.name} could not start: ${p.failed}`);
  let alive = false;
  try {
    alive = isAlive(p.proc().pid);
  } catch {
    alive = false;
  }
  if (!alive) {
    log(`${p.name} is not running: restarting it`);
    await p.stop();
    try {
      await p.start();
    } catch (e) {
      p.failed = (e as Error).message.split('\n')[0]!;
      throw e;
    }
  }
}

async function reloadUnderLoad(
  world: World,
  durationS: number,
  running = false,
): Promise<NonNullable<Results['reload']>> {
  const sluice = world.proxies.get('sluice')!;
  if (!running) {
    await sluice.stop();
    await sluice.start();
  }
  const pid = sluice.proc().pid;
  let sent = 0;
  let flip = false;
  const timer = setInterval(() => {
    flip = !flip;
    world.writeSluiceConfig(flip);
    try {
      process.kill(pid, 'SIGHUP');
      sent++;
    } catch {
      // Counted as missing below: the process is gone.
    }
  }, 100);
  let load;
  try {
    load = await keepAliveGet(sluice, 50, durationS);
  } finally {
    clearInterval(timer);
  }
  world.writeSluiceConfig(false);
  const survived = isAlive(pid);
  await sluice.stop();
  const err = readFileSync(join(world.dir, 'logs/sluice.err'), 'utf8');
  const m = [...err.matchAll(/reloads=(\d+) failed=(\d+)/g)].pop();
  if (!running) await sluice.start();
  return {
    seconds: durationS,
    signalsSent: sent,
    reloadsApplied: m ? Number(m[1]) : null,
    reloadsFailed: m ? Number(m[2]) : null,
    requests: load.requests,
    failedRequests: load.errors,
    rps: load.rps,
    p99Ms: load.p99Ms,
    survived,
  };
}

async function memory(world: World): Promise<Results['memory']> {
  const out: Results['memory'] = {};
  for (const name of world.proxies.keys()) {
    if (values.targets && !values.targets.split(',').includes(name)) continue;
    const p = world.proxies.get(name)!;
    if (p.lazy || p.failed) continue;
    log(`memory: ${name} (fresh start, ${tunnels} idle tunnels)`);
    try {
      await p.stop();
      await p.start();
      await sleep(1000);
      const idleKiB = rssKiB(p.proc().pid);
      // Warm the tunnel path (JIT, pools) so that the per-tunnel figure is the tunnels' own cost.
      await connectCycle(p, world.caFile, 4, 1);
      await sleep(1000);
      const hold = await holdTunnels(p, world.caFile, tunnels);
      out[name] = { idleKiB, ...hold };
    } catch (e) {
      log(`memory ${name}: ${(e as Error).message}`);
      out[name] = { error: String((e as Error).message).slice(0, 200) };
    } finally {
      await p.stop();
      await p.start();
    }
  }
  return out;
}

const PROFILED: Record<string, string> = {
  ka50: 'keep-alive GET, 50 connections',
  conn32: 'CONNECT + TLS + GET, 32 concurrent',
  reload: 'hot reload 10/s under keep-alive load',
  'bulk-tunnel': 'bulk through a CONNECT tunnel (20 × 10 MiB)',
};

/** node --cpu-prof on Sluice, one fresh process per workload; the profile covers the process's whole life,
 * so the summary skips the samples taken before the workload started. */
async function profile(world: World, flags: string[], which: readonly string[], ctx: Ctx): Promise<string> {
  const sluice = world.proxies.get('sluice')!;
  const reports: string[] = [];
  for (const w of which) {
    if (!PROFILED[w]) throw new Error(`--profile knows ${Object.keys(PROFILED).join(', ')}`);
    const dir = ensureDir(join(world.dir, `prof-${w}`));
    for (const f of readdirSync(dir)) rmSync(join(dir, f));
    flags.splice(0, flags.length, '--cpu-prof', `--cpu-prof-dir=${dir}`);
    await sluice.stop();
    const started = Date.now();
    await sluice.start();
    await keepAliveGet(sluice, 10, 1); // warm-up, left out of the summary
    const skipMs = Date.now() - started;
    const r =
      w === 'ka50'
        ? await keepAliveGet(sluice, 50, seconds * 2)
        : w === 'conn32'
          ? await connectCycle(sluice, world.caFile, 32, seconds * 2)
          : w === 'bulk-tunnel'
            ? await bulk(sluice, world.caFile, 'tunnel', 20)
            : await reloadUnderLoad(world, seconds * 2, true);
    await sluice.stop();
    flags.splice(0, flags.length);
    const file = readdirSync(dir)
      .filter((f) => f.endsWith('.cpuprofile'))
      .sort()[0];
    if (!file) throw new Error(`no profile written in ${dir}`);
    reports.push(
      `## ${PROFILED[w]}\n${JSON.stringify(r)}\n${join(dir, file)}\n${formatSummary(summarise(join(dir, file), 25, skipMs))}\n\nstages (bench/profile-budget.ts):\n${formatBudget(budget(join(dir, file), skipMs))}\n`,
    );
  }
  await sluice.start();
  // The per-request budget with CPU per stage, Sluice and the floor in the same run (ka50, conn32).
  for (const w of ['ka50', 'conn32'] as const) {
    if (!which.includes(w)) continue;
    for (const t of ['sluice', 'floor'] as const) {
      const b = await profileBudget(ctx, t, w);
      if ('error' in b) reports.push(`## budget ${t} ${w}: ${b.error}`);
      else
        reports.push(
          `## budget ${t} ${w} (${b.usPerUnit.toFixed(1)} µs per ${w === 'ka50' ? 'request' : 'connection'})\n${b.rows.map((r) => `  ${r.percent === null ? '     ' : `${r.percent.toFixed(1).padStart(5)}%`}  ${r.usPerRequest.toFixed(1).padStart(7)} µs  ${r.stage}`).join('\n')}\n  ${b.profile}\n`,
        );
    }
  }
  return reports.join('\n');
}

function machine(): Results['machine'] {
  const git = (args: string[]) => {
    try {
      return execFileSync('git', args, { cwd: repo }).toString().trim();
    } catch {
      return 'unknown';
    }
  };
  return {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    kernel: readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim(),
    os: /PRETTY_NAME="([^"]+)"/.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? 'unknown',
    commit: `${git(['rev-parse', '--short', 'HEAD'])}${git(['status', '--porcelain']) ? ' (with local changes)' : ''}`,
  };
}

function versions(): Results['versions'] {
  return {
    node: process.version,
    nginx: versionOf('nginx', ['-v'], /nginx\/(\S+)/),
    squid: versionOf(
      existsSync(join(workdir, 'squid-openssl/usr/sbin/squid'))
        ? join(workdir, 'squid-openssl/usr/sbin/squid')
        : 'squid',
      ['-v'],
      /Version (\S+)/,
    ),
    tinyproxy: versionOf('tinyproxy', ['-v'], /tinyproxy (\S+)/),
    wrk: versionOf('wrk', ['-v'], /wrk (\S+)/),
    curl: versionOf('curl', ['--version'], /curl (\S+)/),
    openssl: versionOf('openssl', ['version'], /OpenSSL (\S+)/),
    httpProxy: (
      JSON.parse(readFileSync(join(repo, 'node_modules/http-proxy/package.json'), 'utf8')) as { version: string }
    ).version,
    undici: (JSON.parse(readFileSync(join(repo, 'node_modules/undici/package.json'), 'utf8')) as { version: string })
      .version,
    mitmproxy: versionOf('mitmdump', ['--version'], /Mitmproxy: (\S+)/),
  };
}

async function main(): Promise<void> {
  const inspect = want('mitm-ka50') || want('mitm-conn32') || want('mitm-memory');
  ensurePackages(log, inspect ? INSPECTION_PACKAGES : []);
  ensureDir(workdir);
  process.env.BENCH_LOOP_FILE = join(workdir, 'loop.jsonl');
  const extraFlags = values['node-flags']?.split(/\s+/).filter(Boolean) ?? [];
  const sluiceFlags: string[] = values.compare ? [] : [...extraFlags];
  const flags = new Map<ProxyName, string[]>();
  const lazy = new Set<ProxyName>();
  if (want('smp')) lazy.add('sluice-smp').add('squid-smp');
  if (want('stalls')) lazy.add('sluice-quiet').add('sluice-young');
  if (want('budget')) lazy.add('sluice-quiet');
  if (want('dns-bomb') || want('login-flood')) lazy.add('sluice-hostile');
  if (inspect) lazy.add('squid-bump').add('mitmproxy').add('sluice-inspect');
  const world = await startWorld({
    dir: workdir,
    sluiceVia,
    sluiceNodeFlags: sluiceFlags,
    compareNodeFlags: values.compare ? extraFlags : [],
    compareDist: values.compare ?? null,
    workers: Number(values.workers ?? 1),
    log,
    lazy,
    flagsFor: (name) => flags.get(name) ?? [],
  });
  const ctx: Ctx = { world, seconds, rounds, quick, log, flags };
  const stopAll = () => void world.close().finally(() => process.exit(130));
  process.once('SIGINT', stopAll);
  process.once('SIGTERM', stopAll);
  try {
    if (values.profile) {
      const text = await profile(world, sluiceFlags, values.only ? [...only!] : ['ka50', 'conn32'], ctx);
      writeFileSync(join(workdir, 'profile-top.txt'), text);
      process.stdout.write(text);
      return;
    }
    const results: Results = {
      startedAt: new Date().toISOString(),
      machine: machine(),
      versions: versions(),
      options: { rounds, seconds, tunnels, sluiceVia, quick, only: values.only ?? null },
      idleKiB: {},
      loadAvg: { start: loadavg()[0]!, end: null },
      failedToStart: Object.fromEntries(
        [...world.proxies.values()].filter((p) => p.failed).map((p) => [p.name, p.failed!]),
      ),
      runs: {},
      memory: null,
      reload: null,
      decide: null,
      budget: [],
      stalls: null,
      startup: null,
      smp: null,
      bomb: null,
      flood: null,
      inspection: null,
      broker: null,
    };
    const save = () => writeFileSync(join(workdir, 'results.json'), JSON.stringify(results, null, 2));
    await sleep(1000);
    for (const [name, p] of world.proxies) if (!p.lazy && !p.failed) results.idleKiB[name] = rssKiB(p.proc().pid);

    const all: TargetName[] = ['direct', ...[...world.proxies.values()].filter((p) => !p.lazy).map((p) => p.name)];
    const targets = values.targets ? all.filter((t) => values.targets!.split(',').includes(t)) : all;
    const workloads = WORKLOADS.filter((w) => want(w));
    if (workloads.length) {
      log('warm-up');
      for (const p of world.proxies.values())
        if (!p.lazy && !p.failed) await keepAliveGet(p, 10, 1).catch(() => undefined);
    }
    for (let r = 0; r < rounds; r++) {
      for (const w of workloads) {
        for (const t of rotate(targets, r + workloads.indexOf(w))) {
          if (skips(w, t)) continue;
          const proxy = t === 'direct' ? null : world.proxies.get(t)!;
          log(`round ${r + 1}/${rounds} ${w} ${t}`);
          try {
            if (proxy) await ensureUp(proxy);
            const cpu0 = proxy ? cpuSeconds(proxy.proc().pid) : 0;
            const res = await one(world, w, t);
            ((results.runs[w] ??= {})[t] ??= []).push(res);
            if (proxy && quick) log(`  cpu ${(cpuSeconds(proxy.proc().pid) - cpu0).toFixed(2)} s`);
          } catch (e) {
            log(`  failed: ${(e as Error).message.split('\n')[0]}`);
            ((results.runs[w] ??= {})[t] ??= []).push({ error: String((e as Error).message).slice(0, 300) });
          }
        }
      }
      save();
    }
    // Each study is on its own: one that fails is recorded and the run goes on.
    const study = async (name: Study, body: () => Promise<void>) => {
      if (!want(name)) return;
      log(`— ${name}`);
      try {
        await body();
      } catch (e) {
        log(`${name} failed: ${(e as Error).stack ?? e}`);
        (results.studyErrors ??= {})[name] = String((e as Error).message ?? e).slice(0, 300);
      }
      save();
    };
    await study('budget', async () => {
      // Profiles in interleaved rounds too (each a fresh process); the table takes the median per stage. The
      // same Sluice with no audit lines written (log level warn) says what the log costs, other threads included.
      for (let r = 0; r < rounds; r++) {
        for (const t of rotate(['sluice', 'floor', 'sluice-quiet'] as const, r))
          results.budget.push(await profileBudget(ctx, t, 'ka50'));
        for (const t of rotate(['sluice', 'floor'] as const, r))
          results.budget.push(await profileBudget(ctx, t, 'conn32'));
      }
    });
    await study('stalls', async () => {
      results.stalls = await stalls(ctx);
    });
    await study('startup', async () => {
      results.startup = await startup(ctx, quick ? 3 : 7);
    });
    await study('smp', async () => {
      results.smp = await smp(ctx, 50);
    });
    await study('dns-bomb', async () => {
      results.bomb = await dnsBomb(ctx, quick ? 300 : 3000);
    });
    await study('login-flood', async () => {
      results.flood = await loginFlood(ctx, 200, quick ? 5000 : 10_000);
    });
    if (inspect) {
      await study(want('mitm-ka50') ? 'mitm-ka50' : want('mitm-conn32') ? 'mitm-conn32' : 'mitm-memory', async () => {
        const which = new Set((['mitm-ka50', 'mitm-conn32', 'mitm-memory'] as const).filter((w) => want(w)));
        results.inspection = await inspection(ctx, which);
      });
    }
    await study('memory', async () => {
      results.memory = await memory(world);
    });
    await study('reload', async () => {
      log('hot reload 10/s under keep-alive load');
      results.reload = await reloadUnderLoad(world, Math.max(seconds * 2, 5));
    });
    await study('decide', async () => {
      log('decide() micro-benchmark');
      results.decide = runDecideBench() satisfies DecideBench;
    });
    await study('broker', async () => {
      log('credential broker micro-benchmarks');
      results.broker = runBrokerBench();
    });
    results.loadAvg!.end = loadavg()[0]!;
    save();
    const md = renderResults(results);
    writeFileSync(outFile, md);
    process.stdout.write(md);
    log(`wrote ${outFile} (raw: ${join(workdir, 'results.json')})`);
  } finally {
    await world.close();
  }
}

main().catch((e: unknown) => {
  log(String((e as Error)?.stack ?? e));
  process.exit(1);
});
