import t from 'tap';
import { isDeny } from '../../firewall/codes.js';
import { validateConfig } from '../../firewall/config.js';
import { compilePolicy } from '../../firewall/policy.js';
import { createIdentityStore, parseBasic } from '../../proxy/auth/identity.js';
import { hashPassword, verifyPassword } from '../../proxy/auth/password-hash.js';
import { issueToken, verifyToken } from '../../proxy/auth/run-token.js';

const KEY = Buffer.from('k'.repeat(40));

t.test('scrypt hashes', async (t) => {
  const h = await hashPassword('correct horse battery');
  t.match(h, /^scrypt\$32768\$8\$1\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/);
  t.ok(await verifyPassword('correct horse battery', h));
  t.notOk(await verifyPassword('correct horse batterY', h));
  t.notOk(await verifyPassword('x', 'scrypt$1048577$8$1$c2FsdHNhbHQ=$aGFzaGhhc2hoYXNoaGFzaA=='), 'absurd work factor refused, not run');
  t.notOk(await verifyPassword('x', 'md5$abc'));
  t.notOk(await verifyPassword('x', ''));
});

t.test('Basic credentials', async (t) => {
  t.same(parseBasic(`Basic ${Buffer.from('agent:pa:ss').toString('base64')}`), { user: 'agent', pass: 'pa:ss' });
  t.same(parseBasic(`basic  ${Buffer.from('a:b').toString('base64')}`), { user: 'a', pass: 'b' });
  t.equal(parseBasic(undefined), null);
  for (const bad of ['Bearer x', 'Basic', 'Basic !!!', `Basic ${Buffer.from('nocolon').toString('base64')}`, `Basic ${Buffer.from(':pw').toString('base64')}`, 'Basic ' + 'A'.repeat(5000)]) {
    t.equal(parseBasic(bad), 'malformed', bad.slice(0, 20));
  }
});

t.test('run tokens', async (t) => {
  const tok = issueToken(KEY, { sub: 'agent', ttlS: 60, nowS: 1000, int: ['github'] });
  t.match(tok, /^sluice\.v1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
  t.match(verifyToken(KEY, tok, 1059), { ok: true, claims: { sub: 'agent', exp: 1060, int: ['github'] } });
  t.match(verifyToken(KEY, tok, 1060), { ok: false, reason: 'expired' });
  t.match(verifyToken(Buffer.from('x'.repeat(40)), tok, 1000), { ok: false, reason: 'invalid' }, 'another key');
  const [p, payload, mac] = [tok.slice(0, 10), tok.slice(10).split('.')[0]!, tok.split('.').at(-1)!];
  const forged = Buffer.from(JSON.stringify({ sub: 'admin', iat: 1000, exp: 9999999999, jti: 'x' })).toString('base64url');
  t.match(verifyToken(KEY, `${p}${forged}.${mac}`, 1000), { ok: false, reason: 'invalid' }, 'payload swapped');
  t.match(verifyToken(KEY, `${p}${payload}.${mac.slice(0, -2)}`, 1000), { ok: false, reason: 'invalid' }, 'truncated mac');
  t.match(verifyToken(KEY, 'sluice.v1.', 1000), { ok: false });
  t.throws(() => issueToken(Buffer.from('short'), { sub: 'a', ttlS: 1, nowS: 0 }), /at least 32 bytes/);
});

t.test('the identity store', async (t) => {
  const hash = await hashPassword('hashed-password-1');
  const r = validateConfig({
    integrations: { github: { hosts: ['api.github.com'] }, slack: { hosts: ['slack.com'] } },
    identities: {
      agent: { passwordHash: hash, integrations: ['github', 'slack'] },
      plain: { password: 'plain-password-1', reads: 'none' },
    },
  });
  if (!r.ok) throw new Error('config');
  const policy = compilePolicy(r.config);
  let now = 1_000_000_000;
  const store = createIdentityStore({ policy: () => policy, tokenKey: () => KEY, nowMs: () => now });
  const code = async (user: string, pass: string) => {
    const p = await store.authenticate({ user, pass });
    return isDeny(p) ? p.code : `${p.identity}:${[...p.integrations].join(',')}:${p.runId ? 'run' : 'static'}`;
  };
  t.equal(await code('agent', 'hashed-password-1'), 'agent:github,slack:static');
  t.equal(await code('agent', 'hashed-password-1'), 'agent:github,slack:static', 'cached verification');
  t.equal(await code('agent', 'wrong'), 'EGR_AUTH_INVALID');
  t.equal(await code('plain', 'plain-password-1'), 'plain::static');
  t.equal(await code('plain', 'plain-password-2'), 'EGR_AUTH_INVALID');
  t.equal(await code('ghost', 'whatever'), 'EGR_AUTH_INVALID');
  for (const inherited of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) {
    t.equal(await code(inherited, 'x'), 'EGR_AUTH_INVALID', `"${inherited}" is not an identity (no Object.prototype lookups)`);
  }
  t.match(await store.authenticate(null), { code: 'EGR_AUTH_REQUIRED' });

  const nowS = Math.floor(now / 1000);
  const narrowed = issueToken(KEY, { sub: 'agent', ttlS: 60, nowS, int: ['slack'] });
  t.equal(await code('agent', narrowed), 'agent:slack:run', 'a token narrows to its integrations');
  const widened = issueToken(KEY, { sub: 'plain', ttlS: 60, nowS, int: ['github'] });
  t.equal(await code('plain', widened), 'plain::run', 'a token cannot widen its identity');
  const whole = issueToken(KEY, { sub: 'agent', ttlS: 60, nowS });
  t.equal(await code('agent', whole), 'agent:github,slack:run');
  t.equal(await code('plain', whole), 'EGR_AUTH_INVALID', 'username must match the token subject');
  const gone = issueToken(KEY, { sub: 'removed', ttlS: 60, nowS });
  t.equal(await code('removed', gone), 'EGR_AUTH_INVALID', 'identity no longer configured');
  now += 61_000;
  t.equal(await code('agent', narrowed), 'EGR_AUTH_EXPIRED');

  const noKeys = createIdentityStore({ policy: () => policy, tokenKey: () => null, nowMs: () => now });
  t.match(await noKeys.authenticate({ user: 'agent', pass: whole }), { code: 'EGR_AUTH_INVALID' });
});
