// Upstream name resolution: c-ares (`dns.Resolver`) against the configured servers, never `dns.lookup`
// (which reads /etc/hosts and accepts `0x7f.1`). Answers are cached by our own TTL rules and concurrent
// lookups of one name share one query. Only the dialer calls this; denied names never get here.
import { Resolver } from 'node:dns/promises';
import { type Deny, deny, isDeny } from '../../firewall/codes.js';

export interface Resolution {
  readonly addresses: readonly string[];
  /** Milliseconds spent resolving; 0 for a cache hit. */
  readonly ms: number;
  readonly cached: boolean;
}

export interface NameResolver {
  resolve(name: string): Promise<Resolution | Deny>;
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
  /** Observes the duration of every query that went to a server (metrics). */
  readonly onLookup?: (ms: number) => void;
}

interface Entry {
  readonly expires: number;
  readonly result: readonly string[] | Deny;
}

type Answer = { address: string; ttl: number }[];

const code = (err: unknown): string => (err as { code?: string })?.code ?? 'UNKNOWN';

export function createResolver(opts: ResolverOptions): NameResolver {
  const resolver = new Resolver({ timeout: opts.timeoutMs, tries: 1 });
  if (opts.servers) resolver.setServers([...opts.servers]);
  const cache = new Map<string, Entry>();
  const inflight = new Map<string, Promise<Resolution | Deny>>();
  const maxEntries = opts.maxEntries ?? 50_000;
  const clamp = (ttl: number) => Math.min(opts.maxTtlS, Math.max(opts.minTtlS, ttl));

  const store = (name: string, result: readonly string[] | Deny, ttlS: number) => {
    if (cache.size >= maxEntries) cache.delete(cache.keys().next().value!);
    cache.set(name, { expires: opts.nowMs() + ttlS * 1000, result });
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
    const answers: Answer = [];
    const errors: string[] = [];
    for (const s of settled) {
      if (s.status === 'fulfilled') answers.push(...(s.value as Answer));
      else errors.push(code(s.reason));
    }
    if (answers.length > 0) {
      const ttl = clamp(Math.min(...answers.map((a) => a.ttl)));
      const addresses = answers.map((a) => a.address);
      store(name, addresses, ttl);
      return { addresses, ms, cached: false };
    }
    if (errors.includes('ETIMEOUT')) return deny('EGR_FAIL_DNS_TIMEOUT', 'dns', 'resolver timed out');
    const result = deny('EGR_FAIL_DNS', 'dns', errors.join(',') || 'no addresses');
    // NXDOMAIN and NODATA are cached briefly so a retry loop does not become a query flood.
    if (errors.every((e) => e === 'ENOTFOUND' || e === 'ENODATA')) store(name, result, opts.minTtlS);
    return result;
  }

  return {
    resolve(name) {
      const hit = cache.get(name);
      if (hit) {
        if (hit.expires > opts.nowMs()) {
          return Promise.resolve(isDeny(hit.result) ? hit.result : { addresses: hit.result, ms: 0, cached: true });
        }
        cache.delete(name);
      }
      let p = inflight.get(name);
      if (!p) {
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
