// Special-use names (RFC 6761, 6762, 7686, 8375, 9476; ICANN's .internal), decided before any resolver sees
// them: the table, then decide() on each row in every mode. The proof that no DNS query leaves is live, with
// the fake DNS server, in test/explain.test.ts (explain and serve side by side).
import t from 'tap';
import { isDeny } from '../../firewall/codes.js';
import { validateConfig } from '../../settings/config.js';
import { normaliseHost, parseAbsoluteTarget, parseAuthority } from '../../firewall/normalise.js';
import { type EgressRequest, compilePolicy, decide, rightsFor } from '../../firewall/policy.js';
import { checkSpecialName, specialNameOf } from '../../firewall/special-names.js';
import { hostSet } from '../../firewall/host-match.js';

// name → [kind, suffix] or null (an ordinary name, resolved as usual)
const names: [name: string, expected: [string, string] | null][] = [
  ['localhost', ['loopback', 'localhost']],
  ['api.localhost', ['loopback', 'localhost']],
  ['a.b.c.localhost', ['loopback', 'localhost']],
  ['invalid', ['unresolvable', 'invalid']],
  ['example.invalid', ['unresolvable', 'invalid']],
  ['onion', ['unresolvable', 'onion']],
  ['duckduckgogg42xjoc72x3sjasowoarfbgcmvfimaftt6twagswzczad.onion', ['unresolvable', 'onion']],
  ['www.x.onion', ['unresolvable', 'onion']],
  ['name.alt', ['unresolvable', 'alt']],
  ['arpa', ['unresolvable', 'arpa']],
  ['1.0.0.127.in-addr.arpa', ['unresolvable', 'arpa']],
  ['b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.0.0.0.0.1.2.3.4.ip6.arpa', ['unresolvable', 'arpa']],
  ['ipv4only.arpa', ['unresolvable', 'arpa']],
  ['resolver.arpa', ['unresolvable', 'arpa']],
  ['home.arpa', ['local-use', 'home.arpa']],
  ['printer.home.arpa', ['local-use', 'home.arpa']],
  ['local', ['local-use', 'local']],
  ['printer.local', ['local-use', 'local']],
  ['dc1.corp.local', ['local-use', 'local']],
  ['internal', ['local-use', 'internal']],
  ['metadata.google.internal', ['local-use', 'internal']],
  // ordinary names: RFC 6761 says .test and .example are not special to applications
  ['registry.test', null],
  ['test', null],
  ['www.example', null],
  ['example.com', null],
  ['artifactory.corp', null],
  ['router.lan', null],
  ['home', null],
  // the suffix must sit on a label boundary
  ['notlocalhost', null],
  ['localhost.com', null],
  ['mylocal', null],
  ['local.example.com', null],
  ['onion.example.com', null],
  ['xinvalid', null],
  ['home.arpa.example', null],
  ['arpa.example', null],
  ['internal.example.com', null],
  ['myinternal', null],
  ['localhostx', null],
];

t.test('the table', async (t) => {
  for (const [name, expected] of names) {
    const s = specialNameOf(name);
    t.same(s ? [s.kind, s.suffix] : null, expected, name);
  }
});

t.test('spellings normalise onto the table', async (t) => {
  for (const raw of ['LOCALHOST', 'localhost.', 'LocalHost.', 'Foo.LOCALHOST.', 'x.ONION', 'printer.LOCAL.']) {
    const h = normaliseHost(raw);
    if (isDeny(h)) {
      t.fail(raw);
      continue;
    }
    t.ok(specialNameOf(h.host), raw);
  }
});

t.test('checkSpecialName: codes, and only allow-bound names lift the local-use ones', async (t) => {
  const none = hostSet([]);
  const bound = hostSet(['dc1.corp.local', '*.home.arpa', 'localhost', '*.onion', 'db.internal']);
  const rows: [host: string, exceptions: typeof none, code: string | null][] = [
    ['localhost', none, 'EGR_DENY_ADDRESS_LOOPBACK'],
    ['localhost', bound, 'EGR_DENY_ADDRESS_LOOPBACK'],
    ['x.localhost', none, 'EGR_DENY_ADDRESS_LOOPBACK'],
    ['example.invalid', none, 'EGR_FAIL_DNS'],
    ['x.onion', none, 'EGR_FAIL_DNS'],
    ['x.onion', bound, 'EGR_FAIL_DNS'],
    ['1.0.0.127.in-addr.arpa', none, 'EGR_FAIL_DNS'],
    ['n.alt', none, 'EGR_FAIL_DNS'],
    ['printer.local', none, 'EGR_DENY_ADDRESS_PRIVATE'],
    ['dc1.corp.local', none, 'EGR_DENY_ADDRESS_PRIVATE'],
    ['dc1.corp.local', bound, null],
    ['dc2.corp.local', bound, 'EGR_DENY_ADDRESS_PRIVATE'],
    ['nas.home.arpa', bound, null],
    ['home.arpa', bound, 'EGR_DENY_ADDRESS_PRIVATE'],
    ['metadata.google.internal', none, 'EGR_DENY_ADDRESS_PRIVATE'],
    ['db.internal', bound, null],
    ['registry.test', none, null],
  ];
  for (const [host, ex, code] of rows) {
    const d = checkSpecialName(host, ex);
    t.equal(d?.code ?? null, code, `${host} (${ex === none ? 'no exceptions' : 'exceptions'})`);
    if (d) t.match(d.rule, /^specialUse\./);
  }
});

const r = validateConfig({
  mode: 'report',
  registries: ['*.localhost', 'registry.test'],
  integrations: { local: { hosts: ['api.localhost', 'svc.corp.local', 'x.onion'], tunnel: true } },
  identities: {
    agent: { password: 'x', integrations: ['local'] },
    strict: { password: 'x', integrations: ['local'], mode: 'enforce' },
  },
  addressGuard: { allow: [{ cidr: '10.0.0.0/8', hosts: ['svc.corp.local'] }] },
});
if (!r.ok) throw new Error(JSON.stringify(r.issues));
const policy = compilePolicy(r.config);

function http(method: string, url: string): EgressRequest {
  const p = parseAbsoluteTarget(url);
  if (isDeny(p)) throw new Error(url);
  return {
    kind: 'http',
    scheme: p.scheme,
    method,
    target: p.target,
    hasBody: false,
    upgrade: false,
    methodOverride: null,
  };
}
function tunnel(authority: string): EgressRequest {
  const p = parseAuthority(authority);
  if (isDeny(p)) throw new Error(authority);
  return { kind: 'tunnel', target: p.target };
}

t.test('decide(): step 2, in every mode, over registries and integrations', async (t) => {
  const rows: [req: EgressRequest, code: string | null][] = [
    [http('GET', 'http://localhost/'), 'EGR_DENY_ADDRESS_LOOPBACK'],
    [http('GET', 'http://LOCALHOST.:8080/'), 'EGR_DENY_ADDRESS_LOOPBACK'],
    [http('POST', 'http://api.localhost/'), 'EGR_DENY_ADDRESS_LOOPBACK'],
    [tunnel('npm.localhost:443'), 'EGR_DENY_ADDRESS_LOOPBACK'],
    [http('GET', 'http://example.invalid/'), 'EGR_FAIL_DNS'],
    [tunnel('x.onion:443'), 'EGR_FAIL_DNS'],
    [http('GET', 'http://1.0.0.127.in-addr.arpa/'), 'EGR_FAIL_DNS'],
    [http('GET', 'http://printer.local/'), 'EGR_DENY_ADDRESS_PRIVATE'],
    [http('GET', 'http://metadata.google.internal/computeMetadata/v1/'), 'EGR_DENY_ADDRESS_PRIVATE'],
    [http('GET', 'http://router.home.arpa/'), 'EGR_DENY_ADDRESS_PRIVATE'],
    // bound to an addressGuard.allow entry: judged as any name (and its answers by the guard)
    [http('POST', 'http://svc.corp.local/'), null],
    [http('GET', 'http://registry.test/'), null],
  ];
  for (const who of ['agent', 'strict']) {
    const rights = rightsFor(policy, who)!;
    for (const [req, code] of rows) {
      const d = decide(policy, { killSwitch: false }, rights, req);
      t.equal(isDeny(d) ? d.code : null, code, `${who} ${req.kind} ${req.target.host}`);
      if (!isDeny(d)) t.equal(d.wouldDeny, null, 'allowed outright, not by report mode');
    }
  }
  t.equal(
    (
      decide(policy, { killSwitch: true }, rightsFor(policy, 'agent')!, http('GET', 'http://localhost/')) as {
        code: string;
      }
    ).code,
    'EGR_DENY_KILL_SWITCH',
    'the kill switch still comes first',
  );
});
