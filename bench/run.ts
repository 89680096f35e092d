// `npm run bench`: Sluice against Squid, tinyproxy and a Node http-proxy peer (and direct to the origin), on
// loopback, in interleaved rounds; medians go to bench/RESULTS.md. Never part of `npm test`.
//
//   npm run bench                       the full run (≈ 15 min on 2 cores)
//   npm run bench -- --quick            one short round, for trying the harness
//   npm run bench -- --only ka50,conn32 some workloads (ka1 ka50 ka500 conn1 conn32 bulk-tunnel bulk-forward
//                                       memory decide reload); --targets sluice,squid some targets
//   npm run bench -- --profile          node --cpu-prof on Sluice under ka50 and conn32 (or --only reload…)
//   npm run bench -- --sluice cli       start `sluice serve` instead of the bench child (reload needs SIGHUP)
//   npm run bench -- --workers 2        the multi-worker experiment: Sluice as 2 processes sharing its port
//                                       (with --compare, Sluice B is the one with workers)
//   npm run bench -- --compare DIR      also run the Sluice compiled in DIR (a copy of dist/) as "Sluice (B)",
//                                       in the same interleaved rounds: an A/B of a change on a noisy machine
//   npm run bench -- --node-flags=--max-semi-space-size=4
//                                       Node flags for Sluice (with --compare: for Sluice B only)
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { runDecideBench, type DecideBench } from './decide-bench.js';
import { cpuSeconds, ensureDir, ensurePackages, isAlive, rssKiB, sleep, versionOf } from './env.js';
import { formatSummary, summarise } from './profile-top.js';
import { renderResults, type Results, WORKLOADS, type Workload } from './results.js';
import { type Proxy, type TargetName, type World, startWorld } from './world.js';
import { bulk, connectCycle, holdTunnels, keepAliveGet } from './workloads.js';

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
const want = (w: Workload | 'memory' | 'decide' | 'reload') => !only || only.has(w);
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
  }
}

/** Restarts a proxy when a workload killed it, so one crash costs one figure, not the run. */
async function ensureUp(p: Proxy): Promise<void> {
  let alive = false;
  try {
    alive = isAlive(p.proc().pid);
  } catch {
    alive = false;
  }
  if (!alive) {
    log(`${p.name} is not running: restarting it`);
    await p.stop();
    await p.start();
  }
}

async function reloadUnderLoad(world: World, durationS: number, running = false): Promise<NonNullable<Results['reload']>> {
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
async function profile(world: World, flags: string[], which: readonly string[]): Promise<string> {
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
    const r = w === 'ka50'
      ? await keepAliveGet(sluice, 50, seconds * 2)
      : w === 'conn32'
        ? await connectCycle(sluice, world.caFile, 32, seconds * 2)
        : w === 'bulk-tunnel'
          ? await bulk(sluice, world.caFile, 'tunnel', 20)
          : await reloadUnderLoad(world, seconds * 2, true);
    await sluice.stop();
    flags.splice(0, flags.length);
    const file = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')).sort()[0];
    if (!file) throw new Error(`no profile written in ${dir}`);
    reports.push(`## ${PROFILED[w]}\n${JSON.stringify(r)}\n${join(dir, file)}\n${formatSummary(summarise(join(dir, file), 25, skipMs))}\n`);
  }
  await sluice.start();
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
    squid: versionOf('squid', ['-v'], /Version (\S+)/),
    tinyproxy: versionOf('tinyproxy', ['-v'], /tinyproxy (\S+)/),
    wrk: versionOf('wrk', ['-v'], /wrk (\S+)/),
    curl: versionOf('curl', ['--version'], /curl (\S+)/),
    openssl: versionOf('openssl', ['version'], /OpenSSL (\S+)/),
    httpProxy: (JSON.parse(readFileSync(join(repo, 'node_modules/http-proxy/package.json'), 'utf8')) as { version: string }).version,
  };
}

async function main(): Promise<void> {
  ensurePackages(log);
  ensureDir(workdir);
  const extraFlags = values['node-flags']?.split(/\s+/).filter(Boolean) ?? [];
  const sluiceFlags: string[] = values.compare ? [] : [...extraFlags];
  const world = await startWorld({
    dir: workdir, sluiceVia, sluiceNodeFlags: sluiceFlags, compareNodeFlags: values.compare ? extraFlags : [],
    compareDist: values.compare ?? null, workers: Number(values.workers ?? 1), log,
  });
  const stopAll = () => void world.close().finally(() => process.exit(130));
  process.once('SIGINT', stopAll);
  process.once('SIGTERM', stopAll);
  try {
    if (values.profile) {
      const text = await profile(world, sluiceFlags, values.only ? [...only!] : ['ka50', 'conn32']);
      writeFileSync(join(workdir, 'profile-top.txt'), text);
      process.stdout.write(text);
      return;
    }
    const results: Results = {
      startedAt: new Date().toISOString(),
      machine: machine(),
      versions: versions(),
      options: { rounds, seconds, tunnels, sluiceVia, quick },
      idleKiB: {},
      runs: {},
      memory: null,
      reload: null,
      decide: null,
    };
    await sleep(1000);
    for (const [name, p] of world.proxies) results.idleKiB[name] = rssKiB(p.proc().pid);

    const all: TargetName[] = ['direct', ...world.proxies.keys()];
    const targets = values.targets ? all.filter((t) => values.targets!.split(',').includes(t)) : all;
    const workloads = WORKLOADS.filter((w) => want(w));
    if (workloads.length) {
      log('warm-up');
      for (const p of world.proxies.values()) await keepAliveGet(p, 10, 1);
    }
    for (let r = 0; r < rounds; r++) {
      for (const w of workloads) {
        for (const t of rotate(targets, r + workloads.indexOf(w))) {
          const proxy = t === 'direct' ? null : world.proxies.get(t)!;
          if (proxy) await ensureUp(proxy);
          log(`round ${r + 1}/${rounds} ${w} ${t}`);
          const cpu0 = proxy ? cpuSeconds(proxy.proc().pid) : 0;
          try {
            const res = await one(world, w, t);
            ((results.runs[w] ??= {})[t] ??= []).push(res);
          } catch (e) {
            log(`  failed: ${(e as Error).message.split('\n')[0]}`);
            ((results.runs[w] ??= {})[t] ??= []).push({ error: String((e as Error).message).slice(0, 300) });
          }
          if (proxy && quick) log(`  cpu ${(cpuSeconds(proxy.proc().pid) - cpu0).toFixed(2)} s`);
        }
      }
    }
    if (want('memory')) results.memory = await memory(world);
    if (want('reload')) {
      log('hot reload 10/s under keep-alive load');
      results.reload = await reloadUnderLoad(world, Math.max(seconds * 2, 5));
    }
    if (want('decide')) {
      log('decide() micro-benchmark');
      results.decide = runDecideBench() satisfies DecideBench;
    }
    writeFileSync(join(workdir, 'results.json'), JSON.stringify(results, null, 2));
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
