// Run tokens carry the orchestrator's run (`sluice token issue --run`): the one run whose handles a request
// authenticated by that token may use (CONTRACT §11).
import { createHmac } from 'node:crypto';
import t from 'tap';
import { isDeny } from '../../firewall/codes.js';
import { validateConfig } from '../../settings/config.js';
import { compilePolicy } from '../../firewall/policy.js';
import { createIdentityStore } from '../../proxy/auth/identity.js';
import { issueToken, verifyToken } from '../../proxy/auth/run-token.js';

const KEY = Buffer.from('k'.repeat(40));

t.test('a token issued for a run carries it, and verifies with it', async (t) => {
  const tok = issueToken(KEY, { sub: 'agent', ttlS: 60, nowS: 1000, run: 'job-4711' });
  t.match(verifyToken(KEY, tok, 1001), { ok: true, claims: { sub: 'agent', run: 'job-4711' } });
  const plain = issueToken(KEY, { sub: 'agent', ttlS: 60, nowS: 1000 });
  const check = verifyToken(KEY, plain, 1001);
  t.ok(check.ok && check.claims.run === undefined, 'no --run: no run claim');
  t.throws(() => issueToken(KEY, { sub: 'agent', ttlS: 60, nowS: 1000, run: 'no spaces' }), {
    code: 'SLUICE_ERR_INVALID_ARGUMENT',
  });
});

t.test('a signed token whose run claim is not a run id is invalid', async (t) => {
  const payload = Buffer.from(JSON.stringify({ sub: 'agent', iat: 1000, exp: 2000, jti: 'x', run: ['job'] })).toString(
    'base64url',
  );
  const mac = createHmac('sha256', KEY).update(`sluice.v1.${payload}`).digest('base64url');
  t.match(verifyToken(KEY, `sluice.v1.${payload}.${mac}`, 1001), { ok: false, reason: 'invalid' });
});

t.test('the principal of a token names its run; a configured identity has none', async (t) => {
  const r = validateConfig({
    identities: { agent: { password: 'agent-password-123', integrations: [] } },
    tokens: { keyFile: '/dev/null' },
  });
  if (!r.ok) throw new Error('config');
  const policy = compilePolicy(r.config, []);
  const store = createIdentityStore({ policy: () => policy, tokenKey: () => KEY, nowMs: () => 1_001_000 });
  const tok = issueToken(KEY, { sub: 'agent', ttlS: 60, nowS: 1000, run: 'job-4711' });
  const p = await store.authenticate({ user: 'agent', pass: tok });
  t.notOk(isDeny(p));
  t.match(p, { identity: 'agent', run: 'job-4711' });
  const q = await store.authenticate({ user: 'agent', pass: issueToken(KEY, { sub: 'agent', ttlS: 60, nowS: 1000 }) });
  t.ok(!isDeny(q) && q.run === q.runId, 'a token without a run is its own run (its jti)');
  const c = await store.authenticate({ user: 'agent', pass: 'agent-password-123' });
  t.notOk(isDeny(c) || c.run, 'a configured identity carries no run');
});
