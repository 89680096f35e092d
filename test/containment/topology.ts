// Network namespaces and veth pairs for the containment tests (CONTRACT §10). The test process itself runs in
// the lo-only namespace of isolate() and plays "the internet"; every other host is an `ip netns` created
// here, named with the pid, joined to the others by veth pairs and deleted in teardown (its processes, all
// started by the test, are killed by pid first). Nothing here touches the host's own rules or interfaces.
import { type SpawnOptions, type SpawnSyncOptions, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import { otherUidsBlocked } from '../helpers/other-uids.js';

const REQUIRED = [
  'ip',
  'iptables',
  'ip6tables',
  'iptables-restore',
  'ip6tables-restore',
  'iptables-save',
  'ip6tables-save',
  'setpriv',
  'timeout',
  'bash',
];

const temporary: string[] = [];
process.on('exit', () => {
  for (const d of temporary) rmSync(d, { recursive: true, force: true });
});

/** A temporary directory, removed when the test process exits. */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  temporary.push(dir);
  return dir;
}

/** What this machine lacks for the containment tests (empty: they can run). */
export function missingPrerequisites(extra: readonly string[] = []): string[] {
  const missing: string[] = [];
  if (process.getuid?.() !== 0) missing.push('root');
  for (const tool of [...REQUIRED, ...extra]) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' }).status !== 0) missing.push(tool);
  }
  return missing;
}

/** True when the caller may go on. Outside CI a missing prerequisite skips loudly; in CI it fails. */
export function requirePrerequisites(t: Test, extra: readonly string[] = [], what = 'containment tests'): boolean {
  const missing = missingPrerequisites(extra);
  if (missing.length === 0) {
    const blocked = otherUidsBlocked();
    // Not a missing package but the checkout's location: fail, never skip — the proof would silently not run.
    if (blocked) t.fail(`${what}: ${blocked}`);
    return blocked === null;
  }
  const message = `LOUD: ${what} need ${missing.join(', ')} (root, iproute2, iptables, util-linux); SKIPPED`;
  t.comment(message);
  if (process.env.CI) t.fail(`${message} — but CI must run them (.ci/run installs the packages)`);
  else t.pass(what, { skip: message });
  return false;
}

export interface Run {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command (in a namespace when `ns` is given); never throws. */
export function run(cmd: string, args: readonly string[], opts: SpawnSyncOptions & { ns?: string } = {}): Run {
  const { ns, ...rest } = opts;
  const [c, a] = ns ? ['ip', ['netns', 'exec', ns, cmd, ...args]] : [cmd, [...args]];
  const r = spawnSync(c, a, { encoding: 'utf8', timeout: 120_000, ...rest });
  return {
    status: r.status,
    stdout: String(r.stdout ?? ''),
    stderr: String(r.stderr ?? '') + (r.error ? String(r.error) : ''),
  };
}

/** Runs a command without blocking the event loop: in-process canaries must keep accepting (and counting)
 * while a workload attacks them. Settles a moment after exit so that counts are complete. */
export function runAsync(
  cmd: string,
  args: readonly string[],
  opts: SpawnOptions & { ns?: string; input?: string | Buffer } = {},
): Promise<Run> {
  const { ns, input, ...rest } = opts;
  const [c, a] = ns ? ['ip', ['netns', 'exec', ns, cmd, ...args]] : [cmd, [...args]];
  return new Promise((resolve) => {
    const child = spawn(c, a, { stdio: ['pipe', 'pipe', 'pipe'], ...rest });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', (e) => (stderr += String(e)));
    child.stdin?.end(input);
    child.on('close', (status) => setTimeout(() => resolve({ status, stdout, stderr }), 50));
  });
}

/** Runs a command that must succeed (topology building); throws with its output otherwise. */
export function must(cmd: string, args: readonly string[], ns?: string): string {
  const r = run(cmd, args, ns ? { ns } : {});
  if (r.status !== 0)
    throw new Error(`${ns ? `[${ns}] ` : ''}${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

let swept = false;
/** Deletes namespaces left by a test process that was killed before its teardown ran (their names end in a
 * pid that no longer exists). */
function sweepStale(): void {
  if (swept) return;
  swept = true;
  for (const line of run('ip', ['netns', 'list']).stdout.split('\n')) {
    const m = /^(sluice-[a-z0-9-]+-(\d+))\b/.exec(line);
    if (m && !alive(Number(m[2]))) deleteNetns(m[1]!);
  }
}

/** Creates a network namespace that is deleted (with the processes in it) when the test ends. */
export function addNetns(t: Test, label: string): string {
  sweepStale();
  const name = `sluice-${label}-${process.pid}`;
  must('ip', ['netns', 'add', name]);
  t.teardown(() => deleteNetns(name));
  must('ip', ['link', 'set', 'lo', 'up'], name);
  // Tentative IPv6 addresses (duplicate address detection) would make the first seconds flaky.
  for (const k of [
    'net.ipv6.conf.all.accept_dad=0',
    'net.ipv6.conf.default.accept_dad=0',
    'net.ipv6.conf.all.accept_ra=0',
    'net.ipv6.conf.default.accept_ra=0',
  ]) {
    must('sysctl', ['-qw', k], name);
  }
  return name;
}

export function deleteNetns(name: string): void {
  // Only processes this test started live in its namespaces.
  for (const pid of run('ip', ['netns', 'pids', name]).stdout.split('\n').filter(Boolean)) {
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      // already gone
    }
  }
  run('ip', ['netns', 'del', name]);
}

export interface Leg {
  readonly ns: string | null;
  readonly dev: string;
  readonly v4?: string;
  readonly v6?: string;
  /** A bridge (in `ns`) this end joins instead of taking addresses. */
  readonly master?: string;
}

/** A veth pair between two namespaces (null: the test's own, "the internet"), addressed and up. */
export function veth(a: Leg, b: Leg): void {
  const peerNs = b.ns ? ['netns', b.ns] : [];
  must('ip', ['link', 'add', a.dev, 'type', 'veth', 'peer', 'name', b.dev, ...peerNs], a.ns ?? undefined);
  for (const leg of [a, b]) {
    const ns = leg.ns ?? undefined;
    if (leg.master) must('ip', ['link', 'set', leg.dev, 'master', leg.master], ns);
    if (leg.v4) must('ip', ['addr', 'add', leg.v4, 'dev', leg.dev], ns);
    if (leg.v6) must('ip', ['-6', 'addr', 'add', leg.v6, 'dev', leg.dev, 'nodad'], ns);
    must('ip', ['link', 'set', leg.dev, 'up'], ns);
  }
}

/** A namespace playing a Docker host: forwarding on (FORWARD policy ACCEPT, the worst case), the workload
 * network's bridge with the gateway address(es), and DOCKER-USER entered first from FORWARD and returning by
 * default, as Docker makes it. Nothing is filtered until `setup.sh apply` adds the docker-mode rules. */
export function addDockerHost(
  t: Test,
  label: string,
  bridge: string,
  gateway: { readonly v4: string; readonly v6?: string },
): string {
  const host = addNetns(t, label);
  for (const k of ['net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1']) must('sysctl', ['-qw', k], host);
  must('ip', ['link', 'add', bridge, 'type', 'bridge', 'forward_delay', '0'], host);
  must('ip', ['addr', 'add', gateway.v4, 'dev', bridge], host);
  if (gateway.v6) must('ip', ['-6', 'addr', 'add', gateway.v6, 'dev', bridge, 'nodad'], host);
  must('ip', ['link', 'set', bridge, 'up'], host);
  for (const ipt of ['iptables', 'ip6tables']) {
    must(ipt, ['-N', 'DOCKER-USER'], host);
    must(ipt, ['-A', 'DOCKER-USER', '-j', 'RETURN'], host);
    must(ipt, ['-I', 'FORWARD', '1', '-j', 'DOCKER-USER'], host);
  }
  return host;
}

/** iptables-save / ip6tables-save without comments and packet counters: what two saves must agree on. */
export function saved(family: 4 | 6, ns: string, backend = ''): string {
  const tool = `${family === 4 ? 'iptables' : 'ip6tables'}${backend ? `-${backend}` : ''}-save`;
  return must(tool, [], ns)
    .split('\n')
    .filter((l) => !l.startsWith('#'))
    .map((l) => l.replace(/\[\d+:\d+\]$/, '[0:0]'))
    .join('\n');
}
