// The dialer's per-request shortcut: a resolver cache hit under the same compiled guard reuses the plan
// validated before, and anything else — new answers, a reloaded policy — is validated again. Pure data:
// a stub resolver, no sockets.
import t from 'tap';
import { isDeny } from '../../firewall/codes.js';
import { validateConfig } from '../../firewall/config.js';
import { type Policy, compilePolicy } from '../../firewall/policy.js';
import { createDialer } from '../../proxy/dialer.js';
import type { NameResolver } from '../../proxy/resolver.js';

const config = (allow: boolean) => {
  const r = validateConfig({
    listen: { http: '127.0.0.1:3128', socks5: null, admin: null },
    addressGuard: { allow: allow ? [{ cidr: '10.1.0.0/16', hosts: ['svc.test'] }] : [], deny: [] },
  });
  if (!r.ok) throw new Error('bad test config');
  return r.config;
};

t.test('a cache hit reuses the validated plan; new answers or a new guard are checked again', async (t) => {
  let answers: readonly string[] = ['10.1.0.5'];
  let fresh = true;
  const resolver: NameResolver = {
    resolve: async () => {
      const r = { addresses: answers, ms: fresh ? 3 : 0, cached: !fresh };
      fresh = false;
      return r;
    },
    clear: () => undefined,
  };
  let policy: Policy = compilePolicy(config(true), ['127.0.0.1']);
  const dialer = createDialer({ resolver, policy: () => policy, connectTimeoutMs: 1000, nowMs: () => 0 });
  t.teardown(() => dialer.close());
  const host = { host: 'svc.test', kind: 'name' } as const;

  const first = await dialer.prepare(host);
  t.notOk(isDeny(first));
  t.match(first, { addresses: [{ address: '10.1.0.5', rule: 'addressGuard.allow[0]' }], dnsMs: 3 });
  const second = await dialer.prepare(host);
  t.match(second, { addresses: [{ address: '10.1.0.5' }], dnsMs: 0 }, 'a cache hit reports no DNS time');
  t.equal(await dialer.prepare(host), second, 'and hands back the same validated plan');

  answers = ['10.2.0.9'];
  const rebound = await dialer.prepare(host);
  t.ok(isDeny(rebound) && rebound.code === 'EGR_DENY_ADDRESS_PRIVATE', 'a new answer set is validated, not trusted');

  answers = ['10.1.0.5'];
  t.notOk(isDeny(await dialer.prepare(host)));
  policy = compilePolicy(config(false), ['127.0.0.1']);
  const reloaded = await dialer.prepare(host);
  t.ok(isDeny(reloaded) && reloaded.code === 'EGR_DENY_ADDRESS_PRIVATE', 'a reload that drops the exception denies the same answers');
});
