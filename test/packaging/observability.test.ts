// The Grafana dashboard and the PrometheusRule query only series Sluice exports: every metric name in every
// expression is checked against the registry proxy/ops/metrics.ts builds (METRIC_NAMES, histogram parts, default
// process metrics), so renaming a metric breaks this test instead of a dashboard in production.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { METRIC_NAMES } from '../../proxy/ops/metrics.js';
import { CHART, one, render } from './helm.js';
import { exportedSeries, metricNames } from './promql.js';

/** The parts of a Grafana dashboard these tests read. */
interface Dashboard {
  readonly uid: string;
  readonly panels: readonly {
    readonly id: number;
    readonly title: string;
    readonly description?: string;
    readonly targets?: readonly { readonly refId: string; readonly expr: string }[];
    readonly fieldConfig?: { readonly defaults: { readonly noValue?: string } };
  }[];
  readonly templating: {
    readonly list: readonly {
      readonly type: string;
      readonly name: string;
      readonly query?: string | { readonly query?: string };
    }[];
  };
}

const dashboard = JSON.parse(readFileSync(join(CHART, 'dashboards/sluice.json'), 'utf8')) as Dashboard;
const series = await exportedSeries();

/** A `sluice_*` series must be one of METRIC_NAMES (or a histogram part of one); others must be exported. */
function known(name: string): boolean {
  if (name.startsWith('sluice_')) {
    const base = METRIC_NAMES.includes(name) ? name : name.replace(/_(bucket|sum|count)$/, '');
    return METRIC_NAMES.includes(base) && series.has(name);
  }
  return series.has(name);
}

interface Query {
  readonly where: string;
  readonly expr: string;
}

function dashboardQueries(): Query[] {
  const out: Query[] = [];
  for (const p of dashboard.panels)
    for (const q of p.targets ?? []) out.push({ where: `panel "${p.title}" ${q.refId}`, expr: q.expr });
  for (const v of dashboard.templating.list)
    if (v.type === 'query')
      out.push({
        where: `variable $${v.name}`,
        expr: String((typeof v.query === 'string' ? v.query : v.query?.query) ?? v.query).replace(
          /^label_values\(([^,]+),.*\)$/,
          '$1',
        ),
      });
  return out;
}

t.test('the PromQL metric-name extractor', async (t) => {
  const rows: [string, string[]][] = [
    [
      'sum by (code) (rate(sluice_requests_total{verdict="deny",namespace=~"$namespace"}[$__rate_interval]))',
      ['sluice_requests_total'],
    ],
    [
      'histogram_quantile(0.99, sum by (le) (rate(sluice_dns_lookup_seconds_bucket[5m])))',
      ['sluice_dns_lookup_seconds_bucket'],
    ],
    ['up{job="x"} == 0 or absent(up{job="x"})', ['up']],
    ['sum(rate(a_sum[1m])) / sum(rate(a_count[1m])) > 1e9', ['a_sum', 'a_count']],
    ['max by (namespace, pod) (sluice_kill_switch_engaged) == 1', ['sluice_kill_switch_engaged']],
    ['rate(x_total[5m] offset 1h) > bool 3 unless on(pod) y', ['x_total', 'y']],
  ];
  for (const [expr, names] of rows) t.same(metricNames(expr).sort(), names.sort(), expr);
});

t.test('the registry knows every METRIC_NAMES entry, and their histogram parts', async (t) => {
  for (const n of METRIC_NAMES) t.ok(series.has(n), n);
  t.ok(series.has('sluice_upstream_connect_seconds_bucket'));
  t.ok(series.has('process_cpu_seconds_total') && series.has('nodejs_heap_size_used_bytes'), 'default process metrics');
  t.notOk(known('sluice_requests'), 'a near miss is not a metric');
  t.notOk(known('sluice_active_tunnels_bucket'), 'a gauge has no buckets');
});

t.test('every series the dashboard queries is one Sluice exports', async (t) => {
  const queries = dashboardQueries();
  t.ok(queries.length >= 10);
  for (const q of queries) {
    const names = metricNames(q.expr);
    t.ok(names.length > 0, `${q.where} reads a metric`);
    for (const n of names) t.ok(known(n), `${q.where}: ${n}`);
  }
});

t.test('the dashboard shows what operators watch', async (t) => {
  t.equal(dashboard.uid, 'sluice-egress');
  t.ok(
    dashboard.templating.list.some((v) => v.type === 'datasource' && v.query === 'prometheus'),
    'the Prometheus data source is a variable',
  );
  const exprs = dashboardQueries().map((q) => q.expr.replace(/\s+/g, ' '));
  const has = (re: RegExp, what: string) =>
    t.ok(
      exprs.some((e) => re.test(e)),
      what,
    );
  has(/sum by \(code\) \(rate\(sluice_requests_total\{[^}]*verdict="deny"/, 'denied egress by code');
  has(/sum by \(identity\) \(rate\(sluice_requests_total\{[^}]*verdict="deny"/, 'denied egress by identity');
  has(/sum by \(verdict\) \(rate\(sluice_requests_total/, 'allowed vs denied');
  has(/sluice_active_tunnels/, 'active tunnels');
  has(/histogram_quantile\(0\.99, sum by \(le\) \(rate\(sluice_dns_lookup_seconds_bucket/, 'DNS latency');
  has(
    /histogram_quantile\(0\.99, sum by \(le\) \(rate\(sluice_upstream_connect_seconds_bucket/,
    'upstream connect latency',
  );
  has(/sluice_policy_reloads_total/, 'reloads');
  has(/sluice_kill_switch_engaged/, 'kill switch');
  has(/sluice_containment_ok/, 'containment');
  has(
    /sum by \(destination\) \(rate\(sluice_denied_requests_total\{[^}]*verdict="deny"/,
    'denied egress by destination class',
  );
  has(
    /sum by \(identity, destination, integration, code\) \(increase\(sluice_denied_requests_total/,
    'who tried to reach what',
  );
  has(/topk\(20, sum by \(host, destination, verdict\) \(sluice_denied_hosts_top/, 'top denied hosts');
  has(/sluice_denied_requests_total\{[^}]*verdict="would_deny"/, 'report mode would-be denials');
  has(
    /histogram_quantile\(0\.99, sum by \(le, kind\) \(rate\(sluice_tunnel_duration_seconds_bucket/,
    'tunnel lifetimes',
  );
  has(/sluice_denied_requests_total\{[^}]*destination="metadata"/, 'metadata access attempts');
  has(
    /sum by \(reason\) \(rate\(sluice_inspection_client_handshake_failures_total/,
    'inspection handshake failures by reason',
  );
  has(/sluice_inspection_leaf_mints_total/, 'leaf mints');
  const ids = dashboard.panels.map((p) => p.id);
  t.equal(new Set(ids).size, ids.length, 'panel ids are unique');
});

t.test('every series the PrometheusRule queries is one Sluice exports', async (t) => {
  for (const values of ['ci/gateway-values.yaml', 'ci/sidecar-values.yaml']) {
    const rule = one(render({ values: [values] }), 'PrometheusRule');
    for (const r of rule.spec.groups!.flatMap((g) => g.rules!)) {
      const names = metricNames(String(r.expr));
      t.ok(names.length > 0, `${values} ${r.alert} reads a metric`);
      for (const n of names) t.ok(known(n), `${values} ${r.alert}: ${n}`);
      t.ok(['warning', 'critical'].includes(r.labels!.severity ?? ''), `${r.alert} has a severity`);
      t.ok(r.annotations!.summary && r.annotations!.description, `${r.alert} says what happened and what it means`);
    }
  }
});

t.test('alerts: runbooks, no absent(), one replica down is not no egress', async (t) => {
  const runbooks = readFileSync(join(CHART, '../../docs/runbooks.md'), 'utf8');
  const anchors = new Set([...runbooks.matchAll(/^## (\S+)/gm)].map((m) => m[1]!.toLowerCase()));
  for (const values of ['ci/gateway-values.yaml', 'ci/sidecar-values.yaml']) {
    const rules = one(render({ values: [values] }), 'PrometheusRule').spec.groups!.flatMap((g) => g.rules!);
    for (const r of rules) {
      t.equal(
        r.annotations!.runbook_url,
        `docs/runbooks.md#${r.alert!.toLowerCase()}`,
        `${values} ${r.alert}: runbook_url`,
      );
      t.ok(anchors.has(r.alert!.toLowerCase()), `docs/runbooks.md has a section for ${r.alert}`);
      t.notMatch(r.expr, /absent\(/, `${r.alert}: never absent(), which fires forever where nothing scrapes Sluice`);
    }
    for (const a of [
      'SluiceDNSGuardQueries',
      'SluiceUpstreamErrors',
      'SluiceAuthFailureFlood',
      'SluiceMetadataAccessDenied',
      'SluiceInspectionHandshakeFailures',
    ])
      t.ok(
        rules.some((r) => r.alert === a),
        `${values}: ${a}`,
      );
  }
  const gw = one(render({ values: ['ci/gateway-values.yaml'] }), 'PrometheusRule').spec.groups![0]!.rules!;
  const down = gw.find((r) => r.alert === 'SluiceDown')!;
  t.match(down.expr, /^sum by \(namespace, job\) \(up\{[^}]*\}\) == 0$/, 'SluiceDown: every replica down');
  t.equal(down.labels!.severity, 'critical');
  const replica = gw.find((r) => r.alert === 'SluiceReplicaDown')!;
  t.equal(replica.labels!.severity, 'warning', 'one replica down is a warning, not "no egress"');
  t.match(replica.expr, /> 0\)$/, 'only while another replica is up');
  const base = render({
    values: ['ci/gateway-values.yaml'],
    set: ['metrics.prometheusRule.runbookBaseUrl=https://git.example.com/sluice/docs/runbooks.md'],
  });
  t.equal(
    one(base, 'PrometheusRule').spec.groups![0]!.rules![0]!.annotations!.runbook_url,
    'https://git.example.com/sluice/docs/runbooks.md#sluicedeniedegressspike',
  );
});

t.test('the Containment panel says why it is empty in gateway mode', async (t) => {
  const panel = dashboard.panels.find((p) => p.title === 'Containment')!;
  t.match(panel.description, /Gateway mode: no value, by design/);
  t.match(panel.description, /helm test/);
  t.match(panel.fieldConfig!.defaults.noValue, /gateway: see helm test/);
});

t.test('the label values the new queries select are ones Sluice emits', async (t) => {
  const { DESTINATION_CLASSES } = await import('../../firewall/destination-class.js');
  const exprs = [
    ...dashboardQueries().map((q) => q.expr),
    ...one(render({ values: ['ci/gateway-values.yaml'] }), 'PrometheusRule')
      .spec.groups!.flatMap((g) => g.rules!)
      .map((r) => String(r.expr)),
  ];
  for (const e of exprs) {
    for (const m of e.matchAll(/destination="([^"]+)"/g))
      t.ok((DESTINATION_CLASSES as readonly string[]).includes(m[1]!), `destination="${m[1]}"`);
    for (const m of e.matchAll(/verdict="([^"]+)"/g))
      t.ok(['allow', 'deny', 'error', 'would_deny'].includes(m[1]!), `verdict="${m[1]}"`);
  }
});
