// `sluice explain`: the decision a request would get, offline, with the rule that made it; with --resolve,
// each address the name resolves to and its class. It decides as serve does: the policy comes from the same
// function serve compiles it with (the proxy's own addresses included), then the same decide(), the same
// resolver settings and the same answer-set check as the dialer. test/explain.test.ts runs a table through
// both and compares the codes.
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { checkAddress, checkAnswerSet } from '../../firewall/address-guard.js';
import { type Code, type Deny, deny, isDeny } from '../../firewall/codes.js';
import type { SluiceConfig } from '../../settings/config.js';
import { type Target, parseAbsoluteTarget, parseAuthority } from '../../firewall/normalise.js';
import { hostMatches } from '../../firewall/host-match.js';
import {
  type EgressRequest,
  type Policy,
  type Rights,
  decide,
  gitFetchOf,
  methodOverrideOf,
  rightsFor,
  upgradeProtocolsOf,
} from '../../firewall/policy.js';
import { classifyAddress } from '../../firewall/ranges.js';
import { type NameResolver, createResolver } from '../egress/resolver.js';
import { compileServingPolicy } from '../runtime/sluice.js';
import { withDevIdentity } from './dev-identity.js';
import { requireConfig } from './load-config.js';
import { fail, out } from './output.js';

export interface ExplainInput {
  readonly method: string;
  readonly target: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: boolean;
}

export interface ExplainOutput {
  readonly allowed: boolean;
  /** The code serve would refuse with; null when it would dial (without --resolve, a name's answers are
   * not known, so an allowed name is null too). */
  readonly code: Code | null;
  readonly lines: string[];
}

/** The compiled policy and (with --resolve) resolver that serve would build from this config. */
export function prepareExplain(
  config: SluiceConfig,
  opts: { readonly resolve: boolean },
): { policy: Policy; resolver: NameResolver | null } {
  return {
    policy: compileServingPolicy(config),
    resolver: opts.resolve
      ? createResolver({ ...config.dns, nowMs: () => performance.timeOrigin + performance.now() })
      : null,
  };
}

export function buildEgress(input: ExplainInput): { req: EgressRequest } | Deny {
  const method = input.method.toUpperCase();
  if (method === 'CONNECT') {
    const a = parseAuthority(input.target);
    return isDeny(a) ? a : { req: { kind: 'tunnel', target: a.target } };
  }
  const t = parseAbsoluteTarget(input.target);
  if (isDeny(t)) return t;
  // As the pipeline judges an upgrade (Connection: upgrade with Upgrade): its protocols need an opt-in.
  const upgradeTo = upgradeProtocolsOf(input.headers);
  if (upgradeTo === 'invalid') return deny('EGR_BAD_REQUEST', 'http.upgrade', 'Upgrade is not a list of protocols');
  if (upgradeTo && input.body) return deny('EGR_UNSUPPORTED', 'http.upgrade', 'an upgrade request with a body');
  return {
    req: {
      kind: 'http',
      scheme: t.scheme,
      method,
      target: t.target,
      hasBody: input.body,
      upgrade: input.headers.upgrade !== undefined,
      upgradeTo,
      methodOverride: methodOverrideOf(input.headers),
      gitFetch: gitFetchOf(
        method,
        t.path,
        typeof input.headers['content-type'] === 'string' ? input.headers['content-type'] : undefined,
        typeof input.headers['content-length'] === 'string' ? input.headers['content-length'] : undefined,
      ),
    },
  };
}

export async function explain(
  policy: Policy,
  rights: Rights,
  input: ExplainInput,
  resolver: NameResolver | null,
): Promise<ExplainOutput> {
  const lines: string[] = [];
  const refused = (d: Deny): ExplainOutput => ({ allowed: false, code: d.code, lines });
  const built = buildEgress(input);
  if (isDeny(built)) {
    lines.push('verdict: deny', `code: ${built.code}`, `rule: ${built.rule}`, `why: ${built.detail ?? ''}`);
    return refused(built);
  }
  // As serve does: with an inspection section, a tunnel to a name that is not `inspection.opaque` is inspected.
  const req: EgressRequest =
    built.req.kind === 'tunnel' &&
    policy.config.inspection &&
    built.req.target.kind === 'name' &&
    !hostMatches(policy.opaqueHosts, built.req.target.host)
      ? { ...built.req, inspect: true }
      : built.req;
  const target: Target = req.target;
  lines.push(
    `identity: ${rights.identity}`,
    `target: ${target.kind === 'ipv6' ? `[${target.host}]` : target.host}:${target.port} (${target.kind})`,
  );
  const d = decide(policy, { killSwitch: false }, rights, req);
  if (isDeny(d)) {
    lines.push('verdict: deny', `code: ${d.code}`, `rule: ${d.rule}`);
    if (d.detail) lines.push(`why: ${d.detail}`);
    if (resolver) lines.push('addresses: not resolved (a denied name is never resolved)');
    return refused(d);
  }
  lines.push(`verdict: ${d.wouldDeny ? 'allow (report mode)' : 'allow'}`, `rule: ${d.rule}`);
  if (req.kind === 'tunnel' && req.inspect)
    lines.push('inspected: each request inside is judged as METHOD https://host/path');
  if (d.wouldDeny) lines.push(`would deny: ${d.wouldDeny.code} (${d.wouldDeny.rule})`);
  lines.push(
    req.kind === 'tunnel'
      ? `transport: tunnel to port ${d.port}; first bytes must be a ClientHello with SNI ${target.host}`
      : `transport: ${d.tls ? 'TLS (originated by Sluice)' : 'cleartext'} to port ${d.port}`,
  );

  // What the dialer does next (proxy/egress/dialer.ts prepare()): a literal is checked as itself; a name is
  // resolved and its whole answer set checked, one denied address denying the set.
  let verdict: Deny | null = null;
  if (target.kind !== 'name') {
    const c = checkAddress(policy.guard, target.host, target.host);
    lines.push(
      `address: ${target.host} ${isDeny(c) ? `denied ${c.code} (${c.rule})` : `${c.class} allowed (${c.rule})`}`,
    );
    if (isDeny(c)) verdict = c;
  } else if (resolver) {
    const r = await resolver.resolve(target.host);
    if (isDeny(r)) {
      lines.push(`addresses: ${r.code}${r.detail ? ` (${r.detail})` : ''}`);
      verdict = r;
    } else {
      const set = checkAnswerSet(policy.guard, r.addresses, target.host);
      if (isDeny(set)) verdict = set;
      lines.push(r.addresses.length ? 'addresses:' : `addresses: none (${isDeny(set) ? set.code : ''})`);
      for (const a of r.addresses) {
        const c = checkAddress(policy.guard, a, target.host);
        const cls = classifyAddress(a);
        lines.push(
          `  ${a}  ${cls ? `${cls.class} (${cls.range})` : 'unparsable'}  ${isDeny(c) ? `DENIED ${c.code}` : `ok (${c.rule})`}`,
        );
      }
      if (isDeny(set) && r.addresses.length) lines.push('one denied address denies the whole answer set');
    }
  } else {
    lines.push('addresses: not resolved (use --resolve); every address must still pass the address guard');
  }
  if (verdict) lines.push(`code: ${verdict.code}`);
  lines.push(`final: ${verdict ? 'deny' : 'allow'}`);
  return { allowed: verdict === null, code: verdict?.code ?? null, lines };
}

export async function explainCommand(argv: string[]) {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string', short: 'c' },
      as: { type: 'string' },
      resolve: { type: 'boolean', default: false },
      header: { type: 'string', short: 'H', multiple: true },
      body: { type: 'boolean', default: false },
    },
  });
  if (!values.as || positionals.length !== 2)
    fail('usage: sluice explain [--config FILE] --as ID METHOD URL [--resolve]');
  // The file serve would read: --config, else SLUICE_CONFIG, else the embedded default.
  let config = requireConfig(values.config ?? process.env.SLUICE_CONFIG);
  if (Object.keys(config.identities).length === 0) config = withDevIdentity(config, randomBytes(8).toString('hex'));
  const { policy, resolver } = prepareExplain(config, { resolve: values.resolve });
  const rights = rightsFor(policy, values.as);
  if (!rights) fail(`unknown identity "${values.as}" (defined: ${Object.keys(config.identities).join(', ')})`);
  const headers: Record<string, string> = {};
  for (const h of values.header ?? []) {
    const i = h.indexOf(':');
    if (i <= 0) fail(`bad header "${h}" (hint: -H 'Upgrade: websocket')`);
    headers[h.slice(0, i).trim().toLowerCase()] = h.slice(i + 1).trim();
  }
  const r = await explain(
    policy,
    rights,
    { method: positionals[0]!, target: positionals[1]!, headers, body: values.body },
    resolver,
  );
  for (const l of r.lines) out(l);
  process.exit(r.allowed ? 0 : 1);
}
