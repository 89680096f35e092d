// Upstream name resolution: c-ares (`dns.Resolver`) against the configured servers, never `dns.lookup`
// (which reads /etc/hosts and accepts `0x7f.1`). Answers are cached by our own TTL rules and concurrent
// lookups of one name share one query. Only the dialer calls this; denied names never get here.
//
// A name under an attacker's domain can answer thousands of records over TCP (a 64 KiB message holds ~4,000 A
// records): kept whole, 3,000 such names took 650 MiB of heap. So each name keeps at most MAX_PER_FAMILY
// addresses of each family, the cache is bounded in bytes as well as entries, and lookups in flight are bounded.
import { Resolver } from 'node:dns/promises';
import { CountBoundedLru } from '../runtime/lru-count.js';
import { type Deny, deny, isDeny } from '../../firewall/codes.js';
import { lruClock } from '../runtime/lru-clock.js';

export interface Resolution {
  /** The addresses kept: at most MAX_PER_FAMILY of each family, in the server's order. */
  readonly addresses: readonly string[];
  /** Milliseconds spent resolving; 0 for a cache hit. */
  readonly ms: number;
  readonly cached: boolean;
  /** How much longer the answer may be used (the clamped record TTL); absent: no limit known. */
  readonly ttlMs?: number;
  /** The server answered more addresses than were kept. */
  readonly truncated?: boolean;
  /** Every address the server answered, when truncated and fresh from the server (never cached): the address
   * guard must see the whole set, since one blocked answer blocks the set. */
  readonly all?: readonly string[];
}

export interface NameResolver {
  /** `fresh`: ask the server even when the cache holds the name (a truncated set whose dropped answers a new
   * guard has not seen). */
  resolve(name: string, opts?: { readonly fresh?: boolean }): Promise<Resolution | Deny>;
  clear(): void;
}

export interface ResolverOptions {
  /** `host:port` entries; null uses the system's resolvers. */
  readonly servers: readonly string[] | null;
  readonly timeoutMs: number;
  readonly minTtlS: number;
  readonly maxTtlS: number;
  readonly nowMs: () => number;
  readonly maxEntries?: number;
  /** Bound on the cache's estimated heap bytes (sizeOfEntry). */
  readonly maxBytes?: number;
  /** Bound on distinct names being resolved at once; more get 429 EGR_LIMIT_CONCURRENCY. */
  readonly maxInflight?: number;
  /** Observes the duration of every query that went to a server (metrics). */
  readonly onLookup?: (ms: number) => void;
}

/** Addresses kept per family and name. Real answer sets are a handful (large CDNs answer 4–8); the dialer tries
 * only the first four anyway. Documented in docs/ARCHITECTURE.md ("DNS answers"). */
export const MAX_PER_FAMILY = 16;
const DEFAULT_MAX_BYTES = 16 * 1024 * 1024;
const DEFAULT_MAX_ENTRIES = 50_000;
const DEFAULT_MAX_INFLIGHT = 256;

interface Entry {
  readonly result: readonly string[] | Deny;
  readonly truncated: boolean;
}

type Answer = { address: string; ttl: number }[];

const code = (err: unknown): string => (err as { code?: string })?.code ?? 'UNKNOWN';

// V8 heap estimate: an object header and slots for the entry, a string header plus one byte per character
// (addresses and names are one-byte strings), and an array slot per address. Measured against heap snapshots
// within ~20%; the bound is about orders of magnitude, not bytes.
export const sizeOfEntry = (name: string, addresses: readonly string[]): number => {
  let n = 120 + name.length;
  for (const a of addresses) n += 28 + a.length;
  return n;
};

/** Appends the first MAX_PER_FAMILY answers, in the order the server gave (it rotates them to spread load);
 * true when some were left out. */
function keep(answers: Answer, into: string[]): boolean {
  const n = Math.min(answers.length, MAX_PER_FAMILY);
  for (let i = 0; i < n; i++) into.push(answers[i]!.address);
  return answers.length > n;
}

export function createResolver(opts: ResolverOptions): NameResolver {
  const resolver = new Resolver({ timeout: opts.timeoutMs, tries: 1 });
  if (opts.servers) resolver.setServers([...opts.servers]);
  // Expiry is by the record TTL (clamped), on the injected clock.
  const cache = new CountBoundedLru<string, Entry>(opts.maxEntries ?? DEFAULT_MAX_ENTRIES, {
    maxSize: opts.maxBytes ?? DEFAULT_MAX_BYTES,
    sizeCalculation: (e, name) => sizeOfEntry(name, isDeny(e.result) ? [] : e.result),
    ...lruClock(opts.nowMs),
  });
  const inflight = new Map<string, Promise<Resolution | Deny>>();
  const maxInflight = opts.maxInflight ?? DEFAULT_MAX_INFLIGHT;
  const clamp = (ttl: number) => Math.min(opts.maxTtlS, Math.max(opts.minTtlS, ttl));

  const store = (name: string, result: readonly string[] | Deny, ttlS: number, truncated = false) => {
    if (ttlS > 0) cache.set(name, { result, truncated }, { ttl: ttlS * 1000 });
  };

  const withTimeout = <T>(p: Promise<T>): Promise<T | 'timeout'> => {
    let timer: NodeJS.Timeout;
    const t = new Promise<'timeout'>((r) => {
      timer = setTimeout(() => r('timeout'), opts.timeoutMs + 50);
      timer.unref();
    });
    return Promise.race([p, t]).finally(() => clearTimeout(timer));
  };

  async function query(name: string): Promise<Resolution | Deny> {
    const started = opts.nowMs();
    const settled = await withTimeout(
      Promise.allSettled([resolver.resolve4(name, { ttl: true }), resolver.resolve6(name, { ttl: true })]),
    );
    const ms = opts.nowMs() - started;
    opts.onLookup?.(ms);
    if (settled === 'timeout') return deny('EGR_FAIL_DNS_TIMEOUT', 'dns', 'resolver did not answer in time');
    const addresses: string[] = [];
    const errors: string[] = [];
    let truncated = false;
    let count = 0;
    let minTtl = Infinity;
    for (const s of settled) {
      if (s.status === 'rejected') {
        errors.push(code(s.reason));
        continue;
      }
      const answers = s.value as Answer;
      count += answers.length;
      for (const a of answers) if (a.ttl < minTtl) minTtl = a.ttl;
      if (keep(answers, addresses)) truncated = true;
    }
    if (count > 0) {
      // The lowest TTL of the whole answer, dropped records included: the set is one answer.
      const ttl = clamp(minTtl);
      store(name, addresses, ttl, truncated);
      const all = truncated
        ? settled.flatMap((s) => (s.status === 'fulfilled' ? (s.value as Answer).map((a) => a.address) : []))
        : undefined;
      return { addresses, ms, cached: false, ttlMs: ttl * 1000, ...(truncated ? { truncated, all } : {}) };
    }
    if (errors.includes('ETIMEOUT')) return deny('EGR_FAIL_DNS_TIMEOUT', 'dns', 'resolver timed out');
    const result = deny('EGR_FAIL_DNS', 'dns', errors.join(',') || 'no addresses');
    // NXDOMAIN and NODATA are cached briefly so a retry loop does not become a query flood.
    if (errors.every((e) => e === 'ENOTFOUND' || e === 'ENODATA')) store(name, result, opts.minTtlS);
    return result;
  }

  return {
    resolve(name, o) {
      if (!o?.fresh) {
        const hit = cache.get(name);
        if (hit) {
          if (isDeny(hit.result)) return Promise.resolve(hit.result);
          const ttlMs = cache.getRemainingTTL(name);
          return Promise.resolve({
            addresses: hit.result,
            ms: 0,
            cached: true,
            ttlMs,
            ...(hit.truncated ? { truncated: true } : {}),
          });
        }
      }
      let p = inflight.get(name);
      if (!p) {
        // Each lookup holds its whole answer (up to 64 KiB on the wire, several times that parsed) until it ends.
        if (inflight.size >= maxInflight) {
          return Promise.resolve({
            ...deny('EGR_LIMIT_CONCURRENCY', 'dns.inflight', 'too many names being resolved at once'),
            retryAfterS: 1,
          });
        }
        p = query(name).finally(() => inflight.delete(name));
        inflight.set(name, p);
      }
      return p;
    },
    clear() {
      cache.clear();
    },
  };
}
