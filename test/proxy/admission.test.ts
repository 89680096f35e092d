import t from 'tap';
import { createAdmission, type AdmissionLimits } from '../../proxy/auth/admission.js';
import type { AuditRecord } from '../../proxy/ops/audit.js';
import type { Principal } from '../../proxy/auth/identity.js';

const who = (identity: string): Principal => ({ identity, integrations: new Set(), reads: 'public', mode: null, runId: null });
const rec = {} as AuditRecord;
const code = (r: unknown) => (typeof r === 'function' ? 'ok' : (r as { code: string }).code);

t.test('concurrency: global and per identity', async (t) => {
  const limits: AdmissionLimits = { maxConnections: 3, maxConnectionsPerIdentity: 2, requestsPerSecond: null, burst: 1, authFailuresPerMinute: 5 };
  const a = createAdmission({ limits: () => limits, nowMs: () => 0 });
  const r1 = a.admit(who('x'), rec);
  const r2 = a.admit(who('x'), rec);
  t.equal(code(a.admit(who('x'), rec)), 'EGR_LIMIT_CONCURRENCY', 'third for one identity');
  const r3 = a.admit(who('y'), rec);
  const over = a.admit(who('z'), rec);
  t.equal(code(over), 'EGR_LIMIT_CONCURRENCY', 'global cap');
  t.equal((over as { retryAfterS?: number }).retryAfterS, 1);
  (r1 as () => void)();
  (r1 as () => void)(); // releasing twice is harmless
  t.equal(code(a.admit(who('x'), rec)), 'ok', 'a slot came back');
  (r2 as () => void)();
  (r3 as () => void)();
});

t.test('token bucket per identity', async (t) => {
  let now = 0;
  const limits: AdmissionLimits = { maxConnections: 100, maxConnectionsPerIdentity: 100, requestsPerSecond: 2, burst: 2, authFailuresPerMinute: 5 };
  const a = createAdmission({ limits: () => limits, nowMs: () => now });
  const take = (id = 'x') => {
    const r = a.admit(who(id), rec);
    if (typeof r === 'function') r();
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
  const limits: AdmissionLimits = { maxConnections: 100, maxConnectionsPerIdentity: 100, requestsPerSecond: null, burst: 1, authFailuresPerMinute: 3 };
  const a = createAdmission({ limits: () => limits, nowMs: () => now });
  for (let i = 0; i < 3; i++) {
    t.equal(a.authGate('10.0.0.9'), null);
    a.authFailed('10.0.0.9');
  }
  const gate = a.authGate('10.0.0.9');
  t.match(gate, { code: 'EGR_LIMIT_RATE', rule: 'limits.authFailuresPerMinute' });
  t.equal(a.authGate('10.0.0.10'), null, 'other addresses are unaffected');
  now += 60_000;
  t.equal(a.authGate('10.0.0.9'), null, 'the window passes');
});
