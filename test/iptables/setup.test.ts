// iptables/setup.sh against real iptables (both of Debian's backends), in namespaces this test builds:
// a "pod" namespace joined by a veth pair to the test's own lo-only namespace, which holds a canary server.
// apply is atomic and idempotent, leaves others' rules alone, self-tests; a failure injected mid-apply
// leaves the DROP in place; remove restores exactly the state before apply. The chart's init container
// command runs with exactly the capabilities the chart gives it; --no-ipv6 proves IPv6 off; the backend is
// detected.
import { chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { type Server, createServer } from 'node:net';
import { join } from 'node:path';
import type { IContainer, ISecurityContext } from 'kubernetes-models/v1';
import t, { type Test } from 'tap';
import { type RawFirewallOptions, parseFirewallOptions, renderAll } from '../../iptables/render.js';
import { addNetns, must, requirePrerequisites, run, runAsync, saved, tempDir, veth } from '../containment/topology.js';
import { CLI_JS } from '../helpers/cli.js';
import { isolate } from '../helpers/netns.js';
import { named, one, podSpec, render } from '../packaging/helm.js';
import { repoPath } from '../helpers/repo.js';

const SETUP = repoPath('iptables/setup.sh');
const INET4 = '203.0.113.1';
const INET6 = '2001:db8:5::1';
const PROBES = ['--probe', `${INET4}:80`, '--probe', `[${INET6}]:80`];

/** `sluice firewall render … > FILE`, in-process. */
function renderTo(raw: RawFirewallOptions): string {
  const r = parseFirewallOptions(raw);
  if (!r.ok) throw new Error(r.errors.join('; '));
  const file = join(tempDir('sluice-rules-'), 'sluice.rules');
  writeFileSync(file, renderAll(r.options));
  return file;
}

const setup = (ns: string, args: string[], env: Record<string, string> = {}) =>
  runAsync(SETUP, args, { ns, env: { ...process.env, ...env } });
const connectAs = (ns: string, uid: number, host: string, port: number) =>
  runAsync(
    'timeout',
    [
      '3',
      'setpriv',
      `--reuid=${uid}`,
      `--regid=${uid}`,
      '--clear-groups',
      'bash',
      '-c',
      `exec 3<>/dev/tcp/${host}/${port}`,
    ],
    { ns },
  );

if (isolate(t, import.meta.url) && requirePrerequisites(t, ['socat', 'ss'])) {
  // The canary: what any direct connection from the pod would reach. Counted, never expected to move.
  let hits = 0;
  const canary: Server = createServer((s) => {
    hits++;
    s.destroy();
  });
  await new Promise<void>((r) => canary.listen(80, '::', r));
  t.teardown(() => canary.close());
  // The chart's command probes the pod's nameservers on TCP 53: a canary there too, so "blocked" means blocked.
  const dnsCanary: Server = createServer((s) => {
    hits++;
    s.destroy();
  });
  await new Promise<void>((r) => dnsCanary.listen(53, '::', r));
  t.teardown(() => dnsCanary.close());
  const sidecar = renderTo({ mode: 'sidecar', 'workload-uid': '1000' });

  let n = 0;
  const pod = (t: Test) => {
    const ns = addNetns(t, `pod${n}`);
    // Link n: 198.51.100.4n/30 and 2001:db8:6:n::/64; the canary sits behind it on the test's loopback.
    veth(
      { ns: null, dev: `vi${n}`, v4: `198.51.100.${4 * n + 1}/30`, v6: `2001:db8:6:${n}::1/64` },
      { ns, dev: `vp${n}`, v4: `198.51.100.${4 * n + 2}/30`, v6: `2001:db8:6:${n}::2/64` },
    );
    must('ip', ['route', 'add', 'default', 'via', `198.51.100.${4 * n + 1}`], ns);
    must('ip', ['-6', 'route', 'add', 'default', 'via', `2001:db8:6:${n}::1`], ns);
    n++;
    return ns;
  };
  must('ip', ['addr', 'add', `${INET4}/32`, 'dev', 'lo']);
  must('ip', ['-6', 'addr', 'add', `${INET6}/128`, 'dev', 'lo']);

  const backends = ['nft', 'legacy'].filter(
    (b) => run('sh', ['-c', `command -v iptables-${b}-restore && command -v ip6tables-${b}-restore`]).status === 0,
  );
  for (const backend of backends) {
    t.test(`apply, again, verify, remove (${backend})`, async (t) => {
      const ns = pod(t);
      const env = { IPTABLES_BACKEND: backend };
      const tool = (f: 4 | 6) => `${f === 4 ? 'iptables' : 'ip6tables'}-${backend}`;
      // Someone else's rules, which Sluice must leave exactly as they are.
      must(
        tool(4),
        ['-A', 'OUTPUT', '-p', 'udp', '--dport', '5353', '-j', 'ACCEPT', '-m', 'comment', '--comment', 'not sluice'],
        ns,
      );
      must(tool(6), ['-N', 'OTHER'], ns);
      must(tool(6), ['-A', 'OTHER', '-j', 'RETURN'], ns);
      const before = [saved(4, ns, backend), saved(6, ns, backend)];

      const control = await setup(ns, ['apply', renderTo({ mode: 'sidecar', ports: '3128' }), ...PROBES], env);
      t.equal(control.status, 0, 'sanity: apply works');
      await setup(ns, ['remove'], env);
      t.same([saved(4, ns, backend), saved(6, ns, backend)], before);
      const before4 = hits;
      const open = await connectAs(ns, 65534, INET4, 80);
      t.equal(open.status, 0, 'without the rules, the pod reaches the canary directly (the topology would leak)');
      t.equal(hits, before4 + 1, 'and the canary counts it');
      const baseline = hits;

      const first = await setup(ns, ['apply', sidecar, ...PROBES], env);
      t.equal(first.status, 0, first.stderr);
      t.match(first.stderr, /ok {3}direct 203\.0\.113\.1:80 as uid 65534: blocked/);
      t.match(first.stderr, /ok {3}direct \[2001:db8:5::1\]:80 as uid 65534: blocked/);
      t.match(
        first.stderr,
        /ok {3}Sluice 127\.0\.0\.1:3128 as uid 65534: refused/,
        'the path to Sluice is open (nothing listens yet)',
      );
      t.equal(hits, baseline, 'the self-test reached nothing');
      const once = [saved(4, ns, backend), saved(6, ns, backend)];
      const second = await setup(ns, ['apply', sidecar, ...PROBES], env);
      t.equal(second.status, 0, second.stderr);
      t.same(
        [saved(4, ns, backend), saved(6, ns, backend)],
        once,
        'apply twice: identical iptables-save and ip6tables-save',
      );
      t.match(
        once[0],
        /-A OUTPUT -j SLUICE-OUTPUT\n-A OUTPUT -p udp .*not sluice/,
        'the hook is first; the other rule is kept',
      );
      t.match(once[1], /:OTHER - \[0:0\][\s\S]*-A OTHER -j RETURN/, 'the other chain is kept');

      const verifyDown = await setup(ns, ['verify', sidecar, ...PROBES], env);
      t.equal(verifyDown.status, 3, 'verify requires Sluice to be listening');
      const listener = run(
        'sh',
        [
          '-c',
          'setpriv --reuid=10001 --regid=10001 --clear-groups socat TCP4-LISTEN:3128,bind=127.0.0.1,fork,reuseaddr SYSTEM:true >/dev/null 2>&1 & echo $!',
        ],
        { ns },
      );
      t.teardown(() => void run('kill', [listener.stdout.trim()]));
      await waitListening(ns, 3128);
      const verifyUp = await setup(ns, ['verify', sidecar, ...PROBES], env);
      t.equal(verifyUp.status, 0, verifyUp.stderr);
      t.match(verifyUp.stderr, /ok {3}Sluice 127\.0\.0\.1:3128 as uid 65534: open/);

      // Someone inserts an ACCEPT above Sluice's hook: verify notices, apply puts the hook first again.
      must(tool(4), ['-I', 'OUTPUT', '1', '-j', 'ACCEPT'], ns);
      t.equal((await setup(ns, ['verify', sidecar, ...PROBES], env)).status, 3, 'verify: the hook is no longer first');
      t.equal((await setup(ns, ['apply', sidecar, ...PROBES], env)).status, 0);
      t.match(saved(4, ns, backend), /-A OUTPUT -j SLUICE-OUTPUT\n-A OUTPUT -j ACCEPT\n/);
      must(tool(4), ['-D', 'OUTPUT', '-j', 'ACCEPT'], ns);

      const removed = await setup(ns, ['remove'], env);
      t.equal(removed.status, 0, removed.stderr);
      t.same([saved(4, ns, backend), saved(6, ns, backend)], before, 'remove takes out exactly what apply added');
      t.equal((await setup(ns, ['remove'], env)).status, 0, 'remove twice is fine');
      t.equal(hits, baseline);
    });
  }

  /** The capability sets a container runtime gives a root container with this securityContext: bounding =
   * effective = permitted = the added capabilities (after drop ALL), inheritable and ambient empty (containerd
   * and CRI-O since CVE-2022-24769), no_new_privs with allowPrivilegeEscalation: false. */
  const runtimeCaps = (sc: ISecurityContext | undefined): string[] => {
    if (!sc) throw new Error('expected a securityContext');
    if (sc.privileged) throw new Error('a privileged container has every capability');
    if (!(sc.capabilities?.drop ?? []).includes('ALL')) throw new Error('expected capabilities.drop: [ALL]');
    const add: string[] = sc.capabilities?.add ?? [];
    const caps = ['-all', ...add.map((c) => `+${c.toLowerCase()}`)].join(',');
    return [
      'setpriv',
      `--bounding-set=${caps}`,
      '--inh-caps=-all',
      ...(sc.allowPrivilegeEscalation === false ? ['--no-new-privs'] : []),
    ];
  };

  /** The chart's sidecar init container, rendered by helm. */
  const chartInit = (set: string[] = []) => {
    const ms = render({ values: ['ci/sidecar-values.yaml'], set });
    const pod = podSpec(one(ms, 'Deployment', 'egress-sluice-example'));
    const c = named(pod.initContainers, 'sluice-iptables');
    return { container: c, config: one(ms, 'ConfigMap', 'egress-sluice').data!['sluice.yaml']! };
  };

  /** Runs the init container's command as the runtime would: its own capability set, UID 0, its env; only
   * the image's paths are mapped to the repository (each exactly once, so the command stays the chart's). */
  const runInit = async (t: Test, ns: string, c: IContainer, config: string) => {
    const dir = tempDir('sluice-init-');
    writeFileSync(join(dir, 'sluice.yaml'), config);
    mkdirSync(join(dir, 'bin'));
    writeFileSync(join(dir, 'bin/sluice'), `#!/bin/sh\nexec ${process.execPath} ${CLI_JS} "$@"\n`);
    chmodSync(join(dir, 'bin/sluice'), 0o755);
    chmodSync(dir, 0o755);
    const map: [string, string][] = [
      ['/etc/sluice/sluice.yaml', join(dir, 'sluice.yaml')],
      ['/app/iptables/setup.sh', SETUP],
    ];
    const command = c.command!.map((arg) => {
      for (const [from, to] of map) arg = arg.split(from).join(to);
      return arg;
    });
    for (const [from] of map) t.equal(c.command!.join(' ').split(from).length, 2, `the command names ${from} once`);
    t.equal(c.securityContext!.runAsUser, 0);
    const env: Record<string, string | undefined> = { PATH: `${join(dir, 'bin')}:${process.env.PATH}` };
    for (const e of c.env ?? []) env[e.name] = e.value;
    return runAsync(runtimeCaps(c.securityContext)[0]!, [...runtimeCaps(c.securityContext).slice(1), ...command], {
      ns,
      env,
    });
  };

  /** ip netns exec mounts /etc/netns/NAME/resolv.conf over /etc/resolv.conf: the pod's nameservers. */
  const podResolvConf = (t: Test, ns: string) => {
    const dir = `/etc/netns/${ns}`;
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'resolv.conf'), `nameserver ${INET4}\nnameserver ${INET6}\n`);
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  };

  t.test(
    "the chart's init container command, with exactly the chart's capabilities (NET_ADMIN, NET_RAW)",
    async (t) => {
      const ns = pod(t);
      podResolvConf(t, ns);
      const { container, config } = chartInit();
      t.same(container.securityContext!.capabilities, { drop: ['ALL'], add: ['NET_ADMIN', 'NET_RAW'] });
      const caps = await runAsync(
        'setpriv',
        [...runtimeCaps(container.securityContext).slice(1), 'grep', '^Cap', '/proc/self/status'],
        { ns },
      );
      t.match(
        caps.stdout,
        /CapEff:\s+0000000000003000/,
        'the probe really runs with CAP_NET_ADMIN and CAP_NET_RAW only',
      );
      const before = hits;
      const r = await runInit(t, ns, container, config);
      t.equal(r.status, 0, r.stderr);
      t.match(
        r.stderr,
        /ok {3}direct 203\.0\.113\.1:53 as uid 0: blocked \((No route to host|Permission denied)\)/,
        'blocked by the REJECT, as root',
      );
      t.match(r.stderr, /ok {3}direct \[2001:db8:5::1\]:53 as uid 0: blocked/);
      t.match(r.stderr, /ok {3}Sluice 127\.0\.0\.1:3128 as uid 0: refused/);
      t.match(r.stderr, /self-test passed/);
      t.equal(hits, before, 'the self-test reached nothing');
      t.match(must('iptables', ['-S', 'OUTPUT'], ns), /-A OUTPUT -j SLUICE-OUTPUT/);
      t.equal((await setup(ns, ['remove'])).status, 0);
    },
  );

  t.test(
    'a UID switch the capabilities do not allow is refused before any change, never read as "blocked"',
    async (t) => {
      const ns = pod(t);
      const { container } = chartInit();
      const before = [saved(4, ns), saved(6, ns)];
      const r = await runAsync(
        'setpriv',
        [...runtimeCaps(container.securityContext).slice(1), SETUP, 'apply', sidecar, '--test-uid', '65534', ...PROBES],
        { ns },
      );
      t.equal(r.status, 2, r.stderr);
      t.match(r.stderr, /cannot switch to --test-uid 65534 .*CAP_SETUID and CAP_SETGID/);
      t.notMatch(r.stderr, /blocked/);
      t.same([saved(4, ns), saved(6, ns)], before, 'nothing changed');
    },
  );

  t.test('a probe that never ran (setpriv or exec failing) is a failure, not "blocked"', async (t) => {
    const ns = pod(t);
    const dir = tempDir('sluice-setpriv-');
    // Passes the up-front check (`… true`), then fails like setpriv without CAP_SETUID.
    writeFileSync(
      join(dir, 'setpriv'),
      '#!/bin/sh\nfor a; do last=$a; done\n[ "$last" = true ] && exit 0\necho "setpriv: setresuid failed: Operation not permitted" >&2\nexit 127\n',
    );
    chmodSync(join(dir, 'setpriv'), 0o755);
    const r = await setup(ns, ['apply', sidecar, ...PROBES], { PATH: `${dir}:${process.env.PATH}` });
    t.equal(r.status, 3, r.stderr);
    t.match(
      r.stderr,
      /FAIL direct 203\.0\.113\.1:80 as uid 65534: error \(the probe did not run: setpriv: setresuid failed: Operation not permitted; exit 127\)/,
    );
    t.notMatch(r.stderr, /ok {3}direct/);
    t.equal((await setup(ns, ['remove'])).status, 0);
  });

  t.test('--no-ipv6: only where IPv6 is really off; never a silent fallback', async (t) => {
    const ns = pod(t);
    const noIp6 = { IP6TABLES: '/nonexistent/ip6tables', IP6TABLES_RESTORE: '/nonexistent/ip6tables-restore' };
    const before = [saved(4, ns), saved(6, ns)];
    const missing = await setup(ns, ['apply', sidecar, ...PROBES], noIp6);
    t.equal(missing.status, 2, 'no ip6tables: the pod fails');
    t.match(missing.stderr, /ip6tables not found .*pass --no-ipv6 \(chart: firewall\.ipv6: false\)/);
    const up = await setup(ns, ['apply', sidecar, '--no-ipv6', ...PROBES], noIp6);
    t.equal(up.status, 2, '--no-ipv6 while IPv6 is up is refused');
    t.match(up.stderr, /--no-ipv6, but IPv6 is up on: .*vp\d/);
    t.same([saved(4, ns), saved(6, ns)], before, 'nothing changed');

    for (const k of ['all', 'default']) must('sysctl', ['-qw', `net.ipv6.conf.${k}.disable_ipv6=1`], ns);
    const off = await setup(ns, ['apply', sidecar, '--no-ipv6', ...PROBES], noIp6);
    t.equal(off.status, 0, off.stderr);
    t.match(off.stderr, /applied \(sidecar mode, IPv4 only: --no-ipv6\)/);
    t.match(off.stderr, /ok {3}IPv6 is off: no interface has an IPv6 address/);
    t.match(off.stderr, /ok {3}direct \[2001:db8:5::1\]:80 as uid 65534: blocked/);
    t.equal(saved(6, ns), before[1], 'ip6tables untouched');
    const chart = chartInit(['firewall.ipv6=false']).container;
    t.match(
      chart.command!.join(' '),
      /setup\.sh apply \/tmp\/sluice\.rules --test-uid current --no-ipv6$/,
      'the chart value becomes the flag',
    );
    t.equal((await setup(ns, ['remove', '--no-ipv6'], noIp6)).status, 0);
  });

  t.test("IPTABLES_BACKEND=auto finds Docker's DOCKER-USER in whichever backend holds it", async (t) => {
    const docker = renderTo({ mode: 'docker', bridge: 'br-x', proxy: '172.30.0.2' });
    for (const backend of backends) {
      const ns = pod(t);
      for (const f of ['iptables', 'ip6tables']) must(`${f}-${backend}`, ['-N', 'DOCKER-USER'], ns);
      const r = await setup(ns, ['apply', docker], { IPTABLES_BACKEND: 'auto' });
      t.equal(r.status, 0, r.stderr);
      t.match(r.stderr, new RegExp(`iptables backend: ${backend} \\(IPTABLES_BACKEND=auto\\)`));
      t.match(
        must(`iptables-${backend}`, ['-S', 'DOCKER-USER'], ns),
        /-A DOCKER-USER -j SLUICE-FORWARD/,
        `the rules went into ${backend}`,
      );
      t.equal((await setup(ns, ['remove'], { IPTABLES_BACKEND: 'auto' })).status, 0);
    }
    const bare = pod(t);
    const none = await setup(bare, ['apply', docker], { IPTABLES_BACKEND: 'auto' });
    t.equal(none.status, 2);
    t.match(none.stderr, /neither iptables-nft nor iptables-legacy shows Docker's DOCKER-USER chain/);
  });

  t.test('a failure mid-apply leaves the DROP in place', async (t) => {
    const ns = pod(t);
    const dir = tempDir('sluice-inject-');
    // A restore tool that applies guards but fails on the full rules: the failure the guard exists for.
    const failing = (tool: string) => {
      const path = join(dir, `failing-${tool}`);
      writeFileSync(
        path,
        `#!/bin/sh\nin=$(cat)\ncase "$in" in *"stage=guard"*) printf '%s\\n' "$in" | ${tool} "$@" ;; *) echo injected failure >&2; exit 1 ;; esac\n`,
      );
      chmodSync(path, 0o755);
      return path;
    };
    const v6fails = await setup(ns, ['apply', sidecar, ...PROBES], { IP6TABLES_RESTORE: failing('ip6tables-restore') });
    t.equal(v6fails.status, 1, 'apply reports the failure');
    t.match(v6fails.stderr, /ipv6: applying the rules failed; the guard \(DROP\) stays in place/);
    t.match(
      must('ip6tables', ['-S', 'SLUICE-OUTPUT'], ns),
      /^-N SLUICE-OUTPUT\n-A SLUICE-OUTPUT -j DROP\n$/,
      'IPv6: the guard is in place',
    );
    t.match(must('ip6tables', ['-S', 'OUTPUT'], ns), /-A OUTPUT -j SLUICE-OUTPUT/);
    t.match(
      must('iptables', ['-S', 'SLUICE-OUTPUT'], ns),
      /-j REJECT --reject-with icmp-admin-prohibited/,
      'IPv4 got its full rules',
    );
    const hits6 = hits;
    const direct6 = await connectAs(ns, 65534, INET6, 80);
    t.not(direct6.status, 0, 'no direct IPv6 connection');
    t.equal(hits, hits6, 'the canary saw nothing');

    const v4fails = await setup(ns, ['apply', sidecar, ...PROBES], { IPTABLES_RESTORE: failing('iptables-restore') });
    t.equal(v4fails.status, 1);
    t.equal(
      must('iptables', ['-S', 'SLUICE-OUTPUT'], ns),
      '-N SLUICE-OUTPUT\n-A SLUICE-OUTPUT -j DROP\n',
      'IPv4: back to the guard, not open',
    );
    t.equal(
      must('ip6tables', ['-S', 'SLUICE-OUTPUT'], ns),
      '-N SLUICE-OUTPUT\n-A SLUICE-OUTPUT -j DROP\n',
      'IPv6: still the guard',
    );
    t.equal((await setup(ns, ['apply', sidecar, ...PROBES])).status, 0, 'a clean re-run completes the apply');
    t.equal((await setup(ns, ['remove'])).status, 0);
  });

  t.test('the self-test fails when the rules do not hold', async (t) => {
    const ns = pod(t);
    // A broken rule set (as if the generator had a bug): everything RETURNs.
    const broken = renderTo({ mode: 'sidecar' });
    writeFileSync(broken, readFileSync(broken, 'utf8').replace(/-j REJECT --reject-with \S+/g, '-j RETURN'));
    const before = hits;
    const r = await setup(ns, ['apply', broken, ...PROBES]);
    t.equal(r.status, 3, 'exit 3: self-test failed');
    t.match(r.stderr, /FAIL direct 203\.0\.113\.1:80 as uid 65534: open/);
    t.ok(hits > before, 'it really did connect: the self-test is not vacuous');
    t.equal(
      (await setup(ns, ['apply', sidecar, '--test-uid', '10001', ...PROBES])).status,
      2,
      "testing as Sluice's own UID proves nothing: refused",
    );
    t.equal((await setup(ns, ['remove'])).status, 0);
  });

  t.test('nothing changes on bad input or a missing prerequisite', async (t) => {
    const ns = pod(t);
    const before = [saved(4, ns), saved(6, ns)];
    const docker = renderTo({ mode: 'docker', bridge: 'br-x', proxy: '172.30.0.2' });
    const r = await setup(ns, ['apply', docker]);
    t.equal(r.status, 2);
    t.match(r.stderr, /ipv4 has no DOCKER-USER chain: start Docker first/);
    t.equal((await setup(ns, ['apply'])).status, 2, 'no rules file');
    t.equal((await setup(ns, ['apply', '/nonexistent'])).status, 2);
    t.equal((await setup(ns, ['frobnicate'])).status, 2);
    t.equal((await setup(ns, ['apply', sidecar, '--bogus'])).status, 2);
    t.equal((await setup(ns, ['apply', sidecar], { IPTABLES_BACKEND: 'ebtables' })).status, 2);
    const foreign = join(tempDir('sluice-rules-'), 'foreign.rules');
    writeFileSync(foreign, readFileSync(sidecar, 'utf8').replace('COMMIT', '-A OUTPUT -j ACCEPT\nCOMMIT'));
    const f = await setup(ns, ['apply', foreign, ...PROBES]);
    t.equal(f.status, 2, "a file that touches others' chains is refused");
    t.match(f.stderr, /touches more than Sluice's own chains/);
    const half = join(tempDir('sluice-rules-'), 'half.rules');
    writeFileSync(half, readFileSync(sidecar, 'utf8').split(/(?=^# sluice-firewall family=6)/m)[0]!);
    t.match((await setup(ns, ['apply', half, ...PROBES])).stderr, /has no IPv6 part/, 'both families, or nothing');
    t.same([saved(4, ns), saved(6, ns)], before, 'nothing changed');

    // Docker mode on a host: no workload namespace to test from, so the self-test is skipped, loudly.
    for (const ipt of ['iptables', 'ip6tables']) must(ipt, ['-N', 'DOCKER-USER'], ns);
    const d = await setup(ns, ['apply', docker]);
    t.equal(d.status, 0, d.stderr);
    t.match(d.stderr, /WARNING: docker mode without --test-pid\/--test-netns/);
    t.match(d.stderr, /WARNING: no self-test ran/);
    t.equal((await setup(ns, ['verify'])).status, 0, 'verify without a file checks the hooks');
    t.equal((await setup(ns, ['remove'])).status, 0);
    t.equal((await setup(ns, ['verify'])).status, 3, 'and fails when nothing is installed');
  });
}

async function waitListening(ns: string, port: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (run('ss', ['-Hltn', `sport = :${port}`], { ns }).stdout.trim()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`nothing listens on ${port} in ${ns}`);
}
