// Identity: Basic `Proxy-Authorization` (HTTP) or RFC 1929 username/password (SOCKS5) → the rights of a
// configured identity, or of a run token narrowed from one. 407-class codes come only from here.
import { hash, timingSafeEqual } from 'node:crypto';
import { type Deny, deny } from '../../firewall/codes.js';
import { type Policy, type Rights, rightsFor } from '../../firewall/policy.js';
import { verifyPassword } from './password-hash.js';
import { looksLikeToken, verifyToken } from './run-token.js';

export interface Credentials {
  readonly user: string;
  readonly pass: string;
}

export interface Principal extends Rights {
  /** Run id of a run token (logs only), null for a configured identity. */
  readonly runId: string | null;
  /** Run tokens: when the token expires (ms since the epoch); the flows it opened are closed then. */
  readonly expiresAtMs?: number;
}

export interface IdentityStore {
  authenticate(credentials: Credentials | null): Promise<Principal | Deny>;
}

export interface IdentityDeps {
  readonly policy: () => Policy;
  /** HMAC key for run tokens; null when tokens are not configured. */
  readonly tokenKey: () => Buffer | null;
  readonly nowMs: () => number;
  /** How long a verified password stays verified without re-running scrypt. */
  readonly cacheTtlMs?: number;
  readonly cacheMax?: number;
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

// Verifying against a fixed hash when the user is unknown makes "no such user" cost what "wrong password" costs.
const DUMMY_HASH = 'scrypt$32768$8$1$c2x1aWNlLWR1bW15LXNhbHQ=$3q2+7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';

// One-shot hashing (crypto.hash, Node ≥ 20.12): this runs on every request that carries a password.
const digest = (text: string): Buffer => hash('sha256', text, 'buffer');

export function createIdentityStore(deps: IdentityDeps): IdentityStore {
  const ttl = deps.cacheTtlMs ?? 5 * 60_000;
  const max = deps.cacheMax ?? 10_000;
  const verified = new Map<string, number>();
  const inflight = new Map<string, Promise<boolean>>();

  const remember = (key: string) => {
    if (verified.size >= max) verified.delete(verified.keys().next().value!);
    verified.set(key, deps.nowMs() + ttl);
  };

  async function checkHash(user: string, pass: string, encoded: string): Promise<boolean> {
    const key = hash('sha256', `${user}\0${pass}\0${encoded}`, 'base64');
    const until = verified.get(key);
    if (until !== undefined) {
      if (until > deps.nowMs()) return true;
      verified.delete(key);
    }
    let p = inflight.get(key);
    if (!p) {
      p = verifyPassword(pass, encoded).finally(() => inflight.delete(key));
      inflight.set(key, p);
    }
    const ok = await p;
    if (ok) remember(key);
    return ok;
  }

  return {
    async authenticate(credentials) {
      if (!credentials) return deny('EGR_AUTH_REQUIRED', 'identity');
      const { user, pass } = credentials;
      if (user.length > 256 || pass.length > MAX_CREDENTIAL) return deny('EGR_AUTH_INVALID', 'identity');
      const policy = deps.policy();

      if (looksLikeToken(pass)) {
        const key = deps.tokenKey();
        if (!key) return deny('EGR_AUTH_INVALID', 'identity.token', 'run tokens are not configured');
        const check = verifyToken(key, pass, Math.floor(deps.nowMs() / 1000));
        if (!check.ok) return deny(check.reason === 'expired' ? 'EGR_AUTH_EXPIRED' : 'EGR_AUTH_INVALID', 'identity.token');
        const { claims } = check;
        if (claims.sub !== user) return deny('EGR_AUTH_INVALID', 'identity.token', 'username does not match the token');
        const base = rightsFor(policy, claims.sub);
        if (!base) return deny('EGR_AUTH_INVALID', 'identity.token', 'identity no longer exists');
        // Narrow only: a token naming an integration its identity lacks gains nothing.
        const integrations = claims.int ? new Set(claims.int.filter((i) => base.integrations.has(i))) : base.integrations;
        return { ...base, integrations, runId: claims.jti, expiresAtMs: claims.exp * 1000 };
      }

      // hasOwn: a username such as "constructor" must not find Object.prototype's members.
      const configured = Object.hasOwn(policy.config.identities, user) ? policy.config.identities[user] : undefined;
      let ok: boolean;
      if (!configured) {
        await checkHash(user, pass, DUMMY_HASH);
        ok = false;
      } else if (configured.passwordHash) {
        ok = await checkHash(user, pass, configured.passwordHash);
      } else {
        ok = configured.password !== null && timingSafeEqual(digest(pass), digest(configured.password));
      }
      if (!ok) return deny('EGR_AUTH_INVALID', 'identity');
      const rights = rightsFor(deps.policy(), user);
      if (!rights) return deny('EGR_AUTH_INVALID', 'identity', 'identity removed during verification');
      return { ...rights, runId: null };
    },
  };
}
