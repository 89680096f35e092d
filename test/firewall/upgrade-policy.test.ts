// Upgrades in the pure core: which requests are real upgrades (upgradeProtocolsOf), decide()'s extra condition
// for them (an integration that lists every protocol in `upgrade:`), and the config rules for that setting.
import t from 'tap';
import { isDeny } from '../../firewall/codes.js';
import { validateConfig } from '../../settings/config.js';
import { parseAbsoluteTarget } from '../../firewall/normalise.js';
import { type EgressRequest, compilePolicy, decide, rightsFor, upgradeProtocolsOf } from '../../firewall/policy.js';
import { explain } from '../../proxy/cli/explain.js';

t.test('upgradeProtocolsOf: only Connection: upgrade plus Upgrade is an upgrade; tokens only', async (t) => {
  const rows: [Record<string, string | string[]>, readonly string[] | null | 'invalid'][] = [
    [{}, null],
    [{ upgrade: 'websocket' }, null],
    [{ connection: 'keep-alive', upgrade: 'websocket' }, null],
    [{ connection: 'Upgrade', upgrade: 'websocket' }, ['websocket']],
    [{ connection: 'keep-alive, UPGRADE', upgrade: 'WebSocket' }, ['websocket']],
    [{ connection: 'upgrade', upgrade: 'h2c, websocket/13' }, ['h2c', 'websocket']],
    [{ connection: 'upgrade', upgrade: ['foo', 'bar'] }, ['foo', 'bar']],
    [{ connection: 'upgrade', upgrade: 'web socket' }, 'invalid'],
    [{ connection: 'upgrade', upgrade: 'a/b/c' }, 'invalid'],
    [{ connection: 'upgrade', upgrade: '' }, 'invalid'],
    [{ connection: 'upgrade', upgrade: ' , ' }, 'invalid'],
    [{ connection: 'upgrade', upgrade: 'ws;x' }, 'invalid'],
  ];
  for (const [headers, want] of rows) t.same(upgradeProtocolsOf(headers), want, JSON.stringify(headers));
});

const r = validateConfig({
  mode: 'enforce',
  integrations: {
    chat: { hosts: ['chat.example'], methods: ['GET', 'POST'], upgrade: ['WebSocket'] },
    api: { hosts: ['api.example'], methods: ['GET'] },
    both: { hosts: ['both.example'], upgrade: ['websocket'] },
    'both-too': { hosts: ['both.example'], upgrade: ['h2c'] },
  },
  identities: {
    agent: { password: 'x', integrations: ['chat', 'api', 'both', 'both-too'] },
    narrow: { password: 'x', integrations: ['api'] },
    auditor: { password: 'x', integrations: ['api'], mode: 'report' },
  },
});
if (!r.ok) throw new Error(JSON.stringify(r.issues));
const policy = compilePolicy(r.config);

function upgrade(method: string, url: string, upgradeTo: readonly string[]): EgressRequest {
  const p = parseAbsoluteTarget(url);
  if (isDeny(p)) throw new Error(url);
  return {
    kind: 'http',
    scheme: p.scheme,
    method,
    target: p.target,
    hasBody: false,
    upgrade: true,
    upgradeTo,
    methodOverride: null,
  };
}
const render = (d: ReturnType<typeof decide>): string =>
  isDeny(d)
    ? `${d.code} ${d.rule}`
    : `allow ${d.rule} ${d.tls ? 'tls' : 'clear'}:${d.port}${d.wouldDeny ? ` would ${d.wouldDeny.code}` : ''}`;

t.test('decide(): an upgrade needs a granted integration that lists every protocol asked for', async (t) => {
  const rows: [string, string, EgressRequest, string][] = [
    ['opted in', 'agent', upgrade('GET', 'http://chat.example/ws', ['websocket']), 'allow integrations.chat tls:443'],
    [
      'the config is case-insensitive',
      'agent',
      upgrade('GET', 'https://chat.example/ws', ['websocket']),
      'allow integrations.chat tls:443',
    ],
    [
      'a protocol not listed',
      'agent',
      upgrade('GET', 'http://chat.example/ws', ['h2c']),
      'EGR_DENY_UPGRADE integrations.chat.upgrade',
    ],
    [
      'one of several not listed',
      'agent',
      upgrade('GET', 'http://chat.example/ws', ['websocket', 'foo']),
      'EGR_DENY_UPGRADE integrations.chat.upgrade',
    ],
    [
      "no opt-in at all (GET-only, the issue's attacker)",
      'agent',
      upgrade('GET', 'http://api.example/x', ['foo']),
      'EGR_DENY_UPGRADE integrations.api.upgrade',
    ],
    [
      'not an integration: a disguised write',
      'agent',
      upgrade('GET', 'http://public.example/ws', ['websocket']),
      'EGR_DENY_DISGUISED_WRITE disguisedWrite',
    ],
    [
      'a method the integration lacks',
      'agent',
      upgrade('PUT', 'http://chat.example/ws', ['websocket']),
      'EGR_DENY_METHOD integrations.chat.methods',
    ],
    [
      'an integration not granted',
      'narrow',
      upgrade('GET', 'http://chat.example/ws', ['websocket']),
      'EGR_DENY_DISGUISED_WRITE disguisedWrite',
    ],
    [
      'two integrations on one host: the one that lists it',
      'agent',
      upgrade('GET', 'http://both.example/', ['h2c']),
      'allow integrations.both-too tls:443',
    ],
    [
      'two integrations, neither lists both',
      'agent',
      upgrade('GET', 'http://both.example/', ['h2c', 'websocket']),
      'EGR_DENY_UPGRADE integrations.both.upgrade',
    ],
    [
      'report mode lifts it, logged',
      'auditor',
      upgrade('GET', 'http://api.example/x', ['foo']),
      'allow mode.report tls:443 would EGR_DENY_UPGRADE',
    ],
  ];
  for (const [name, who, req, want] of rows)
    t.equal(render(decide(policy, { killSwitch: false }, rightsFor(policy, who)!, req)), want, name);
  t.equal(
    render(
      decide(
        policy,
        { killSwitch: true },
        rightsFor(policy, 'agent')!,
        upgrade('GET', 'http://chat.example/ws', ['websocket']),
      ),
    ),
    'EGR_DENY_KILL_SWITCH killSwitch',
  );
});

t.test('config: upgrade lists protocol names, and says when it cannot be enforced', async (t) => {
  const issues = (integration: Record<string, unknown>) => {
    const v = validateConfig({ integrations: { x: { hosts: ['x.example'], ...integration } } });
    return v.ok
      ? v.warnings.map((i) => `${i.severity} ${i.path}`)
      : v.issues.map((i) => `${i.severity} ${i.path} ${i.hint ?? ''}`);
  };
  t.same(issues({ upgrade: ['websocket'] }), []);
  t.match(issues({ upgrade: ['websocket/13'] }), [
    /^error \/integrations\/x\/upgrade\/0 use the name an Upgrade header carries/,
  ]);
  t.match(issues({ upgrade: ['web socket'] }), [/^error \/integrations\/x\/upgrade\/0/]);
  t.match(issues({ upgrade: 'websocket' }), [/^error \/integrations\/x\/upgrade/]);
  t.match(
    issues({ upgrade: ['h2c'], methods: ['GET'] }),
    [/^error \/integrations\/x\/upgrade drop "h2c"/],
    'h2c carries requests whose methods Sluice cannot see',
  );
  t.same(
    issues({ upgrade: ['websocket'], methods: ['POST'] }),
    ['warning /integrations/x/upgrade'],
    'upgrades are asked for with GET',
  );
  const v = validateConfig({ integrations: { x: { hosts: ['x.example'], upgrade: ['WebSocket', 'websocket'] } } });
  t.same(v.ok && v.config.integrations.x!.upgrade, ['websocket'], 'lower-cased, once');
  const none = validateConfig({ integrations: { x: { hosts: ['x.example'] } } });
  t.same(none.ok && none.config.integrations.x!.upgrade, [], 'off by default');
});

t.test('sluice explain judges an upgrade as serve does', async (t) => {
  const ask = async (target: string, headers: Record<string, string>, body = false) =>
    (await explain(policy, rightsFor(policy, 'agent')!, { method: 'GET', target, headers, body }, null)).code;
  const up = { connection: 'Upgrade', upgrade: 'websocket' };
  t.equal(await ask('http://chat.example/ws', up), null, 'opted in: allowed');
  t.equal(await ask('http://api.example/ws', up), 'EGR_DENY_UPGRADE');
  t.equal(
    await ask('http://api.example/ws', { upgrade: 'websocket' }),
    null,
    'no Connection: upgrade: not an upgrade (the header is dropped)',
  );
  t.equal(await ask('http://chat.example/ws', { connection: 'upgrade', upgrade: 'web socket' }), 'EGR_BAD_REQUEST');
  t.equal(await ask('http://chat.example/ws', up, true), 'EGR_UNSUPPORTED');
});
