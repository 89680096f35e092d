import t from 'tap';
import { validateConfig } from '../../firewall/config.js';
import { exposureProblems, productionProblems } from '../../proxy/runtime/production.js';

const files: Record<string, string> = {
  '/k/good-key': 'k'.repeat(48),
  '/k/short-key': 'k'.repeat(10),
  '/k/admin': 'a'.repeat(32),
  '/k/short-admin': 'a'.repeat(5),
};
const read = (p: string) => (p in files ? Buffer.from(files[p]!) : null);
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

t.test('a complete production config passes', async (t) => {
  t.same(productionProblems(config({}), read), []);
});

t.test('each missing or default security component is a start-up error', async (t) => {
  const rows: [string, Record<string, unknown>, RegExp][] = [
    ['no identities', { identities: {} }, /no identities/],
    ['plaintext password', { identities: { agent: { password: 'hunter2' } } }, /plaintext password/],
    ['no token key', { tokens: undefined }, /tokens\.keyFile is not set/],
    ['unreadable token key', { tokens: { keyFile: '/k/missing' } }, /cannot be read/],
    ['short token key', { tokens: { keyFile: '/k/short-key' } }, /at least 32 are required/],
    ['admin API without token', { admin: {} }, /admin API has no token/],
    ['short admin token', { admin: { tokenFile: '/k/short-admin' } }, /at least 24 are required/],
  ];
  for (const [name, raw, re] of rows) {
    const problems = productionProblems(config(raw), read);
    t.ok(problems.some((p) => re.test(p)), `${name}: ${problems.join(' | ')}`);
  }
  t.same(productionProblems(config({ admin: {}, listen: { http: '127.0.0.1:3128', admin: null } }), read), [], 'no admin listener, no admin token needed');
});

t.test('binding beyond loopback without authentication is refused in any mode', async (t) => {
  const exposed = config({ admin: {}, listen: { http: '0.0.0.0:3128', admin: '0.0.0.0:9090' } });
  t.match(exposureProblems(exposed, read, false), [/listen\.admin 0\.0\.0\.0:9090 is beyond loopback without an admin token/]);
  t.same(exposureProblems(config({ listen: { http: '0.0.0.0:3128', admin: '0.0.0.0:9090' } }), read, false), [], 'with a token it may');
  t.match(exposureProblems(config({ listen: { http: '0.0.0.0:3128', admin: null } }), read, true), [/only a generated development credential/]);
});
