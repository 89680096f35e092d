// Run tokens: short-lived credentials an orchestrator mints per run without touching config. A token is
// `sluice.v1.<payload>.<mac>` where payload is base64url JSON and mac is HMAC-SHA256 under the shared key, so
// any replica holding the key verifies it. A token can only narrow its identity's rights, never widen them.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { RUN_ID } from '../broker/handle.js';
import { SluiceError } from '../../firewall/errors.js';

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
  /** The orchestrator's run id (`--run`): credential handles issued for this run are honoured only on requests
   * authenticated by a token carrying it. Absent: the token carries no handle. */
  readonly run?: string;
}

export type TokenCheck =
  { readonly ok: true; readonly claims: TokenClaims } | { readonly ok: false; readonly reason: 'invalid' | 'expired' };

const mac = (key: Buffer, data: string) => createHmac('sha256', key).update(data).digest();

export function issueToken(
  key: Buffer,
  claims: { sub: string; ttlS: number; int?: readonly string[]; run?: string; nowS: number },
): string {
  if (key.length < MIN_KEY_BYTES)
    throw new SluiceError('SLUICE_ERR_INVALID_ARGUMENT', `token key must be at least ${MIN_KEY_BYTES} bytes`);
  if (claims.run !== undefined && !RUN_ID.test(claims.run))
    throw new SluiceError('SLUICE_ERR_INVALID_ARGUMENT', 'not a run id');
  const body: TokenClaims = {
    sub: claims.sub,
    iat: claims.nowS,
    exp: claims.nowS + Math.floor(claims.ttlS),
    jti: randomBytes(9).toString('base64url'),
    ...(claims.int ? { int: [...claims.int] } : {}),
    ...(claims.run !== undefined ? { run: claims.run } : {}),
  };
  const payload = Buffer.from(JSON.stringify(body)).toString('base64url');
  return `${TOKEN_PREFIX}${payload}.${mac(key, TOKEN_PREFIX + payload).toString('base64url')}`;
}

export const looksLikeToken = (secret: string): boolean => secret.startsWith(TOKEN_PREFIX);

// Node's base64url decoder skips what it does not expect ('=', whitespace, '.', the '+' and '/' of base64) and
// ignores the unused low bits of the last character, so many strings decode to one MAC: a token is accepted only
// in the one form issueToken writes (RFC 4648 §5 without padding, §3.5 zero pad bits), checked by re-encoding.
const B64URL = /^[A-Za-z0-9_-]+$/;
const MAC_CHARS = 43; // 32 bytes, unpadded

function canonical(text: string): Buffer | null {
  if (!B64URL.test(text)) return null;
  const bytes = Buffer.from(text, 'base64url');
  return bytes.toString('base64url') === text ? bytes : null;
}

export function verifyToken(key: Buffer, token: string, nowS: number): TokenCheck {
  if (!looksLikeToken(token) || token.length > 4096) return { ok: false, reason: 'invalid' };
  const parts = token.slice(TOKEN_PREFIX.length).split('.');
  if (parts.length !== 2) return { ok: false, reason: 'invalid' };
  const [payload, macText] = parts as [string, string];
  const given = macText.length === MAC_CHARS ? canonical(macText) : null;
  const body = canonical(payload);
  if (!given || !body) return { ok: false, reason: 'invalid' };
  const expected = mac(key, TOKEN_PREFIX + payload);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return { ok: false, reason: 'invalid' };
  let claims: unknown;
  try {
    claims = JSON.parse(body.toString('utf8'));
  } catch {
    return { ok: false, reason: 'invalid' };
  }
  const c = claims as Partial<TokenClaims>;
  if (
    typeof c.sub !== 'string' ||
    typeof c.exp !== 'number' ||
    typeof c.iat !== 'number' ||
    typeof c.jti !== 'string'
  ) {
    return { ok: false, reason: 'invalid' };
  }
  if (c.int !== undefined && (!Array.isArray(c.int) || !c.int.every((i) => typeof i === 'string'))) {
    return { ok: false, reason: 'invalid' };
  }
  if (c.run !== undefined && (typeof c.run !== 'string' || !RUN_ID.test(c.run)))
    return { ok: false, reason: 'invalid' };
  if (nowS >= c.exp) return { ok: false, reason: 'expired' };
  return { ok: true, claims: c as TokenClaims };
}
