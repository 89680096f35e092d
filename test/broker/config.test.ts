// The `secrets` and `credentials` config sections: shape, cross-references, and no secret value ever
// accepted in the file.
import t from 'tap';
import { type ConfigIssue, validateConfig } from '../../settings/config.js';
import { secretShapeOf } from '../../firewall/credential-config.js';

const base = {
  integrations: { github: { hosts: ['api.github.com', 'github.com'] }, slack: { hosts: ['slack.com'], tunnel: true } },
  identities: {
    agent: {
      passwordHash: 'scrypt$32768$8$1$c2x1aWNlLXNhbHQ=$3q2+7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=',
      integrations: ['github'],
    },
  },
  secrets: {
    keyFile: '/run/secrets/sluice-broker-key',
    handles: { maxTtl: '8h', revocationFile: '/var/lib/sluice/revoked.jsonl' },
  },
};
const cred = (over: Record<string, unknown> = {}) => ({
  integration: 'github',
  inject: { type: 'header', name: 'Authorization', template: 'Bearer {secret}' },
  source: { sealedFile: '/etc/sluice/credentials/github.sealed' },
  ...over,
});
const withCreds = (credentials: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
  ...base,
  credentials,
  ...extra,
});
const problems = (raw: unknown): ConfigIssue[] => {
  const r = validateConfig(raw);
  return r.ok ? [...r.warnings] : [...r.issues];
};
const errorsAt = (raw: unknown, path: string) => problems(raw).filter((i) => i.severity === 'error' && i.path === path);

t.test('a valid broker config, normalised and frozen', async (t) => {
  const r = validateConfig(
    withCreds({
      'github-api': cred({ replaceForeign: 'pass' }),
      'github-git': cred({
        inject: { type: 'basic', username: 'x-access-token' },
        source: { file: '/run/secrets/github-token' },
      }),
      'github-git2': cred({ inject: { type: 'basic' } }),
    }),
  );
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  t.same(r.config.secrets, {
    keyFile: '/run/secrets/sluice-broker-key',
    handles: { maxTtlS: 8 * 3600, revocationFile: '/var/lib/sluice/revoked.jsonl', pollMs: 1000 },
  });
  t.same(r.config.credentials['github-api'], {
    integration: 'github',
    inject: { type: 'header', name: 'authorization', template: 'Bearer {secret}' },
    source: { kind: 'sealedFile', path: '/etc/sluice/credentials/github.sealed' },
    replaceForeign: 'pass',
  });
  t.same(r.config.credentials['github-git']!.inject, { type: 'basic', username: 'x-access-token' });
  t.same(r.config.credentials['github-git']!.source, { kind: 'file', path: '/run/secrets/github-token' });
  t.equal(r.config.credentials['github-git']!.replaceForeign, 'deny', 'replaceForeign defaults to deny');
  t.same(r.config.credentials['github-git2']!.inject, { type: 'basic', username: null }, "no username: the request's");
  t.ok(Object.isFrozen(r.config.credentials['github-api']!.inject));
  const none = validateConfig({});
  t.ok(
    none.ok && none.config.secrets === null && Object.keys(none.config.credentials).length === 0,
    'the embedded default has no broker',
  );
});

t.test('cross-references and required parts, with hints', async (t) => {
  const unknown = errorsAt(withCreds({ gh: cred({ integration: 'githb' }) }), '/credentials/gh/integration');
  t.equal(unknown.length, 1);
  t.equal(unknown[0]!.hint, 'did you mean "github"?');
  const noSecrets = problems({ ...withCreds({ gh: cred() }), secrets: undefined }).find(
    (i) => i.path === '/credentials/gh',
  );
  t.match(noSecrets, { severity: 'error', message: /secrets\.keyFile/, hint: /head -c 48 \/dev\/urandom/ });
  t.ok(errorsAt(withCreds({ gh: cred({ source: {} }) }), '/credentials/gh/source').length, 'a source is required');
  t.ok(
    errorsAt(withCreds({ gh: cred({ source: { sealedFile: '/a', file: '/b' } }) }), '/credentials/gh/source').length,
    'exactly one source',
  );
  t.ok(
    problems(withCreds({ gh: cred({ inject: { type: 'hmac' } }) })).some(
      (i) => i.path === '/credentials/gh/inject/type',
    ),
    'unknown inject type',
  );
  t.ok(
    problems(withCreds({ gh: cred({ inject: { type: 'header', name: 'Authorization' } }) })).some(
      (i) => i.path === '/credentials/gh/inject' && /template/.test(i.message),
    ),
  );
  t.ok(
    errorsAt(
      withCreds({
        gh: cred({ inject: { type: 'header', name: 'Authorization', template: 'Bearer {secret} {secret}' } }),
      }),
      '/credentials/gh/inject/template',
    ).length,
    '{secret} once',
  );
  t.ok(
    errorsAt(
      withCreds({ gh: cred({ inject: { type: 'header', name: 'Authorization', template: 'Bearer token' } }) }),
      '/credentials/gh/inject/template',
    ).length,
    '{secret} at all',
  );
  t.ok(
    errorsAt(
      withCreds({
        gh: cred({ inject: { type: 'header', name: 'Authorization', template: 'Bearer {secret}\r\nX-A: b' } }),
      }),
      '/credentials/gh/inject/template',
    ).length,
    'no CRLF',
  );
  for (const name of [
    'Host',
    'Content-Length',
    'Proxy-Authorization',
    'Proxy-Foo',
    'Transfer-Encoding',
    'Accept-Encoding',
  ]) {
    t.ok(
      errorsAt(
        withCreds({ gh: cred({ inject: { type: 'header', name, template: '{secret}' } }) }),
        '/credentials/gh/inject/name',
      ).length,
      `not into ${name}`,
    );
  }
  t.ok(
    problems(withCreds({ gh: cred({ inject: { type: 'header', name: 'Bad Header', template: '{secret}' } }) })).some(
      (i) => i.path === '/credentials/gh/inject/name',
    ),
    'a header name is a token',
  );
  t.ok(
    errorsAt(withCreds({ gh: cred({ inject: { type: 'basic', username: 'a:b' } }) }), '/credentials/gh/inject/username')
      .length,
    'no colon in a Basic username',
  );
  t.ok(
    errorsAt(
      withCreds({ gh: cred({ inject: { type: 'basic', template: '{secret}' } }) }),
      '/credentials/gh/inject/template',
    ).length,
    'basic takes no template',
  );
  t.ok(
    errorsAt(
      withCreds({ gh: cred({ inject: { type: 'header', name: 'X-Key', template: '{secret}', username: 'u' } }) }),
      '/credentials/gh/inject/username',
    ).length,
    'header takes no username',
  );
  t.ok(
    problems({ ...base, secrets: { keyFile: '/k', handles: { maxTtl: 'forever' } } }).some(
      (i) => i.path === '/secrets/handles/maxTtl' && i.hint === 'use e.g. "30m", "2h", "1d"',
    ),
  );
  t.ok(
    problems(withCreds({ GitHub: cred() })).some((i) => i.path === '/credentials' || i.path.startsWith('/credentials')),
    'names are config names',
  );
});

t.test('warnings: tunnels that bypass injection, a shared key', async (t) => {
  const r = validateConfig(
    withCreds({ sl: cred({ integration: 'slack' }) }, { tokens: { keyFile: '/run/secrets/sluice-broker-key' } }),
  );
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  t.ok(r.warnings.some((w) => w.path === '/credentials/sl/integration' && /opaque tunnels/.test(w.message)));
  t.ok(r.warnings.some((w) => w.path === '/secrets/keyFile' && /share one key file/.test(w.message)));
});

t.test('no plaintext secret is accepted anywhere in a credential, and none is echoed', async (t) => {
  const TOKEN = 'ghp_R8x2Kq9LmN4pZ7vB1cD3eF5gH6jK0aS2dF4g';
  const RANDOM = 'Qm9vVGhpc0lzQVJhbmRvbUtleTEyMzQ1Njc4OTA';
  const cases: [string, Record<string, unknown>, string][] = [
    [
      'a token as the template',
      cred({ inject: { type: 'header', name: 'Authorization', template: `Bearer ${TOKEN}` } }),
      '/credentials/gh/inject/template',
    ],
    [
      'a token inside a template beside {secret}',
      cred({ inject: { type: 'header', name: 'Authorization', template: `{secret} ${RANDOM}` } }),
      '/credentials/gh/inject/template',
    ],
    [
      'a token as the Basic username',
      cred({ inject: { type: 'basic', username: TOKEN } }),
      '/credentials/gh/inject/username',
    ],
    ['a token instead of a file path', cred({ source: { file: TOKEN } }), '/credentials/gh/source/file'],
    ['a random key instead of a file path', cred({ source: { file: RANDOM } }), '/credentials/gh/source/file'],
    [
      'a sealed blob instead of a file path',
      cred({ source: { sealedFile: 'sluice-sealed.v1.AAAAAAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBBBB' } }),
      '/credentials/gh/source/sealedFile',
    ],
    ['a key "secret"', cred({ secret: TOKEN }), '/credentials/gh/secret'],
    ['a key "token"', cred({ token: 'anything' }), '/credentials/gh/token'],
    ['a key "value"', cred({ value: 'anything' }), '/credentials/gh/value'],
  ];
  for (const [name, c, path] of cases) {
    const all = problems(withCreds({ gh: c }));
    const hit = all.filter((i) => i.severity === 'error' && i.path === path);
    t.ok(
      hit.some((i) => /secret values never go in the config/.test(i.hint ?? '')),
      `${name}: refused with the seal hint`,
    );
    t.notMatch(JSON.stringify(all), new RegExp(`${TOKEN}|${RANDOM}`), `${name}: the value is not echoed`);
  }
  t.ok(
    problems(withCreds({ 'sk-live-abcdefghijklmnopqrstuvwx': cred() })).some((i) => i.severity === 'error'),
    'a credential named like a key',
  );
  t.ok(
    errorsAt({ ...base, secrets: { keyFile: TOKEN } }, '/secrets/keyFile').length,
    'a key instead of the key file path',
  );
});

t.test('secretShapeOf: tokens yes, names, paths and templates no', async (t) => {
  const yes = [
    'ghp_abcdefghijklmnopqrstuvwxyz0123',
    'github_pat_11ABCDEFG0123456789_abcdefghij',
    'xoxb-1234567890-abcdefghij',
    'AKIAIOSFODNN7EXAMPLE',
    'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.sig',
    'sk-proj-abcdefghijklmnopqrstuv',
    'glpat-abcdefghijklmnopqrst',
    'sluice_h1_AAAA',
    'sluice.v1.payload.mac',
    'Tm90UmVhbGx5QVRva2VuQnV0UmFuZG9tMTIz',
    '-----BEGIN PRIVATE KEY-----',
  ];
  const no = [
    'Bearer {secret}',
    'token {secret}',
    '{secret}',
    'x-access-token',
    '/run/secrets/github-token',
    '/etc/sluice/credentials/github-api.sealed',
    'authorization',
    'github',
    'https-api_v2-credentials-file',
    '/var/lib/sluice/revoked.jsonl',
    'AbcDefGhi',
    '/tmp/sluice-broker-cli-fdljK2/broker.key',
    '/var/lib/kubelet/pods/3f2a8c1e-9b7d-4e6f-a1b2-c3d4e5f60718/volumes/secret',
  ];
  for (const s of yes) t.ok(secretShapeOf(s, { path: s.startsWith('/') }), `${s.slice(0, 12)}… looks like a secret`);
  for (const s of no) t.equal(secretShapeOf(s, { path: s.startsWith('/') }), null, `${s} does not`);
});
