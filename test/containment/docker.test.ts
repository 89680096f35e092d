// The proof, docker topology (CONTRACT §8, §10): a "host" namespace plays the Docker host, with the workload
// network's bridge and a DOCKER-USER chain as Docker makes one; the workload sits behind the bridge in its own
// namespace, and Sluice is dual-homed (the workload bridge, and an egress link to the host). The host forwards
// everything (FORWARD policy ACCEPT, the worst case): only the rules from `sluice firewall render --mode
// docker` stand between the workload and the internet, and between the workload and the host's own services.
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { chmodSync, writeFileSync } from 'node:fs';
import t from 'tap';
import { isolate } from '../helpers/netns.js';
import {
  AUTH,
  CANARY_NAMES,
  INET,
  type Attack,
  type SluiceProcess,
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
import { addDockerHost, addNetns, must, requirePrerequisites, runAsync, tempDir, veth } from './topology.js';
import { repoPath } from '../helpers/repo.js';

const BRIDGE = 'br-sl';
const GW = { v4: '172.30.1.1', v6: 'fd30:1::1' };
const PROXY = { v4: '172.30.1.2', v6: 'fd30:1::2' };
const HOST_PORT = 2222;

if (isolate(t, import.meta.url) && requirePrerequisites(t, ['ping', 'socat'])) {
  const top = t;
  const host = addDockerHost(t, 'dockerhost', BRIDGE, { v4: `${GW.v4}/24`, v6: `${GW.v6}/64` });
  const wl = addNetns(t, 'workload');
  const px = addNetns(t, 'sluice');
  veth(
    { ns: null, dev: 'inet0', v4: `${INET.v4}/24`, v6: `${INET.v6}/64` },
    { ns: host, dev: 'up0', v4: '203.0.113.2/24', v6: '2001:db8:1::2/64' },
  );
  veth({ ns: wl, dev: 'eth0', v4: '172.30.1.10/24', v6: 'fd30:1::10/64' }, { ns: host, dev: 'wl0', master: BRIDGE });
  veth({ ns: px, dev: 'eth0', v4: `${PROXY.v4}/24`, v6: `${PROXY.v6}/64` }, { ns: host, dev: 'px0', master: BRIDGE });
  veth(
    { ns: px, dev: 'eth1', v4: '172.30.2.2/24', v6: 'fd30:2::2/64' },
    { ns: host, dev: 'pxe0', v4: '172.30.2.1/24', v6: 'fd30:2::1/64' },
  );
  must('ip', ['route', 'add', 'default', 'via', GW.v4], wl);
  must('ip', ['-6', 'route', 'add', 'default', 'via', GW.v6], wl);
  must('ip', ['route', 'add', 'default', 'via', '172.30.2.1'], px);
  must('ip', ['-6', 'route', 'add', 'default', 'via', 'fd30:2::1'], px);
  must('ip', ['route', 'add', '172.30.0.0/16', 'via', '203.0.113.2']);
  must('ip', ['-6', 'route', 'add', 'fd30::/16', 'via', '2001:db8:1::2']);
  must('sysctl', ['-qw', 'net.ipv4.ip_unprivileged_port_start=0'], px);
  const brnf = must(
    'sh',
    ['-c', 'cat /proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null || echo absent'],
    host,
  ).trim();
  t.comment(`br_netfilter in the host namespace: bridge-nf-call-iptables=${brnf}`);

  const internet = await buildInternet(t, CANARY_NAMES);

  // The host's own services: a canary listening on every host address.
  let hostHits = 0;
  const hostCanary: ChildProcess = spawn(
    'ip',
    ['netns', 'exec', host, process.execPath, repoPath('test/containment/fixtures/host-canary.mjs'), String(HOST_PORT)],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  t.teardown(() => void hostCanary.kill('SIGKILL'));
  await new Promise<void>((resolve) =>
    hostCanary.stdout!.on('data', (d: Buffer) => {
      for (const line of d.toString().split('\n')) {
        if (line === 'ready') resolve();
        else if (line) hostHits++;
      }
    }),
  );
  const hostAttacks: Attack[] = [];
  for (const h of [GW.v4, '203.0.113.2', '172.30.2.1', GW.v6])
    hostAttacks.push({ kind: 'tcp', host: h, port: HOST_PORT }, { kind: 'udp', host: h, port: HOST_PORT });
  // Sluice's egress leg is not the workload's way out either.
  const lateral: Attack[] = [
    { kind: 'tcp', host: '172.30.2.2', port: 3128 },
    { kind: 'tcp', host: 'fd30:2::2', port: 3128 },
  ];

  // Sluice runs without CAP_SETUID here: its probe must say 0, never a false 1.
  const config = writeProofConfig({ http: '[::]:3128', dns: '[::]:53' });
  const proxied = (h: string, name: string): Attack => ({
    kind: 'proxy',
    host: h,
    port: 3128,
    url: `http://${name}/`,
    auth: AUTH,
  });
  const rules = renderTo({
    mode: 'docker',
    bridge: BRIDGE,
    proxy: PROXY.v4,
    proxy6: PROXY.v6,
    subnet: '172.30.1.0/24',
    subnet6: 'fd30:1::/64',
    'dns-port': '53',
  });
  const selfTest = ['--test-netns', wl, '--probe', `${INET.v4}:9000`, '--probe', `[${INET.v6}]:9000`];

  t.test('without the rules the workload would leak, to the internet and to the host', async (t) => {
    const before = internet.hits();
    const hb = hostHits;
    const out = await attack(wl, [
      { kind: 'tcp', host: INET.v4, port: 9000 },
      { kind: 'tcp', host: INET.v6, port: 9000 },
      { kind: 'tcp', host: GW.v4, port: HOST_PORT },
    ]);
    t.same(
      out.map((o) => o.outcome),
      ['connected', 'connected', 'connected'],
    );
    const raw = await rawAttacks(wl);
    t.equal(raw.ping4!.status, 0, 'ping crosses the host');
    const after = internet.hits();
    for (const k of [
      'tcp9000',
      'kernel.syn4',
      'kernel.syn6',
      'kernel.icmp4',
      'kernel.icmp6',
      'kernel.raw4',
      'kernel.raw6',
      'kernel.ndp6',
    ])
      t.ok(after[k]! > before[k]!, `${k} counts it`);
    t.ok(hostHits > hb, 'the host canary counts it');
  });

  t.test('apply the docker rules on the host', async (t) => {
    const r = await setupSh(host, ['apply', rules, ...selfTest]);
    t.equal(r.status, 0, r.stderr);
    t.match(
      r.stderr,
      /ok {3}Sluice 172\.30\.1\.2:3128 as uid 65534: refused/,
      'the path to Sluice is open (not listening yet)',
    );
    t.match(r.stderr, /self-test passed/);
  });

  let sluice: SluiceProcess;
  t.test('start Sluice (dual-homed, as UID 10001, without CAP_SETUID)', async (t) => {
    sluice = await startSluiceProcess(top, px, config);
    t.pass('listening');
  });

  const allDirect = () => [...directAttacks(), ...hostAttacks, ...lateral];

  t.test('Sluice up: the proxied path works; nothing else leaves the workload network', async (t) => {
    const before = internet.http.connections;
    const ok = await attack(wl, [proxied(PROXY.v4, 'canary4.test'), proxied(PROXY.v6, 'canary6.test')]);
    t.match(ok[0]!.outcome, /^status:200 canary GET \//, 'through Sluice over IPv4, to an IPv4 canary');
    t.match(ok[1]!.outcome, /^status:200 canary GET \//, 'through Sluice over IPv6, to an IPv6 canary');
    t.equal(internet.http.connections - before, 2);

    const quiet = internet.hits();
    const hb = hostHits;
    const out = await attack(wl, allDirect());
    t.same(leaks(out), [], 'no direct attempt connected, got a reply or an answer');
    for (const o of out.filter((o) => o.kind === 'tcp'))
      t.match(
        o.outcome,
        /^error:(EHOSTUNREACH|EACCES|ENETUNREACH)$/,
        `${o.host}:${o.port} refused at once (${o.outcome})`,
      );
    const raw = {
      ...(await rawAttacks(wl)),
      pingHost: await runAsync(
        'setpriv',
        ['--reuid=10002', '--regid=10002', '--clear-groups', 'ping', '-n', '-c', '1', '-W', '1', GW.v4],
        { ns: wl },
      ),
    };
    for (const [name, r] of Object.entries(raw)) {
      if (name.startsWith('ping')) t.not(r.status, 0, `${name}: no echo reply`);
    }
    t.same(internet.hits(), quiet, 'zero hits on every internet canary and counter (raw IP included)');
    t.equal(hostHits, hb, "zero hits on the host's services");
  });

  t.test("the DNS guard on Sluice's address answers REFUSED; the probe without CAP_SETUID says 0", async (t) => {
    const [g4, g6] = await attack(wl, [
      { kind: 'guard', host: PROXY.v4, port: 53 },
      { kind: 'guard', host: PROXY.v6, port: 53 },
    ]);
    t.equal(g4!.outcome, 'reply:5');
    t.equal(g6!.outcome, 'reply:5');
    const line = await waitForLog(sluice, (l) => l.msg === 'containment.probe');
    t.match(line, { ok: false, outcome: 'probe-failed', reason: /CAP_SETUID/ }, 'fails closed, with the reason');
  });

  t.test('kill -9 Sluice: nothing gets out at all; restart: the proxied path is back', async (t) => {
    await sluice.kill9();
    const quiet = internet.hits();
    const hb = hostHits;
    const out = await attack(wl, [proxied(PROXY.v4, 'canary4.test'), ...allDirect()]);
    t.equal(out[0]!.outcome, 'error:ECONNREFUSED', 'the proxy is down');
    t.same(leaks(out), []);
    const raw = await rawAttacks(wl);
    t.not(raw.ping4!.status, 0);
    t.not(raw.ping6!.status, 0);
    t.same(internet.hits(), quiet, 'zero hits');
    t.equal(hostHits, hb);

    sluice = await startSluiceProcess(top, px, config);
    const [back] = await attack(wl, [proxied(PROXY.v4, 'canary4.test')]);
    t.match(back!.outcome, /^status:200/);
    const v = await setupSh(host, ['verify', rules, ...selfTest]);
    t.equal(v.status, 0, v.stderr);
  });

  t.test('a failure injected mid-apply leaves the DROP in place', async (t) => {
    t.equal((await setupSh(host, ['remove'])).status, 0);
    const dir = tempDir('sluice-inject-');
    const failing = join(dir, 'ip6tables-restore');
    writeFileSync(
      failing,
      '#!/bin/sh\nin=$(cat)\ncase "$in" in *"stage=guard"*) printf \'%s\\n\' "$in" | ip6tables-restore "$@" ;; *) echo injected >&2; exit 1 ;; esac\n',
    );
    chmodSync(failing, 0o755);
    const r = await setupSh(host, ['apply', rules, ...selfTest], { IP6TABLES_RESTORE: failing });
    t.equal(r.status, 1, 'apply fails');
    t.equal(
      must('ip6tables', ['-S', 'SLUICE-FORWARD'], host),
      `-N SLUICE-FORWARD\n-A SLUICE-FORWARD -i ${BRIDGE} -j DROP\n-A SLUICE-FORWARD -o ${BRIDGE} -j DROP\n`,
      'IPv6: the guard',
    );
    const quiet = internet.hits();
    const hb = hostHits;
    const out = await attack(wl, allDirect());
    t.same(leaks(out), [], 'still nothing gets out');
    t.same(internet.hits(), quiet);
    t.equal(hostHits, hb);
    t.equal((await setupSh(host, ['apply', rules, ...selfTest])).status, 0, 'a clean re-run completes it');
  });
}
