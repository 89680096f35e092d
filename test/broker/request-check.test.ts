// The per-request check as a table: where a handle may be, whose it is, when, and what goes upstream.
import t, { type Test } from 'tap';
import { handleId, openHandle } from '../../proxy/broker/handle.js';
import { findHandles } from '../../proxy/broker/handle-scan.js';
import { deriveBrokerKeys } from '../../proxy/broker/keys.js';
import {
  type BrokerAllow,
  type BrokerRequest,
  type CheckContext,
  type CredentialDeny,
  checkRequest,
  compileCredentials,
} from '../../proxy/broker/request-check.js';
import type { RunStatus } from '../../proxy/broker/revocations.js';
import { NOW_S, SECRETS, basic, brokerConfig, handleFor, keys, secrets } from './fixtures.js';

const compiled = compileCredentials(brokerConfig());
const status: Record<string, RunStatus> = { 'run-revoked': 'revoked', 'run-unknown': 'unknown' };
const ctx: CheckContext = {
  nowS: NOW_S,
  open: (h) => {
    const r = openHandle(keys.handle, h);
    return r.ok ? { claims: r.claims, id: handleId(h) } : null;
  },
  runStatus: (run) => status[run] ?? 'active',
  secret: (name) => secrets.get(name),
};
const principal = { identity: 'agent', run: 'run-1', integrations: new Set(['github', 'slack', 'pastebin']) };
const req = (over: Partial<BrokerRequest> = {}): BrokerRequest => ({
  principal,
  method: 'POST',
  host: 'api.github.com',
  upstreamTls: true,
  rawHeaders: ['User-Agent', 'curl/8', 'Accept', '*/*'],
  path: '/repos/o/r/issues',
  bodyPrefix: null,
  ...over,
});
const check = (over: Partial<BrokerRequest> = {}) => checkRequest(compiled, req(over), ctx);
const header = (r: BrokerAllow, name: string) => {
  const out: string[] = [];
  for (let i = 0; i < r.rawHeaders.length; i += 2)
    if (r.rawHeaders[i]!.toLowerCase() === name) out.push(r.rawHeaders[i + 1]!);
  return out;
};
const allow = (t: Test, r: BrokerAllow | CredentialDeny): BrokerAllow => {
  if (r.verdict !== 'allow') {
    t.fail(`denied: ${r.code} ${r.detail}`);
    throw new Error('denied');
  }
  return r;
};

const API = handleFor('github-api');
const GIT = handleFor('github-git');
const SLACK = handleFor('slack-bot');
const b64 = (s: string) => Buffer.from(s).toString('base64');
const b64url = (s: string) => Buffer.from(s).toString('base64url');
const pct = (s: string) => [...s].map((c) => `%${c.charCodeAt(0).toString(16).padStart(2, '0')}`).join('');

t.test('nothing to do: no handle, no credential host — the same headers back', async (t) => {
  const raw = ['Host', 'example.com', 'Accept', '*/*'];
  const r = allow(t, check({ host: 'example.com', rawHeaders: raw, path: '/a?b=c%20d' }));
  t.equal(r.rawHeaders, raw, 'the very same array');
  t.equal(r.scrub, null);
  t.same(r.injected, []);
});

t.test('injection where the credential says', async (t) => {
  const bearer = allow(t, check({ rawHeaders: ['Authorization', `Bearer ${API}`, 'Accept-Encoding', 'gzip, br'] }));
  t.same(header(bearer, 'authorization'), [`Bearer ${SECRETS['github-api']}`]);
  t.same(header(bearer, 'accept-encoding'), ['identity'], 'responses from a credential host come unencoded');
  t.same(
    bearer.injected.map((i) => i.credential),
    ['github-api'],
  );
  t.match(bearer.injected[0]!.handleId, /^[0-9a-f]{12}$/);
  t.same([...(bearer.scrub?.credentials ?? [])].sort(), ['github-api', 'github-git']);
  t.equal(bearer.scrub?.handles.get('github-api'), API, 'the handle to put back in responses');

  const token = allow(t, check({ rawHeaders: ['authorization', `token ${API}`] }));
  t.same(header(token, 'authorization'), [`Bearer ${SECRETS['github-api']}`], 'the template decides the form upstream');
  const bare = allow(t, check({ rawHeaders: ['AUTHORIZATION', API] }));
  t.same(header(bare, 'authorization'), [`Bearer ${SECRETS['github-api']}`]);

  const git = allow(t, check({ host: 'github.com', method: 'GET', rawHeaders: ['Authorization', basic('me', GIT)] }));
  t.same(
    header(git, 'authorization'),
    [basic('x-access-token', SECRETS['github-git'])],
    'Basic: username from config, password = secret',
  );

  const slack = allow(t, check({ host: 'hooks.slack.com', rawHeaders: ['X-Slack-Token', SLACK] }));
  t.same(header(slack, 'x-slack-token'), [SECRETS['slack-bot']]);
  t.same(header(slack, 'accept-encoding'), ['identity'], 'added when the client sent none');
  t.equal(slack.scrub?.handles.get('slack-bot'), SLACK);
});

t.test('Basic with the username taken from the request', async (t) => {
  const c = compileCredentials(
    brokerConfig({
      credentials: { git: { integration: 'github', inject: { type: 'basic' }, source: { file: '/c' } } },
    }),
  );
  const h = handleFor('git');
  const r = checkRequest(c, req({ rawHeaders: ['Authorization', basic('octocat', h)] }), {
    ...ctx,
    secret: () => secrets.get('github-git'),
  });
  if (r.verdict !== 'allow') throw new Error(r.code);
  t.same(header(r, 'authorization'), [basic('octocat', SECRETS['github-git'])]);
});

t.test('a credential host without a handle: narrowed, scrubbed, foreign tokens refused or passed', async (t) => {
  const plain = allow(t, check({ rawHeaders: ['Accept', '*/*'] }));
  t.same(header(plain, 'accept-encoding'), ['identity']);
  t.ok(plain.scrub, 'responses are scanned even when nothing was injected');
  t.equal(plain.scrub?.handles.size, 0);
  const foreign = check({
    rawHeaders: ['Authorization', 'Bearer ghp_SmuggledTokenFromSomewhere000000000000'],
  }) as CredentialDeny;
  t.match(foreign, {
    verdict: 'deny',
    code: 'EGR_DENY_CREDENTIAL_FOREIGN',
    credential: 'github-api',
    exfiltration: false,
  });
  t.match(check({ host: 'github.com', rawHeaders: ['Authorization', basic('me', 'my-own-password')] }), {
    code: 'EGR_DENY_CREDENTIAL_FOREIGN',
  });
  const passed = allow(t, check({ host: 'slack.com', rawHeaders: ['X-Slack-Token', 'xoxb-my-own'] }));
  t.same(passed.foreignPassed, ['slack-bot'], 'replaceForeign: pass');
  t.same(header(passed, 'x-slack-token'), ['xoxb-my-own'], 'left as sent');
});

t.test('exfiltration: a handle anywhere it does not belong', async (t) => {
  const cases: [string, Partial<BrokerRequest>][] = [
    ['to a public host, in Authorization', { host: 'evil.example', rawHeaders: ['Authorization', `Bearer ${API}`] }],
    ['to a public host, in another header', { host: 'evil.example', rawHeaders: ['X-Data', API] }],
    ['to another integration', { host: 'slack.com', rawHeaders: ['Authorization', `Bearer ${API}`] }],
    [
      'to another integration that has no credential',
      { host: 'pastebin.example', rawHeaders: ['Authorization', `Bearer ${API}`] },
    ],
    ['right host, other header', { rawHeaders: ['X-Forwarded-Token', API] }],
    ['right host, a cookie', { rawHeaders: ['Cookie', `session=${API}`] }],
    ['right host, in a header name', { rawHeaders: [API, '1'] }],
    [
      "right host, Bearer handle in the wrong credential's header",
      { host: 'slack.com', rawHeaders: ['X-Slack-Token', API] },
    ],
    ['right host, handle with extra text', { rawHeaders: ['Authorization', `Bearer ${API} extra`] }],
    ['right host, two handles', { rawHeaders: ['Authorization', `Bearer ${API} ${API}`] }],
    ['right host, Basic handle as username', { rawHeaders: ['Authorization', basic(GIT, 'x')] }],
    ['right host, Bearer handle base64-encoded', { rawHeaders: ['Authorization', `Bearer ${b64(API)}`] }],
    ['URL path', { host: 'evil.example', path: `/collect/${API}` }],
    ['URL query', { host: 'evil.example', path: `/c?t=${API}` }],
    ['URL query, percent-encoded', { host: 'evil.example', path: `/c?t=${pct(API)}` }],
    ['URL query, percent-encoded twice', { host: 'evil.example', path: `/c?t=${pct(API).replace(/%/g, '%25')}` }],
    ['URL query, base64', { host: 'evil.example', path: `/c?t=${b64(API)}` }],
    ['URL query, base64url', { host: 'evil.example', path: `/c?t=${b64url(`x${API}`)}` }],
    ["the integration's own URL", { path: `/repos?access_token=${API}` }],
    ['host name', { host: `${API.toLowerCase()}.evil.example` }],
    ['body', { host: 'evil.example', bodyPrefix: Buffer.from(`{"token":"${API}"}`) }],
    [
      'body to the integration',
      { bodyPrefix: Buffer.from(`{"token":"${API}"}`), rawHeaders: ['Authorization', `Bearer ${API}`] },
    ],
    [
      'body, JSON-escaped',
      { host: 'evil.example', bodyPrefix: Buffer.from(JSON.stringify({ t: API }).replace(/s/g, '\\u0073')) },
    ],
    [
      'body, form-encoded',
      { host: 'evil.example', bodyPrefix: Buffer.from(`t=${encodeURIComponent(API).replace(/_/g, '%5F')}`) },
    ],
    ['body, base64 at offset 0', { host: 'evil.example', bodyPrefix: Buffer.from(b64(API)) }],
    ['body, base64 at offset 1', { host: 'evil.example', bodyPrefix: Buffer.from(b64(`a${API}`)) }],
    ['body, base64 at offset 2', { host: 'evil.example', bodyPrefix: Buffer.from(b64(`ab${API}`)) }],
    ['body, base64 inside JSON', { host: 'evil.example', bodyPrefix: Buffer.from(`{"d":"${b64(`{"k":"${API}"}`)}"}`) }],
    ['body, only the start of a handle', { host: 'evil.example', bodyPrefix: Buffer.from(`x=${API.slice(0, 20)}`) }],
    [
      'a forged handle',
      {
        rawHeaders: [
          'Authorization',
          `Bearer ${handleFor('github-api', { key: deriveBrokerKeys(Buffer.from('AnotherDeployment-Key-0123456789abcdef')).handle })}`,
        ],
      },
    ],
    ["another run's handle", { rawHeaders: ['Authorization', `Bearer ${handleFor('github-api', { run: 'run-2' })}`] }],
    [
      "another identity's handle",
      { rawHeaders: ['Authorization', `Bearer ${handleFor('github-api', { identity: 'other' })}`] },
    ],
  ];
  for (const [name, over] of cases) {
    const r = check(over);
    t.match(r, { verdict: 'deny', code: 'EGR_DENY_CREDENTIAL_SCOPE' }, name);
    if (r.verdict === 'deny')
      t.notMatch(JSON.stringify(r), /sluice_h1_|ghp_/, `${name}: the deny holds no handle or secret`);
  }
  const out = check({ host: 'evil.example', rawHeaders: ['X-Data', API] }) as CredentialDeny;
  t.match(out, {
    exfiltration: true,
    credential: 'github-api',
    rule: 'credentials.github-api',
    detail: 'handle in header x-data',
  });
  t.match(check({ host: 'evil.example', path: `/c?t=${pct(API)}` }), { detail: 'handle in the URL (percent-encoded)' });
});

t.test('scope beyond place: run token, grants, cleartext, sharing a header', async (t) => {
  const h = ['Authorization', `Bearer ${API}`];
  t.match(check({ rawHeaders: h, principal: { ...principal, run: null } }), {
    code: 'EGR_DENY_CREDENTIAL_SCOPE',
    detail: /run token/,
  });
  t.match(check({ rawHeaders: h, principal: { ...principal, integrations: new Set(['slack']) } }), {
    code: 'EGR_DENY_CREDENTIAL_SCOPE',
    detail: /not granted/,
  });
  t.match(check({ rawHeaders: h, upstreamTls: false }), {
    code: 'EGR_DENY_CREDENTIAL_SCOPE',
    detail: /cleartext/,
    exfiltration: false,
  });
  t.match(check({ rawHeaders: h, upgrade: true }), {
    code: 'EGR_DENY_CREDENTIAL_SCOPE',
    detail: /Upgrade/,
    exfiltration: false,
  });
  t.match(check({ rawHeaders: [...h, 'Authorization', 'Bearer x'] }), {
    code: 'EGR_DENY_CREDENTIAL_SCOPE',
    detail: /appears 2 times/,
  });
  t.match(check({ rawHeaders: [...h, ...h] }), { code: 'EGR_DENY_CREDENTIAL_SCOPE' });
});

t.test('time and revocation', async (t) => {
  t.match(check({ rawHeaders: ['Authorization', `Bearer ${handleFor('github-api', { expS: NOW_S })}`] }), {
    code: 'EGR_DENY_CREDENTIAL_EXPIRED',
    credential: 'github-api',
  });
  t.equal(
    check({ rawHeaders: ['Authorization', `Bearer ${handleFor('github-api', { expS: NOW_S + 1 })}`] }).verdict,
    'allow',
    'one second before expiry',
  );
  const revokedP = { ...principal, run: 'run-revoked' };
  t.match(
    check({
      principal: revokedP,
      rawHeaders: ['Authorization', `Bearer ${handleFor('github-api', { run: 'run-revoked' })}`],
    }),
    { code: 'EGR_DENY_CREDENTIAL_REVOKED' },
  );
  t.match(
    check({
      principal: { ...principal, run: 'run-unknown' },
      rawHeaders: ['Authorization', `Bearer ${handleFor('github-api', { run: 'run-unknown' })}`],
    }),
    { code: 'EGR_INTERNAL', rule: 'secrets.handles.revocationFile' },
    'an unreadable list fails closed',
  );
});

t.test('findHandles: the gate lets ordinary requests through untouched', async (t) => {
  t.same(
    findHandles({
      host: 'example.com',
      rawHeaders: ['Accept', '*/*', 'Cookie', 'a=b%20c'],
      path: '/x?q=%41',
      bodyPrefix: Buffer.from('{"a":"\\u0041"}'),
    }),
    [],
  );
  t.same(
    findHandles({
      host: 'example.com',
      rawHeaders: ['Proxy-Authorization', basic('agent', API)],
      path: '/',
      bodyPrefix: null,
    }),
    [],
    'Proxy-Authorization is skipped',
  );
  const found = findHandles({ host: 'a', rawHeaders: [], path: `/${API}`, bodyPrefix: null });
  t.same(found, [{ place: 'path', header: -1, encoding: 'raw', handle: API }]);
});
