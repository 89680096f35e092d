// pathForLog() micro-benchmark: the audit record runs it once per request, so its cost per path is what the
// path redaction adds to the hot path. Median and fastest of batches of calls per shape, in nanoseconds.
//   npm run -s build && npx tsc -p bench/tsconfig.json && node dist/bench/redact-bench.js
import { pathForLog, scrubText } from '../proxy/ops/redact.js';

/**
 * The previous pathForLog (query values dropped, free-text scrub, cap): the baseline the added cost is read
 * against.
 */
function previousPathForLog(path: string, max = 256): string {
  const q = path.indexOf('?');
  let out = path;
  if (q !== -1) {
    const keys = path
      .slice(q + 1)
      .split('&')
      .map((pair) => pair.split('=')[0]!)
      .filter(Boolean);
    out = `${path.slice(0, q)}?${keys.map((k) => `${k}=`).join('&')}`;
  }
  out = scrubText(out);
  return out.length > max ? `${out.slice(0, max)}…` : out;
}

const SHAPES: [string, string, readonly string[]][] = [
  ['short API path', '/repos/owner/name/pulls/123', []],
  ['API path with query', '/search/issues?q=is:open&per_page=100&page=2', []],
  ['registry tarball', '/@types/node/-/node-20.19.43.tgz', []],
  [
    'PyPI wheel with digest dir',
    '/packages/3f/9b/0e6a1f2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d/numpy-1.26.4-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl',
    [],
  ],
  ['Slack webhook', '/services/T0123ABCD/B0456EFGH/Ab3dEf6hIj9kLm2nOp5qRs8t', []],
  ['matrix parameters', '/app;jsessionid=ABC123DEF456;token=x/list', []],
  ['short path, 2 operator patterns', '/repos/owner/name/pulls/123', ['^/internal/hooks/([^/]+)', '^/v1/keys/([^/]+)']],
];

const BATCH = 2000;
const BATCHES = 200;

interface Row {
  name: string;
  medianNs: number;
  minNs: number;
  baselineMedianNs: number;
  baselineMinNs: number;
}

export function runRedactBench(): Row[] {
  const out: Row[] = [];
  let sink = 0;
  for (const [name, path, patterns] of SHAPES) {
    // JIT warm-up
    for (let i = 0; i < BATCH * 5; i++) sink += pathForLog(path, patterns).length + previousPathForLog(path).length;
    // Interleaved batches: the machine's noise hits both alike.
    const now: number[] = [];
    const before: number[] = [];
    for (let b = 0; b < BATCHES; b++) {
      let t0 = process.hrtime.bigint();
      for (let i = 0; i < BATCH; i++) sink += pathForLog(path, patterns).length;
      now.push(Number(process.hrtime.bigint() - t0) / BATCH);
      t0 = process.hrtime.bigint();
      for (let i = 0; i < BATCH; i++) sink += previousPathForLog(path).length;
      before.push(Number(process.hrtime.bigint() - t0) / BATCH);
    }
    now.sort((a, b) => a - b);
    before.sort((a, b) => a - b);
    out.push({
      name,
      medianNs: Math.round(now[now.length >> 1]!),
      minNs: Math.round(now[0]!),
      baselineMedianNs: Math.round(before[before.length >> 1]!),
      baselineMinNs: Math.round(before[0]!),
    });
  }
  if (sink === 42) console.log('');
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(
    `${'shape'.padEnd(34)} ${'pathForLog median / min'.padStart(26)}   ${'previous median / min'.padStart(24)}`,
  );
  for (const r of runRedactBench()) {
    console.log(
      `${r.name.padEnd(34)} ${`${r.medianNs} / ${r.minNs} ns`.padStart(26)}   ${`${r.baselineMedianNs} / ${r.baselineMinNs} ns`.padStart(24)}`,
    );
  }
}
