import t from 'tap';
import { validateConfig } from '../../settings/config.js';
import { pathForLog, randomLooking, scrubText, secretLike } from '../../proxy/ops/redact.js';

t.test('the scrubber removes common token shapes from free text', async (t) => {
  const rows: [string, RegExp][] = [
    ['jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.SflKxwRJSMeKKF2QT4fwpM', /eyJhbGci/],
    ['token ghp_abcdefghijklmnopqrstuvwxyz0123456789', /ghp_abc/],
    ['github_pat_11ABCDEFG0123456789_abcdefghijklmnop', /github_pat_11/],
    ['key sk-proj-abcdefghijklmnopqrstuvwx', /sk-proj/],
    ['aws AKIAIOSFODNN7EXAMPLE here', /AKIAIOSFODNN7EXAMPLE/],
    ['slack xoxb-1234567890-abcdefghij', /xoxb-1234/],
    ['Authorization: Bearer abcdef0123456789', /abcdef0123456789/],
    ['basic dXNlcjpwYXNzd29yZA==', /dXNlcjpwYXNzd29yZA/],
    ['http://user:hunter2@example.com/x', /hunter2/],
    ['run sluice.v1.eyJzdWIiOiJ.AbCdEf', /sluice\.v1\.eyJ/],
  ];
  for (const [text, secret] of rows) {
    const out = scrubText(text);
    t.notMatch(out, secret, text);
    t.match(out, /\[redacted\]/);
  }
  t.equal(scrubText('ECONNREFUSED 10.0.0.1:443'), 'ECONNREFUSED 10.0.0.1:443', 'ordinary text untouched');
});

t.test('paths keep query keys only', async (t) => {
  t.equal(pathForLog('/search?q=secret&page=2'), '/search?q=&page=');
  t.equal(pathForLog('/a/b'), '/a/b');
  t.equal(pathForLog('/x?token'), '/x?token=');
  t.notMatch(pathForLog('/hook/ghp_abcdefghijklmnopqrstuvwxyz0123456789'), /ghp_/);
  t.ok(pathForLog('/' + 'a'.repeat(1000)).length < 300, 'capped');
});

// Both sides of the line: what must stay readable, and what must never reach the log.
const READABLE: string[] = [
  '/repos/owner/name/pulls/123',
  '/repos/Microsoft/TypeScript-Handbook2020/issues',
  '/left-pad/-/left-pad-1.3.0.tgz',
  '/@types/node/-/node-20.19.43.tgz',
  '/eslint-plugin-react-hooks/-/eslint-plugin-react-hooks-4.6.0.tgz',
  '/packages/numpy-1.26.4-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl',
  '/packages/python_dateutil-2.8.2-py2.py3-none-any.whl',
  '/simple/typing-extensions/',
  '/crates/serde_json/1.0.128/download',
  '/github.com/golang/protobuf/@v/v1.5.4.mod',
  '/users/550e8400-e29b-41d4-a716-446655440000',
  '/api/v1/namespaces/default/pods/web-7d4b9c8f6d-x2x9q',
  '/getAuthenticatedUser',
  '/listOrgMembersForUser',
  '/channels/123456789012345678901234/messages',
  '/x?raw&download',
];

const SECRET_PATHS: [string, string, string][] = [
  // [what, path, the secret part]
  ['Slack webhook', '/services/T0123ABCD/B0456EFGH/Ab3dEf6hIj9kLm2nOp5qRs8t', 'Ab3dEf6hIj9kLm2nOp5qRs8t'],
  ['Slack webhook, letters only', '/services/T0123ABCD/B0456EFGH/XyZaBcDEFgHiJkLmNoPqRsTu', 'XyZaBcDEFgHiJkLmNoPqRsTu'],
  [
    'Telegram bot token',
    '/bot123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/sendMessage',
    'AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw',
  ],
  [
    'Discord webhook',
    '/api/webhooks/123456789012345678/AbCdEf-GhIjKl_MnOpQr-StUvWx_Yz0123456789AbCdEfGhIjKlMnOpQrStUvWxYz01',
    'AbCdEf-GhIjKl',
  ],
  ['GitHub token in a path', '/hook/ghp_abcdefghijklmnopqrstuvwxyz0123456789', 'ghp_abc'],
  ['JWT in a path', '/auth/eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.SflKxwRJSMeKKF2QT4fwpM/x', 'eyJhbGci'],
  ['percent-encoded token', '/k/Ab3dEf6hIj9kLm2nOp5qRs8t%3D%3D', 'Ab3dEf6hIj9kLm2nOp5qRs8t'],
  ['hex key', '/api/3f2a9b4c5d6e7f8091a2b3c4d5e6f708/send', '3f2a9b4c5d6e7f8091a2b3c4d5e6f708'],
  ['lower-case base36 key', '/t/k3j4h5g6f7d8s9a0q1w2e3r4t5y6/x', 'k3j4h5g6f7d8s9a0q1w2e3r4t5y6'],
  ['matrix parameters', '/app;jsessionid=ABC123DEF456;token=hunter2/x', 'hunter2'],
  ['matrix parameter value', '/app;jsessionid=ABC123DEF456', 'ABC123DEF456'],
  ['key-only query', '/hook?a8Fk3jD9sLq2Wm4nZx7cVb1', 'a8Fk3jD9sLq2Wm4nZx7cVb1'],
  ['key-only query, short with digits', '/hook?hunter22', 'hunter22'],
  ['key-only query among others', '/hook?a=1&Zx9Qw2Er4Ty6&b=2', 'Zx9Qw2Er4Ty6'],
  ['query name that is a token', '/hook?Ab3dEf6hIj9kLm2nOp5qRs8t=1', 'Ab3dEf6hIj9kLm2nOp5qRs8t'],
  ['query value', '/search?q=CanaryQuery', 'CanaryQuery'],
];

t.test('path redaction: ordinary paths stay readable', async (t) => {
  for (const p of READABLE)
    t.equal(
      pathForLog(p),
      p.includes('?')
        ? p.replace(
            /\?(.*)$/,
            (_, q: string) =>
              `?${q
                .split('&')
                .map((k) => `${k}=`)
                .join('&')}`,
          )
        : p,
      p,
    );
});

t.test('path redaction: secrets in paths, matrix parameters and key-only queries never reach the log', async (t) => {
  for (const [what, path, secret] of SECRET_PATHS) {
    const out = pathForLog(path);
    t.notOk(out.includes(secret), `${what}: ${out}`);
    t.notOk(out.toLowerCase().includes(secret.toLowerCase().slice(0, 10)), `${what}: no prefix of it either`);
  }
  t.equal(
    pathForLog('/services/T0123ABCD/B0456EFGH/Ab3dEf6hIj9kLm2nOp5qRs8t'),
    '/services/T0123ABCD/B0456EFGH/[redacted]',
    'only the secret segment goes',
  );
  t.equal(
    pathForLog('/app;jsessionid=ABC123;token=XYZ/x'),
    '/app;jsessionid=;token=/x',
    'matrix parameters: names kept, values dropped',
  );
  t.equal(pathForLog('/hook?a8Fk3jD9sLq2Wm4nZx7cVb1&raw'), '/hook?[redacted]&raw=');
  t.equal(
    pathForLog(`/${'Ab3dEf6hIj9kLm2nOp5qRs8t'.repeat(30)}`).startsWith('/[redacted]'),
    true,
    'a long secret is judged before the cap cuts it',
  );
});

// A seeded generator: the rates below are facts about these strings, not a test that can flake.
function randomStrings(alphabet: string, length: number, count: number, seed: number): string[] {
  let x = seed >>> 0;
  const next = () => {
    x = (x + 0x6d2b79f5) >>> 0;
    let z = x;
    z = Math.imul(z ^ (z >>> 15), z | 1);
    z ^= z + Math.imul(z ^ (z >>> 7), z | 61);
    return ((z ^ (z >>> 14)) >>> 0) / 4294967296;
  };
  return Array.from({ length: count }, () =>
    Array.from({ length }, () => alphabet[Math.floor(next() * alphabet.length)]).join(''),
  );
}

t.test('path redaction: random tokens are caught at the documented rates', async (t) => {
  const b62 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  const rows: [string, string, number, number][] = [
    ['base62, 24 (Slack webhook secret)', b62, 24, 0.99],
    ['base62, 32', b62, 32, 0.995],
    ['base64url, 43 (32 random bytes)', `${b62}-_`, 43, 0.995],
    ['hex, 32', '0123456789abcdef', 32, 0.995],
    ['base36, 32', 'abcdefghijklmnopqrstuvwxyz0123456789', 32, 0.98],
  ];
  for (const [name, alphabet, length, rate] of rows) {
    const samples = randomStrings(alphabet, length, 2000, length * 7919);
    const caught = samples.filter((s) => secretLike(s)).length / samples.length;
    t.ok(caught >= rate, `${name}: ${(caught * 100).toFixed(2)}% ≥ ${rate * 100}%`);
  }
  t.notOk(randomLooking('12345678901234567890123'), 'numbers are ids');
  t.notOk(randomLooking('550e8400-e29b-41d4-a716-446655440000'), 'UUIDs are ids');
});

t.test('operator patterns: what they match (or the groups in them) is redacted', async (t) => {
  t.equal(pathForLog('/internal/hooks/plainword/x', ['^/internal/hooks/([^/]+)']), '/internal/hooks/[redacted]/x');
  t.equal(pathForLog('/v1/keys/abc/def', ['^/v1/keys/[^/]+']), '[redacted]/def', 'without groups, the whole match');
  t.equal(
    pathForLog('/other/plainword', ['^/internal/hooks/([^/]+)']),
    '/other/plainword',
    'no match, nothing changes',
  );
});

t.test(
  'operator patterns are validated: anchored, non-empty, compiled, and free of catastrophic backtracking',
  async (t) => {
    const check = (patterns: unknown[]) => validateConfig({ log: { redactPaths: patterns } });
    t.ok(check(['^/internal/hooks/([^/]+)', '^/services/T[A-Z0-9]+/B[A-Z0-9]+/([A-Za-z0-9]+)']).ok);
    const rows: [string, RegExp][] = [
      ['(a+)+$', /not anchored/],
      ['^(a+)+$', /backtrack catastrophically/],
      ['^/x/(\\d*\\d*\\d*)y', /backtrack catastrophically/],
      ['^(x|x)*y', /backtrack catastrophically/],
      ['^/a[', /not a regular expression/],
      ['^x*', /matches the empty string/],
    ];
    for (const [pattern, message] of rows) {
      const r = check([pattern]);
      t.notOk(r.ok, pattern);
      if (!r.ok) t.match(r.issues, [{ path: '/log/redactPaths/0', message, hint: /./ }], pattern);
    }
    t.notOk(check(Array.from({ length: 17 }, (_, i) => `^/p${i}/`)).ok, 'at most 16 patterns');
    t.notOk(check([`^/${'a'.repeat(250)}`]).ok, 'at most 200 characters each');
  },
);

t.test(
  'the audit record never needs path redaction (it is logged without pino redact: log-destination.ts)',
  async (t) => {
    const { FIELD, createAudit } = await import('../../proxy/ops/audit.js');
    const { REDACT_PATHS } = await import('../../proxy/ops/redact.js');
    // A path applies to a key it names at the top, or (with `*.`) to any top-level key holding an object.
    const heads = new Set(REDACT_PATHS.map((p) => p.split(/[.[]/)[0]));
    t.ok(heads.has('*'), 'some paths are wildcards: the record must hold no objects at all');
    for (const name of Object.values(FIELD)) t.notOk(heads.has(name), `${name} is not redacted by path`);
    const lines: Record<string, unknown>[] = [];
    const logger = {
      info: (o: Record<string, unknown>) => lines.push(o),
      warn: (o: Record<string, unknown>) => lines.push(o),
      error: (o: Record<string, unknown>) => lines.push(o),
    };
    const audit = createAudit({ logger: logger as never, nowMs: () => 0 });
    const r = audit.begin('http', '127.0.0.1:1');
    Object.assign(r, {
      identity: 'agent',
      method: 'GET',
      targetHost: 'example.com',
      targetPort: 80,
      targetPath: '/a?b=c',
      detail: 'x',
    });
    audit.end(r);
    audit.denied(r, { code: 'EGR_DENY_WRITE', rule: 'r', detail: 'd' } as never);
    audit.end(r);
    t.equal(lines.length, 2);
    for (const line of lines) {
      t.same(Object.keys(line).sort(), Object.values(FIELD).sort(), 'exactly the FIELD names');
      for (const [k, v] of Object.entries(line)) t.ok(v === null || typeof v !== 'object', `${k} holds a primitive`);
    }
  },
);
