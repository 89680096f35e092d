// `sluice explain`: the decision a request would get, offline, with the rule that made it; with --resolve,
// each address the name resolves to and its class. It runs the same decide() and address guard as serve.
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { checkAddress } from '../../firewall/address-guard.js';
import { type Deny, isDeny } from '../../firewall/codes.js';
import { type Target, parseAbsoluteTarget, parseAuthority } from '../../firewall/normalise.js';
import { type EgressRequest, type Policy, type Rights, compilePolicy, decide, methodOverrideOf, rightsFor } from '../../firewall/policy.js';
import { classifyAddress } from '../../firewall/ranges.js';
import { type NameResolver, createResolver } from '../egress/resolver.js';
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
  readonly lines: string[];
}

export function buildEgress(input: ExplainInput): { req: EgressRequest } | Deny {
  const method = input.method.toUpperCase();
  if (method === 'CONNECT') {
    const a = parseAuthority(input.target);
    return isDeny(a) ? a : { req: { kind: 'tunnel', target: a.target } };
  }
  const t = parseAbsoluteTarget(input.target);
  if (isDeny(t)) return t;
  return {
    req: {
      kind: 'http',
      scheme: t.scheme,
      method,
      target: t.target,
      hasBody: input.body,
      upgrade: input.headers.upgrade !== undefined,
      methodOverride: methodOverrideOf(input.headers),
    },
  };
}

export async function explain(policy: Policy, rights: Rights, input: ExplainInput, resolver: NameResolver | null): Promise<ExplainOutput> {
  const lines: string[] = [];
  const built = buildEgress(input);
  if (isDeny(built)) {
    lines.push('verdict: deny', `code: ${built.code}`, `rule: ${built.rule}`, `why: ${built.detail ?? ''}`);
    return { allowed: false, lines };
  }
  const { req } = built;
  const target: Target = req.target;
  lines.push(`identity: ${rights.identity}`, `target: ${target.kind === 'ipv6' ? `[${target.host}]` : target.host}:${target.port} (${target.kind})`);
  const d = decide(policy, { killSwitch: false }, rights, req);
  if (isDeny(d)) {
    lines.push('verdict: deny', `code: ${d.code}`, `rule: ${d.rule}`);
    if (d.detail) lines.push(`why: ${d.detail}`);
    if (resolver) lines.push('addresses: not resolved (a denied name is never resolved)');
    return { allowed: false, lines };
  }
  lines.push(`verdict: ${d.wouldDeny ? 'allow (report mode)' : 'allow'}`, `rule: ${d.rule}`);
  if (d.wouldDeny) lines.push(`would deny: ${d.wouldDeny.code} (${d.wouldDeny.rule})`);
  lines.push(req.kind === 'tunnel' ? `transport: tunnel to port ${d.port}; first bytes must be a ClientHello with SNI ${target.host}` : `transport: ${d.tls ? 'TLS (originated by Sluice)' : 'cleartext'} to port ${d.port}`);

  let allowed = true;
  if (target.kind !== 'name') {
    const c = checkAddress(policy.guard, target.host, target.host);
    lines.push(`address: ${target.host} ${isDeny(c) ? `denied ${c.code} (${c.rule})` : `${c.class} allowed (${c.rule})`}`);
    if (isDeny(c)) allowed = false;
  } else if (resolver) {
    const r = await resolver.resolve(target.host);
    if (isDeny(r)) {
      lines.push(`addresses: ${r.code}${r.detail ? ` (${r.detail})` : ''}`);
      allowed = false;
    } else {
      lines.push('addresses:');
      for (const a of r.addresses) {
        const c = checkAddress(policy.guard, a, target.host);
        const cls = classifyAddress(a);
        lines.push(`  ${a}  ${cls ? `${cls.class} (${cls.range})` : 'unparsable'}  ${isDeny(c) ? `DENIED ${c.code}` : `ok (${c.rule})`}`);
        if (isDeny(c)) allowed = false;
      }
      if (!allowed) lines.push('one denied address denies the whole answer set');
    }
  } else {
    lines.push('addresses: not resolved (use --resolve); every address must still pass the address guard');
  }
  lines.push(`final: ${allowed ? 'allow' : 'deny'}`);
  return { allowed, lines };
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
  if (!values.as || positionals.length !== 2) fail('usage: sluice explain [--config FILE] --as ID METHOD URL [--resolve]');
  let config = requireConfig(values.config);
  if (Object.keys(config.identities).length === 0) config = withDevIdentity(config, randomBytes(8).toString('hex'));
  const policy = compilePolicy(config);
  const rights = rightsFor(policy, values.as);
  if (!rights) fail(`unknown identity "${values.as}" (defined: ${Object.keys(config.identities).join(', ')})`);
  const headers: Record<string, string> = {};
  for (const h of values.header ?? []) {
    const i = h.indexOf(':');
    if (i <= 0) fail(`bad header "${h}" (hint: -H 'Upgrade: websocket')`);
    headers[h.slice(0, i).trim().toLowerCase()] = h.slice(i + 1).trim();
  }
  const resolver = values.resolve
    ? createResolver({ ...config.dns, nowMs: () => performance.timeOrigin + performance.now() })
    : null;
  const r = await explain(policy, rights, { method: positionals[0]!, target: positionals[1]!, headers, body: values.body }, resolver);
  for (const l of r.lines) out(l);
  process.exit(r.allowed ? 0 : 1);
}

