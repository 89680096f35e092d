// The flow registry on its own: counting by kind, closing (once, with the first reason), binding a carrier
// after a close, the drain filter, expiry by an injected time, and judgeAgain(): a flow judged under a new
// policy as the request that opened it would be now.
import t from 'tap';
import { deny } from '../../firewall/codes.js';
import { type SluiceConfig, validateConfig } from '../../settings/config.js';
import { parseAuthority } from '../../firewall/normalise.js';
import { type EgressRequest, compilePolicy, rightsFor } from '../../firewall/policy.js';
import type { Principal } from '../../proxy/auth/identity.js';
import { FLOW_KINDS, createFlowRegistry, judgeAgain } from '../../proxy/runtime/flows.js';

const cfg = (raw: Record<string, unknown>): SluiceConfig => {
  const r = validateConfig(raw);
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  return r.config;
};
const base = {
  registries: ['registry.example'],
  integrations: { a: { hosts: ['a.example'], tunnel: true }, b: { hosts: ['b.example'], tunnel: true } },
  identities: { agent: { password: 'one', integrations: ['a', 'b'] } },
};
const tunnelTo = (authority: string): EgressRequest => {
  const p = parseAuthority(authority);
  if ('verdict' in p) throw new Error(authority);
  return { kind: 'tunnel', target: p.target };
};
const principalOf = (config: SluiceConfig, over: Partial<Principal> = {}): Principal => ({
  ...rightsFor(compilePolicy(config), 'agent')!,
  runId: null,
  ...over,
});
const grant = (principal: Principal, request: EgressRequest) => ({ principal, request, keyGeneration: 0 });

t.test('counted by kind, closed once with the first reason, forgotten at the end', async (t) => {
  const reg = createFlowRegistry();
  const p = principalOf(cfg(base));
  const a = reg.open('tunnel', grant(p, tunnelTo('a.example:443')));
  const b = reg.open('forward', grant(p, tunnelTo('a.example:443')));
  t.same([reg.count('tunnel'), reg.count('upgrade'), reg.count('forward'), reg.size], [1, 0, 1, 2]);
  let closes = 0;
  a.bind(() => closes++);
  t.equal(
    reg.closeAll('shutdown', null, (k) => FLOW_KINDS[k].drain === 'close'),
    1,
    'a drain closes only the flows with no natural end',
  );
  t.equal(closes, 1);
  t.equal(b.closed, null);
  a.close('kill-switch', deny('EGR_DENY_KILL_SWITCH', 'killSwitch'));
  t.same(a.closed, { reason: 'shutdown', deny: null }, 'the first reason stays');
  t.equal(closes, 1, 'closed once');
  a.end();
  t.equal(reg.count('tunnel'), 0);
  reg.closeAll('kill-switch', deny('EGR_DENY_KILL_SWITCH', 'killSwitch'));
  let late = 0;
  b.bind(() => late++);
  t.equal(late, 1, 'a carrier bound after the close is closed at once');
  b.end();
  t.equal(reg.size, 0);
});

t.test('expiry closes only run-token flows whose time has come', async (t) => {
  const reg = createFlowRegistry();
  const p = principalOf(cfg(base));
  const token = reg.open('tunnel', grant({ ...p, runId: 'r1', expiresAtMs: 10_000 }, tunnelTo('a.example:443')));
  const later = reg.open('tunnel', grant({ ...p, runId: 'r2', expiresAtMs: 20_000 }, tunnelTo('a.example:443')));
  const password = reg.open('tunnel', grant(p, tunnelTo('a.example:443')));
  t.equal(reg.expire(9_999), 0);
  t.equal(reg.expire(10_000), 1);
  t.equal(token.closed?.reason, 'token-expired');
  t.equal(token.closed?.deny?.code, 'EGR_AUTH_EXPIRED');
  t.equal(later.closed, null);
  t.equal(password.closed, null);
  t.equal(reg.expire(1e15), 1, 'a password flow never expires');
});

t.test("judgeAgain: the new policy, the flow's principal and its original request", async (t) => {
  const before = cfg(base);
  const p = principalOf(before);
  const open = (principal: Principal, authority: string, addresses: string[] = []) => {
    const f = createFlowRegistry().open('tunnel', grant(principal, tunnelTo(authority)));
    f.addresses = addresses.map((address) => ({ address }));
    return f;
  };
  const judge = (raw: Record<string, unknown>, flow: ReturnType<typeof open>, changed: string[] = []) =>
    judgeAgain(compilePolicy(cfg(raw)), flow, new Set(changed))?.code ?? null;

  t.equal(judge(base, open(p, 'a.example:443')), null, 'unchanged: still allowed');
  t.equal(
    judge({ ...base, identities: { agent: { password: 'one', integrations: ['b'] } } }, open(p, 'a.example:443')),
    'EGR_DENY_TUNNEL',
    'grant removed',
  );
  t.equal(
    judge({ ...base, identities: { agent: { password: 'one', integrations: ['b'] } } }, open(p, 'b.example:443')),
    null,
    'the other grant stays',
  );
  t.equal(
    judge({ ...base, identities: { other: { password: 'x' } } }, open(p, 'a.example:443')),
    'EGR_AUTH_INVALID',
    'identity removed',
  );
  t.equal(judge(base, open(p, 'a.example:443'), ['agent']), 'EGR_AUTH_INVALID', 'credential changed');
  t.equal(judge({ ...base, globalDeny: { hosts: ['a.example'] } }, open(p, 'a.example:443')), 'EGR_DENY_GLOBAL');
  t.equal(
    judge({ ...base, addressGuard: { deny: ['203.0.113.0/24'] } }, open(p, 'a.example:443', ['203.0.113.7'])),
    'EGR_DENY_ADDRESS_RULE',
    'the address it reached is now denied',
  );
  t.equal(
    judge({ ...base, integrations: { ...base.integrations, a: { hosts: ['a.example'] } } }, open(p, 'a.example:443')),
    'EGR_DENY_TUNNEL',
    'tunnel: true withdrawn',
  );

  // A run token narrowed to `a` stays narrowed: the identity losing `a` ends it; gaining more changes nothing.
  const token: Principal = { ...p, runId: 'run', integrations: new Set(['a']) };
  t.equal(judge(base, open(token, 'a.example:443'), ['agent']), null, 'a password change does not end a token flow');
  t.equal(
    judge({ ...base, identities: { agent: { password: 'one', integrations: ['b'] } } }, open(token, 'a.example:443')),
    'EGR_DENY_TUNNEL',
  );

  // Report mode let an SNI mismatch through; a reload to enforce mode applies it.
  const reportCfg = { ...base, mode: 'report' };
  const lifted = open(principalOf(cfg(reportCfg)), 'a.example:443');
  lifted.liftedByReport(deny('EGR_DENY_SNI_MISMATCH', 'tunnel.sni'));
  t.equal(judge(reportCfg, lifted), null, 'still report mode: still allowed');
  t.equal(judge(base, lifted), 'EGR_DENY_SNI_MISMATCH', 'enforce mode: the lifted denial applies');
});
