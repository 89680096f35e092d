// One run of one workload against one target, measured from outside: the load generator's own numbers plus
// the proxy's CPU (utime + stime from /proc) and RSS over the run.
import { execFile, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import type { CycleResult, ConnectClientArgs } from './connect-client.js';
import { cpuSeconds, rssKiB, rssSampler, sleep } from './env.js';
import { BULK_BYTES, BULK_PATH, ECHO_PATH, INTEGRATION, ORIGIN, type Proxy, SMALL_PATH } from './world.js';

const here = fileURLToPath(new URL('.', import.meta.url));
/** The Lua script lives in the source tree (tsc does not copy it). */
const LUA = fileURLToPath(new URL('../../bench/wrk-absolute.lua', import.meta.url));

export interface Measured {
  /** Proxy CPU seconds over the run (null for direct). */
  readonly cpuS: number | null;
  readonly rssPeakKiB: number | null;
}

export interface WrkResult extends Measured {
  readonly rps: number;
  readonly requests: number;
  readonly errors: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly cpuUsPerRequest: number | null;
}

function run(cmd: string, args: readonly string[], env?: NodeJS.ProcessEnv, timeoutMs = 120_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      cmd,
      args,
      { env: { ...process.env, ...env }, timeout: timeoutMs, maxBuffer: 16 << 20 },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`${cmd} failed: ${err.message}\n${stderr}`));
        else resolve(stdout);
      },
    );
  });
}

async function measured<T>(proxy: Proxy | null, body: () => Promise<T>): Promise<T & Measured> {
  const pid = proxy?.proc().pid ?? null;
  const cpu0 = pid ? cpuSeconds(pid) : 0;
  const rss = pid ? rssSampler(pid) : null;
  const r = await body();
  return { ...r, cpuS: pid ? cpuSeconds(pid) - cpu0 : null, rssPeakKiB: rss ? rss.stop() : null };
}

const jsonLine = (out: string, tag: string) => {
  const line = out.split('\n').find((l) => l.startsWith(`${tag} `));
  if (!line) throw new Error(`no ${tag} line in:\n${out.slice(-2000)}`);
  return JSON.parse(line.slice(tag.length + 1));
};

/** Keep-alive GETs of the small body: wrk with absolute-form requests through the proxy (origin-form direct). */
export function keepAliveGet(proxy: Proxy | null, connections: number, seconds: number): Promise<WrkResult> {
  return keepAlive(proxy, connections, seconds, {
    proxied: `http://${ORIGIN.http.name}:${ORIGIN.http.port}${SMALL_PATH}`,
    direct: { url: `http://${ORIGIN.http.address}:${ORIGIN.http.port}/`, path: SMALL_PATH },
  });
}

/** A small JSON body, as an API write carries. */
export const WRITE_BODY = JSON.stringify({
  event: 'bench',
  items: Array.from({ length: 8 }, (_, i) => ({ id: i, value: 'x'.repeat(16) })),
});

/**
 * Writes to an integration: keep-alive POSTs of a small JSON body. Sluice gets `POST http://api.bench.test/echo`
 * (how a client hands it a write; it leaves over TLS, verified against upstream.caFile); a peer gets
 * `POST https://api.bench.test/echo` in absolute form, the same upstream work.
 */
export function integrationWrite(proxy: Proxy | null, connections: number, seconds: number): Promise<WrkResult> {
  const sluice = proxy?.name.startsWith('sluice') ?? false;
  return keepAlive(proxy, connections, seconds, {
    proxied: `${sluice ? 'http' : 'https'}://${INTEGRATION.name}${ECHO_PATH}`,
    direct: { url: `https://${INTEGRATION.address}/`, path: ECHO_PATH },
    method: 'POST',
    body: WRITE_BODY,
  });
}

/** `https://` reads in absolute form: the proxy originates TLS to the origin (keep-alive upstream). */
export function httpsRead(proxy: Proxy | null, connections: number, seconds: number): Promise<WrkResult> {
  return keepAlive(proxy, connections, seconds, {
    proxied: `https://${ORIGIN.tls.name}${SMALL_PATH}`,
    direct: { url: `https://${ORIGIN.tls.address}/`, path: SMALL_PATH },
  });
}

interface KeepAliveSpec {
  /** Absolute-form target sent to a proxy. */
  readonly proxied: string;
  /** Where wrk connects without a proxy, and the origin-form path it sends. */
  readonly direct: { readonly url: string; readonly path: string };
  readonly method?: string;
  readonly body?: string;
}

export async function keepAlive(
  proxy: Proxy | null,
  connections: number,
  seconds: number,
  spec: KeepAliveSpec,
): Promise<WrkResult> {
  const threads = Math.min(2, connections);
  const url = proxy ? `http://127.0.0.1:${proxy.port}/` : spec.direct.url;
  const env = {
    BENCH_TARGET: proxy ? spec.proxied : spec.direct.path,
    BENCH_AUTH: proxy?.auth ?? '',
    BENCH_METHOD: spec.method ?? 'GET',
    BENCH_BODY: spec.body ?? '',
  };
  const r = await measured(proxy, async () => {
    const out = await run(
      'wrk',
      ['-t', String(threads), '-c', String(connections), '-d', `${seconds}s`, '--timeout', '5s', '-s', LUA, url],
      env,
    );
    return jsonLine(out, 'BENCH_JSON') as {
      requests: number;
      durationUs: number;
      connect: number;
      read: number;
      write: number;
      status: number;
      timeout: number;
      p50Us: number;
      p99Us: number;
    };
  });
  const errors = r.connect + r.read + r.write + r.status + r.timeout;
  return {
    rps: r.requests / (r.durationUs / 1e6),
    requests: r.requests,
    errors,
    p50Ms: r.p50Us / 1000,
    p99Ms: r.p99Us / 1000,
    cpuS: r.cpuS,
    rssPeakKiB: r.rssPeakKiB,
    cpuUsPerRequest: r.cpuS === null ? null : (r.cpuS * 1e6) / Math.max(1, r.requests),
  };
}

export function clientArgs(proxy: Proxy | null, caFile: string, extra: Partial<ConnectClientArgs>): ConnectClientArgs {
  return {
    mode: 'cycle',
    proxy: proxy ? { host: '127.0.0.1', port: proxy.port } : null,
    auth: proxy?.auth ?? null,
    origin: ORIGIN.tls,
    caFile,
    path: SMALL_PATH,
    concurrency: 1,
    ...extra,
  };
}

export interface ConnectResult extends CycleResult, Measured {
  readonly perSecond: number;
  readonly cpuUsPerConnection: number | null;
}

/** CONNECT + TLS handshake + one GET per connection, `concurrency` loops for `seconds` (or `count`
 * connections, rotating over `names`). */
export async function connectCycle(
  proxy: Proxy | null,
  caFile: string,
  concurrency: number,
  seconds: number,
  more: Partial<ConnectClientArgs> = {},
): Promise<ConnectResult> {
  const args = clientArgs(proxy, caFile, { mode: 'cycle', concurrency, durationMs: seconds * 1000, ...more });
  const r = await measured(
    proxy,
    async () =>
      jsonLine(
        await run(process.execPath, [join(here, 'connect-client.js'), JSON.stringify(args)]),
        'BENCH_JSON',
      ) as CycleResult,
  );
  return {
    ...r,
    perSecond: r.connections / r.seconds,
    cpuUsPerConnection: r.cpuS === null ? null : (r.cpuS * 1e6) / Math.max(1, r.connections),
  };
}

export interface BulkResult extends Measured {
  readonly mbPerS: number;
  readonly cpuMsPerMiB: number | null;
}

/** Downloads the 10 MiB file `times` times with curl, through a CONNECT tunnel (https) or by forwarding (http). */
export async function bulk(
  proxy: Proxy | null,
  caFile: string,
  kind: 'tunnel' | 'forward',
  times: number,
): Promise<BulkResult> {
  const o = kind === 'tunnel' ? ORIGIN.tls : ORIGIN.http;
  const url =
    kind === 'tunnel' ? `https://${o.name}${BULK_PATH}` : `http://${proxy ? o.name : o.address}:${o.port}${BULK_PATH}`;
  const args = ['-sS', '-o', '/dev/null', '-w', '%{size_download} %{time_total}\n', '--cacert', caFile];
  if (proxy) {
    args.push('--proxy', `http://127.0.0.1:${proxy.port}`);
    if (proxy.userinfo) args.push('--proxy-user', proxy.userinfo);
    if (kind === 'tunnel') args.push('--proxytunnel');
  } else if (kind === 'tunnel') {
    args.push('--resolve', `${o.name}:${o.port}:${o.address}`);
  }
  const r = await measured(proxy, async () => {
    let bytes = 0;
    let secs = 0;
    for (let i = 0; i < times; i++) {
      const [size, t] = (await run('curl', [...args, url])).trim().split(' ').map(Number);
      if (size !== BULK_BYTES) throw new Error(`bulk ${kind}: got ${size} bytes`);
      bytes += size!;
      secs += t!;
    }
    return { bytes, secs };
  });
  const mib = r.bytes / (1024 * 1024);
  return {
    mbPerS: r.bytes / 1e6 / r.secs,
    cpuMsPerMiB: r.cpuS === null ? null : (r.cpuS * 1000) / mib,
    cpuS: r.cpuS,
    rssPeakKiB: r.rssPeakKiB,
  };
}

export interface HoldResult {
  readonly tunnels: number;
  readonly errors: number;
  readonly firstError: string | null;
  readonly baselineKiB: number;
  readonly withTunnelsKiB: number;
  readonly perTunnelKiB: number;
}

/** Opens `count` tunnels (TLS established through each), lets them sit idle, and reads the proxy's RSS. */
export async function holdTunnels(proxy: Proxy, caFile: string, count: number, settleMs = 3000): Promise<HoldResult> {
  const pid = proxy.proc().pid;
  const baselineKiB = rssKiB(pid);
  const args = clientArgs(proxy, caFile, { mode: 'hold', concurrency: 64, count });
  const child = spawn(process.execPath, [join(here, 'connect-client.js'), JSON.stringify(args)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    const ready = await new Promise<{ open: number; errors: number; firstError: string | null }>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error('hold: tunnels not open after 180 s')), 180_000);
      child.stdout.on('data', (c: Buffer) => {
        out += c.toString();
        const line = out.split('\n').find((l) => l.startsWith('READY '));
        if (line) {
          clearTimeout(timer);
          resolve(JSON.parse(line.slice(6)));
        }
      });
      child.once('exit', () => reject(new Error(`hold client exited: ${out}`)));
    });
    await sleep(settleMs);
    const withTunnelsKiB = rssKiB(pid);
    return {
      tunnels: ready.open,
      errors: ready.errors,
      firstError: ready.firstError,
      baselineKiB,
      withTunnelsKiB,
      perTunnelKiB: (withTunnelsKiB - baselineKiB) / Math.max(1, ready.open),
    };
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => (child.exitCode !== null ? r(null) : child.once('exit', r)));
  }
}
