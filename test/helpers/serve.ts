// `sluice serve` as a real process (the compiled dist/proxy/cli.js), its admin API, and polling through it.
import { type ChildProcess, spawn } from 'node:child_process';
import { request } from 'node:http';
import type { Test } from 'tap';
import { cliArgv } from './cli.js';
import { type Reply, viaProxy, waitFor } from './harness.js';

export interface Served {
  readonly child: ChildProcess;
  readonly http: number;
  readonly admin: number;
  readonly stdout: () => string;
  readonly stderr: () => string;
  readonly exit: Promise<number | null>;
}

/** Starts `sluice serve --config PATH` and waits until it prints where it listens (http and admin). */
export async function serve(t: Test, configPath: string, env: Record<string, string> = {}): Promise<Served> {
  const child = spawn(process.execPath, [...cliArgv(), 'serve', '--config', configPath], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (c) => (out += c));
  child.stderr!.on('data', (c) => (err += c));
  const exit = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  t.teardown(() => child.kill('SIGKILL'));
  const ports = await Promise.race([
    waitFor(() => {
      const h = /Sluice http listening on 127\.0\.0\.1:(\d+)/.exec(err);
      const a = /Sluice admin listening on 127\.0\.0\.1:(\d+)/.exec(err);
      return h && a ? { http: Number(h[1]), admin: Number(a[1]) } : null;
    }, 60_000),
    exit.then((code) => {
      throw new Error(`serve exited ${code}: ${err}`);
    }),
  ]);
  return { child, ...ports, stdout: () => out, stderr: () => err, exit };
}

export function adminCall(
  port: number,
  method: string,
  path: string,
  token?: string,
  body?: string,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
    if (body !== undefined) headers['content-type'] = 'application/json';
    const req = request({ host: '127.0.0.1', port, method, path, headers, agent: false }, (res) => {
      let text = '';
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Repeats a request until its reply satisfies `want` (a reload lands asynchronously). */
export async function poll(port: number, url: string, auth: string, want: (r: Reply) => boolean): Promise<Reply> {
  for (let i = 0; i < 200; i++) {
    // A request in flight when a reload denies it is closed (its response may be cut): ask again.
    const r = await viaProxy(port, { url, auth }).catch(() => null);
    if (r && want(r)) return r;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('the expected reply never came');
}

/** Every JSON line the process wrote to stdout so far (the structured log). */
export function logLines(s: Served): Record<string, unknown>[] {
  return s
    .stdout()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}
