// Metric names a PromQL expression reads, and the names Sluice's registry actually exposes, so dashboards and
// alerts can be checked against the code instead of against a list someone has to keep in step.
import { createMetrics } from '../../proxy/ops/metrics.js';

const NOT_METRICS = new Set([
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'bool',
  'offset',
  'and',
  'or',
  'unless',
  'inf',
  'nan',
]);

/** Metric names in a PromQL expression (functions, keywords, labels, strings and numbers removed). */
export function metricNames(expr: string): string[] {
  const s = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\boffset\s+\S+/g, ' ');
  const names = new Set<string>();
  for (const m of s.matchAll(/(\d+(?:\.\d+)?(?:e[+-]?\d+)?)|([a-zA-Z_:][a-zA-Z0-9_:]*)/gi)) {
    const name = m[2];
    if (!name || NOT_METRICS.has(name.toLowerCase())) continue;
    if (
      s
        .slice(m.index! + name.length)
        .trimStart()
        .startsWith('(')
    )
      continue; // a function call
    names.add(name);
  }
  return [...names];
}

/** Every series name Sluice's /metrics can show: its own metrics, histogram and summary parts, the default
 * process metrics, and Prometheus's own `up`. */
export async function exportedSeries(): Promise<Set<string>> {
  const m = createMetrics({ version: 'test', tunnels: () => 0, defaultMetrics: true });
  // sluice_containment_ok is registered only once a containment probe reports (absent, not 0, without one).
  m.setContainment(true);
  const out = new Set<string>(['up']);
  for (const metric of await m.registry.getMetricsAsJSON()) {
    out.add(metric.name);
    const type = String(metric.type);
    if (type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) out.add(metric.name + s);
    if (type === 'summary') for (const s of ['_sum', '_count']) out.add(metric.name + s);
  }
  return out;
}
