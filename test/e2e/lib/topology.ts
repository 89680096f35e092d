// The network the real clients run in. One small interface, so that the containment topology (iptables in a
// proxy namespace, issue 5) can replace this one without touching the tests:
//
//   sluice namespace (the test process, already inside isolate()'s lo-only namespace)
//     ├─ lo: 127.0.0.x stand-ins for the internet, 169.254.169.254 metadata canary, the fake DNS server
//     └─ veth sl0 10.99.0.1/30  ── Sluice listens here
//   workload namespace (a fresh `unshare -n`, held open by a `cat` on a pipe)
//     └─ veth wl0 10.99.0.2/30, lo — no default route, no DNS server, nothing else
//
// The workload's only peer is Sluice's address: a tool that ignores its proxy variables cannot resolve a name
// (no DNS server answers) and cannot reach a stand-in (127.0.0.x is its own loopback, other addresses have
// no route). The holder reads its stdin, so if the test process dies the pipe closes, `cat` exits and the
// namespace (with its end of the veth) goes away: nothing is left behind on the host.
import { spawn, execFileSync } from 'node:child_process';
import { readlinkSync } from 'node:fs';
import type { Test } from 'tap';
import { insideLoOnlyNamespace } from '../../helpers/netns.js';

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
}

const SLUICE_SIDE = '10.99.0.1';
const WORKLOAD_SIDE = '10.99.0.2';

const netnsOf = (pid: number | 'self') => readlinkSync(`/proc/${pid}/ns/net`);

export async function createTopology(t: Test): Promise<Topology> {
  if (!insideLoOnlyNamespace()) throw new Error('createTopology() must run inside the lo-only namespace (isolate())');
  const holder = spawn('unshare', ['-n', '--', 'cat'], { stdio: ['pipe', 'ignore', 'inherit'] });
  const pid = holder.pid;
  if (pid === undefined) throw new Error('could not start the workload namespace holder');
  t.teardown(() => {
    holder.stdin.end();
    holder.kill();
  });
  // `unshare` execs `cat` after unshare(2); until then the pid is still in our namespace, and moving the veth
  // end there would silently put it next to Sluice. Wait until the namespace differs.
  const ours = netnsOf('self');
  for (let i = 0; ; i++) {
    if (holder.exitCode !== null) throw new Error('the workload namespace holder exited');
    try {
      if (netnsOf(pid) !== ours) break;
    } catch {
      // /proc/<pid> not there yet
    }
    if (i > 500) throw new Error('the workload namespace did not appear');
    await new Promise((r) => setTimeout(r, 10));
  }
  const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const inWorkload = (...args: string[]) => execFileSync('nsenter', ['-t', String(pid), '-n', '--', 'ip', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  ip('link', 'add', 'sl0', 'type', 'veth', 'peer', 'name', 'wl0', 'netns', String(pid));
  ip('addr', 'add', `${SLUICE_SIDE}/30`, 'dev', 'sl0');
  ip('link', 'set', 'sl0', 'up');
  inWorkload('link', 'set', 'lo', 'up');
  inWorkload('addr', 'add', `${WORKLOAD_SIDE}/30`, 'dev', 'wl0');
  inWorkload('link', 'set', 'wl0', 'up');

  return {
    sluiceHost: SLUICE_SIDE,
    run(cmd, args, opts) {
      return new Promise((resolve, reject) => {
        const child = spawn('nsenter', ['-t', String(pid), '-n', '--', cmd, ...args], {
          env: opts.env,
          cwd: opts.cwd,
          stdio: ['ignore', 'pipe', 'pipe'],
        });
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
