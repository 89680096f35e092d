import t from 'tap';
import { createMetrics, METRIC, METRIC_NAMES } from '../../proxy/ops/metrics.js';
import type { AuditRecord } from '../../proxy/ops/audit.js';

const record = (over: Partial<AuditRecord>): AuditRecord => ({
  id: 'x', listener: 'http', clientAddr: '127.0.0.1', startedMs: 0, identity: 'agent', run: 'run-123', method: 'GET',
  targetHost: 'secret-host.example', targetPort: 443, targetPath: '/p',  verdict: 'allow', code: null, rule: 'r', wouldDeny: null,
  dialAddress: '93.184.216.34', dnsMs: 1, connectMs: 1, status: 200, bytesUp: 10, bytesDown: 20, durationMs: 5, detail: null, close: null, credential: null, ...over,
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
  t.notMatch(text, /secret-host|93\.184|run-123/, 'no hosts, addresses or run ids in labels');
  for (const name of METRIC_NAMES.filter((n) => n !== METRIC.containmentOk)) t.match(text, new RegExp(`# TYPE ${name} `), name);
});

t.test('open flows by kind; sluice_active_tunnels counts the opaque kinds', async (t) => {
  const m = createMetrics({ version: '1', flows: () => ({ tunnel: 2, upgrade: 1, forward: 5 }), opaqueKinds: ['tunnel', 'upgrade'], defaultMetrics: false });
  const text = await m.registry.metrics();
  t.match(text, /^sluice_active_flows\{kind="tunnel"\} 2$/m);
  t.match(text, /^sluice_active_flows\{kind="upgrade"\} 1$/m);
  t.match(text, /^sluice_active_flows\{kind="forward"\} 5$/m);
  t.match(text, /^sluice_active_tunnels 3$/m);
});
