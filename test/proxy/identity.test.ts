import { createHmac } from 'node:crypto';
import t from 'tap';
import { isDeny } from '../../firewall/codes.js';
import { validateConfig } from '../../settings/config.js';
import { compilePolicy } from '../../firewall/policy.js';
import { createAdmission } from '../../proxy/auth/admission.js';
import { createIdentityStore, parseBasic } from '../../proxy/auth/identity.js';
import { hashPassword, verifyPassword } from '../../proxy/auth/password-hash.js';
import { issueToken, verifyToken } from '../../proxy/auth/run-token.js';

const KEY = Buffer.from('k'.repeat(40));

t.test('scrypt hashes', async (t) => {
  const h = await hashPassword('correct horse battery');
  t.match(h, /^scrypt\$32768\$8\$1\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/);
  t.ok(await verifyPassword('correct horse battery', h));
  t.notOk(await verifyPassword('correct horse batterY', h));
  t.notOk(
    await verifyPassword('x', 'scrypt$1048577$8$1$c2FsdHNhbHQ=$aGFzaGhhc2hoYXNoaGFzaA=='),
    'absurd work factor refused, not run',
  );
  t.notOk(await verifyPassword('x', 'md5$abc'));
  t.notOk(await verifyPassword('x', ''));
});

t.test('Basic credentials', async (t) => {
  t.same(parseBasic(`Basic ${Buffer.from('agent:pa:ss').toString('base64')}`), { user: 'agent', pass: 'pa:ss' });
  t.same(parseBasic(`basic  ${Buffer.from('a:b').toString('base64')}`), { user: 'a', pass: 'b' });
  t.equal(parseBasic(undefined), null);
  for (const bad of [
    'Bearer x',
    'Basic',
    'Basic !!!',
    `Basic ${Buffer.from('nocolon').toString('base64')}`,
    `Basic ${Buffer.from(':pw').toString('base64')}`,
    'Basic ' + 'A'.repeat(5000),
  ]) {
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
  const forged = Buffer.from(JSON.stringify({ sub: 'admin', iat: 1000, exp: 9999999999, jti: 'x' })).toString(
    'base64url',
  );
  t.match(verifyToken(KEY, `${p}${forged}.${mac}`, 1000), { ok: false, reason: 'invalid' }, 'payload swapped');
  t.match(
    verifyToken(KEY, `${p}${payload}.${mac.slice(0, -2)}`, 1000),
    { ok: false, reason: 'invalid' },
    'truncated mac',
  );
  t.match(verifyToken(KEY, 'sluice.v1.', 1000), { ok: false });
  t.throws(() => issueToken(Buffer.from('short'), { sub: 'a', ttlS: 1, nowS: 0 }), {
    code: 'SLUICE_ERR_INVALID_ARGUMENT',
  });
});

t.test('run tokens are accepted only in the canonical base64url form issueToken writes', async (t) => {
  const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  // A MAC with both URL-safe characters in it, so that their base64 twins ('+', '/') can be tried.
  let tok = '';
  for (let i = 0; i < 500 && !/-.*_|_.*-/.test(tok.split('.').at(-1) ?? ''); i++)
    tok = issueToken(KEY, { sub: 'agent', ttlS: 60, nowS: 1000 + i });
  const mac = tok.split('.').at(-1)!;
  const head = tok.slice(0, -mac.length);
  t.equal(mac.length, 43);
  t.match(verifyToken(KEY, tok, 1000), { ok: true }, 'the canonical form');
  // 32 bytes are 256 bits; 43 characters carry 258, so the last character has two unused bits.
  const last = B64URL.indexOf(mac.at(-1)!);
  const variants: Record<string, string> = {
    'one = of padding': `${mac}=`,
    'two = of padding': `${mac}==`,
    'a non-zero unused bit in the last character': mac.slice(0, -1) + B64URL[last ^ 1],
    'the other unused bit': mac.slice(0, -1) + B64URL[last ^ 2],
    "base64's + for -": mac.replace('-', '+'),
    "base64's / for _": mac.replace('_', '/'),
    'a space inside': `${mac.slice(0, 20)} ${mac.slice(20)}`,
    'a trailing newline': `${mac}\n`,
    'a trailing dot': `${mac}.`,
    'a third segment': `${mac}.${mac}`,
  };
  for (const [what, forged] of Object.entries(variants)) {
    t.equal(
      Buffer.from(forged.split('.')[0]!, 'base64url').equals(Buffer.from(mac, 'base64url')),
      true,
      `${what}: Node decodes it to the same MAC`,
    );
    t.match(verifyToken(KEY, head + forged, 1000), { ok: false, reason: 'invalid' }, what);
  }
  // A payload in a non-canonical form, even correctly signed (only the key holder could), is refused too.
  const payload = tok.slice('sluice.v1.'.length, -mac.length - 1);
  for (const odd of [`${payload}=`, `${payload.slice(0, 8)}\t${payload.slice(8)}`]) {
    const signed = createHmac('sha256', KEY).update(`sluice.v1.${odd}`).digest('base64url');
    t.match(
      verifyToken(KEY, `sluice.v1.${odd}.${signed}`, 1000),
      { ok: false, reason: 'invalid' },
      JSON.stringify(odd.slice(-3)),
    );
  }
  const good = createHmac('sha256', KEY).update(`sluice.v1.${payload}`).digest('base64url');
  t.match(
    verifyToken(KEY, `sluice.v1.${payload}.${good}`, 1000),
    { ok: true },
    'the same payload, canonical, signed the same way',
  );
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
    t.equal(
      await code(inherited, 'x'),
      'EGR_AUTH_INVALID',
      `"${inherited}" is not an identity (no Object.prototype lookups)`,
    );
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

/** A verify function that records every check and holds it until released (true when the password is "right-…"). */
function heldVerify() {
  const calls: { password: string; encoded: string; release: () => void }[] = [];
  let settled = 0;
  const verify = (password: string, encoded: string) =>
    new Promise<boolean>((resolve) => {
      calls.push({
        password,
        encoded,
        release: () => {
          settled++;
          resolve(password.startsWith('right-'));
        },
      });
    });
  const releaseAll = async () => {
    // Releasing one check lets the queue start another: keep going until nothing is left.
    for (let i = 0; i < 10_000 && settled < calls.length; i++) {
      for (const c of calls.slice(settled)) c.release();
      await new Promise((r) => setImmediate(r));
    }
  };
  return { calls, verify, releaseAll, running: () => calls.length - settled };
}

const flush = () => new Promise((r) => setImmediate(r));

async function storeWith(
  identities: Record<string, unknown>,
  limits: { authFailuresPerMinute: number },
  verifyLimits?: { running: number; total: number; perSource: number },
) {
  const r = validateConfig({ identities, limits });
  if (!r.ok) throw new Error('config');
  const policy = compilePolicy(r.config);
  const admission = createAdmission({ limits: () => r.config.limits, nowMs: () => 0 });
  const held = heldVerify();
  const store = createIdentityStore({
    policy: () => policy,
    tokenKey: () => KEY,
    nowMs: () => 1_000_000,
    throttle: admission,
    verify: held.verify,
    ...(verifyLimits ? { verifyLimits } : {}),
  });
  return { store, held, admission };
}

// A well-formed hash; the injected verify decides by the password alone, so no real scrypt runs.
const FAKE_HASH = `scrypt$32768$8$1$${Buffer.alloc(16, 1).toString('base64')}$${Buffer.alloc(32, 2).toString('base64')}`;

const outcome = (p: unknown) => (isDeny(p as never) ? (p as { code: string }).code : 'ok');

t.test(
  'every uncached check is one scrypt run with the same work factors: hashed, plaintext or unknown user',
  async (t) => {
    const hashed = await hashPassword('right-hashed-1');
    const { store, held } = await storeWith(
      { h: { passwordHash: hashed }, p: { password: 'right-plain-1' } },
      { authFailuresPerMinute: 100 },
    );
    const check = async (user: string, pass: string, addr: string) => {
      const pending = store.authenticate({ user, pass }, addr);
      await waitUntil(() => held.calls.length > before);
      const before2 = held.calls.length;
      await held.releaseAll();
      return { result: outcome(await pending), runs: before2 - before, encoded: held.calls.at(-1)!.encoded };
    };
    let before = 0;
    const cases: [string, string, string][] = [
      ['h', 'wrong-1', 'wrong password, hashed'],
      ['p', 'wrong-2', 'wrong password, plaintext'],
      ['ghost', 'wrong-3', 'unknown user'],
      ['p', 'right-plain-1', 'right password, plaintext'],
      ['h', 'right-hashed-1', 'right password, hashed'],
    ];
    const factors: string[] = [];
    for (const [i, [user, pass, what]] of cases.entries()) {
      before = held.calls.length;
      const r = await check(user, pass, `10.0.0.${i}`);
      t.equal(r.runs, 1, `${what}: one scrypt run`);
      t.equal(r.result, pass.startsWith('right-') ? 'ok' : 'EGR_AUTH_INVALID', what);
      factors.push(
        r.encoded.split('$').slice(0, 4).join('$') + '$' + Buffer.from(r.encoded.split('$')[5]!, 'base64').length,
      );
    }
    t.same(new Set(factors), new Set(['scrypt$32768$8$1$32']), 'all with the work factors of the configured hash');
    t.notOk(
      held.calls.some((c) => c.encoded.endsWith('right-plain-1')),
      'the plaintext is never the "hash"',
    );
    before = held.calls.length;
    t.equal(outcome(await store.authenticate({ user: 'p', pass: 'right-plain-1' }, '10.0.0.9')), 'ok');
    t.equal(held.calls.length, before, 'a verified plaintext password is cached like a hashed one');
  },
);

t.test('an unknown user is checked with the work factors the configured hashes share', async (t) => {
  const r = validateConfig({
    identities: { h: { passwordHash: 'scrypt$16384$8$2$c2FsdHNhbHRzYWx0$' + Buffer.alloc(48).toString('base64') } },
  });
  if (!r.ok) throw new Error('config');
  const held = heldVerify();
  const store = createIdentityStore({
    policy: () => compilePolicy(r.config),
    tokenKey: () => null,
    nowMs: () => 0,
    verify: held.verify,
  });
  const pending = store.authenticate({ user: 'ghost', pass: 'x' });
  await waitUntil(() => held.calls.length === 1);
  t.match(held.calls[0]!.encoded, /^scrypt\$16384\$8\$2\$/);
  t.equal(Buffer.from(held.calls[0]!.encoded.split('$')[5]!, 'base64').length, 48);
  await held.releaseAll();
  t.equal(outcome(await pending), 'EGR_AUTH_INVALID');
});

t.test('200 concurrent wrong passwords from one address: a throttle slot is taken before each check', async (t) => {
  // Per-address and global queue bounds set high, so that only the throttle limits what gets checked.
  const { store, held } = await storeWith(
    { agent: { passwordHash: FAKE_HASH } },
    { authFailuresPerMinute: 30 },
    { running: 2, total: 1000, perSource: 1000 },
  );
  const order: string[] = [];
  const all = Array.from({ length: 200 }, (_, i) =>
    store.authenticate({ user: 'agent', pass: `guess-${i}` }, '10.0.0.66').then((r) => {
      order.push(outcome(r));
      return outcome(r);
    }),
  );
  await flush();
  t.equal(order.filter((c) => c === 'EGR_LIMIT_RATE').length, 170, '170 are refused before any check ends');
  t.ok(held.running() <= 2, 'and scrypt runs two at a time');
  await held.releaseAll();
  const results = await Promise.all(all);
  t.equal(results.filter((c) => c === 'EGR_AUTH_INVALID').length, 30, 'exactly authFailuresPerMinute are checked');
  t.equal(held.calls.length, 30);
  t.match(
    await store.authenticate({ user: 'agent', pass: 'right-pw-0001' }, '10.0.0.66'),
    { code: 'EGR_LIMIT_RATE' },
    'then the address is throttled, the right password included (it is not cached)',
  );
  t.equal(held.calls.length, 30, 'without any scrypt work');
});

t.test(
  'checks in progress are bounded per address and in total; waiting checks are taken address by address',
  async (t) => {
    const { store, held } = await storeWith(
      { agent: { passwordHash: FAKE_HASH }, other: { passwordHash: FAKE_HASH } },
      { authFailuresPerMinute: 1000 },
      { running: 2, total: 6, perSource: 4 },
    );
    const flood = Array.from({ length: 20 }, (_, i) =>
      store.authenticate({ user: 'agent', pass: `guess-${i}` }, '10.0.0.1').then(outcome),
    );
    await flush();
    t.equal(held.calls.length, 2, 'two run, two wait');
    const other = store.authenticate({ user: 'other', pass: 'right-pw-0002' }, '10.0.0.2').then(outcome);
    const third = Array.from({ length: 3 }, (_, i) =>
      store.authenticate({ user: 'agent', pass: `x-${i}` }, `10.0.0.${3 + i}`).then(outcome),
    );
    await flush();
    held.calls[0]!.release();
    await flush();
    t.equal(
      held.calls[2]?.password,
      'right-pw-0002',
      "the other address's check is next, ahead of the flood's waiting ones",
    );
    await held.releaseAll();
    const results = await Promise.all(flood);
    t.equal(results.filter((c) => c === 'EGR_LIMIT_RATE').length, 16, '16 of 20 refused at once: 4 per address');
    t.equal(await other, 'ok');
    t.same(
      await Promise.all(third),
      ['EGR_AUTH_INVALID', 'EGR_LIMIT_RATE', 'EGR_LIMIT_RATE'],
      'the total bound (6) refuses the rest',
    );
  },
);

t.test(
  'while an address is throttled, a cached credential and a valid run token still pass; identical checks share one run',
  async (t) => {
    const { store, held } = await storeWith({ agent: { passwordHash: FAKE_HASH } }, { authFailuresPerMinute: 3 });
    const good = store.authenticate({ user: 'agent', pass: 'right-pw-0001' }, '10.0.0.1');
    const same = store.authenticate({ user: 'agent', pass: 'right-pw-0001' }, '10.0.0.1');
    await flush();
    t.equal(held.calls.length, 1, 'two concurrent checks of one credential: one scrypt run');
    await held.releaseAll();
    t.same([outcome(await good), outcome(await same)], ['ok', 'ok']);
    for (let i = 0; i < 3; i++) {
      const p = store.authenticate({ user: 'agent', pass: `guess-${i}` }, '10.0.0.1');
      await flush();
      await held.releaseAll();
      t.equal(outcome(await p), 'EGR_AUTH_INVALID');
    }
    t.equal(
      outcome(await store.authenticate({ user: 'agent', pass: 'guess-9' }, '10.0.0.1')),
      'EGR_LIMIT_RATE',
      'the address is throttled',
    );
    const runs = held.calls.length;
    t.equal(
      outcome(await store.authenticate({ user: 'agent', pass: 'right-pw-0001' }, '10.0.0.1')),
      'ok',
      "another client's failures do not lock out a verified credential",
    );
    const token = issueToken(KEY, { sub: 'agent', ttlS: 60, nowS: 1000 });
    t.equal(
      outcome(await store.authenticate({ user: 'agent', pass: token }, '10.0.0.1')),
      'ok',
      'nor a valid run token',
    );
    t.equal(
      outcome(await store.authenticate({ user: 'agent', pass: `${token}x` }, '10.0.0.1')),
      'EGR_LIMIT_RATE',
      'an invalid one is throttled',
    );
    t.equal(
      outcome(await store.authenticate('malformed', '10.0.0.1')),
      'EGR_LIMIT_RATE',
      'and so are malformed credentials',
    );
    t.equal(held.calls.length, runs, 'none of it ran scrypt');
  },
);

t.test('failures that need no scrypt work are counted too', async (t) => {
  const { store } = await storeWith({ agent: { passwordHash: FAKE_HASH } }, { authFailuresPerMinute: 2 });
  t.equal(outcome(await store.authenticate('malformed', '10.0.0.7')), 'EGR_AUTH_INVALID');
  t.equal(
    outcome(await store.authenticate({ user: 'agent', pass: 'sluice.v1.bad.token' }, '10.0.0.7')),
    'EGR_AUTH_INVALID',
  );
  t.equal(outcome(await store.authenticate('malformed', '10.0.0.7')), 'EGR_LIMIT_RATE');
  t.equal(
    outcome(await store.authenticate(null, '10.0.0.7')),
    'EGR_AUTH_REQUIRED',
    'no credentials at all is the first leg of proxy auth, never throttled',
  );
});

async function waitUntil(check: () => boolean) {
  for (let i = 0; i < 1000 && !check(); i++) await new Promise((r) => setTimeout(r, 5));
}
