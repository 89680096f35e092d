// Starts a real Sluice on 127.0.0.1:0 with a test config and captures its log lines.
import { request as httpRequest } from 'node:http';
import { type Socket, connect } from 'node:net';
import type { Test } from 'tap';
import { formatIssue, validateConfig } from '../../settings/config.js';
import { type Sluice, type SluiceOptions, createSluice } from '../../proxy/runtime/sluice.js';
import { captureLogs } from './log-capture.js';

export interface Harness {
  readonly sluice: Sluice;
  readonly port: number;
  /** Admin listener port, when the config enables one. */
  readonly adminPort: number | null;
  /** The SOCKS5 listener's port, when the config enables one (`listen.socks5: 127.0.0.1:0`). */
  readonly socks5Port: number | null;
  readonly logs: Record<string, unknown>[];
  /** Raw log text, for secret scans. */
  readonly logText: () => string;
  decisions(): Record<string, unknown>[];
}

export const AGENT = { user: 'agent', pass: 'agent-password-123' };
export const basic = (user: string, pass: string) => `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;
export const AGENT_AUTH = basic(AGENT.user, AGENT.pass);

export async function startSluice(
  t: Test,
  raw: Record<string, unknown>,
  opts: Pick<SluiceOptions, 'reload' | 'wallClockMs'> = {},
): Promise<Harness> {
  const r = validateConfig({ listen: { http: '127.0.0.1:0', socks5: null, admin: null }, ...raw });
  if (!r.ok) throw new Error(r.issues.map(formatIssue).join('\n'));
  // The product's own loggers (redacting, and the audit logger without redaction) write here.
  const { logs, text, destination } = captureLogs();
  const sluice = createSluice({ config: r.config, logTo: { destination, level: 'debug' }, ...opts });
  const { http, admin, socks5 } = await sluice.start();
  t.teardown(() => sluice.stop());
  return {
    sluice,
    port: http!.port,
    adminPort: admin?.port ?? null,
    socks5Port: socks5?.port ?? null,
    logs,
    logText: text,
    decisions: () => logs.filter((l) => l.msg === 'egress.decision'),
  };
}

export interface Reply {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
}

/** Sends one absolute-form request through the proxy on a fresh connection. */
export function viaProxy(
  port: number,
  opts: { method?: string; url: string; headers?: Record<string, string>; body?: string; auth?: string | null },
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...(opts.headers ?? {}) };
    if (opts.auth !== null) headers['proxy-authorization'] = opts.auth ?? AGENT_AUTH;
    const req = httpRequest(
      { host: '127.0.0.1', port, method: opts.method ?? 'GET', path: opts.url, headers, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** Writes raw bytes to the proxy and collects everything until the proxy closes (or a timeout). */
export function rawExchange(
  port: number,
  bytes: string | Buffer,
  waitMs = 3000,
): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1', () => s.write(bytes));
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ text: Buffer.concat(chunks).toString('latin1'), closed: false });
    }, waitMs);
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', () => undefined);
    s.on('close', () => {
      clearTimeout(timer);
      resolve({ text: Buffer.concat(chunks).toString('latin1'), closed: true });
    });
  });
}

export const codeOf = (reply: Reply): string | undefined =>
  /details="([A-Z_]+)"/.exec(String(reply.headers['proxy-status'] ?? ''))?.[1];

/** Polls until `check` returns a truthy value (tests never assert durations; this only bounds a wait). */
export async function waitFor<T>(check: () => T | undefined | null | false, timeoutMs = 5000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = check();
    if (v) return v;
    if (Date.now() > until) throw new Error('waitFor: condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * True when `p` settles within `timeoutMs`, false otherwise. For waits that are the assertion (a tunnel closed,
 * a half-close arrived): `t.ok(await settles(x), 'what')` fails with its message instead of as a test timeout.
 */
export async function settles(p: Promise<unknown>, timeoutMs = 10_000): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((r) => (timer = setTimeout(() => r(false), timeoutMs)));
  try {
    return await Promise.race([p.then(() => true as const), late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Like `waitFor`, but answers whether `check` came true in time, for `t.ok(await eventually(...), 'what')`. */
export async function eventually(check: () => unknown, timeoutMs = 5000): Promise<boolean> {
  return waitFor(() => Boolean(check()) || undefined, timeoutMs).then(
    () => true,
    () => false,
  );
}

/** Sends CONNECT and resolves with the response head and the socket (positioned after the head). */
export function openTunnel(
  port: number,
  authority: string,
  auth: string | null = AGENT_AUTH,
): Promise<{ head: string; socket: Socket }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => {
      socket.write(
        `CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n${auth ? `Proxy-Authorization: ${auth}\r\n` : ''}\r\n`,
      );
    });
    let buf = Buffer.alloc(0);
    const onData = (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      const end = buf.indexOf('\r\n\r\n');
      if (end === -1) return;
      socket.removeListener('data', onData);
      socket.pause();
      const rest = buf.subarray(end + 4);
      if (rest.length) socket.unshift(rest);
      resolve({ head: buf.subarray(0, end).toString('latin1'), socket });
    };
    socket.on('data', onData);
    socket.on('error', reject);
  });
}
