// The network the real clients run in: the docker shape of the containment proof (test/containment/
// docker.test.ts), where what keeps the workload in is Sluice's own generated rules (`sluice firewall render
// --mode docker`, applied by iptables/setup.sh on the Docker host), not the lack of a route.
//
//   Sluice's namespace (the test process, inside isolate()'s lo-only namespace): Sluice's container, with
//   "the internet" on its loopback
//     ├─ lo: 127.0.0.x stand-ins, the 169.254.169.254 metadata canary, the fake DNS server
//     ├─ sl0 10.99.0.1/24, a port of the workload bridge: Sluice listens here
//     └─ inet0 203.0.113.1/24, the Docker host's uplink: a direct-path probe listens here
//   Docker host namespace (sluice-e2ehost-<pid>): bridge br-e2e 10.99.0.254/24, forwarding on, FORWARD policy
//     ACCEPT (the worst case), DOCKER-USER as Docker makes it, a default route to the internet; the docker rules
//   workload namespace (sluice-e2ewl-<pid>): eth0 10.99.0.2/24 on the bridge, a default route via the host, as
//     a container has, and Sluice's DNS guard as its resolver (as in compose/): every name fails fast, REFUSED
//
// Without the rules, a tool that ignores its proxy variables would reach the metadata canary through the host;
// createTopology() proves that path open before the rules go in, and setup.sh's self-test proves it closed
// after, so the tests' "direct connections fail" checks are checks of the rules. Docker mode filters by
// interface and address, not UID: Sluice stays in-process (root, dialing the stand-ins on its own loopback)
// and the tools run as root, as in a container. (Sidecar mode exempts Sluice by UID and refuses UID 0, so it
// would need Sluice as a separate process under UID 10001.) Everything is deleted in teardown; IPv4 only: with
// no --proxy6 the rules leave the workload no IPv6 path at all.
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { Test } from 'tap';
import { insideLoOnlyNamespace } from '../../helpers/netns.js';
import { renderTo, setupSh } from '../../containment/proof.js';
import { type Run, addDockerHost, addNetns, must, runAsync, tempDir, veth } from '../../containment/topology.js';

export interface RunResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  /** stdout and stderr together, for "the tool printed X somewhere". */
  readonly output: string;
}

export interface RunOptions {
  readonly env: Record<string, string>;
  readonly cwd?: string;
  /** Kills the process after this long (a bound on a hang, never an assertion). */
  readonly killAfterMs?: number;
}

export interface Topology {
  /** The address the workload reaches Sluice on; Sluice listens here. */
  readonly sluiceHost: string;
  /** Runs a program inside the workload namespace, with exactly `opts.env` as its environment and no stdin. */
  run(cmd: string, args: readonly string[], opts: RunOptions): Promise<RunResult>;
  /** `setup.sh verify`: the rules are installed as rendered, the direct path is blocked from the workload, and
   * Sluice accepts a connection there (so call it once Sluice listens). */
  verify(): Promise<Run>;
}

const BRIDGE = 'br-e2e';
const SLUICE_SIDE = '10.99.0.1';
const WORKLOAD_SIDE = '10.99.0.2';
const GATEWAY = '10.99.0.254';
const UPLINK = { internet: '203.0.113.1', host: '203.0.113.2' };
/** A direct target that answers without the rules (setup.sh: "pick one that would answer"). */
const PROBE = { host: UPLINK.internet, port: 9000 };

export interface TopologyOptions {
  /** Sluice's proxy listener ports (HTTP, SOCKS5): with the DNS guard's, all the rules let the workload reach. */
  readonly proxyPorts: readonly number[];
  /** The DNS guard's port on `sluiceHost`, the workload's nameserver. */
  readonly dnsPort: number;
}

export async function createTopology(t: Test, { proxyPorts, dnsPort }: TopologyOptions): Promise<Topology> {
  if (!insideLoOnlyNamespace()) throw new Error('createTopology() must run inside the lo-only namespace (isolate())');
  const host = addDockerHost(t, 'e2ehost', BRIDGE, { v4: `${GATEWAY}/24` });
  const wl = addNetns(t, 'e2ewl');
  veth({ ns: null, dev: 'sl0', v4: `${SLUICE_SIDE}/24` }, { ns: host, dev: 'px0', master: BRIDGE });
  veth({ ns: wl, dev: 'eth0', v4: `${WORKLOAD_SIDE}/24` }, { ns: host, dev: 'wl0', master: BRIDGE });
  veth({ ns: null, dev: 'inet0', v4: `${UPLINK.internet}/24` }, { ns: host, dev: 'up0', v4: `${UPLINK.host}/24` });
  must('ip', ['route', 'add', 'default', 'via', GATEWAY], wl);
  must('ip', ['route', 'add', 'default', 'via', UPLINK.internet], host);

  const probe = createServer((s) => s.destroy());
  await new Promise<void>((resolve) => probe.listen(PROBE.port, PROBE.host, resolve));
  t.teardown(() => void probe.close());
  const direct = await runAsync('timeout', ['5', 'bash', '-c', `exec 3<>/dev/tcp/${PROBE.host}/${PROBE.port}`], {
    ns: wl,
  });
  if (direct.status !== 0) {
    throw new Error(
      `the direct path from the workload must be open before the rules go in, or the tests' "direct connections fail" checks prove nothing: ${direct.stderr}`,
    );
  }

  const rules = renderTo({
    mode: 'docker',
    bridge: BRIDGE,
    proxy: SLUICE_SIDE,
    subnet: '10.99.0.0/24',
    ports: proxyPorts.join(','),
    'dns-port': String(dnsPort),
  });
  const selfTest = ['--test-netns', wl, '--probe', `${PROBE.host}:${PROBE.port}`];
  const applied = await setupSh(host, ['apply', rules, ...selfTest]);
  if (applied.status !== 0) throw new Error(`setup.sh apply failed (${applied.status}): ${applied.stderr}`);

  const resolvConf = join(tempDir('sluice-e2e-resolv-'), 'resolv.conf');
  writeFileSync(resolvConf, `nameserver ${SLUICE_SIDE}\n`);
  return {
    sluiceHost: SLUICE_SIDE,
    verify: () => setupSh(host, ['verify', rules, ...selfTest]),
    run(cmd, args, opts) {
      return new Promise((resolve, reject) => {
        // `ip netns exec` gives the program a mount namespace of its own (slave: nothing propagates back), so
        // the bind mount over /etc/resolv.conf is seen by that program alone.
        const child = spawn(
          'ip',
          [
            'netns',
            'exec',
            wl,
            'sh',
            '-c',
            'mount --bind "$0" /etc/resolv.conf && exec "$@"',
            resolvConf,
            cmd,
            ...args,
          ],
          {
            env: opts.env,
            cwd: opts.cwd,
            stdio: ['ignore', 'pipe', 'pipe'],
          },
        );
        const out: Buffer[] = [];
        const err: Buffer[] = [];
        const all: Buffer[] = [];
        child.stdout.on('data', (c: Buffer) => (out.push(c), all.push(c)));
        child.stderr.on('data', (c: Buffer) => (err.push(c), all.push(c)));
        const timer = setTimeout(() => child.kill('SIGKILL'), opts.killAfterMs ?? 60_000);
        child.on('error', (e) => (clearTimeout(timer), reject(e)));
        child.on('close', (code, signal) => {
          clearTimeout(timer);
          resolve({
            code,
            signal,
            stdout: Buffer.concat(out).toString(),
            stderr: Buffer.concat(err).toString(),
            output: Buffer.concat(all).toString(),
          });
        });
      });
    },
  };
}
