import t from 'tap';
import { type ConfigIssue, validateConfig } from '../../settings/config.js';
import { exposureProblems, productionProblems, startIssues } from '../../proxy/runtime/production.js';
import type { FileState, InspectFile } from '../../proxy/runtime/secret-files.js';

const files: Record<string, string> = {
  '/k/good-key': 'k'.repeat(48),
  '/k/short-key': 'k'.repeat(10),
  '/k/admin': 'a'.repeat(32),
  '/k/short-admin': 'a'.repeat(5),
};
const read = (p: string) => (p in files ? Buffer.from(files[p]!) : null);
// Files as inspect sees them: a private mode unless a test says otherwise.
const inspect =
  (modes: Record<string, number> = {}, extra: Record<string, FileState> = {}): InspectFile =>
  (p, withBytes) => {
    if (p in extra) return extra[p]!;
    if (p === '/k' || p === '/run') return { kind: 'directory', mode: 0o40755 };
    const b = read(p);
    return b
      ? { kind: 'file', mode: 0o100000 | (modes[p] ?? 0o600), bytes: withBytes ? b : null }
      : { kind: 'missing' };
  };
const config = (raw: Record<string, unknown>) => {
  const r = validateConfig({
    identities: { agent: { passwordHash: 'scrypt$32768$8$1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2g=' } },
    tokens: { keyFile: '/k/good-key' },
    admin: { tokenFile: '/k/admin' },
    ...raw,
  });
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  return r.config;
};
const texts = (issues: readonly ConfigIssue[]) => issues.map((i) => `${i.path}: ${i.message}`);

t.test('a complete production config passes', async (t) => {
  t.same(productionProblems(config({}), inspect()), []);
});

t.test(
  'each missing or default security component is a start-up error, as a ConfigIssue with path and hint',
  async (t) => {
    const rows: [string, Record<string, unknown>, string, RegExp][] = [
      ['no identities', { identities: {} }, '/identities', /no identities/],
      [
        'plaintext password',
        { identities: { agent: { password: 'hunter2' } } },
        '/identities/agent/password',
        /plaintext password/,
      ],
      ['no token key', { tokens: undefined }, '/tokens/keyFile', /tokens\.keyFile is not set/],
      ['missing token key', { tokens: { keyFile: '/k/missing' } }, '/tokens/keyFile', /\/k\/missing: no such file/],
      ['short token key', { tokens: { keyFile: '/k/short-key' } }, '/tokens/keyFile', /at least 32 are required/],
      ['admin API without token', { admin: {} }, '/admin/tokenFile', /admin API has no token/],
      ['short admin token', { admin: { tokenFile: '/k/short-admin' } }, '/admin/tokenFile', /at least 24 are required/],
    ];
    for (const [name, raw, path, re] of rows) {
      const problems = productionProblems(config(raw), inspect());
      const hit = problems.find((p) => p.path === path && re.test(p.message));
      t.ok(hit, `${name}: ${texts(problems).join(' | ')}`);
      t.ok(hit?.hint, `${name}: with a hint`);
      t.equal(hit?.severity, 'error');
    }
    t.same(
      productionProblems(config({ admin: {}, listen: { http: '127.0.0.1:3128', admin: null } }), inspect()),
      [],
      'no admin listener, no admin token needed',
    );
  },
);

t.test('production requires secret files that nobody else can write', async (t) => {
  const writable = inspect({ '/k/good-key': 0o666, '/k/admin': 0o620 });
  const problems = productionProblems(config({}), writable);
  t.same(texts(problems).sort(), [
    '/admin/tokenFile: /k/admin: writable by group or others (mode 620)',
    '/tokens/keyFile: /k/good-key: writable by group or others (mode 666)',
  ]);
  t.same(
    productionProblems(config({}), inspect({ '/k/good-key': 0o444, '/k/admin': 0o440 })),
    [],
    'read-only for all is fine (Kubernetes projects secrets 0444)',
  );
  const dev = startIssues(config({}), { production: false, generatedIdentity: false, inspect: writable });
  t.same(
    dev.map((i) => i.severity),
    ['warning', 'warning'],
    'outside production: warnings',
  );
});

t.test('binding beyond loopback without authentication is refused in any mode', async (t) => {
  const exposed = config({ admin: {}, listen: { http: '0.0.0.0:3128', admin: '0.0.0.0:9090' } });
  t.match(exposureProblems(exposed, read, false), [
    {
      path: '/listen/admin',
      message: /0\.0\.0\.0:9090 is beyond loopback without an admin token/,
      hint: /admin\.tokenFile/,
    },
  ]);
  t.same(
    exposureProblems(config({ listen: { http: '0.0.0.0:3128', admin: '0.0.0.0:9090' } }), read, false),
    [],
    'with a token it may',
  );
  t.match(exposureProblems(config({ listen: { http: '0.0.0.0:3128', admin: null } }), read, true), [
    { path: '/listen/http', message: /only a generated development credential/ },
  ]);
});

t.test('admin.protectReads defaults to on beyond loopback, off on loopback', async (t) => {
  t.equal(config({ listen: { http: '127.0.0.1:3128', admin: '0.0.0.0:9090' } }).admin.protectReads, true);
  t.equal(config({ listen: { http: '127.0.0.1:3128', admin: '[::]:9090' } }).admin.protectReads, true);
  t.equal(config({ listen: { http: '127.0.0.1:3128', admin: '127.0.0.1:9090' } }).admin.protectReads, false);
  t.equal(
    config({
      listen: { http: '127.0.0.1:3128', admin: '127.0.0.1:9090' },
      admin: { tokenFile: '/k/admin', protectReads: true },
    }).admin.protectReads,
    true,
  );
  const off = validateConfig({
    listen: { http: '127.0.0.1:3128', admin: '0.0.0.0:9090' },
    admin: { tokenFile: '/k/admin', protectReads: false },
  });
  t.ok(off.ok);
  if (off.ok)
    t.match(
      off.warnings,
      [{ path: '/admin/protectReads', severity: 'warning', message: /name identities/ }],
      'turning it off beyond loopback is allowed, with a warning',
    );
  const noToken = validateConfig({ admin: { protectReads: true } });
  t.notOk(noToken.ok, 'protectReads without a token to check is an error');
});
