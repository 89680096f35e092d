// The containment probe fails closed: only a connection stopped by the network counts as "contained"; a
// connection, a refusal from the far end, or a probe that could not run is 0, never a false 1. The real child
// runs as another UID against loopback servers (root needed for the UID switch; skipped loudly without).
import { type Server, createServer } from 'node:net';
import t from 'tap';
import { captureLogs } from '../helpers/log-capture.js';
import { validateConfig } from '../../settings/config.js';
import {
  type ProbeOutcome,
  PROBE_LOG,
  createContainmentProbe,
  judgeProbe,
  runProbeChild,
} from '../../proxy/ops/containment-probe.js';
import { METRIC, createMetrics } from '../../proxy/ops/metrics.js';
import { otherUidsBlocked } from '../helpers/other-uids.js';

const SPEC = { host: '203.0.113.10', port: 443, uid: 65534, gid: 65534, timeoutMs: 1000 };

t.test('judgeProbe: what counts as closed', async (t) => {
  const rows: [ProbeOutcome, boolean][] = [
    [{ outcome: 'connected' }, false],
    [{ outcome: 'timeout' }, true],
    [{ outcome: 'error', code: 'EHOSTUNREACH' }, true],
    [{ outcome: 'error', code: 'ENETUNREACH' }, true],
    [{ outcome: 'error', code: 'EPERM' }, true],
    [{ outcome: 'error', code: 'EACCES' }, true],
    [{ outcome: 'error', code: 'ECONNREFUSED' }, false],
    [{ outcome: 'error', code: 'ECONNRESET' }, false],
    [{ outcome: 'error', code: 'EINVAL' }, false],
    [{ outcome: 'probe-failed', reason: 'EPERM on spawn' }, false],
  ];
  for (const [o, ok] of rows) t.equal(judgeProbe(o).ok, ok, JSON.stringify(o));
  t.match(judgeProbe({ outcome: 'connected' }).reason, /containment is broken/);
});

t.test('the metric: absent until a probe reports, then 1 or 0', async (t) => {
  const metrics = createMetrics({ version: 't', tunnels: () => 0, defaultMetrics: false });
  const text = () => metrics.registry.metrics();
  t.notMatch(await text(), METRIC.containmentOk, 'no probe configured: no metric (never a false 0 or 1)');
  const outcomes: ProbeOutcome[] = [{ outcome: 'error', code: 'EHOSTUNREACH' }, { outcome: 'connected' }];
  const { logs, logger } = captureLogs();
  const probe = createContainmentProbe({
    spec: SPEC,
    intervalMs: 60_000,
    logger,
    setContainment: metrics.setContainment,
    run: async () => outcomes.shift()!,
  });
  t.match(await probe.check(), { ok: true });
  t.match(await text(), new RegExp(`^${METRIC.containmentOk} 1$`, 'm'));
  t.match(await probe.check(), { ok: false });
  t.match(await text(), new RegExp(`^${METRIC.containmentOk} 0$`, 'm'));
  t.match(
    logs.find((l) => l.msg === PROBE_LOG && l.ok === false),
    { level: 50, outcome: 'connected', 'probe.target': '203.0.113.10:443', 'probe.uid': 65534 },
  );
  metrics.setContainment(null);
  t.notMatch(await text(), METRIC.containmentOk, 'null takes it away again');
});

t.test("fails closed: a throwing probe, or a probe as Sluice's own UID, is 0", async (t) => {
  const seen: (boolean | null)[] = [];
  const { logger } = captureLogs();
  const throwing = createContainmentProbe({
    spec: SPEC,
    intervalMs: 60_000,
    logger,
    setContainment: (ok) => seen.push(ok),
    run: async () => {
      throw new Error('boom');
    },
  });
  t.match(await throwing.check(), { ok: false, reason: 'boom' });
  let ran = false;
  const self = createContainmentProbe({
    spec: SPEC,
    intervalMs: 60_000,
    logger,
    setContainment: (ok) => seen.push(ok),
    ownUid: 65534,
    run: async () => {
      ran = true;
      return { outcome: 'timeout' };
    },
  });
  t.match(await self.check(), { ok: false, reason: /Sluice's own UID/ });
  t.notOk(ran, 'a probe as the exempt UID is not even tried');
  t.same(seen, [false, false]);
});

t.test('one probe at a time; start() probes at once and then on its interval', async (t) => {
  let calls = 0;
  let release: (() => void) | null = null;
  const { logger } = captureLogs();
  const probe = createContainmentProbe({
    spec: SPEC,
    intervalMs: 60_000,
    logger,
    setContainment: () => undefined,
    run: () => {
      calls++;
      return new Promise((r) => {
        release = () => r({ outcome: 'timeout' });
      });
    },
  });
  probe.start();
  const a = probe.check();
  const b = probe.check();
  t.equal(calls, 1, 'overlapping checks share the running probe');
  release!();
  t.equal(await a, await b);
  probe.stop();
});

t.test('config: containment.probe', async (t) => {
  const ok = validateConfig({ containment: { probe: { target: '[2001:db8::10]:443', intervalS: 30 } } });
  t.ok(ok.ok);
  if (ok.ok)
    t.same(ok.config.containment.probe, {
      host: '2001:db8::10',
      port: 443,
      intervalS: 30,
      timeoutMs: 3000,
      uid: 65534,
      gid: 65534,
    });
  const off = validateConfig({});
  t.ok(off.ok && off.config.containment.probe === null, 'off by default');
  for (const [raw, re] of [
    [{ target: 'example.com:443' }, /not an address:port/],
    [{ target: '127.0.0.1:80' }, /is local: it proves nothing/],
    [{ target: '[::1]:80' }, /is local/],
    // Every spelling of a local address: IPv4-mapped loopback, the rest of 127/8 and 0/8, IPv6 unspecified.
    [{ target: '[::ffff:127.0.0.1]:80' }, /is local/],
    [{ target: '[::ffff:7f00:1]:80' }, /is local/],
    [{ target: '127.1.2.3:80' }, /is local/],
    [{ target: '0.1.2.3:80' }, /is local/],
    [{ target: '[::]:80' }, /is local/],
    [{ target: '203.0.113.10:443', uid: 0 }, /must be >= 1/],
    [{ target: '203.0.113.10:443', intervalS: 1 }, /must be >= 5/],
    [{ targets: 'x' }, /unknown key "targets"/],
  ] as const) {
    const r = validateConfig({ containment: { probe: raw } });
    t.notOk(r.ok, JSON.stringify(raw));
    if (!r.ok)
      t.ok(
        r.issues.some((i) => re.test(i.message)),
        r.issues.map((i) => i.message).join(' | '),
      );
  }
});

t.test(
  'the real child, as another UID',
  { skip: process.getuid?.() !== 0 ? 'LOUD: needs root to switch UID; SKIPPED' : false },
  async (t) => {
    const blocked = otherUidsBlocked();
    if (blocked) return void t.fail(blocked);
    const listening: Server = createServer((s) => s.destroy());
    await new Promise<void>((r) => listening.listen(0, '127.0.0.1', r));
    t.teardown(() => listening.close());
    const port = (listening.address() as { port: number }).port;
    const spec = { host: '127.0.0.1', port, uid: 65534, gid: 65534, timeoutMs: 2000 };
    t.same(await runProbeChild(spec), { outcome: 'connected' }, 'an open path is seen as open');
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const closedPort = (closed.address() as { port: number }).port;
    await new Promise((r) => closed.close(r));
    const refused = await runProbeChild({ ...spec, port: closedPort });
    t.same(refused, { outcome: 'error', code: 'ECONNREFUSED' });
    t.notOk(judgeProbe(refused).ok, 'a refusal from the far end is not containment');
    const bad = await runProbeChild({ ...spec, uid: 4294967295 });
    t.equal(bad.outcome, 'probe-failed', 'a UID the kernel refuses: the probe failed, and says so');
  },
);
