// The machine side of the benchmark: Debian packages, the work directory, ports, processes started in the
// foreground and stopped by PID, and what /proc says about them (CPU ticks, RSS).
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, readdirSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { join } from 'node:path';

/** Debian packages the benchmark drives (curl and openssl for bulk transfers and the throwaway TLS cert). */
export const PACKAGES = ['nginx-light', 'squid', 'tinyproxy', 'wrk', 'curl', 'openssl', 'util-linux'] as const;
/** Only for the TLS-inspection workloads (a Python application with many dependencies). */
export const INSPECTION_PACKAGES = ['mitmproxy'] as const;

export function ensurePackages(log: (s: string) => void, extra: readonly string[] = []): void {
  const missing = [...PACKAGES, ...extra].filter((p) => {
    try {
      const status = execFileSync('dpkg-query', ['-W', '-f=${Status}', p], { stdio: ['ignore', 'pipe', 'ignore'] });
      return !status.toString().includes('install ok installed');
    } catch {
      return true;
    }
  });
  if (missing.length === 0) return;
  log(`installing ${missing.join(' ')} (apt-get)`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
  execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], { stdio: 'inherit', env });
  // Debian starts the services it installs; the benchmark runs its own copies with its own configs.
  for (const svc of ['nginx', 'squid', 'tinyproxy', 'mitmproxy']) {
    try {
      execFileSync('systemctl', ['disable', '--now', svc], { stdio: 'ignore' });
    } catch {
      // No systemd in a container: nothing was started.
    }
  }
}

/**
 * squid-openssl (Squid built with OpenSSL, which ssl_bump needs) conflicts with Debian's `squid` (GnuTLS), which
 * the other workloads run. So it is never installed: its .deb is fetched with `apt-get download` and unpacked
 * into the work directory, and its binary runs beside the installed one, sharing squid-common's files (the
 * same version). Returns the paths of its `squid` and `security_file_certgen`.
 */
export function squidOpenssl(workdir: string, log: (s: string) => void): { squid: string; certgen: string } {
  const root = join(workdir, 'squid-openssl');
  const squid = join(root, 'usr/sbin/squid');
  const certgen = join(root, 'usr/lib/squid/security_file_certgen');
  if (existsSync(squid) && existsSync(certgen)) return { squid, certgen };
  const debs = ensureDir(join(workdir, 'debs'));
  log('fetching squid-openssl (apt-get download; unpacked into the work directory, not installed)');
  // _apt cannot write into a root-owned work directory; apt falls back to downloading as root (a warning).
  execFileSync('apt-get', ['download', 'squid-openssl'], { cwd: debs, stdio: ['ignore', 'ignore', 'pipe'] });
  const deb = readdirSync(debs).find((f) => f.startsWith('squid-openssl_') && f.endsWith('.deb'));
  if (!deb) throw new Error('apt-get download squid-openssl produced no .deb');
  execFileSync('dpkg-deb', ['-x', join(debs, deb), root]);
  return { squid, certgen };
}

export function ensureDir(path: string): string {
  mkdirSync(path, { recursive: true, mode: 0o755 });
  return path;
}

/** A free TCP port on 127.0.0.1 (bound and released; the benchmark runs alone on its addresses). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

export async function waitForPort(host: string, port: number, timeoutMs = 15_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, host, () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`nothing listens on ${host}:${port} after ${timeoutMs} ms`);
    await sleep(100);
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The fd limit children get: as high as the hard limit allows (5,000 tunnels need ~10,000 in a proxy). */
export const NOFILE = (() => {
  try {
    const hard = execFileSync('sh', ['-c', 'ulimit -Hn']).toString().trim();
    return hard === 'unlimited' ? 65536 : Math.min(65536, Number(hard));
  } catch {
    return 65536;
  }
})();

export interface Foreground {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  stop(): Promise<void>;
}

/** Starts a program in the foreground with a raised fd limit and its output in `logDir/name.{out,err}`.
 * `hosts`: run it in a private mount namespace whose /etc/hosts is that file (the peers' resolvers read it;
 * the host's own /etc/hosts is never touched). */
export function startForeground(
  name: string,
  argv: readonly string[],
  opts: { logDir: string; hosts?: string; binds?: readonly (readonly [string, string])[]; env?: NodeJS.ProcessEnv },
): Foreground {
  const out = openSync(join(opts.logDir, `${name}.out`), 'a');
  const err = openSync(join(opts.logDir, `${name}.err`), 'a');
  // prlimit and unshare exec the program, so the PID we hold is the program's own.
  let cmd = ['prlimit', `--nofile=${NOFILE}:${NOFILE}`, '--', ...argv];
  if (opts.hosts) {
    // `binds`: more bind mounts in the same private namespace (e.g. a run directory of Squid's own).
    const extra = (opts.binds ?? [])
      .map(([src, dst]) => `mkdir -p '${dst}' && mount --bind '${src}' '${dst}' && `)
      .join('');
    cmd = [
      'unshare',
      '--mount',
      '--propagation',
      'private',
      '--',
      'sh',
      '-c',
      `${extra}mount --bind "$0" /etc/hosts && exec "$@"`,
      opts.hosts,
      ...cmd,
    ];
  }
  const child = spawn(cmd[0]!, cmd.slice(1), { stdio: ['ignore', out, err], env: opts.env ?? process.env });
  if (child.pid === undefined) throw new Error(`${name}: could not start ${argv[0]}`);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return {
    name,
    child,
    pid: child.pid,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 8000);
      await exited;
      clearTimeout(t);
    },
  };
}

/** A process and its live descendants (workers, helpers): what a proxy costs is all of them. */
export function processTree(pid: number): number[] {
  const out = [pid];
  for (let i = 0; i < out.length; i++) {
    try {
      for (const tid of readdirSync(`/proc/${out[i]}/task`)) {
        const kids = readFileSync(`/proc/${out[i]}/task/${tid}/children`, 'utf8').trim();
        if (kids) out.push(...kids.split(' ').map(Number));
      }
    } catch {
      // The process ended while we looked.
    }
  }
  return out;
}

/** utime + stime of a process (all its threads) and its live descendants, in seconds. */
export function cpuSeconds(pid: number): number {
  let ticks = 0;
  for (const p of processTree(pid)) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      // The command name may contain spaces and parentheses: fields are counted after the last ')'.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // Gone: its time is lost with it (a proxy's workers live as long as the run).
    }
  }
  return ticks / CLK_TCK;
}

const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
  } catch {
    return 100;
  }
})();

/** Resident set size in KiB (VmRSS) of a process and its live descendants. */
export function rssKiB(pid: number): number {
  let kib = 0;
  for (const p of processTree(pid)) {
    try {
      const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${p}/status`, 'utf8'));
      kib += m ? Number(m[1]) : 0;
    } catch {
      // Gone.
    }
  }
  return kib;
}

export function isAlive(pid: number): boolean {
  return existsSync(`/proc/${pid}/stat`);
}

/** Samples a process's RSS until stopped; returns the peak in KiB. */
export function rssSampler(pid: number, everyMs = 200): { stop(): number } {
  let peak = isAlive(pid) ? rssKiB(pid) : 0;
  const timer = setInterval(() => {
    if (isAlive(pid)) peak = Math.max(peak, rssKiB(pid));
  }, everyMs);
  return {
    stop() {
      clearInterval(timer);
      if (isAlive(pid)) peak = Math.max(peak, rssKiB(pid));
      return peak;
    },
  };
}

export function versionOf(cmd: string, args: string[], pattern: RegExp): string {
  // Some print their version on stderr (nginx -v), some exit non-zero after printing it.
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  return pattern.exec(`${r.stdout ?? ''}${r.stderr ?? ''}`)?.[1] ?? 'unknown';
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

/** utime + stime of one thread of a process (the main thread's TID is the PID), in seconds. */
export function threadCpuSeconds(pid: number, tid = pid): number {
  try {
    const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
  } catch {
    return NaN;
  }
}
