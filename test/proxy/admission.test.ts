import t from 'tap';
import { type Deny, isDeny } from '../../firewall/codes.js';
import { type AdmissionLimits, type Admitted, type AuthSlot, createAdmission } from '../../proxy/auth/admission.js';
import type { Principal } from '../../proxy/auth/identity.js';

const who = (identity: string): Principal => ({
  identity,
  integrations: new Set(),
  reads: 'public',
  mode: null,
  runId: null,
});
const code = (r: Admitted | Deny) => (isDeny(r) ? r.code : 'ok');
const release = (r: Admitted | Deny) => (isDeny(r) ? undefined : r.release());

t.test('concurrency: global and per identity', async (t) => {
  const limits: AdmissionLimits = {
    maxConnections: 3,
    maxConnectionsPerIdentity: 2,
    requestsPerSecond: null,
    burst: 1,
    authFailuresPerMinute: 5,
  };
  const a = createAdmission({ limits: () => limits, nowMs: () => 0 });
  const r1 = a.admit(who('x'));
  const r2 = a.admit(who('x'));
  t.equal(code(a.admit(who('x'))), 'EGR_LIMIT_CONCURRENCY', 'third for one identity');
  const r3 = a.admit(who('y'));
  const over = a.admit(who('z'));
  t.equal(code(over), 'EGR_LIMIT_CONCURRENCY', 'global cap');
  t.equal((over as { retryAfterS?: number }).retryAfterS, 1);
  release(r1);
  release(r1); // releasing twice is harmless
  t.equal(code(a.admit(who('x'))), 'ok', 'a slot came back');
  release(r2);
  release(r3);
});

t.test('token bucket per identity', async (t) => {
  let now = 0;
  const limits: AdmissionLimits = {
    maxConnections: 100,
    maxConnectionsPerIdentity: 100,
    requestsPerSecond: 2,
    burst: 2,
    authFailuresPerMinute: 5,
  };
  const a = createAdmission({ limits: () => limits, nowMs: () => now });
  const take = (id = 'x') => {
    const r = a.admit(who(id));
    release(r);
    return r;
  };
  t.equal(code(take()), 'ok');
  t.equal(code(take()), 'ok');
  const limited = take();
  t.equal(code(limited), 'EGR_LIMIT_RATE');
  t.equal((limited as { retryAfterS?: number }).retryAfterS, 1);
  t.equal(code(take('y')), 'ok', 'buckets are per identity');
  now += 500;
  t.equal(code(take()), 'ok', 'refilled at 2/s');
  t.equal(code(take()), 'EGR_LIMIT_RATE');
});

t.test('failed credentials are throttled per source address', async (t) => {
  let now = 0;
  const limits: AdmissionLimits = {
    maxConnections: 100,
    maxConnectionsPerIdentity: 100,
    requestsPerSecond: null,
    burst: 1,
    authFailuresPerMinute: 3,
  };
  const a = createAdmission({ limits: () => limits, nowMs: () => now });
  for (let i = 0; i < 3; i++) {
    const slot = a.authSlot('10.0.0.9');
    if (isDeny(slot)) throw new Error(slot.code);
    slot.done(true);
  }
  const gate = a.authSlot('10.0.0.9');
  t.match(gate, { code: 'EGR_LIMIT_RATE', rule: 'limits.authFailuresPerMinute', retryAfterS: 60 });
  t.match(a.authThrottled('10.0.0.9'), { code: 'EGR_LIMIT_RATE' });
  t.notOk(isDeny(a.authSlot('10.0.0.10')), 'other addresses are unaffected');
  now += 30_000;
  t.match(a.authSlot('10.0.0.9'), { retryAfterS: 30 }, 'Retry-After is what is left of the window');
  now += 30_001;
  t.equal(a.authThrottled('10.0.0.9'), null, 'the window passes');
  t.notOk(isDeny(a.authSlot('10.0.0.9')));
});

t.test('a slot is taken before the credential is checked, and given back only if it was good', async (t) => {
  const limits: AdmissionLimits = {
    maxConnections: 100,
    maxConnectionsPerIdentity: 100,
    requestsPerSecond: null,
    burst: 1,
    authFailuresPerMinute: 3,
  };
  const a = createAdmission({ limits: () => limits, nowMs: () => 0 });
  const slots = [a.authSlot('10.0.0.9'), a.authSlot('10.0.0.9'), a.authSlot('10.0.0.9')];
  t.ok(
    slots.every((s) => !isDeny(s)),
    'three checks may be in progress',
  );
  t.match(
    a.authSlot('10.0.0.9'),
    { code: 'EGR_LIMIT_RATE', retryAfterS: 1 },
    'a fourth waits: those three may all fail',
  );
  t.equal(a.authThrottled('10.0.0.9'), null, 'nothing has failed yet');
  const [first, second, third] = slots as AuthSlot[];
  first!.done(false);
  first!.done(true); // ending twice is harmless
  const fourth = a.authSlot('10.0.0.9');
  t.notOk(isDeny(fourth), 'a good credential gave its slot back');
  second!.done(true);
  third!.done(true);
  (fourth as AuthSlot).done(true);
  t.match(a.authSlot('10.0.0.9'), { code: 'EGR_LIMIT_RATE', retryAfterS: 60 }, 'three failures fill the window');
});
