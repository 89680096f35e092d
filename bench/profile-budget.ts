// The per-request CPU budget: turns a V8 .cpuprofile (node --cpu-prof, `npm run bench -- --profile`) into the
// time each stage of a request costs. Every sample is charged to one stage by walking its stack from the leaf
// towards the root: the innermost frame of Sluice's own code or of a library it calls decides (so the socket
// write that forward.js triggers is "forward", the one pino triggers is "audit"); a stack with none of those
// is charged by its Node internals (the HTTP server's parser, the response writer, bare socket I/O). Shares
// of the main thread's busy samples become µs per request when given the main thread's CPU time and the
// request count of the same run; the other threads (GC helpers, libuv's pool, the compiler) are one row.
//
//   node dist/bench/profile-budget.js PROFILE [--skip-ms MS] [--requests N --main-cpu S --total-cpu S]
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
  readonly children?: readonly number[];
}

interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

/** The stages, in the order of a request's life. */
export const STAGES = [
  'listener/parse',
  'identity + admission',
  'decide (target parse, policy)',
  'dial/pool',
  'forward: upstream request/response (undici)',
  'forward: response to client',
  'forward (Sluice)',
  'tunnel',
  'audit record + log write',
  'metrics',
  'pipeline glue',
  'socket I/O, unattributed',
  'timers',
  'GC',
  'runtime: native, unattributed',
  'other',
] as const;
export type Stage = (typeof STAGES)[number];

/** A frame of Sluice's own code or of a library: decides the stage. null: look further towards the root. */
function strong(fn: string, url: string): Stage | null {
  if (fn === '(garbage collector)') return 'GC';
  if (!url || url.startsWith('node:')) return null;
  if (
    /\/node_modules\/(pino|pino-std-serializers|sonic-boom|fast-redact|@pinojs|thread-stream|quick-format-unescaped|atomic-sleep|on-exit-leak-free|safe-stable-stringify)\//.test(
      url,
    )
  )
    return 'audit record + log write';
  if (
    url.includes('/node_modules/prom-client/') ||
    url.includes('/node_modules/tdigest/') ||
    url.includes('/node_modules/bintrees/')
  )
    return 'metrics';
  if (url.includes('/node_modules/undici/')) {
    return /\/dispatcher\/(agent|pool|pool-base|dispatcher-base|dispatcher|client)\.js$|\/core\/connect\.js$|\/util\/timers\.js$/.test(
      url,
    )
      ? 'dial/pool'
      : 'forward: upstream request/response (undici)';
  }
  // Sluice, wherever its layout puts the files (flat proxy/ or grouped by what each part owns).
  const file = url.slice(url.lastIndexOf('/') + 1);
  if (url.includes('/dist/firewall/') || url.includes('/firewall/')) {
    if (file === 'codes.js') return null; // isDeny and friends: charged to the caller
    if (file === 'address-guard.js' || file === 'ranges.js') return 'dial/pool';
    if (file === 'destination-class.js') return 'metrics'; // the denied-egress label, asked by the metrics observer
    return 'decide (target parse, policy)';
  }
  if (url.includes('/dist/proxy/')) {
    switch (file) {
      case 'audit.js':
      case 'log-destination.js':
      case 'redact.js':
        return 'audit record + log write';
      case 'metrics.js':
      case 'space-saving.js':
        return 'metrics';
      case 'identity.js':
      case 'password-hash.js':
      case 'run-token.js':
      case 'admission.js':
        return 'identity + admission';
      case 'dialer.js':
      case 'resolver.js':
        return 'dial/pool';
      case 'forward.js':
        return 'forward (Sluice)';
      case 'splice.js':
      case 'tunnel.js':
      case 'tls-client-hello.js':
        return 'tunnel';
      case 'http-listener.js':
      case 'http-render.js':
        return 'listener/parse';
      case 'pipeline.js':
        return 'pipeline glue';
      default:
        return 'other';
    }
  }
  // The floor peer names its functions for the stage they stand for.
  if (url.includes('/bench/floor-peer.js')) {
    if (fn === 'floorResolve' || fn === 'floorDial') return 'dial/pool';
    if (fn.startsWith('floorTunnel')) return 'tunnel';
    return 'forward (Sluice)';
  }
  return null;
}

/** Node internals, used only when no strong frame is on the stack; the higher the rank, the more specific. */
function weak(fn: string, url: string): { stage: Stage; rank: number } | null {
  if (url === 'node:_http_outgoing') return { stage: 'forward: response to client', rank: 3 };
  if (url === 'node:_http_server' || url === 'node:_http_incoming' || url === 'node:_http_common')
    return { stage: 'listener/parse', rank: 2 };
  if (url === 'node:internal/timers' || url === 'node:timers') return { stage: 'timers', rank: 1 };
  if (
    url === 'node:net' ||
    url.startsWith('node:internal/stream') ||
    url === 'node:stream' ||
    url.startsWith('node:internal/streams') ||
    url === 'node:_tls_wrap' ||
    url === 'node:tls'
  )
    return { stage: 'socket I/O, unattributed', rank: 1 };
  if (
    !url &&
    /^(writev|writeBuffer|writeUtf8String|writeLatin1String|writeAsciiString|readStop|readStart|shutdown|close|onStreamRead)$/.test(
      fn,
    )
  )
    return { stage: 'socket I/O, unattributed', rank: 0 };
  return null;
}

export interface StageCost {
  readonly stage: Stage;
  readonly ms: number;
  /** Share of the main thread's busy samples. */
  readonly percent: number;
  /** Top functions (self time) charged to this stage. */
  readonly top: readonly { readonly frame: string; readonly percent: number }[];
}

export interface Budget {
  readonly busyMs: number;
  readonly stages: readonly StageCost[];
}

const short = (url: string) => url.replace(/^file:\/\/.*?\/(dist|node_modules)\//, '$1/');

/** Charges every busy sample between `skipMs` and `untilMs` (from the profile's start) to a stage. */
export function budget(path: string, skipMs = 0, untilMs = Infinity): Budget {
  const p = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const stageOf = new Map<number, Stage | null>();
  const classify = (leaf: number): Stage | null => {
    const cached = stageOf.get(leaf);
    if (cached !== undefined) return cached;
    const n = byId.get(leaf)!;
    const { functionName: fn } = n.callFrame;
    let result: Stage | null;
    if (fn === '(idle)' || fn === '(root)') result = null;
    else if (fn === '(program)') result = 'runtime: native, unattributed';
    else if (fn === '(garbage collector)') result = 'GC';
    else {
      result = null;
      let best: { stage: Stage; rank: number } | null = null;
      for (let id: number | undefined = leaf; id !== undefined; id = parent.get(id)) {
        const f = byId.get(id)!.callFrame;
        const s = strong(f.functionName, f.url);
        if (s) {
          result = s;
          break;
        }
        const w = weak(f.functionName, f.url);
        if (w && (!best || w.rank > best.rank)) best = w;
      }
      result ??= best?.stage ?? 'other';
    }
    stageOf.set(leaf, result);
    return result;
  };
  const ms = new Map<Stage, number>();
  const frames = new Map<Stage, Map<string, number>>();
  let elapsed = 0;
  let busy = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const dt = p.timeDeltas[i] ?? 0;
    elapsed += dt;
    if (elapsed < skipMs * 1000 || elapsed > untilMs * 1000) continue;
    const id = p.samples[i]!;
    const stage = classify(id);
    if (!stage) continue;
    busy += dt;
    ms.set(stage, (ms.get(stage) ?? 0) + dt);
    const f = byId.get(id)!.callFrame;
    const key = `${f.functionName || '(anonymous)'} ${short(f.url)}${f.url ? `:${f.lineNumber + 1}` : ''}`;
    const m = frames.get(stage) ?? new Map<string, number>();
    m.set(key, (m.get(key) ?? 0) + dt);
    frames.set(stage, m);
  }
  const stages = STAGES.filter((s) => ms.has(s)).map((stage) => ({
    stage,
    ms: ms.get(stage)! / 1000,
    percent: (100 * ms.get(stage)!) / Math.max(1, busy),
    top: [...frames.get(stage)!.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 3)
      .map(([frame, us]) => ({ frame, percent: (100 * us) / Math.max(1, busy) })),
  }));
  return { busyMs: busy / 1000, stages };
}

export interface CpuOfRun {
  readonly requests: number;
  /** CPU seconds of the main thread (TID = PID) over the workload. */
  readonly mainCpuS: number;
  /** CPU seconds of the whole process over the workload. */
  readonly totalCpuS: number;
}

export interface BudgetRow {
  readonly stage: string;
  readonly percent: number | null;
  readonly usPerRequest: number;
}

/** Stage shares × the main thread's CPU per request, plus the other threads as one row. */
export function perRequest(b: Budget, run: CpuOfRun): BudgetRow[] {
  const mainUs = (run.mainCpuS * 1e6) / Math.max(1, run.requests);
  const rows: BudgetRow[] = b.stages.map((s) => ({
    stage: s.stage,
    percent: s.percent,
    usPerRequest: (s.percent / 100) * mainUs,
  }));
  rows.push({
    stage: 'other threads (GC helpers, libuv pool, compiler, profiler)',
    percent: null,
    usPerRequest: ((run.totalCpuS - run.mainCpuS) * 1e6) / Math.max(1, run.requests),
  });
  return rows;
}

export function formatBudget(b: Budget, run?: CpuOfRun): string {
  const lines = [`busy ${b.busyMs.toFixed(0)} ms (main thread samples)`];
  const rows = run ? perRequest(b, run) : null;
  for (const s of b.stages) {
    const us = rows?.find((r) => r.stage === s.stage)?.usPerRequest;
    lines.push(
      `  ${s.percent.toFixed(1).padStart(5)}%  ${us === undefined ? '' : `${us.toFixed(1).padStart(6)} µs  `}${s.stage}`,
    );
    for (const f of s.top) lines.push(`           ${f.percent.toFixed(1).padStart(5)}%  ${f.frame}`);
  }
  if (rows) {
    const other = rows[rows.length - 1]!;
    lines.push(`          ${other.usPerRequest.toFixed(1).padStart(6)} µs  ${other.stage}`);
    lines.push(
      `  total ${((run!.totalCpuS * 1e6) / Math.max(1, run!.requests)).toFixed(1)} µs/request over ${run!.requests} requests`,
    );
  }
  return lines.join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      'skip-ms': { type: 'string' },
      requests: { type: 'string' },
      'main-cpu': { type: 'string' },
      'total-cpu': { type: 'string' },
    },
  });
  const run =
    values.requests && values['main-cpu'] && values['total-cpu']
      ? {
          requests: Number(values.requests),
          mainCpuS: Number(values['main-cpu']),
          totalCpuS: Number(values['total-cpu']),
        }
      : undefined;
  for (const path of positionals)
    process.stdout.write(`${path}\n${formatBudget(budget(path, Number(values['skip-ms'] ?? 0)), run)}\n\n`);
}
