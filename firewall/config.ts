// Config validation at the edge: the raw YAML value goes through the JSON Schema, then through the checks a
// schema cannot express, and comes out normalised and frozen, or as a list of problems that each say where
// and how to fix. Pure: reading files is the caller's job.
import type { ErrorObject } from 'ajv';
import { isIP } from 'node:net';
import { isSafePattern } from 'redos-detector';
import { CONFIG_SCHEMA, TOP_LEVEL_KEYS } from './config-schema.js';
import { loadConfigValidator } from './config-validator.js';
import { hostMatches, hostSet } from './host-match.js';
import { normaliseHost } from './normalise.js';
import {
  type Prefix,
  coversMappedRange,
  embeddedRangeOf,
  parsePrefix,
  parseRulePrefix,
  prefixContains,
} from './ranges.js';
import { specialNameOf } from './special-names.js';
// The credential broker's sections live in their own module; this file only calls it.
import { type CredentialConfig, type SecretsConfig, validateCredentialSections } from './credential-config.js';

export type Mode = 'enforce' | 'report';
export type Reads = 'public' | 'none';

export interface ListenAddress {
  readonly host: string;
  readonly port: number;
  /** As written, for messages. */
  readonly text: string;
}

export interface IntegrationConfig {
  readonly hosts: readonly string[];
  /** null: the default set (every read and write method). */
  readonly methods: readonly string[] | null;
  readonly tunnel: boolean;
  /** Protocols (lower-case names) an `Upgrade` to this integration may switch to; empty: no upgrades. */
  readonly upgrade: readonly string[];
}

export interface IdentityConfig {
  readonly passwordHash: string | null;
  /** Plaintext password: development only (production start-up refuses it). */
  readonly password: string | null;
  readonly integrations: readonly string[];
  readonly reads: Reads;
  readonly mode: Mode | null;
}

export interface SluiceConfig {
  readonly mode: Mode;
  readonly listen: {
    readonly http: ListenAddress | null;
    readonly socks5: ListenAddress | null;
    readonly admin: ListenAddress | null;
    readonly dns: ListenAddress | null;
  };
  readonly registries: readonly string[];
  readonly integrations: Readonly<Record<string, IntegrationConfig>>;
  readonly identities: Readonly<Record<string, IdentityConfig>>;
  readonly tokens: { readonly keyFile: string; readonly maxTtlS: number } | null;
  readonly globalDeny: { readonly hosts: readonly string[]; readonly cidrs: readonly string[] };
  readonly addressGuard: {
    readonly allow: readonly { readonly cidr: string; readonly hosts: readonly string[] }[];
    readonly deny: readonly string[];
  };
  readonly dns: {
    /** null: the system's resolvers (/etc/resolv.conf). */
    readonly servers: readonly string[] | null;
    readonly timeoutMs: number;
    readonly minTtlS: number;
    readonly maxTtlS: number;
  };
  readonly upstream: {
    readonly caFile: string | null;
    readonly connectTimeoutMs: number;
    readonly tunnelHelloTimeoutMs: number;
  };
  readonly limits: {
    readonly headersTimeoutMs: number;
    readonly idleTimeoutMs: number;
    readonly maxHeaderBytes: number;
    /** Requests and tunnels in flight at once, all identities together (EGR_LIMIT_CONCURRENCY). */
    readonly maxConnections: number;
    readonly maxConnectionsPerIdentity: number;
    /** Token bucket per identity; null means no rate limit (EGR_LIMIT_RATE). */
    readonly requestsPerSecond: number | null;
    readonly burst: number;
    /** Failed credentials per source address per minute before EGR_LIMIT_RATE. */
    readonly authFailuresPerMinute: number;
    /** Graceful shutdown: how long in-flight requests may take to finish after SIGTERM. */
    readonly drainMs: number;
  };
  readonly admin: {
    readonly tokenFile: string | null;
    /** GET /metrics and GET /v1/kill-switch need the bearer token too (default: when listen.admin is beyond
     * loopback). */
    readonly protectReads: boolean;
  };
  readonly killSwitch: { readonly file: string | null };
  /** Proxy processes sharing the listeners: a count, or 'auto' (the CPUs this process may use). 1: no workers. */
  readonly workers: number | 'auto';
  readonly log: {
    readonly level: string;
    /** Operator patterns for the audit record's target.path (proxy/ops/redact.ts): anchored, ReDoS-checked. */
    readonly redactPaths: readonly string[];
  };
  readonly containment: {
    /** The continuous self-check: a direct connection as another UID must fail (null: off). */
    readonly probe: {
      readonly host: string;
      readonly port: number;
      readonly intervalS: number;
      readonly timeoutMs: number;
      readonly uid: number;
      readonly gid: number;
    } | null;
  };
  /** TLS inspection (null: off). */
  readonly inspection: InspectionConfig | null;
  // ── credential broker (firewall/credential-config.ts) ──
  /** Key file and handle settings of the credential broker; null when not configured. */
  readonly secrets: SecretsConfig | null;
  /** Credentials Sluice injects for run handles (CONTRACT §11). */
  readonly credentials: Readonly<Record<string, CredentialConfig>>;
}

export interface ConfigIssue {
  readonly severity: 'error' | 'warning';
  /** JSON-pointer-like path into the file, e.g. `/integrations/github/hosts/0`. */
  readonly path: string;
  readonly message: string;
  readonly hint?: string;
}

export type ConfigResult =
  | { readonly ok: true; readonly config: SluiceConfig; readonly warnings: readonly ConfigIssue[] }
  | { readonly ok: false; readonly issues: readonly ConfigIssue[] };

/** Read and write methods every integration allows unless it lists its own. */
export const DEFAULT_METHODS = Object.freeze(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE']);

export const DEFAULT_REGISTRIES = Object.freeze([
  'registry.npmjs.org',
  'registry.yarnpkg.com',
  'pypi.org',
  'files.pythonhosted.org',
  'crates.io',
  'index.crates.io',
  'static.crates.io',
  'proxy.golang.org',
  'sum.golang.org',
  'rubygems.org',
  'index.rubygems.org',
  'repo.maven.apache.org',
  'repo1.maven.org',
  'deb.debian.org',
  'security.debian.org',
]);

export const DEFAULTS = Object.freeze({
  listen: { http: '127.0.0.1:3128', socks5: '127.0.0.1:1080', admin: '127.0.0.1:9090' },
  dns: { timeoutMs: 2000, minTtlS: 5, maxTtlS: 300 },
  upstream: { connectTimeoutMs: 10000, tunnelHelloTimeoutMs: 10000 },
  limits: {
    headersTimeoutMs: 10000,
    idleTimeoutMs: 60000,
    maxHeaderBytes: 16384,
    maxConnections: 8192,
    maxConnectionsPerIdentity: 2048,
    authFailuresPerMinute: 30,
    drainMs: 10000,
  },
  tokenMaxTtl: '24h',
  /** The probe runs as `nobody` unless told otherwise. */
  probe: { intervalS: 60, timeoutMs: 3000, uid: 65534, gid: 65534 },
});

const { validate: validateSchema } = loadConfigValidator();

export function parseDuration(text: string): number | null {
  const m = /^([0-9]+)(ms|s|m|h|d)$/.exec(text);
  if (!m) return null;
  const n = Number(m[1]);
  const unit = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 }[m[2] as 'ms' | 's' | 'm' | 'h' | 'd'];
  return n * unit;
}

function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length]!;
}

function didYouMean(word: string, options: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const o of options) {
    const d = distance(word.toLowerCase(), o.toLowerCase());
    if (d < bestD) [best, bestD] = [o, d];
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(word.length / 3))
    ? `did you mean "${best}"?`
    : undefined;
}

function schemaIssue(e: ErrorObject): ConfigIssue {
  const path = e.instancePath || '/';
  switch (e.keyword) {
    case 'additionalProperties': {
      const key = (e.params as { additionalProperty: string }).additionalProperty;
      const parent = e.parentSchema as { properties?: Record<string, unknown> } | undefined;
      const options = parent?.properties ? Object.keys(parent.properties) : TOP_LEVEL_KEYS;
      return {
        severity: 'error',
        path: `${e.instancePath}/${key}`,
        message: `unknown key "${key}"`,
        hint: didYouMean(key, options) ?? `allowed keys: ${options.join(', ')}`,
      };
    }
    case 'enum':
      return {
        severity: 'error',
        path,
        message: e.message ?? 'invalid value',
        hint: `use one of: ${(e.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(', ')}`,
      };
    case 'required':
      return {
        severity: 'error',
        path,
        message: `missing "${(e.params as { missingProperty: string }).missingProperty}"`,
      };
    case 'propertyNames':
      return {
        severity: 'error',
        path,
        message: 'invalid name',
        hint: 'names are lowercase letters, digits, "-" and "_", starting with a letter',
      };
    case 'anyOf':
      if (path === '/workers')
        return {
          severity: 'error',
          path,
          message: 'not a worker count',
          hint: 'use a whole number from 1 to 256, or "auto" (one per CPU)',
        };
      return { severity: 'error', path, message: e.message ?? 'invalid value' };
    case 'pattern':
      if (/\/methods\//.test(path))
        return {
          severity: 'error',
          path,
          message: 'not an HTTP method',
          hint: 'use an upper-case method such as "POST"',
        };
      if (/(maxTtl|leafValidity)$/.test(path))
        return { severity: 'error', path, message: 'not a duration', hint: 'use e.g. "30m", "2h", "1d"' };
      if (/\/upgrade\//.test(path))
        return {
          severity: 'error',
          path,
          message: 'not a protocol name',
          hint: 'use the name an Upgrade header carries, without a version, e.g. "websocket"',
        };
      return { severity: 'error', path, message: e.message ?? 'invalid value' };
    default:
      return { severity: 'error', path, message: e.message ?? 'invalid value' };
  }
}

/** Normalises a host pattern: an exact name or IP literal, or `*.` followed by a name. */
export function normalisePattern(raw: string): { pattern: string } | { message: string; hint?: string } {
  const wildcard = raw.startsWith('*.');
  const body = wildcard ? raw.slice(2) : raw;
  if (body.includes('*')) {
    const fix = raw.replace(/^\*+\.?/, '').replace(/\.\*$/, '');
    return {
      message: `"${raw}" is not a supported pattern`,
      hint: `wildcards are a leading "*." only: use "*.${fix.replace(/\*/g, '').replace(/^\./, '') || 'example.com'}"`,
    };
  }
  const host = normaliseHost(body.startsWith('[') || isIP(body) !== 6 ? body : `[${body}]`);
  if ('verdict' in host)
    return {
      message: `"${raw}" is not a valid host name`,
      hint: 'use a DNS name such as "api.example.com" or "*.example.com"',
    };
  if (wildcard && host.kind !== 'name')
    return {
      message: `"${raw}" puts a wildcard on an IP address`,
      hint: 'use a CIDR in addressGuard or globalDeny.cidrs',
    };
  return { pattern: wildcard ? `*.${host.host}` : host.host };
}

export const isLoopbackListen = (l: ListenAddress): boolean => l.host === '::1' || l.host.startsWith('127.');

/** Steps redos-detector may take proving a pattern safe; past it the pattern counts as unsafe. Deterministic
 * (no time limit, so a loaded machine cannot turn a good pattern bad). */
const REDOS_MAX_STEPS = 1000;
const patternVerdicts = new Map<string, { message: string; hint: string } | null>();

/** Why an operator's path pattern is refused, or null. Patterns run on every audit record, so each must be
 * anchored at the start of the path (an unanchored one is retried from every position) and provably free of
 * catastrophic backtracking (redos-detector: a score of 1 is no backtracking at all). */
export function pathPatternProblem(source: string): { message: string; hint: string } | null {
  const known = patternVerdicts.get(source);
  if (known !== undefined) return known;
  let problem: { message: string; hint: string } | null = null;
  let re: RegExp | null = null;
  try {
    re = new RegExp(source, 'gd');
  } catch (e) {
    problem = {
      message: `not a regular expression: ${(e as Error).message}`,
      hint: 'write a JavaScript regular expression, e.g. "^/hooks/([^/]+)"',
    };
  }
  if (re && !source.startsWith('^')) {
    problem = {
      message: 'the pattern is not anchored',
      hint: `start it with "^/", e.g. "^${source.startsWith('/') ? source : `/${source}`}"`,
    };
  } else if (re && re.test('')) {
    problem = { message: 'the pattern matches the empty string', hint: 'make it match at least one character' };
  } else if (re) {
    let safe = false;
    try {
      safe = isSafePattern(source, { maxSteps: REDOS_MAX_STEPS }).safe;
    } catch {
      safe = false;
    }
    if (!safe)
      problem = {
        message: 'the pattern can backtrack catastrophically (ReDoS)',
        hint: 'avoid nested or adjacent quantifiers over the same characters: use "[^/]+" for a segment, e.g. "^/hooks/([^/]+)"',
      };
  }
  if (patternVerdicts.size > 1024) patternVerdicts.clear();
  patternVerdicts.set(source, problem);
  return problem;
}

export function parseListen(text: string): ListenAddress | null {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([0-9.]+)):([0-9]{1,5})$/.exec(text);
  if (!m) return null;
  const host = m[1] ?? m[2]!;
  const port = Number(m[3]);
  if (port > 65535 || isIP(host) === 0) return null;
  return { host, port, text };
}

/** `1.1.1.1`, `1.1.1.1:53`, `[2606:4700::1111]:53` → `host:port` in the form dns.Resolver#setServers takes. */
export function parseDnsServer(text: string): string | null {
  if (isIP(text)) return isIP(text) === 6 ? `[${text}]:53` : `${text}:53`;
  const l = parseListen(text);
  return l && l.port > 0 ? (isIP(l.host) === 6 ? `[${l.host}]:${l.port}` : `${l.host}:${l.port}`) : null;
}

/** Freezes a config and everything in it (a config that crossed a process boundary is a fresh copy). */
export function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

type Raw = Record<string, unknown>;
const obj = (v: unknown): Raw => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Raw) : {});
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const str = (v: unknown): v is string => typeof v === 'string';

const LINK_LOCAL_V4: Prefix = parsePrefix('169.254.0.0/16')!;
const LINK_LOCAL_V6: Prefix = parsePrefix('fe80::/10')!;

const PASSWORD_HASH = /^scrypt\$[0-9]{1,8}\$[0-9]{1,3}\$[0-9]{1,3}\$[A-Za-z0-9+/=_-]{8,}\$[A-Za-z0-9+/=_-]{16,}$/;

/** Validates a parsed YAML/JSON value. Every problem is reported, not only the first. */
export function validateConfig(input: unknown): ConfigResult {
  const issues: ConfigIssue[] = [];
  const raw = input ?? {};
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    return {
      ok: false,
      issues: [
        {
          severity: 'error',
          path: '/',
          message: 'the config must be a mapping',
          hint: 'start from the example in the README',
        },
      ],
    };
  }
  if (!validateSchema(raw)) {
    for (const e of validateSchema.errors ?? []) {
      // `workers` is a number or "auto": one issue with a hint, not one per branch of the anyOf.
      if (e.instancePath === '/workers' && e.keyword !== 'anyOf') continue;
      issues.push(schemaIssue(e));
    }
  }
  const r = raw as Raw;
  const err = (path: string, message: string, hint?: string) =>
    issues.push(hint ? { severity: 'error', path, message, hint } : { severity: 'error', path, message });
  const warn = (path: string, message: string, hint?: string) =>
    issues.push(hint ? { severity: 'warning', path, message, hint } : { severity: 'warning', path, message });

  // Names the policy would match but decide() refuses before DNS (special-names.ts): checked once the
  // addressGuard.allow names are known, since those lift the local-use ones.
  const named: { pattern: string; path: string }[] = [];
  const patterns = (list: unknown, path: string, reachable = true): string[] => {
    const out: string[] = [];
    arr(list).forEach((item, i) => {
      if (!str(item)) return;
      const p = normalisePattern(item);
      if ('pattern' in p) {
        out.push(p.pattern);
        if (reachable) named.push({ pattern: p.pattern, path: `${path}/${i}` });
      } else err(`${path}/${i}`, p.message, p.hint);
    });
    return [...new Set(out)];
  };
  // Every CIDR list is compiled as the guard compiles it (parseRulePrefix): IPv4-mapped prefixes are IPv4.
  // A rule that, read that way, cannot do what it seems to say gets a warning with the rule that would.
  const cidrs = (list: unknown, path: string): string[] => {
    const out: string[] = [];
    arr(list).forEach((item, i) => {
      if (!str(item)) return;
      const p = parseRulePrefix(item);
      if (!p) {
        err(`${path}/${i}`, `"${item}" is not a CIDR`, 'use e.g. "203.0.113.0/24" or "2001:db8::/32"');
        return;
      }
      out.push(item);
      const embedded = embeddedRangeOf(p);
      if (embedded) {
        warn(
          `${path}/${i}`,
          `"${item}" lies in ${embedded.name} space, which the address guard always denies; it does not match the IPv4 address it embeds`,
          embedded.ipv4
            ? `to deny that IPv4 address, write "${embedded.ipv4}"`
            : 'write the IPv4 address it embeds as an IPv4 CIDR',
        );
      } else if (coversMappedRange(p)) {
        warn(
          `${path}/${i}`,
          `"${item}" matches IPv6 destinations only: an IPv4-mapped address is judged as the IPv4 address it holds`,
          'add the IPv4 prefix too (e.g. "0.0.0.0/0") if you mean IPv4 destinations',
        );
      }
    });
    return out;
  };

  // listen
  const listenRaw = obj(r.listen);
  const listen: Record<string, ListenAddress | null> = {};
  const hasListenSection = r.listen !== undefined;
  for (const key of ['http', 'socks5', 'admin', 'dns'] as const) {
    const v = hasListenSection ? listenRaw[key] : (DEFAULTS.listen as Record<string, string | undefined>)[key];
    if (v === undefined) {
      listen[key] = null;
      continue;
    }
    if (v === null || v === false) {
      listen[key] = null;
      continue;
    }
    if (!str(v)) continue;
    const l = parseListen(v);
    if (!l) err(`/listen/${key}`, `"${v}" is not an address:port`, 'use e.g. "127.0.0.1:3128" or "[::1]:3128"');
    listen[key] = l;
  }
  const used = new Map<string, string>();
  for (const [key, l] of Object.entries(listen)) {
    if (!l || l.port === 0) continue;
    const k = `${l.port}`;
    const prev = used.get(k);
    if (prev)
      err(`/listen/${key}`, `port ${l.port} is already used by listen.${prev}`, 'give each listener its own port');
    else used.set(k, key);
  }
  if (!listen.http && !listen.socks5)
    err('/listen', 'no proxy listener is enabled', 'set listen.http, listen.socks5 or both');

  // registries
  const registries = r.registries === undefined ? [...DEFAULT_REGISTRIES] : patterns(r.registries, '/registries');

  // integrations
  const integrations: Record<string, IntegrationConfig> = {};
  for (const [name, value] of Object.entries(obj(r.integrations))) {
    const v = obj(value);
    const path = `/integrations/${name}`;
    const hosts = patterns(v.hosts, `${path}/hosts`);
    const methods = Array.isArray(v.methods) ? v.methods.filter(str) : null;
    const tunnel = v.tunnel === true;
    if (tunnel && methods && !DEFAULT_METHODS.every((m) => methods.includes(m))) {
      err(
        `${path}/tunnel`,
        'tunnel: true with restricted methods cannot be enforced: an opaque tunnel hides the method',
        'set "tunnel: false" to police methods, or drop "methods" to allow all of them',
      );
    }
    if (methods?.includes('CONNECT'))
      err(`${path}/methods`, 'CONNECT is not a method an integration can list', 'use "tunnel: true"');
    const upgrade = [...new Set((Array.isArray(v.upgrade) ? v.upgrade.filter(str) : []).map((p) => p.toLowerCase()))];
    // h2c carries HTTP requests inside the upgraded connection, where Sluice no longer sees their methods.
    if (upgrade.includes('h2c') && methods && !DEFAULT_METHODS.every((m) => methods.includes(m))) {
      err(
        `${path}/upgrade`,
        'an h2c upgrade with restricted methods cannot be enforced: the requests inside it are not judged',
        'drop "h2c" from "upgrade" to police methods, or drop "methods" to allow all of them',
      );
    }
    if (upgrade.length && methods && !methods.includes('GET')) {
      warn(
        `${path}/upgrade`,
        'upgrades are asked for with GET (WebSocket, RFC 6455), which "methods" does not allow',
        'add "GET" to "methods"',
      );
    }
    integrations[name] = { hosts, methods, tunnel, upgrade };
  }

  // identities
  const identities: Record<string, IdentityConfig> = {};
  const integrationNames = Object.keys(integrations);
  for (const [name, value] of Object.entries(obj(r.identities))) {
    const v = obj(value);
    const path = `/identities/${name}`;
    const passwordHash = str(v.passwordHash) ? v.passwordHash : null;
    const password = str(v.password) ? v.password : null;
    if (passwordHash && password) err(path, 'both "password" and "passwordHash" are set', 'keep only "passwordHash"');
    if (!passwordHash && !password) err(path, 'no credential', 'add "passwordHash" from `sluice hash-password`');
    if (passwordHash && !PASSWORD_HASH.test(passwordHash))
      err(`${path}/passwordHash`, 'not a Sluice scrypt hash', 'generate one with `sluice hash-password`');
    if (password)
      warn(
        `${path}/password`,
        'plaintext password (refused when SLUICE_ENV=production)',
        'replace with "passwordHash" from `sluice hash-password`',
      );
    const grants = arr(v.integrations).filter(str);
    grants.forEach((g, i) => {
      if (!Object.hasOwn(integrations, g)) {
        err(
          `${path}/integrations/${i}`,
          `unknown integration "${g}"`,
          didYouMean(g, integrationNames) ??
            (integrationNames.length
              ? `defined integrations: ${integrationNames.join(', ')}`
              : 'define it under "integrations"'),
        );
      }
    });
    identities[name] = {
      passwordHash,
      password,
      integrations: grants,
      reads: v.reads === 'none' ? 'none' : 'public',
      mode: v.mode === 'report' || v.mode === 'enforce' ? v.mode : null,
    };
  }

  // tokens
  let tokens: SluiceConfig['tokens'] = null;
  if (r.tokens !== undefined) {
    const t = obj(r.tokens);
    const maxTtlS = parseDuration(str(t.maxTtl) ? t.maxTtl : DEFAULTS.tokenMaxTtl) ?? 0;
    if (str(t.keyFile)) tokens = { keyFile: t.keyFile, maxTtlS };
  }

  // globalDeny and addressGuard
  const gd = obj(r.globalDeny);
  const globalDeny = {
    hosts: patterns(gd.hosts, '/globalDeny/hosts', false),
    cidrs: cidrs(gd.cidrs, '/globalDeny/cidrs'),
  };
  const ag = obj(r.addressGuard);
  const allow: { cidr: string; hosts: string[] }[] = [];
  arr(ag.allow).forEach((entry, i) => {
    const e = obj(entry);
    const path = `/addressGuard/allow/${i}`;
    if (!str(e.cidr)) return;
    // As the guard reads it: `::ffff:169.254.0.0/112` is 169.254.0.0/16 and must meet the same checks.
    const p = parseRulePrefix(e.cidr);
    if (!p) {
      err(`${path}/cidr`, `"${e.cidr}" is not a CIDR`, 'use e.g. "10.20.0.0/16"');
      return;
    }
    // Metadata services live in link-local space; no exception may open it.
    const linkLocal = p.family === 4 ? LINK_LOCAL_V4 : LINK_LOCAL_V6;
    const overlaps =
      p.bits <= linkLocal.bits
        ? prefixContains(p, linkLocal.family, linkLocal.bytes)
        : prefixContains(linkLocal, p.family, p.bytes);
    if (overlaps)
      err(
        `${path}/cidr`,
        `"${e.cidr}" overlaps link-local space, where metadata services live`,
        'narrow the CIDR to the service you need',
      );
    // Nor may one open an IPv6 form that embeds IPv4: an entry wholly inside one could never apply.
    const embedded = embeddedRangeOf(p);
    if (embedded) {
      err(
        `${path}/cidr`,
        `"${e.cidr}" lies in ${embedded.name} space, which no exception can open`,
        embedded.ipv4
          ? `to allow the IPv4 address it embeds, write "${embedded.ipv4}"`
          : 'write the IPv4 address it embeds as an IPv4 CIDR',
      );
    }
    if ((p.family === 4 && p.bits < 8) || (p.family === 6 && p.bits < 16))
      warn(`${path}/cidr`, `"${e.cidr}" is very broad`, 'bind exceptions to the narrowest CIDR that holds the service');
    allow.push({ cidr: e.cidr, hosts: patterns(e.hosts, `${path}/hosts`) });
  });
  const addressGuard = { allow, deny: cidrs(ag.deny, '/addressGuard/deny') };
  const allowNames = hostSet(allow.flatMap((e) => e.hosts));
  for (const { pattern, path } of named) {
    // A wildcard stands for the names under it: `*.corp.local` is judged as `x.corp.local` would be.
    const sample = pattern.startsWith('*.') ? `x.${pattern.slice(2)}` : pattern;
    const s = specialNameOf(sample);
    if (!s || (s.kind === 'local-use' && hostMatches(allowNames, sample))) continue;
    warn(
      path,
      `"${pattern}" is a special-use name (.${s.suffix}) that Sluice never resolves: every request to it is refused`,
      s.kind === 'local-use'
        ? 'bind an addressGuard.allow entry to the name to reach a private service by it'
        : 'use a name that exists in the public DNS, or an IP literal exception',
    );
  }

  // dns
  const d = obj(r.dns);
  let servers: string[] | null = null;
  if (Array.isArray(d.servers)) {
    servers = [];
    d.servers.forEach((s, i) => {
      if (!str(s)) return;
      const parsed = parseDnsServer(s);
      if (parsed) servers!.push(parsed);
      else err(`/dns/servers/${i}`, `"${s}" is not a DNS server address`, 'use e.g. "1.1.1.1" or "1.1.1.1:53"');
    });
  }
  const dns = {
    servers,
    timeoutMs: typeof d.timeoutMs === 'number' ? d.timeoutMs : DEFAULTS.dns.timeoutMs,
    minTtlS: typeof d.minTtlS === 'number' ? d.minTtlS : DEFAULTS.dns.minTtlS,
    maxTtlS: typeof d.maxTtlS === 'number' ? d.maxTtlS : DEFAULTS.dns.maxTtlS,
  };
  if (dns.minTtlS > dns.maxTtlS) err('/dns/minTtlS', 'minTtlS is larger than maxTtlS', 'make minTtlS ≤ maxTtlS');

  const u = obj(r.upstream);
  const upstream = {
    caFile: str(u.caFile) ? u.caFile : null,
    connectTimeoutMs: typeof u.connectTimeoutMs === 'number' ? u.connectTimeoutMs : DEFAULTS.upstream.connectTimeoutMs,
    tunnelHelloTimeoutMs:
      typeof u.tunnelHelloTimeoutMs === 'number' ? u.tunnelHelloTimeoutMs : DEFAULTS.upstream.tunnelHelloTimeoutMs,
  };
  const lim = obj(r.limits);
  const num = (v: unknown, fallback: number) => (typeof v === 'number' ? v : fallback);
  const D = DEFAULTS.limits;
  const requestsPerSecond = typeof lim.requestsPerSecond === 'number' ? lim.requestsPerSecond : null;
  const limits = {
    headersTimeoutMs: num(lim.headersTimeoutMs, D.headersTimeoutMs),
    idleTimeoutMs: num(lim.idleTimeoutMs, D.idleTimeoutMs),
    maxHeaderBytes: num(lim.maxHeaderBytes, D.maxHeaderBytes),
    maxConnections: num(lim.maxConnections, D.maxConnections),
    maxConnectionsPerIdentity: num(lim.maxConnectionsPerIdentity, D.maxConnectionsPerIdentity),
    requestsPerSecond,
    // A bucket of one second's worth unless told otherwise.
    burst: num(lim.burst, Math.max(1, Math.ceil(requestsPerSecond ?? 1))),
    authFailuresPerMinute: num(lim.authFailuresPerMinute, D.authFailuresPerMinute),
    drainMs: num(lim.drainMs, D.drainMs),
  };
  if (lim.burst !== undefined && requestsPerSecond === null)
    warn('/limits/burst', 'burst has no effect without requestsPerSecond', 'set limits.requestsPerSecond');
  const adminRaw = obj(r.admin);
  const adminBeyondLoopback = listen.admin ? !isLoopbackListen(listen.admin) : false;
  const admin = {
    tokenFile: str(adminRaw.tokenFile) ? adminRaw.tokenFile : null,
    protectReads: typeof adminRaw.protectReads === 'boolean' ? adminRaw.protectReads : adminBeyondLoopback,
  };
  if (adminRaw.protectReads === true && !admin.tokenFile) {
    err('/admin/protectReads', 'protectReads needs a token to check', 'set admin.tokenFile');
  }
  if (adminRaw.protectReads === false && adminBeyondLoopback) {
    warn(
      '/admin/protectReads',
      `anyone who reaches ${listen.admin!.text} reads /metrics (which name identities) and the kill switch state`,
      'leave protectReads unset (true beyond loopback) and give Prometheus the admin token',
    );
  }
  const killSwitch = { file: str(obj(r.killSwitch).file) ? (obj(r.killSwitch).file as string) : null };
  const logRaw = obj(r.log);
  const redactPaths: string[] = [];
  arr(logRaw.redactPaths).forEach((p, i) => {
    if (!str(p)) return;
    const problem = pathPatternProblem(p);
    if (problem) err(`/log/redactPaths/${i}`, problem.message, problem.hint);
    else redactPaths.push(p);
  });
  const log = { level: str(logRaw.level) ? logRaw.level : 'info', redactPaths };
  const workers = r.workers === 'auto' ? 'auto' : typeof r.workers === 'number' ? r.workers : 1;

  // containment
  const pr = obj(obj(r.containment).probe);
  let probe: SluiceConfig['containment']['probe'] = null;
  if (str(pr.target)) {
    const target = parseListen(pr.target);
    if (!target || target.port === 0) {
      err(
        '/containment/probe/target',
        `"${pr.target}" is not an address:port`,
        'use an IP literal and port that answer when nothing blocks them, e.g. "203.0.113.10:443" or "[2001:db8::10]:443"',
      );
    } else if (
      target.host.startsWith('127.') ||
      target.host === '::1' ||
      target.host === '0.0.0.0' ||
      target.host === '::'
    ) {
      err(
        '/containment/probe/target',
        `"${pr.target}" is local: it proves nothing about the way out`,
        'probe an address outside the host, one the workload could reach without the rules',
      );
    } else {
      probe = {
        host: target.host,
        port: target.port,
        intervalS: typeof pr.intervalS === 'number' ? pr.intervalS : DEFAULTS.probe.intervalS,
        timeoutMs: typeof pr.timeoutMs === 'number' ? pr.timeoutMs : DEFAULTS.probe.timeoutMs,
        uid: typeof pr.uid === 'number' ? pr.uid : DEFAULTS.probe.uid,
        gid: typeof pr.gid === 'number' ? pr.gid : DEFAULTS.probe.gid,
      };
    }
  }

  const inspection = validateInspection(r.inspection, { err, warn, patterns }, registries, integrations);
  // ── credential broker: secrets and credentials (firewall/credential-config.ts) ──
  const broker = validateCredentialSections(r, {
    integrations,
    tokensKeyFile: tokens?.keyFile ?? null,
    err,
    warn,
    suggest: didYouMean,
    parseDuration,
  });
  // ── end of the credential broker's sections ──

  if (issues.some((i) => i.severity === 'error')) return { ok: false, issues };
  const config: SluiceConfig = {
    mode: r.mode === 'report' ? 'report' : 'enforce',
    listen: {
      http: listen.http ?? null,
      socks5: listen.socks5 ?? null,
      admin: listen.admin ?? null,
      dns: listen.dns ?? null,
    },
    registries,
    integrations,
    identities,
    tokens,
    globalDeny,
    addressGuard,
    dns,
    upstream,
    limits,
    admin,
    killSwitch,
    workers,
    log,
    containment: { probe },
    inspection,
    secrets: broker.secrets,
    credentials: broker.credentials,
  };
  return { ok: true, config: deepFreeze(config), warnings: issues };
}

// ── TLS inspection (issue 15) ──────────────────────────────────────────────────────────────────────────────
// The section names the CA files and bounds the leaf cache; the files themselves are read and checked by
// proxy/inspection (`inspectionProblems`), since this module reads nothing.

export interface InspectionConfig {
  readonly caCertFile: string;
  readonly caKeyFile: string;
  /** How long a minted leaf certificate is valid, in seconds. */
  readonly leafValiditySeconds: number;
  /** Leaf certificates (one per host) kept in memory. */
  readonly leafCacheSize: number;
  /** Host patterns never inspected: a tunnel to them stays opaque (and is allowed only where tunnels are). */
  readonly opaque: readonly string[];
}

export const INSPECTION_DEFAULTS = Object.freeze({ leafValidity: '24h', leafCacheSize: 1024 });
/** Leaves live at least an hour (clients with a skewed clock) and at most a week (a stolen leaf key's worth). */
export const LEAF_VALIDITY_BOUNDS_S = Object.freeze({ min: 3600, max: 7 * 86400 });

type IssueSink = (path: string, message: string, hint?: string) => void;

function validateInspection(
  raw: unknown,
  sink: {
    readonly err: IssueSink;
    readonly warn: IssueSink;
    readonly patterns: (list: unknown, path: string) => string[];
  },
  registries: readonly string[],
  integrations: Readonly<Record<string, IntegrationConfig>>,
): InspectionConfig | null {
  if (raw === undefined || raw === null) return null;
  const v = obj(raw);
  const validityText = str(v.leafValidity) ? v.leafValidity : INSPECTION_DEFAULTS.leafValidity;
  const leafValiditySeconds = parseDuration(validityText) ?? 0;
  if (
    str(v.leafValidity) &&
    parseDuration(v.leafValidity) !== null &&
    (leafValiditySeconds < LEAF_VALIDITY_BOUNDS_S.min || leafValiditySeconds > LEAF_VALIDITY_BOUNDS_S.max)
  ) {
    sink.err(
      '/inspection/leafValidity',
      `"${v.leafValidity}" is outside 1h–7d`,
      'leaves are short-lived by design: use e.g. "24h"',
    );
  }
  const opaque = sink.patterns(v.opaque, '/inspection/opaque');
  // An opaque host is still a tunnel: reachable only if it is a registry or a `tunnel: true` integration.
  const tunnelPatterns = new Set([
    ...registries,
    ...Object.values(integrations)
      .filter((i) => i.tunnel)
      .flatMap((i) => i.hosts),
  ]);
  const coveredBy = (p: string) =>
    tunnelPatterns.has(p) ||
    (!p.startsWith('*.') && [...tunnelPatterns].some((t) => t.startsWith('*.') && p.endsWith(t.slice(1))));
  opaque.forEach((p) => {
    if (!coveredBy(p)) {
      sink.warn(
        '/inspection/opaque',
        `"${p}" is neither a registry nor a tunnel: true integration host, so no tunnel reaches it`,
        'list the host under "registries" or in an integration with "tunnel: true", or drop it from inspection.opaque',
      );
    }
  });
  if (!str(v.caCertFile) || !str(v.caKeyFile)) return null;
  return {
    caCertFile: v.caCertFile,
    caKeyFile: v.caKeyFile,
    leafValiditySeconds,
    leafCacheSize: typeof v.leafCacheSize === 'number' ? v.leafCacheSize : INSPECTION_DEFAULTS.leafCacheSize,
    opaque,
  };
}
// ── end TLS inspection ─────────────────────────────────────────────────────────────────────────────────────

export function formatIssue(i: ConfigIssue): string {
  return `${i.severity}: ${i.path}: ${i.message}${i.hint ? ` (hint: ${i.hint})` : ''}`;
}
