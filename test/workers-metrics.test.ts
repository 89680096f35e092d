// `sluice serve` with two workers: the denied-egress series on the primary's /metrics. Counters sum across the
// workers; the top denied hosts are merged into one list of at most TOP_HOSTS_N series (not one list per worker),
// with a host denied on both workers counted once, as the sum. Runs the compiled CLI (npm run build first) in
// the lo-only namespace.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { TOP_HOSTS_N } from '../proxy/ops/metrics.js';
import { viaProxy, waitFor } from './helpers/harness.js';
import { isolate } from './helpers/netns.js';
import { parseExposition, series, total } from './helpers/scrape.js';
import { adminCall, logLines, serve } from './helpers/serve.js';
import { buildWorld, worldConfig } from './helpers/world.js';

if (isolate(t, import.meta.url)) {
  const w = await buildWorld(t);
  const dir = mkdtempSync(join(tmpdir(), 'sluice-workers-metrics-'));
  const path = join(dir, 'sluice.yaml');
  writeFileSync(
    path,
    JSON.stringify(worldConfig(w, { listen: { http: '127.0.0.1:0', socks5: null, admin: '127.0.0.1:0' }, workers: 2 })),
  );
  // Round-robin accept: each new connection goes to the next worker, so both see the same host.
  const s = await serve(t, path, { NODE_CLUSTER_SCHED_POLICY: 'rr' });
  const decisions = () => logLines(s).filter((l) => l.msg === 'egress.decision');

  t.test('two workers: denials sum, the top hosts merge into one bounded list', async (t) => {
    const post = (url: string) => viaProxy(s.http, { method: 'POST', url, body: 'x' });
    for (let i = 0; i < 20; i++) await post('http://exfil.test/');
    for (let i = 0; i < 60; i++) await post(`http://n${i}.scan.test/`);
    await post('http://169.254.169.254/');
    const sent = 81;
    await waitFor(() => decisions().length >= sent, 15_000);
    const exfilPids = new Set(
      decisions()
        .filter((d) => d['target.host'] === 'exfil.test')
        .map((d) => d.pid),
    );
    t.equal(exfilPids.size, 2, 'exfil.test was denied by both workers');

    const m = parseExposition((await adminCall(s.admin, 'GET', '/metrics')).body);
    t.equal(total(m, 'sluice_denied_requests_total'), sent, 'the denial counters sum the workers');
    t.equal(total(m, 'sluice_denied_requests_total', { destination: 'metadata' }), 1);
    t.equal(
      total(m, 'sluice_denied_requests_total', { code: 'EGR_DENY_WRITE', destination: 'public', identity: 'agent' }),
      80,
    );
    const top = series(m, 'sluice_denied_hosts_top');
    t.ok(
      top.length > 0 && top.length <= TOP_HOSTS_N,
      `${top.length} series after the merge, at most ${TOP_HOSTS_N} (each worker alone exports up to ${TOP_HOSTS_N})`,
    );
    const exfil = series(m, 'sluice_denied_hosts_top', { host: 'exfil.test' });
    t.same(
      exfil.map((x) => [x.labels.verdict, x.labels.destination, x.value]),
      [['deny', 'public', 20]],
      'one series, the sum of both workers',
    );
    t.equal(top[0]!.labels.host, 'exfil.test', 'the most denied host first');
    t.equal(
      new Set(top.map((x) => `${x.labels.verdict} ${x.labels.destination} ${x.labels.host}`)).size,
      top.length,
      'no host listed twice',
    );
  });
}
