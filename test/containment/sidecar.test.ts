// The proof, sidecar topology (CONTRACT §8, §10): the workload and Sluice share one network namespace, as in a
// pod; the rules come from `sluice firewall render --mode sidecar` through iptables/setup.sh. With Sluice up,
// the proxied path reaches the canary and every direct way out (TCP, UDP, DNS, ICMP, raw IP; v4 and v6)
// reaches nothing. After kill -9, nothing at all gets out; after a restart the proxied path works again.
import t from 'tap';
import { isolate } from '../helpers/netns.js';
import {
  AUTH,
  CANARY_NAMES,
  INET,
  SLUICE_UID,
  type SluiceProcess,
  WORKLOAD_UID,
  attack,
  buildInternet,
  directAttacks,
  leaks,
  rawAttacks,
  renderTo,
  setupSh,
  startSluiceProcess,
  waitForLog,
  writeProofConfig,
} from './proof.js';
import { addNetns, must, requirePrerequisites, veth } from './topology.js';

if (isolate(t, import.meta.url) && requirePrerequisites(t, ['ping', 'socat'])) {
  // Sluice outlives the subtest that starts it; its safety-net teardown belongs to the whole file.
  const top = t;
  const pod = addNetns(t, 'pod');
  veth(
    { ns: null, dev: 'inet0', v4: `${INET.v4}/24`, v6: `${INET.v6}/64` },
    { ns: pod, dev: 'eth0', v4: '203.0.113.2/24', v6: '2001:db8:1::2/64' },
  );
  // The DNS guard listens on port 53 as an unprivileged UID, as Docker allows containers by default.
  must('sysctl', ['-qw', 'net.ipv4.ip_unprivileged_port_start=0'], pod);
  const internet = await buildInternet(t, CANARY_NAMES);

  const config = writeProofConfig({ http: '127.0.0.1:3128', dns: '127.0.0.1:53' });
  const proxied = (host: string) => ({
    kind: 'proxy' as const,
    host: '127.0.0.1',
    port: 3128,
    url: `http://${host}/`,
    auth: AUTH,
  });

  t.test('without the rules the pod would leak: the canaries and counters do see a direct attempt', async (t) => {
    const before = internet.hits();
    const out = await attack(pod, [
      { kind: 'tcp', host: INET.v4, port: 9000 },
      { kind: 'tcp', host: INET.v6, port: 9000 },
      { kind: 'udp', host: INET.v4, port: 9000 },
      { kind: 'dns-udp', host: INET.v4, port: 53 },
    ]);
    t.same(
      out.map((o) => o.outcome.split(':')[0]),
      ['connected', 'connected', 'no-reply', 'reply'],
    );
    const raw = await rawAttacks(pod);
    t.equal(raw.ping4!.status, 0, 'ping gets through without the rules');
    t.equal(raw.ping6!.status, 0);
    const after = internet.hits();
    for (const k of [
      'tcp9000',
      'udp4',
      'dns4',
      'kernel.syn4',
      'kernel.syn6',
      'kernel.udp4',
      'kernel.icmp4',
      'kernel.icmp6',
      'kernel.raw4',
      'kernel.raw6',
      'kernel.ndp6',
    ]) {
      t.ok(after[k]! > before[k]!, `${k} counts a direct attempt (so a zero later means something)`);
    }
  });

  t.test('apply the sidecar rules', async (t) => {
    const rules = renderTo({
      mode: 'sidecar',
      uid: String(SLUICE_UID),
      'workload-uid': String(WORKLOAD_UID),
      'dns-port': '53',
    });
    const r = await setupSh(pod, ['apply', rules, '--probe', `${INET.v4}:9000`, '--probe', `[${INET.v6}]:9000`]);
    t.equal(r.status, 0, r.stderr);
    t.match(r.stderr, /self-test passed/);
  });

  let sluice: SluiceProcess;
  t.test('start Sluice as its own UID (10001) in the pod', async (t) => {
    sluice = await startSluiceProcess(top, pod, config, { caps: true });
    t.pass('listening');
  });

  t.test('Sluice up: the proxied path works; every direct way out reaches nothing', async (t) => {
    const before = internet.hits();
    const ok = await attack(pod, [proxied('canary4.test'), proxied('canary6.test')]);
    t.match(ok[0]!.outcome, /^status:200 canary GET \//, 'IPv4 canary through Sluice');
    t.match(ok[1]!.outcome, /^status:200 canary GET \//, 'IPv6 canary through Sluice');
    t.equal(internet.http.connections - before.http!, 2, 'Sluice reached the canary');

    const quiet = internet.hits();
    const out = await attack(pod, directAttacks());
    t.same(leaks(out), [], 'no direct attempt connected, got a reply or an answer');
    for (const o of out.filter((o) => o.kind === 'tcp' || o.kind === 'dns-tcp'))
      t.match(
        o.outcome,
        /^error:(EHOSTUNREACH|EACCES|EPERM|ENETUNREACH)$/,
        `${o.kind} ${o.host}:${o.port} fails at once (${o.outcome})`,
      );
    const raw = await rawAttacks(pod);
    for (const [name, r] of Object.entries(raw))
      t.not(r.status, 0, `${name} fails (${r.stderr.trim().split('\n').at(-1)})`);
    t.same(internet.hits(), quiet, 'zero hits on every canary and counter (NDP made by the workload included)');
  });

  t.test('the DNS guard answers the workload REFUSED at once, and counts it', async (t) => {
    const [r] = await attack(pod, [{ kind: 'guard', host: '127.0.0.1', port: 53 }]);
    t.equal(r!.outcome, 'reply:5', 'RCODE 5 (REFUSED)');
    const [res] = await attack(pod, [{ kind: 'resolver', host: '127.0.0.1', port: 53 }]);
    t.equal(res!.outcome, 'error:EREFUSED', 'a real resolver fails fast, no timeout');
    await waitForLog(sluice, (l) => l.msg === 'dns.guard.query' && l['dns.name'] === 'c2vjcmv0.exfil.example');
  });

  t.test('the containment probe, running as another UID, reports the direct path closed', async (t) => {
    const line = await waitForLog(sluice, (l) => l.msg === 'containment.probe');
    t.match(line, { ok: true, outcome: 'error', 'probe.uid': 65534 }, String(line.reason));
  });

  t.test('kill -9 Sluice: nothing gets out at all', async (t) => {
    await sluice.kill9();
    const quiet = internet.hits();
    const out = await attack(pod, [proxied('canary4.test'), ...directAttacks()]);
    t.match(out[0]!.outcome, /^error:ECONNREFUSED$/, 'the proxy port is closed');
    t.same(leaks(out), [], 'and no direct attempt got anywhere');
    const raw = await rawAttacks(pod);
    for (const [name, r] of Object.entries(raw)) t.not(r.status, 0, `${name} fails`);
    t.same(internet.hits(), quiet, 'zero hits on every canary and counter');
  });

  t.test('restart: the proxied path works again, and verify passes', async (t) => {
    sluice = await startSluiceProcess(top, pod, config, { caps: true });
    const [r] = await attack(pod, [proxied('canary4.test')]);
    t.match(r!.outcome, /^status:200/);
    const v = await setupSh(pod, [
      'verify',
      renderTo({ mode: 'sidecar', 'workload-uid': String(WORKLOAD_UID), 'dns-port': '53' }),
      '--probe',
      `${INET.v4}:9000`,
    ]);
    t.equal(v.status, 0, v.stderr);
    t.match(v.stderr, /ok {3}Sluice 127\.0\.0\.1:3128 as uid 65534: open/);
  });
}
