// Preload for a Node proxy under test (`node --import …/loop-monitor.js`): records what stalls its event loop
// without touching the proxy's code. Event-loop delay (perf_hooks monitorEventLoopDelay, 1 ms resolution), every
// GC pause by kind (PerformanceObserver 'gc'), and the event loop's utilisation. SIGWINCH (which nothing else
// uses, and which is ignored without this preload) writes the figures since the previous SIGWINCH as one JSON
// line to $BENCH_LOOP_FILE and starts over; the bench sends one before and one after a workload.
import { appendFileSync } from 'node:fs';
import { PerformanceObserver, constants, monitorEventLoopDelay, performance } from 'node:perf_hooks';

const file = process.env.BENCH_LOOP_FILE;
const delay = monitorEventLoopDelay({ resolution: 1 });
delay.enable();

const KIND: Record<number, string> = {
  [constants.NODE_PERFORMANCE_GC_MINOR]: 'scavenge',
  [constants.NODE_PERFORMANCE_GC_MAJOR]: 'mark-compact',
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental-marking',
  [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weak-callbacks',
};

interface GcKind {
  count: number;
  totalMs: number;
  maxMs: number;
  /** Pauses of 1 ms or more. */
  over1ms: number;
}

let gc: Record<string, GcKind> = {};
let elu = performance.eventLoopUtilization();
let since = performance.now();

new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    const kind = KIND[(e as unknown as { detail?: { kind?: number } }).detail?.kind ?? -1] ?? 'other';
    const k = (gc[kind] ??= { count: 0, totalMs: 0, maxMs: 0, over1ms: 0 });
    k.count++;
    k.totalMs += e.duration;
    k.maxMs = Math.max(k.maxMs, e.duration);
    if (e.duration >= 1) k.over1ms++;
  }
}).observe({ entryTypes: ['gc'] });

const ms = (ns: number) => Math.round(ns / 1e4) / 100;

process.on('SIGWINCH', () => {
  const now = performance.now();
  const u = performance.eventLoopUtilization(elu);
  const active: Record<string, number> = {};
  for (const r of process.getActiveResourcesInfo()) active[r] = (active[r] ?? 0) + 1;
  const line = {
    pid: process.pid,
    seconds: (now - since) / 1000,
    loopDelayMs: {
      p50: ms(delay.percentile(50)),
      p90: ms(delay.percentile(90)),
      p99: ms(delay.percentile(99)),
      p999: ms(delay.percentile(99.9)),
      max: ms(delay.max),
      mean: ms(delay.mean),
      samples: delay.count,
    },
    utilisation: Math.round(u.utilization * 1000) / 1000,
    gc,
    activeResources: active,
    heapUsedMiB: Math.round(process.memoryUsage().heapUsed / 2 ** 20),
  };
  if (file) appendFileSync(file, JSON.stringify(line) + '\n');
  delay.reset();
  gc = {};
  elu = performance.eventLoopUtilization();
  since = now;
});
