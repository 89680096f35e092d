// Admission control after identity: concurrency (global and per identity), a token bucket per identity, and a
// throttle on failed credentials per source address (before any scrypt work is spent on that address).
// Counters are keyed by configured identity names and client addresses, and bounded.
import { type Deny, deny } from '../../firewall/codes.js';
import type { AuditRecord } from '../ops/audit.js';
import type { Principal } from './identity.js';

export interface AdmissionLimits {
  readonly maxConnections: number;
  readonly maxConnectionsPerIdentity: number;
  /** null: no rate limit. */
  readonly requestsPerSecond: number | null;
  readonly burst: number;
  readonly authFailuresPerMinute: number;
}

export interface Admission {
  /** Admits one request or tunnel; the returned function releases its concurrency slot. */
  admit(principal: Principal, record: AuditRecord): (() => void) | Deny;
  /** Before authenticating: is this address throttled for failed credentials? */
  authGate(clientAddr: string): Deny | null;
  authFailed(clientAddr: string): void;
}

const MAX_TRACKED = 100_000;
const WINDOW_MS = 60_000;

export function createAdmission(opts: { limits: () => AdmissionLimits; nowMs: () => number }): Admission {
  let global = 0;
  const perIdentity = new Map<string, number>();
  const buckets = new Map<string, { tokens: number; at: number }>();
  const failures = new Map<string, { count: number; since: number }>();

  const bounded = <K, V>(m: Map<K, V>, key: K) => {
    if (m.size >= MAX_TRACKED && !m.has(key)) m.delete(m.keys().next().value!);
  };

  function takeToken(identity: string, l: AdmissionLimits): Deny | null {
    if (l.requestsPerSecond === null) return null;
    const now = opts.nowMs();
    let b = buckets.get(identity);
    if (!b) {
      bounded(buckets, identity);
      b = { tokens: l.burst, at: now };
      buckets.set(identity, b);
    }
    b.tokens = Math.min(l.burst, b.tokens + ((now - b.at) / 1000) * l.requestsPerSecond);
    b.at = now;
    if (b.tokens < 1) {
      const retryAfterS = Math.ceil((1 - b.tokens) / l.requestsPerSecond);
      return { ...deny('EGR_LIMIT_RATE', 'limits.requestsPerSecond'), retryAfterS };
    }
    b.tokens -= 1;
    return null;
  }

  return {
    admit(principal) {
      const l = opts.limits();
      const id = principal.identity;
      const rate = takeToken(id, l);
      if (rate) return rate;
      const mine = perIdentity.get(id) ?? 0;
      if (global >= l.maxConnections) return { ...deny('EGR_LIMIT_CONCURRENCY', 'limits.maxConnections'), retryAfterS: 1 };
      if (mine >= l.maxConnectionsPerIdentity) return { ...deny('EGR_LIMIT_CONCURRENCY', 'limits.maxConnectionsPerIdentity'), retryAfterS: 1 };
      global++;
      perIdentity.set(id, mine + 1);
      let released = false;
      return () => {
        if (released) return;
        released = true;
        global--;
        const n = (perIdentity.get(id) ?? 1) - 1;
        if (n <= 0) perIdentity.delete(id);
        else perIdentity.set(id, n);
      };
    },
    authGate(addr) {
      const f = failures.get(addr);
      if (!f) return null;
      const now = opts.nowMs();
      if (now - f.since >= WINDOW_MS) {
        failures.delete(addr);
        return null;
      }
      if (f.count < opts.limits().authFailuresPerMinute) return null;
      return { ...deny('EGR_LIMIT_RATE', 'limits.authFailuresPerMinute'), retryAfterS: Math.ceil((WINDOW_MS - (now - f.since)) / 1000) };
    },
    authFailed(addr) {
      const now = opts.nowMs();
      const f = failures.get(addr);
      if (!f || now - f.since >= WINDOW_MS) {
        bounded(failures, addr);
        failures.set(addr, { count: 1, since: now });
      } else {
        f.count++;
      }
    },
  };
}

/**
 * A worker's share of the limits when several processes serve (config `workers`): admission counters live in
 * each process, so every count is divided among them, rounding up (a worker never gets 0, and the sum is
 * never below what was configured); the request rate is divided exactly. Connections are spread by the
 * kernel, not by identity, so one identity's traffic may meet its share in one worker before the total.
 */
export function limitsPerWorker<L extends AdmissionLimits>(limits: L, workers: number): L {
  if (workers <= 1) return limits;
  const share = (n: number) => Math.max(1, Math.ceil(n / workers));
  return {
    ...limits,
    maxConnections: share(limits.maxConnections),
    maxConnectionsPerIdentity: share(limits.maxConnectionsPerIdentity),
    requestsPerSecond: limits.requestsPerSecond === null ? null : limits.requestsPerSecond / workers,
    burst: share(limits.burst),
    authFailuresPerMinute: share(limits.authFailuresPerMinute),
  };
}
