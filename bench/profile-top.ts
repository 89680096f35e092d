// Reads a V8 .cpuprofile (node --cpu-prof) and lists the frames with the most self time, and the same time
// grouped by where the code lives (Sluice, undici, pino, prom-client, Node internals, GC).
import { readFileSync } from 'node:fs';

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
  readonly hitCount?: number;
}

interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

export interface Frame {
  readonly frame: string;
  readonly selfMs: number;
  readonly percent: number;
}

export interface ProfileSummary {
  readonly totalMs: number;
  /** Total minus (idle): time the process was on a CPU. */
  readonly busyMs: number;
  readonly top: readonly Frame[];
  readonly byArea: readonly Frame[];
}

function area(url: string, fn: string): string {
  if (fn === '(garbage collector)') return 'GC';
  if (fn === '(program)' || fn === '(idle)' || fn === '(root)') return fn;
  if (url.includes('/node_modules/undici/')) return 'undici';
  if (
    url.includes('/node_modules/pino') ||
    url.includes('/node_modules/sonic-boom/') ||
    url.includes('/node_modules/fast-redact/')
  )
    return 'pino';
  if (url.includes('/node_modules/prom-client/')) return 'prom-client';
  if (url.includes('/node_modules/')) return 'other dependencies';
  if (url.includes('/dist/proxy/') || url.includes('/dist/firewall/')) return 'sluice';
  if (url.startsWith('node:') || url === '') return 'node internals and native';
  return 'other';
}

const short = (url: string) => url.replace(/^file:\/\/.*?\/(dist|node_modules)\//, '$1/');

/** `skipMs`: leave out the samples of the first milliseconds of the process (start-up, warm-up). */
export function summarise(path: string, top = 25, skipMs = 0): ProfileSummary {
  const p = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  const areas = new Map<string, number>();
  let totalUs = 0;
  let idleUs = 0;
  let elapsedUs = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const n = byId.get(p.samples[i]!);
    const dt = p.timeDeltas[i] ?? 0;
    elapsedUs += dt;
    if (!n || elapsedUs < skipMs * 1000) continue;
    totalUs += dt;
    const { functionName, url, lineNumber } = n.callFrame;
    if (functionName === '(idle)') {
      idleUs += dt;
      continue;
    }
    const key = `${functionName || '(anonymous)'} ${short(url)}${url ? `:${lineNumber + 1}` : ''}`;
    self.set(key, (self.get(key) ?? 0) + dt);
    const a = area(url, functionName);
    areas.set(a, (areas.get(a) ?? 0) + dt);
  }
  const busyUs = totalUs - idleUs;
  const list = (m: Map<string, number>, n: number): Frame[] =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([frame, us]) => ({ frame, selfMs: us / 1000, percent: (100 * us) / Math.max(1, busyUs) }));
  return { totalMs: totalUs / 1000, busyMs: busyUs / 1000, top: list(self, top), byArea: list(areas, 20) };
}

export function formatSummary(s: ProfileSummary): string {
  const lines = [`busy ${s.busyMs.toFixed(0)} ms of ${s.totalMs.toFixed(0)} ms sampled`, '', 'self time by area:'];
  for (const f of s.byArea) lines.push(`  ${f.percent.toFixed(1).padStart(5)}%  ${f.frame}`);
  lines.push('', 'top frames by self time (% of busy time):');
  for (const f of s.top)
    lines.push(`  ${f.percent.toFixed(1).padStart(5)}%  ${f.selfMs.toFixed(0).padStart(6)} ms  ${f.frame}`);
  return lines.join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const skip = Number(process.env.SKIP_MS ?? 0);
  for (const path of process.argv.slice(2))
    process.stdout.write(`${path}\n${formatSummary(summarise(path, 25, skip))}\n\n`);
}
