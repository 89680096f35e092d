// Identity: Basic `Proxy-Authorization` (HTTP) or RFC 1929 username/password (SOCKS5) → the rights of a
// configured identity, or of a run token narrowed from one. 407-class codes come only from here, and the
// failed-credential throttle (admission's AuthThrottle) is applied here, where it is known whether a credential
// needs scrypt work at all: a credential verified in the last five minutes, or a valid run token, is proven
// without it and is answered even while its address is throttled; every other check takes a throttle slot and a
// place in the bounded verification queue first, or gets 429 at once.
import { hash, timingSafeEqual } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { type Deny, deny, isDeny } from '../../firewall/codes.js';
import { type Policy, type Rights, rightsFor } from '../../firewall/policy.js';
import { lruClock } from '../runtime/lru-clock.js';
import type { AuthThrottle } from './admission.js';
import { type VerifyLimits, createVerifyQueue, hashPassword, verifyPassword, workFactors } from './password-hash.js';
import { looksLikeToken, verifyToken } from './run-token.js';

export interface Credentials {
  readonly user: string;
  readonly pass: string;
}

export interface Principal extends Rights {
  /** Run id of a run token (logs only), null for a configured identity. */
  readonly runId: string | null;
  /** The orchestrator's run a run token was issued for (`sluice token issue --run`; a token without one is its
   * own run, its jti): the run whose credential handles this request may use. Absent or null for a configured
   * identity, whose password never ends with a run and so can carry no handle. */
  readonly run?: string | null;
  /** Run tokens: when the token expires (ms since the epoch); the flows it opened are closed then. */
  readonly expiresAtMs?: number;
}

export interface IdentityStore {
  /** `clientAddr` keys the failed-credential throttle and the verification queue's per-address bound. */
  authenticate(credentials: Credentials | 'malformed' | null, clientAddr?: string): Promise<Principal | Deny>;
}

export interface IdentityDeps {
  readonly policy: () => Policy;
  /** HMAC key for run tokens; null when tokens are not configured. */
  readonly tokenKey: () => Buffer | null;
  readonly nowMs: () => number;
  /** The failed-credential throttle per address (admission); none: no throttle (tools, tests). */
  readonly throttle?: AuthThrottle;
  /** How long a verified password stays verified without re-running scrypt. */
  readonly cacheTtlMs?: number;
  readonly cacheMax?: number;
  readonly verifyLimits?: VerifyLimits;
  /** The password check itself (scrypt); injected by tests to count and hold checks. */
  readonly verify?: (password: string, encoded: string) => Promise<boolean>;
}

const MAX_CREDENTIAL = 4096;

/** Parses `Basic <base64(user:pass)>`; null when absent, 'malformed' when present but unusable. */
export function parseBasic(header: string | undefined): Credentials | null | 'malformed' {
  if (header === undefined) return null;
  if (header.length > MAX_CREDENTIAL) return 'malformed';
  const m = /^basic[ \t]+([A-Za-z0-9+/=_-]+)[ \t]*$/i.exec(header);
  if (!m) return 'malformed';
  const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon <= 0) return 'malformed';
  return { user: decoded.slice(0, colon), pass: decoded.slice(colon + 1) };
}

// An unknown user is checked against a fixed hash so that "no such user" costs what "wrong password" costs; the
// hash has the work factors the configured hashes share (the defaults when they differ or there are none).
const DUMMY_SALT = 'c2x1aWNlLWR1bW15LXNhbHQ=';
const dummyHash = (n: number, r: number, p: number, keyLen: number) =>
  `scrypt$${n}$${r}$${p}$${DUMMY_SALT}$${Buffer.alloc(keyLen, 0xa5).toString('base64')}`;
const DEFAULT_DUMMY = dummyHash(1 << 15, 8, 1, 32);

function dummyFor(policy: Policy): string {
  let shared: string | null = null;
  for (const id of Object.values(policy.config.identities)) {
    // plaintext: hashed with the defaults
    const w = id.passwordHash ? workFactors(id.passwordHash) : workFactors(DEFAULT_DUMMY);
    if (!w) return DEFAULT_DUMMY;
    const d = dummyHash(w.n, w.r, w.p, w.keyLen);
    if (shared !== null && shared !== d) return DEFAULT_DUMMY;
    shared = d;
  }
  return shared ?? DEFAULT_DUMMY;
}

export function createIdentityStore(deps: IdentityDeps): IdentityStore {
  // Bounded in entries through maxSize (each counts 1), not `max`: `max` preallocates its whole index at start.
  const verified = new LRUCache<string, true>({
    maxSize: deps.cacheMax ?? 10_000,
    sizeCalculation: () => 1,
    ttl: deps.cacheTtlMs ?? 5 * 60_000,
    ...lruClock(deps.nowMs),
  });
  const inflight = new Map<string, Promise<boolean>>();
  const queue = createVerifyQueue(deps.verifyLimits, deps.verify ?? verifyPassword);
  // A plaintext (development) password is checked like a hashed one: against an scrypt hash of it, made once in
  // the background when the config is first seen. Comparing it directly answered a known user in 0.9 ms and an
  // unknown one (the dummy scrypt) in 185 ms. Keyed by the password; dev configs hold a handful.
  const plainHashes = new LRUCache<string, Promise<string>>({ maxSize: 1_000, sizeCalculation: () => 1 });
  const plainHash = (password: string): Promise<string> => {
    let h = plainHashes.get(password);
    if (!h) {
      h = hashPassword(password);
      plainHashes.set(password, h);
      // A failed hash (it should not happen) is tried again next time; the request that awaited it fails closed
      // (EGR_INTERNAL), and the background priming must not become an unhandled rejection.
      h.catch(() => plainHashes.delete(password));
    }
    return h;
  };
  let seen: Policy | null = null;
  let dummy = DEFAULT_DUMMY;
  const observe = (policy: Policy) => {
    if (policy === seen) return;
    seen = policy;
    dummy = dummyFor(policy);
    for (const id of Object.values(policy.config.identities))
      if (id.password !== null && !id.passwordHash) void plainHash(id.password);
  };
  observe(deps.policy());

  /** A failure decided without scrypt work: it still takes (and keeps) a throttle slot, in the same tick. */
  const refuse = (addr: string, d: Deny): Deny => {
    const slot = deps.throttle?.authSlot(addr);
    if (slot && isDeny(slot)) return slot;
    slot?.done(true);
    return d;
  };

  async function checkPassword(
    user: string,
    pass: string,
    encoded: string,
    known: boolean,
    addr: string,
  ): Promise<boolean | Deny> {
    const key = hash('sha256', `${user}\0${pass}\0${encoded}`, 'base64');
    if (known && verified.get(key)) return true;
    // Concurrent checks of one credential share one scrypt run; only the first takes a slot (the others add
    // no work and learn nothing it does not).
    let shared = inflight.get(key);
    if (shared) {
      const ok = (await shared) && known;
      return ok || (deps.throttle?.authThrottled(addr) ?? false);
    }
    const slot = deps.throttle?.authSlot(addr);
    if (slot && isDeny(slot)) return slot;
    const run = queue.verify(addr, pass, encoded);
    if (isDeny(run)) {
      slot?.done(false);
      return run;
    }
    shared = run.finally(() => inflight.delete(key));
    inflight.set(key, shared);
    const ok = (await shared) && known;
    slot?.done(!ok);
    if (ok) verified.set(key, true);
    return ok;
  }

  return {
    async authenticate(credentials, addr = '') {
      if (!credentials) return deny('EGR_AUTH_REQUIRED', 'identity');
      if (credentials === 'malformed')
        return refuse(addr, deny('EGR_AUTH_INVALID', 'identity', 'malformed credentials'));
      const { user, pass } = credentials;
      if (user.length > 256 || pass.length > MAX_CREDENTIAL) return refuse(addr, deny('EGR_AUTH_INVALID', 'identity'));
      const policy = deps.policy();
      observe(policy);

      if (looksLikeToken(pass)) {
        const key = deps.tokenKey();
        if (!key) return refuse(addr, deny('EGR_AUTH_INVALID', 'identity.token', 'run tokens are not configured'));
        const check = verifyToken(key, pass, Math.floor(deps.nowMs() / 1000));
        if (!check.ok)
          return refuse(
            addr,
            deny(check.reason === 'expired' ? 'EGR_AUTH_EXPIRED' : 'EGR_AUTH_INVALID', 'identity.token'),
          );
        const { claims } = check;
        if (claims.sub !== user)
          return refuse(addr, deny('EGR_AUTH_INVALID', 'identity.token', 'username does not match the token'));
        const base = rightsFor(policy, claims.sub);
        if (!base) return refuse(addr, deny('EGR_AUTH_INVALID', 'identity.token', 'identity no longer exists'));
        // Narrow only: a token naming an integration its identity lacks gains nothing.
        const integrations = claims.int
          ? new Set(claims.int.filter((i) => base.integrations.has(i)))
          : base.integrations;
        return {
          ...base,
          integrations,
          runId: claims.jti,
          run: claims.run ?? claims.jti,
          expiresAtMs: claims.exp * 1000,
        };
      }

      // hasOwn: a username such as "constructor" must not find Object.prototype's members.
      const configured = Object.hasOwn(policy.config.identities, user) ? policy.config.identities[user] : undefined;
      // Every uncached path is one scrypt run with the same work factors: known (hashed or plaintext) or not.
      const encoded = configured?.passwordHash ?? (configured?.password ? await plainHash(configured.password) : dummy);
      const ok = await checkPassword(user, pass, encoded, configured !== undefined, addr);
      if (isDeny(ok)) return ok;
      if (!ok) return deny('EGR_AUTH_INVALID', 'identity');
      const rights = rightsFor(deps.policy(), user);
      if (!rights) return deny('EGR_AUTH_INVALID', 'identity', 'identity removed during verification');
      return { ...rights, runId: null };
    },
  };
}
