// The policy half of the config at the edge: the raw value goes through the JSON Schema (which fills in the
// defaults, on a copy), then through the checks a schema cannot express (host patterns, CIDRs, references,
// link-local overlap), and comes out normalised and frozen, or as a list of problems that each say where and how
// to fix. The runtime settings are the other half (settings/); settings/config.ts validates the whole file.
// Pure: reading files is the caller's job.
import type { ErrorObject } from 'ajv';
import type { FromSchema } from 'json-schema-to-ts';
import { isIP } from 'node:net';
import { isSafePattern } from 'redos-detector';
import { DEFAULT_METHODS, DEFAULT_REGISTRIES, POLICY_SCHEMA } from './config-schema.js';
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

export { DEFAULT_METHODS, DEFAULT_REGISTRIES };

/** A validated config is frozen (deepFreeze): its type says so all the way down. */
export type Frozen<T> = T extends readonly (infer U)[]
  ? readonly Frozen<U>[]
  : T extends object
    ? { readonly [K in keyof T]: Frozen<T[K]> }
    : T;
/** Optional keys the schema gives no default, as the config holds them: present, null when absent. */
export type AbsentAsNull<T, K extends keyof T> = Omit<T, K> & { [P in K]-?: Exclude<T[P], undefined> | null };

/** The policy sections as the schema leaves them: shape checked, defaults filled in. */
export type PolicyInput = FromSchema<typeof POLICY_SCHEMA>;
type IntegrationInput = PolicyInput['integrations'][string];
type IdentityInput = PolicyInput['identities'][string];

export type Mode = PolicyInput['mode'];
export type Reads = IdentityInput['reads'];

/** `methods` null: the default set (DEFAULT_METHODS). `upgrade`: lower-case protocol names, empty for none. */
export type IntegrationConfig = Frozen<AbsentAsNull<IntegrationInput, 'methods'>>;
/** `password`: plaintext, development only (production start-up refuses it). `mode` null: the top-level mode. */
export type IdentityConfig = Frozen<AbsentAsNull<IdentityInput, 'passwordHash' | 'password' | 'mode'>>;
export type TokensConfig = Frozen<Omit<NonNullable<PolicyInput['tokens']>, 'maxTtl'> & { maxTtlS: number }>;
/** TLS inspection: `leafValidity` in seconds; `opaque` hosts are never inspected (a tunnel to them stays opaque). */
export type InspectionConfig = Frozen<
  Omit<NonNullable<PolicyInput['inspection']>, 'leafValidity'> & { leafValiditySeconds: number }
>;

/** What compilePolicy and the address guard read: who may reach what. */
export type PolicyConfig = Frozen<
  Omit<PolicyInput, 'integrations' | 'identities' | 'tokens' | 'inspection' | 'secrets' | 'credentials'> & {
    integrations: Record<string, IntegrationConfig>;
    identities: Record<string, IdentityConfig>;
    /** null: no run tokens. */
    tokens: TokensConfig | null;
    /** null: TLS inspection off. */
    inspection: InspectionConfig | null;
    /** Key file and handle settings of the credential broker; null when not configured. */
    secrets: SecretsConfig | null;
    /** Credentials Sluice injects for run handles (CONTRACT §11). */
    credentials: Record<string, CredentialConfig>;
  }
>;

export interface ListenAddress {
  readonly host: string;
  readonly port: number;
  /** As written, for messages. */
  readonly text: string;
}

export interface ConfigIssue {
  readonly severity: 'error' | 'warning';
  /** JSON-pointer-like path into the file, e.g. `/integrations/github/hosts/0`. */
  readonly path: string;
  readonly message: string;
  readonly hint?: string;
}

export type Validated<T> =
  | { readonly ok: true; readonly config: T; readonly warnings: readonly ConfigIssue[] }
  | { readonly ok: false; readonly issues: readonly ConfigIssue[] };
export type PolicyResult = Validated<PolicyConfig>;

/** Leaves live at least an hour (clients with a skewed clock) and at most a week (a stolen leaf key's worth). */
export const LEAF_VALIDITY_BOUNDS_S = Object.freeze({ min: 3600, max: 7 * 86400 });

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
      const options = parent?.properties ? Object.keys(parent.properties) : [];
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

/** Where the checks after the schema report, and which sections the schema already found wrong. */
export interface CheckContext {
  readonly issues: ConfigIssue[];
  readonly err: (path: string, message: string, hint?: string) => void;
  readonly warn: (path: string, message: string, hint?: string) => void;
  /** No schema error inside this top-level section: its checks may trust the schema's types. */
  readonly clean: (section: string) => boolean;
}

/**
 * Runs `schema` over a copy of `input` (so the caller's object is untouched) with the defaults filled in.
 * Schema problems become issues; the sections they are in are not `clean`, and the checks after skip them
 * (their value has not the schema's shape). Null: the input is not a mapping (`ctx.issues` says so).
 */
export function applySchema(input: unknown, schema: object): { value: unknown; ctx: CheckContext } {
  const issues: ConfigIssue[] = [];
  const err = (path: string, message: string, hint?: string) =>
    issues.push(hint ? { severity: 'error', path, message, hint } : { severity: 'error', path, message });
  const warn = (path: string, message: string, hint?: string) =>
    issues.push(hint ? { severity: 'warning', path, message, hint } : { severity: 'warning', path, message });
  const dirty = new Set<string>();
  const ctx: CheckContext = { issues, err, warn, clean: (section) => !dirty.has(section) };
  const raw = input ?? {};
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    err('/', 'the config must be a mapping', 'start from the example in the README');
    return { value: null, ctx };
  }
  const value = structuredClone(raw);
  const { validate } = loadConfigValidator(schema);
  if (!validate(value)) {
    for (const e of validate.errors ?? []) {
      // `workers` is a number or "auto": one issue with a hint, not one per branch of the anyOf.
      if (e.instancePath === '/workers' && e.keyword !== 'anyOf') continue;
      const section = /^\/([^/]+)/.exec(e.instancePath)?.[1];
      if (section !== undefined) dirty.add(section.replace(/~1/g, '/').replace(/~0/g, '~'));
      issues.push(schemaIssue(e));
    }
  }
  return { value, ctx };
}

/** The result of a validation: frozen when no issue is an error. */
export function settle<T>(ctx: CheckContext, config: T): Validated<T> {
  if (ctx.issues.some((i) => i.severity === 'error')) return { ok: false, issues: ctx.issues };
  return { ok: true, config: deepFreeze(config), warnings: ctx.issues };
}

/** Validates the policy sections alone (a document with no runtime settings). Every problem is reported. */
export function validatePolicy(input: unknown): PolicyResult {
  const { value, ctx } = applySchema(input, POLICY_SCHEMA);
  if (value === null) return { ok: false, issues: ctx.issues };
  return settle(ctx, checkPolicy(value as PolicyInput, ctx));
}

const LINK_LOCAL_V4: Prefix = parsePrefix('169.254.0.0/16')!;
const LINK_LOCAL_V6: Prefix = parsePrefix('fe80::/10')!;

const PASSWORD_HASH = /^scrypt\$[0-9]{1,8}\$[0-9]{1,3}\$[0-9]{1,3}\$[A-Za-z0-9+/=_-]{8,}\$[A-Za-z0-9+/=_-]{16,}$/;

/** The checks of the policy sections a schema cannot express, over what the schema passed (defaults filled in). */
export function checkPolicy(input: PolicyInput, ctx: CheckContext): PolicyConfig {
  const { err, warn, clean } = ctx;

  // Names the policy would match but decide() refuses before DNS (special-names.ts): checked once the
  // addressGuard.allow names are known, since those lift the local-use ones.
  const named: { pattern: string; path: string }[] = [];
  const patterns = (list: readonly string[], path: string, reachable = true): string[] => {
    const out: string[] = [];
    list.forEach((item, i) => {
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
  const cidrs = (list: readonly string[], path: string): string[] => {
    const out: string[] = [];
    list.forEach((item, i) => {
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

  // registries: the default list is already in normal form.
  const registries = clean('registries') ? patterns(input.registries, '/registries') : [];

  // integrations
  const integrations: Record<string, IntegrationConfig> = {};
  for (const [name, v] of clean('integrations') ? Object.entries(input.integrations) : []) {
    const path = `/integrations/${name}`;
    const hosts = patterns(v.hosts, `${path}/hosts`);
    const methods = v.methods ?? null;
    const restricted = methods !== null && !DEFAULT_METHODS.every((m) => methods.includes(m));
    if (v.tunnel && restricted) {
      err(
        `${path}/tunnel`,
        'tunnel: true with restricted methods cannot be enforced: an opaque tunnel hides the method',
        'set "tunnel: false" to police methods, or drop "methods" to allow all of them',
      );
    }
    if (methods?.includes('CONNECT'))
      err(`${path}/methods`, 'CONNECT is not a method an integration can list', 'use "tunnel: true"');
    const upgrade = [...new Set(v.upgrade.map((p) => p.toLowerCase()))];
    // h2c carries HTTP requests inside the upgraded connection, where Sluice no longer sees their methods.
    if (upgrade.includes('h2c') && restricted) {
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
    integrations[name] = { hosts, methods, tunnel: v.tunnel, upgrade };
  }

  // identities: the grants are checked against the integrations only when those passed the schema.
  const identities: Record<string, IdentityConfig> = {};
  const integrationNames = Object.keys(integrations);
  for (const [name, v] of clean('identities') ? Object.entries(input.identities) : []) {
    const path = `/identities/${name}`;
    const passwordHash = v.passwordHash ?? null;
    const password = v.password ?? null;
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
    v.integrations.forEach((g, i) => {
      if (clean('integrations') && !Object.hasOwn(integrations, g)) {
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
    identities[name] = { passwordHash, password, integrations: v.integrations, reads: v.reads, mode: v.mode ?? null };
  }

  // tokens: the schema holds maxTtl to a duration.
  const tokens: TokensConfig | null =
    input.tokens && clean('tokens')
      ? { keyFile: input.tokens.keyFile, maxTtlS: parseDuration(input.tokens.maxTtl) ?? 0 }
      : null;

  // globalDeny and addressGuard
  const globalDeny = clean('globalDeny')
    ? {
        hosts: patterns(input.globalDeny.hosts, '/globalDeny/hosts', false),
        cidrs: cidrs(input.globalDeny.cidrs, '/globalDeny/cidrs'),
      }
    : { hosts: [], cidrs: [] };
  const allow: { cidr: string; hosts: string[] }[] = [];
  const ag = clean('addressGuard') ? input.addressGuard : { allow: [], deny: [] };
  ag.allow.forEach((e, i) => {
    const path = `/addressGuard/allow/${i}`;
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

  const inspection =
    input.inspection && clean('inspection')
      ? checkInspection(input.inspection, ctx, patterns, clean('registries') && clean('integrations'), {
          registries,
          integrations,
        })
      : null;
  // ── credential broker: secrets and credentials (firewall/credential-config.ts) ──
  // Its own checks also read keys the schema refuses (a `secret:` inside a credential is refused as a secret,
  // not only as an unknown key), so it runs whenever the integrations it refers to are known.
  const broker = clean('integrations')
    ? validateCredentialSections(input as Record<string, unknown>, {
        integrations,
        tokensKeyFile: tokens?.keyFile ?? null,
        err,
        warn,
        suggest: didYouMean,
        parseDuration,
      })
    : { secrets: null, credentials: {} };
  // ── end of the credential broker's sections ──

  return {
    mode: input.mode,
    registries,
    integrations,
    identities,
    tokens,
    globalDeny,
    addressGuard,
    inspection,
    secrets: broker.secrets,
    credentials: broker.credentials,
  };
}

// ── TLS inspection (issue 15) ──────────────────────────────────────────────────────────────────────────────
// The section names the CA files and bounds the leaf cache; the files themselves are read and checked by
// proxy/inspection (`inspectionProblems`), since this module reads nothing.

function checkInspection(
  v: NonNullable<PolicyInput['inspection']>,
  ctx: CheckContext,
  patterns: (list: readonly string[], path: string) => string[],
  crossCheck: boolean,
  policy: { registries: readonly string[]; integrations: Readonly<Record<string, IntegrationConfig>> },
): InspectionConfig {
  const leafValiditySeconds = parseDuration(v.leafValidity) ?? 0;
  if (leafValiditySeconds < LEAF_VALIDITY_BOUNDS_S.min || leafValiditySeconds > LEAF_VALIDITY_BOUNDS_S.max) {
    ctx.err(
      '/inspection/leafValidity',
      `"${v.leafValidity}" is outside 1h–7d`,
      'leaves are short-lived by design: use e.g. "24h"',
    );
  }
  const opaque = patterns(v.opaque, '/inspection/opaque');
  // An opaque host is still a tunnel: reachable only if it is a registry or a `tunnel: true` integration.
  const tunnelPatterns = new Set([
    ...policy.registries,
    ...Object.values(policy.integrations)
      .filter((i) => i.tunnel)
      .flatMap((i) => i.hosts),
  ]);
  const coveredBy = (p: string) =>
    tunnelPatterns.has(p) ||
    (!p.startsWith('*.') && [...tunnelPatterns].some((t) => t.startsWith('*.') && p.endsWith(t.slice(1))));
  opaque.forEach((p) => {
    if (crossCheck && !coveredBy(p)) {
      ctx.warn(
        '/inspection/opaque',
        `"${p}" is neither a registry nor a tunnel: true integration host, so no tunnel reaches it`,
        'list the host under "registries" or in an integration with "tunnel: true", or drop it from inspection.opaque',
      );
    }
  });
  return {
    caCertFile: v.caCertFile,
    caKeyFile: v.caKeyFile,
    leafValiditySeconds,
    leafCacheSize: v.leafCacheSize,
    opaque,
  };
}
// ── end TLS inspection ─────────────────────────────────────────────────────────────────────────────────────

export function formatIssue(i: ConfigIssue): string {
  return `${i.severity}: ${i.path}: ${i.message}${i.hint ? ` (hint: ${i.hint})` : ''}`;
}
