import t from 'tap';
import { createMetrics, mergeDeniedHosts, METRIC, METRIC_NAMES, TOP_HOSTS_N } from '../../proxy/ops/metrics.js';
import { compilePolicy } from '../../firewall/policy.js';
import { validateConfig } from '../../settings/config.js';
import { parseExposition, series, total } from '../helpers/scrape.js';
import type { AuditRecord } from '../../proxy/ops/audit.js';

const record = (over: Partial<AuditRecord>): AuditRecord => ({
  id: 'x',
  listener: 'http',
  clientAddr: '127.0.0.1',
  startedMs: 0,
  identity: 'agent',
  run: 'run-123',
  method: 'GET',
  targetHost: 'secret-host.example',
  targetPort: 443,
  targetPath: '/p',
  verdict: 'allow',
  code: null,
  rule: 'r',
  wouldDeny: null,
  dialAddress: '93.184.216.34',
  dnsMs: 1,
  connectMs: 1,
  status: 200,
  bytesUp: 10,
  bytesDown: 20,
  durationMs: 5,
  detail: null,
  close: null,
  credential: null,
  tunnel: null,
  inspected: false,
  ...over,
});

t.test('requests are counted with bounded labels only', async (t) => {
  const m = createMetrics({ version: '1.2.3', tunnels: () => 3, defaultMetrics: false });
  m.observe(record({}));
  m.observe(record({ verdict: 'deny', code: 'EGR_DENY_WRITE' }));
  m.observe(record({ verdict: 'deny', code: 'EGR_AUTH_REQUIRED', identity: null }));
  const text = await m.registry.metrics();
  t.match(text, /sluice_requests_total\{listener="http",verdict="allow",code="none",identity="agent"\} 1/);
  t.match(text, /sluice_requests_total\{listener="http",verdict="deny",code="EGR_DENY_WRITE",identity="agent"\} 1/);
  t.match(text, /sluice_requests_total\{listener="http",verdict="deny",code="EGR_AUTH_REQUIRED",identity="none"\} 1/);
  t.match(text, /sluice_bytes_total\{listener="http",direction="down"\} 60/);
  t.match(text, /sluice_active_tunnels 3/);
  t.match(text, /sluice_build_info\{version="1\.2\.3",node="v\d+/);
  // Denied hosts appear in one bounded gauge (the space-saving sketch), and nowhere else.
  const elsewhere = text
    .split('\n')
    .filter((l) => !l.startsWith('sluice_denied_hosts_top{'))
    .join('\n');
  t.notMatch(elsewhere, /secret-host|93\.184|run-123/, 'no hosts, addresses or run ids in labels');
  t.notMatch(text, /93\.184|run-123/, 'addresses and run ids nowhere');
  for (const name of METRIC_NAMES.filter((n) => n !== METRIC.containmentOk))
    t.match(text, new RegExp(`# TYPE ${name} `), name);
});

t.test('open flows by kind; sluice_active_tunnels counts the opaque kinds', async (t) => {
  const m = createMetrics({
    version: '1',
    flows: () => ({ tunnel: 2, upgrade: 1, forward: 5 }),
    opaqueKinds: ['tunnel', 'upgrade'],
    defaultMetrics: false,
  });
  const text = await m.registry.metrics();
  t.match(text, /^sluice_active_flows\{kind="tunnel"\} 2$/m);
  t.match(text, /^sluice_active_flows\{kind="upgrade"\} 1$/m);
  t.match(text, /^sluice_active_flows\{kind="forward"\} 5$/m);
  t.match(text, /^sluice_active_tunnels 3$/m);
});

t.test('report mode: verdict would_deny with the code enforce mode would have given', async (t) => {
  const m = createMetrics({ version: '1', defaultMetrics: false });
  m.observe(
    record({ identity: 'auditor', rule: 'mode.report', wouldDeny: 'EGR_DENY_READ', targetHost: 'docs.example' }),
  );
  m.observe(
    record({
      identity: 'auditor',
      verdict: 'error',
      code: 'EGR_FAIL_CONNECT_REFUSED',
      wouldDeny: 'EGR_DENY_WRITE',
      targetHost: 'docs.example',
    }),
  );
  m.observe(
    record({
      identity: 'auditor',
      verdict: 'deny',
      code: 'EGR_DENY_ADDRESS_PRIVATE',
      wouldDeny: 'EGR_DENY_READ',
      targetHost: 'intra.example',
    }),
  );
  const s = parseExposition(await m.registry.metrics());
  t.equal(total(s, 'sluice_requests_total', { verdict: 'would_deny', code: 'EGR_DENY_READ' }), 1);
  t.equal(total(s, 'sluice_requests_total', { verdict: 'allow' }), 0);
  t.equal(
    total(s, 'sluice_requests_total', { verdict: 'error', code: 'EGR_FAIL_CONNECT_REFUSED' }),
    1,
    'a failure stays a failure',
  );
  t.equal(
    total(s, 'sluice_requests_total', { verdict: 'deny', code: 'EGR_DENY_ADDRESS_PRIVATE' }),
    1,
    'the guard enforces in report mode; the real denial wins',
  );
  t.equal(total(s, 'sluice_request_duration_seconds_count', { verdict: 'would_deny' }), 1);
  t.same(
    series(s, 'sluice_denied_requests_total')
      .map((x) => [x.labels.verdict, x.labels.code, x.labels.destination])
      .sort(),
    [
      ['deny', 'EGR_DENY_ADDRESS_PRIVATE', 'private'],
      ['would_deny', 'EGR_DENY_READ', 'public'],
      ['would_deny', 'EGR_DENY_WRITE', 'public'],
    ],
  );
});

t.test('the destination label follows the current policy (a reload applies at once)', async (t) => {
  const r = validateConfig({
    integrations: { github: { hosts: ['api.github.com'] } },
    registries: ['registry.npmjs.org'],
  });
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  let policy = compilePolicy(r.config);
  const m = createMetrics({ version: '1', defaultMetrics: false, destinations: () => policy });
  m.observe(record({ verdict: 'deny', code: 'EGR_DENY_WRITE', targetHost: 'api.github.com' }));
  m.observe(record({ verdict: 'deny', code: 'EGR_DENY_PORT', targetHost: 'registry.npmjs.org' }));
  policy = compilePolicy({ ...r.config, integrations: {} });
  m.observe(record({ verdict: 'deny', code: 'EGR_DENY_WRITE', targetHost: 'api.github.com' }));
  const s = parseExposition(await m.registry.metrics());
  t.equal(total(s, 'sluice_denied_requests_total', { destination: 'integration', integration: 'github' }), 1);
  t.equal(total(s, 'sluice_denied_requests_total', { destination: 'registry', integration: 'none' }), 1);
  t.equal(
    total(s, 'sluice_denied_requests_total', { destination: 'public', code: 'EGR_DENY_WRITE' }),
    1,
    'after the reload, no longer an integration',
  );
});

t.test('tunnels and upgrades that opened: lifetimes, not latency', async (t) => {
  const m = createMetrics({ version: '1', defaultMetrics: false });
  m.observe(record({ method: 'CONNECT', connectMs: 2, status: null, durationMs: 3_600_000 }));
  m.observe(
    record({
      method: 'CONNECT',
      connectMs: null,
      status: null,
      verdict: 'deny',
      code: 'EGR_DENY_TUNNEL',
      durationMs: 2,
    }),
  );
  m.observe(record({ method: 'GET', status: 101, durationMs: 120_000 }));
  m.observe(record({ method: 'GET', status: 200, durationMs: 40 }));
  const s = parseExposition(await m.registry.metrics());
  t.equal(total(s, 'sluice_tunnel_duration_seconds_count', { kind: 'tunnel' }), 1);
  t.equal(total(s, 'sluice_tunnel_duration_seconds_sum', { kind: 'tunnel' }), 3600);
  t.equal(total(s, 'sluice_tunnel_duration_seconds_count', { kind: 'upgrade' }), 1);
  t.equal(total(s, 'sluice_request_duration_seconds_count'), 2, 'the refused CONNECT and the plain request');
  t.ok(total(s, 'sluice_request_duration_seconds_sum') < 0.1, 'an hour-long tunnel is not in request latency');
});

t.test('top denied hosts: bounded, scrubbed, windowed', async (t) => {
  let now = 0;
  const m = createMetrics({ version: '1', defaultMetrics: false, nowMs: () => now });
  for (let i = 0; i < 30; i++)
    m.observe(record({ verdict: 'deny', code: 'EGR_DENY_WRITE', targetHost: 'paste.example' }));
  for (let i = 0; i < 500; i++)
    m.observe(record({ verdict: 'deny', code: 'EGR_DENY_READ', targetHost: `x${i}.scan.example` }));
  m.observe(
    record({ verdict: 'deny', code: 'EGR_DENY_WRITE', targetHost: 'ghp_abcdefghijklmnopqrstuvwxyz0123.evil.example' }),
  );
  m.observe(record({ verdict: 'allow', targetHost: 'allowed.example' }));
  m.observe(record({ verdict: 'error', code: 'EGR_FAIL_DNS', targetHost: 'failed.example' }));
  m.observe(record({ verdict: 'deny', code: 'EGR_DENY_KILL_SWITCH', targetHost: 'stopped.example' }));
  m.observe(record({ verdict: 'deny', code: 'EGR_LIMIT_RATE', targetHost: 'throttled.example' }));
  let s = parseExposition(await m.registry.metrics());
  const top = series(s, 'sluice_denied_hosts_top');
  t.equal(top.length, TOP_HOSTS_N, 'at most N series');
  t.same(
    top[0],
    {
      name: 'sluice_denied_hosts_top',
      labels: { verdict: 'deny', destination: 'public', host: 'paste.example' },
      value: 30,
    },
    'the heavy hitter first, counted exactly',
  );
  const text = await m.registry.metrics();
  t.notMatch(text, /ghp_abcdefghijklmnopqrstuvwxyz0123/, 'token shapes in a host are scrubbed');
  t.notMatch(text, /allowed\.example|failed\.example/, 'allowed and failed requests are not denied hosts');
  t.notMatch(
    text,
    /stopped\.example|throttled\.example/,
    'nor hosts refused by the kill switch or a limit, which say nothing about the host',
  );
  t.equal(
    total(s, 'sluice_denied_requests_total', { code: 'EGR_DENY_KILL_SWITCH', destination: 'public' }),
    1,
    'they are still counted',
  );
  now = 25 * 60_000;
  s = parseExposition(await m.registry.metrics());
  t.same(series(s, 'sluice_denied_hosts_top'), [], 'twenty minutes on, the list is empty');
  t.equal(total(s, 'sluice_denied_requests_total'), 533, 'the counter is not windowed');
});

t.test('workers: the primary merges the top lists into one bounded list', async (t) => {
  const a = createMetrics({ version: '1', defaultMetrics: false });
  const b = createMetrics({ version: '1', defaultMetrics: false });
  const primary = createMetrics({ version: '1', defaultMetrics: false });
  for (let i = 0; i < 10; i++)
    a.observe(record({ verdict: 'deny', code: 'EGR_DENY_WRITE', targetHost: 'shared.example' }));
  for (let i = 0; i < 7; i++)
    b.observe(record({ verdict: 'deny', code: 'EGR_DENY_WRITE', targetHost: 'shared.example' }));
  for (let i = 0; i < 40; i++)
    a.observe(record({ verdict: 'deny', code: 'EGR_DENY_READ', targetHost: `a${i}.example` }));
  for (let i = 0; i < 40; i++)
    b.observe(record({ verdict: 'deny', code: 'EGR_DENY_READ', targetHost: `b${i}.example` }));
  const parts = [
    await primary.registry.getMetricsAsJSON(),
    await a.registry.getMetricsAsJSON(),
    await b.registry.getMetricsAsJSON(),
  ];
  const merged = mergeDeniedHosts(parts);
  const entries = merged.flat().filter((m) => (m as { name: string }).name === METRIC.deniedHostsTop) as {
    values: { labels: Record<string, string>; value: number }[];
  }[];
  t.equal(entries.length, 1, 'one entry, in the first part');
  t.equal(entries[0]!.values.length, TOP_HOSTS_N, 'N series, not N per worker');
  t.same(
    entries[0]!.values[0],
    { labels: { verdict: 'deny', destination: 'public', host: 'shared.example' }, value: 17 },
    'counts add up across workers',
  );
  t.equal(merged.length, 3, 'the other parts keep everything else');
  t.ok(merged[1]!.some((m) => (m as { name: string }).name === METRIC.deniedRequests));
  t.same(
    mergeDeniedHosts([[{ name: 'other', values: [] }]]),
    [[{ name: 'other', values: [] }]],
    'nothing to merge: unchanged',
  );
});
