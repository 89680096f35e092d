// Admission control after identity: concurrency (global and per identity), a token bucket per identity, and a
// throttle on failed credentials per source address. The throttle is consulted by the identity stage before it
// checks a credential: a slot is taken before the check and given back only if the credential was good, so
// 200 concurrent wrong passwords from one address get at most `authFailuresPerMinute` answers between them.
// Counters are keyed by configured identity names and client addresses, and bounded.
import { LRUCache } from 'lru-cache';
import { type Deny, deny } from '../../firewall/codes.js';
import { lruClock } from '../runtime/lru-clock.js';
import type { Principal } from './identity.js';

export interface AdmissionLimits {
  readonly maxConnections: number;
  readonly maxConnectionsPerIdentity: number;
  /** null: no rate limit. */
  readonly requestsPerSecond: number | null;
  readonly burst: number;
  readonly authFailuresPerMinute: number;
}

/** One credential check in progress for an address: counted as a failure until it is known to be good. */
export interface AuthSlot {
  /** Ends the check: a failure stays counted for the rest of the window; a success gives the slot back. */
  done(failed: boolean): void;
}

/** The failed-credential throttle, per source address (the part of admission the identity stage uses). */
export interface AuthThrottle {
  /** Takes a slot before a credential is checked; a 429 when failures and checks in progress fill the limit. */
  authSlot(clientAddr: string): AuthSlot | Deny;
  /** The 429 this address gets while its failures alone fill the limit; null otherwise. */
  authThrottled(clientAddr: string): Deny | null;
}

/** One request or tunnel let in: it holds a concurrency slot until released. */
export interface Admitted {
  /** Gives the slot back; once (a second call does nothing). */
  release(): void;
}

/** What is admitted when there are no limits (no admission configured): nothing to give back. */
export const UNLIMITED: Admitted = Object.freeze({ release() {} });

export interface Admission extends AuthThrottle {
  /** The admission stage: a concurrency slot and a token, or the 429 that says which limit was met. */
  admit(principal: Principal): Admitted | Deny;
}

const MAX_TRACKED = 100_000;
const WINDOW_MS = 60_000;

export function createAdmission(opts: { limits: () => AdmissionLimits; nowMs: () => number }): Admission {
  let global = 0;
  const perIdentity = new Map<string, number>();
  // Bounded in entries through maxSize (each counts 1), not `max`: `max` preallocates its whole index in every
  // process at start (~7.5 MiB for these two), used or not.
  const tracked = { maxSize: MAX_TRACKED, sizeCalculation: () => 1 } as const;
  const buckets = new LRUCache<string, { tokens: number; at: number }>({ ...tracked });
  // Failures per address in a fixed window from the first one (updates mutate the entry, keeping its TTL).
  const failures = new LRUCache<string, { count: number }>({ ...tracked, ...lruClock(opts.nowMs) });
  // Checks in progress per address; small (the identity stage bounds checks in flight), entries removed at 0.
  const checking = new Map<string, number>();

  function takeToken(identity: string, l: AdmissionLimits): Deny | null {
    if (l.requestsPerSecond === null) return null;
    const now = opts.nowMs();
    let b = buckets.get(identity);
    if (!b) {
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

  const failed = (addr: string) => failures.get(addr)?.count ?? 0;
  const throttled = (addr: string): Deny => ({
    ...deny('EGR_LIMIT_RATE', 'limits.authFailuresPerMinute'),
    retryAfterS: Math.max(1, Math.ceil(failures.getRemainingTTL(addr) / 1000)),
  });
  const recordFailure = (addr: string) => {
    const f = failures.get(addr);
    if (f) f.count++;
    else failures.set(addr, { count: 1 }, { ttl: WINDOW_MS });
  };

  return {
    admit(principal) {
      const l = opts.limits();
      const id = principal.identity;
      const rate = takeToken(id, l);
      if (rate) return rate;
      const mine = perIdentity.get(id) ?? 0;
      if (global >= l.maxConnections)
        return { ...deny('EGR_LIMIT_CONCURRENCY', 'limits.maxConnections'), retryAfterS: 1 };
      if (mine >= l.maxConnectionsPerIdentity)
        return { ...deny('EGR_LIMIT_CONCURRENCY', 'limits.maxConnectionsPerIdentity'), retryAfterS: 1 };
      global++;
      perIdentity.set(id, mine + 1);
      let released = false;
      return {
        release() {
          if (released) return;
          released = true;
          global--;
          const n = (perIdentity.get(id) ?? 1) - 1;
          if (n <= 0) perIdentity.delete(id);
          else perIdentity.set(id, n);
        },
      };
    },
    authSlot(addr) {
      const limit = opts.limits().authFailuresPerMinute;
      const done = failed(addr);
      if (done >= limit) return throttled(addr);
      const inProgress = checking.get(addr) ?? 0;
      // Checks in progress may all fail: they hold their slots until they are known to be good.
      if (done + inProgress >= limit)
        return { ...deny('EGR_LIMIT_RATE', 'limits.authFailuresPerMinute'), retryAfterS: 1 };
      checking.set(addr, inProgress + 1);
      let ended = false;
      return {
        done(wasFailure) {
          if (ended) return;
          ended = true;
          const n = (checking.get(addr) ?? 1) - 1;
          if (n > 0) checking.set(addr, n);
          else checking.delete(addr);
          if (wasFailure) recordFailure(addr);
        },
      };
    },
    authThrottled(addr) {
      return failed(addr) >= opts.limits().authFailuresPerMinute ? throttled(addr) : null;
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
