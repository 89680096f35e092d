// The runtime settings at the edge: the schema (settings/schema.ts) checks the shape and fills in the defaults;
// this adds what it cannot say (addresses that parse, ports used once, a TTL range, ReDoS-safe patterns) and the
// defaults that depend on another setting. Pure like firewall/: it reads no file and opens nothing.
import type { FromSchema } from 'json-schema-to-ts';
import { classifyAddress } from '../firewall/ranges.js';
import {
  type AbsentAsNull,
  type CheckContext,
  type Frozen,
  type ListenAddress,
  type Validated,
  applySchema,
  isLoopbackListen,
  parseDnsServer,
  parseListen,
  pathPatternProblem,
  settle,
} from '../firewall/config.js';
import { SETTINGS_SCHEMA } from './schema.js';

/** Loopback or "this host/network" however it is spelled (IPv4-mapped included): a probe there proves nothing. */
function isLocalAddress(host: string): boolean {
  const c = classifyAddress(host);
  return c !== null && (c.class === 'loopback' || c.range === 'this-network' || c.range === 'unspecified');
}

/** The settings sections as the schema leaves them: shape checked, defaults filled in. */
export type SettingsInput = FromSchema<typeof SETTINGS_SCHEMA>;
type ProbeInput = NonNullable<SettingsInput['containment']['probe']>;

/** How the process runs: everything in the config file that is not policy. */
export type RuntimeSettings = Frozen<
  Omit<SettingsInput, 'listen' | 'dns' | 'upstream' | 'limits' | 'admin' | 'killSwitch' | 'containment'> & {
    /** Parsed addresses; null: that listener is off. */
    listen: Record<'http' | 'socks5' | 'admin' | 'dns', ListenAddress | null>;
    /** `servers` null: the system's resolvers (/etc/resolv.conf); else `host:port` as dns.Resolver takes. */
    dns: AbsentAsNull<SettingsInput['dns'], 'servers'>;
    upstream: AbsentAsNull<SettingsInput['upstream'], 'caFile'>;
    /** `requestsPerSecond` null: no rate limit (EGR_LIMIT_RATE). `burst`: one second's worth unless set. */
    limits: AbsentAsNull<SettingsInput['limits'], 'requestsPerSecond'> & { burst: number };
    /** `protectReads`: GET /metrics and /v1/kill-switch need the token too (default: admin beyond loopback). */
    admin: AbsentAsNull<SettingsInput['admin'], 'tokenFile'> & { protectReads: boolean };
    killSwitch: AbsentAsNull<SettingsInput['killSwitch'], 'file'>;
    /** The continuous self-check: a direct connection as another UID must fail (null: off). */
    containment: { probe: (Omit<ProbeInput, 'target'> & { host: string; port: number }) | null };
  }
>;
export type SettingsResult = Validated<RuntimeSettings>;

/** Validates the runtime settings alone (a document with no policy). Every problem is reported. */
export function validateSettings(input: unknown): SettingsResult {
  const { value, ctx } = applySchema(input, SETTINGS_SCHEMA);
  if (value === null) return { ok: false, issues: ctx.issues };
  return settle(ctx, checkSettings(value as SettingsInput, ctx));
}

/** The checks of the settings sections a schema cannot express, over what the schema passed. */
export function checkSettings(input: SettingsInput, ctx: CheckContext): RuntimeSettings {
  const { err, warn, clean } = ctx;

  // listen: the schema's default is the whole section; a key a written section leaves out is off.
  const listen: Record<'http' | 'socks5' | 'admin' | 'dns', ListenAddress | null> = {
    http: null,
    socks5: null,
    admin: null,
    dns: null,
  };
  if (clean('listen')) {
    for (const key of ['http', 'socks5', 'admin', 'dns'] as const) {
      const v = input.listen[key];
      if (typeof v !== 'string') continue;
      const l = parseListen(v);
      if (!l) err(`/listen/${key}`, `"${v}" is not an address:port`, 'use e.g. "127.0.0.1:3128" or "[::1]:3128"');
      listen[key] = l;
    }
    const used = new Map<number, string>();
    for (const [key, l] of Object.entries(listen)) {
      if (!l || l.port === 0) continue;
      const prev = used.get(l.port);
      if (prev)
        err(`/listen/${key}`, `port ${l.port} is already used by listen.${prev}`, 'give each listener its own port');
      else used.set(l.port, key);
    }
    if (!listen.http && !listen.socks5)
      err('/listen', 'no proxy listener is enabled', 'set listen.http, listen.socks5 or both');
  }

  const d = input.dns;
  let servers: string[] | null = null;
  if (clean('dns') && d.servers) {
    servers = [];
    d.servers.forEach((s, i) => {
      const parsed = parseDnsServer(s);
      if (parsed) servers!.push(parsed);
      else err(`/dns/servers/${i}`, `"${s}" is not a DNS server address`, 'use e.g. "1.1.1.1" or "1.1.1.1:53"');
    });
  }
  if (clean('dns') && d.minTtlS > d.maxTtlS)
    err('/dns/minTtlS', 'minTtlS is larger than maxTtlS', 'make minTtlS ≤ maxTtlS');
  const dns = { ...d, servers };

  const upstream = { ...input.upstream, caFile: input.upstream.caFile ?? null };

  const lim = input.limits;
  const requestsPerSecond = lim.requestsPerSecond ?? null;
  // A bucket of one second's worth unless told otherwise: a default that depends on another setting.
  const limits = { ...lim, requestsPerSecond, burst: lim.burst ?? Math.max(1, Math.ceil(requestsPerSecond ?? 1)) };
  if (lim.burst !== undefined && requestsPerSecond === null)
    warn('/limits/burst', 'burst has no effect without requestsPerSecond', 'set limits.requestsPerSecond');

  // admin.protectReads defaults to whether the admin listener is beyond loopback: code, not schema.
  const a = input.admin;
  const adminBeyondLoopback = listen.admin ? !isLoopbackListen(listen.admin) : false;
  const admin = { tokenFile: a.tokenFile ?? null, protectReads: a.protectReads ?? adminBeyondLoopback };
  if (a.protectReads === true && !admin.tokenFile) {
    err('/admin/protectReads', 'protectReads needs a token to check', 'set admin.tokenFile');
  }
  if (a.protectReads === false && adminBeyondLoopback) {
    warn(
      '/admin/protectReads',
      `anyone who reaches ${listen.admin!.text} reads /metrics (which name identities) and the kill switch state`,
      'leave protectReads unset (true beyond loopback) and give Prometheus the admin token',
    );
  }
  const killSwitch = { file: input.killSwitch.file ?? null };

  const redactPaths: string[] = [];
  if (clean('log')) {
    input.log.redactPaths.forEach((p, i) => {
      const problem = pathPatternProblem(p);
      if (problem) err(`/log/redactPaths/${i}`, problem.message, problem.hint);
      else redactPaths.push(p);
    });
  }
  const log = { ...input.log, redactPaths };

  // containment
  const pr = clean('containment') ? input.containment.probe : undefined;
  let probe: RuntimeSettings['containment']['probe'] = null;
  if (pr) {
    const target = parseListen(pr.target);
    if (!target || target.port === 0) {
      err(
        '/containment/probe/target',
        `"${pr.target}" is not an address:port`,
        'use an IP literal and port that answer when nothing blocks them, e.g. "203.0.113.10:443" or "[2001:db8::10]:443"',
      );
    } else if (isLocalAddress(target.host)) {
      err(
        '/containment/probe/target',
        `"${pr.target}" is local: it proves nothing about the way out`,
        'probe an address outside the host, one the workload could reach without the rules',
      );
    } else {
      const { target: _written, ...timing } = pr;
      probe = { host: target.host, port: target.port, ...timing };
    }
  }

  return {
    listen,
    dns,
    upstream,
    limits,
    admin,
    killSwitch,
    workers: input.workers,
    log,
    containment: { probe },
  };
}
