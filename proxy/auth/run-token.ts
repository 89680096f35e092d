// Run tokens: short-lived credentials an orchestrator mints per run without touching config. A token is
// `sluice.v1.<payload>.<mac>` where payload is base64url JSON and mac is HMAC-SHA256 under the shared key, so
// any replica holding the key verifies it. A token can only narrow its identity's rights, never widen them.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export const TOKEN_PREFIX = 'sluice.v1.';
export const MIN_KEY_BYTES = 32;

export interface TokenClaims {
  /** Identity the token acts as. */
  readonly sub: string;
  /** Unix seconds. */
  readonly iat: number;
  readonly exp: number;
  /** Run id: random, for correlating logs; never a metric label. */
  readonly jti: string;
  /** Subset of the identity's integrations; absent means all of them. */
  readonly int?: readonly string[];
}

export type TokenCheck =
  | { readonly ok: true; readonly claims: TokenClaims }
  | { readonly ok: false; readonly reason: 'invalid' | 'expired' };

const mac = (key: Buffer, data: string) => createHmac('sha256', key).update(data).digest();

export function issueToken(key: Buffer, claims: { sub: string; ttlS: number; int?: readonly string[]; nowS: number }): string {
  if (key.length < MIN_KEY_BYTES) throw new Error(`token key must be at least ${MIN_KEY_BYTES} bytes`);
  const body: TokenClaims = {
    sub: claims.sub,
    iat: claims.nowS,
    exp: claims.nowS + Math.floor(claims.ttlS),
    jti: randomBytes(9).toString('base64url'),
    ...(claims.int ? { int: [...claims.int] } : {}),
  };
  const payload = Buffer.from(JSON.stringify(body)).toString('base64url');
  return `${TOKEN_PREFIX}${payload}.${mac(key, TOKEN_PREFIX + payload).toString('base64url')}`;
}

export const looksLikeToken = (secret: string): boolean => secret.startsWith(TOKEN_PREFIX);

export function verifyToken(key: Buffer, token: string, nowS: number): TokenCheck {
  if (!looksLikeToken(token) || token.length > 4096) return { ok: false, reason: 'invalid' };
  const rest = token.slice(TOKEN_PREFIX.length);
  const dot = rest.indexOf('.');
  if (dot <= 0) return { ok: false, reason: 'invalid' };
  const payload = rest.slice(0, dot);
  const given = Buffer.from(rest.slice(dot + 1), 'base64url');
  const expected = mac(key, TOKEN_PREFIX + payload);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return { ok: false, reason: 'invalid' };
  let claims: unknown;
  try {
    claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
  } catch {
    return { ok: false, reason: 'invalid' };
  }
  const c = claims as Partial<TokenClaims>;
  if (typeof c.sub !== 'string' || typeof c.exp !== 'number' || typeof c.iat !== 'number' || typeof c.jti !== 'string') {
    return { ok: false, reason: 'invalid' };
  }
  if (c.int !== undefined && (!Array.isArray(c.int) || !c.int.every((i) => typeof i === 'string'))) {
    return { ok: false, reason: 'invalid' };
  }
  if (nowS >= c.exp) return { ok: false, reason: 'expired' };
  return { ok: true, claims: c as TokenClaims };
}
