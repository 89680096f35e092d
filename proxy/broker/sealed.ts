// Sealed secrets: `sluice-sealed.v1.<b64url(nonce)>.<b64url(ciphertext ‖ tag)>`, AES-256-GCM under the
// broker's sealing key with a random 96-bit nonce (NIST SP 800-38D §8.2.2), and the credential's name as
// associated data: a blob copied to another credential fails authentication instead of injecting a secret
// where it was never meant to go.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { decodeBase64urlStrict } from './base64url.js';
import { SluiceError } from '../../firewall/errors.js';

export const SEALED_PREFIX = 'sluice-sealed.v1.';
export const NONCE_BYTES = 12;
export const TAG_BYTES = 16;
export const MAX_SECRET_BYTES = 4096;
/** Longest sealed text: prefix, nonce, dot, ciphertext and tag of the largest secret. */
export const MAX_SEALED_CHARS = SEALED_PREFIX.length + 16 + 1 + Math.ceil(((MAX_SECRET_BYTES + TAG_BYTES) * 4) / 3);

export type OpenSealed =
  | { readonly ok: true; readonly secret: Buffer }
  /** malformed: not a v1 envelope at all; unauthentic: wrong key, wrong credential, or altered. */
  | { readonly ok: false; readonly reason: 'malformed' | 'unauthentic' };

const associatedData = (credential: string) => Buffer.from(`${SEALED_PREFIX}${credential}`, 'utf8');

export function sealSecret(
  sealKey: Buffer,
  credential: string,
  secret: Buffer,
  nonce: Buffer = randomBytes(NONCE_BYTES),
): string {
  if (nonce.length !== NONCE_BYTES) throw new SluiceError('SLUICE_ERR_INVALID_ARGUMENT', 'nonce must be 12 bytes');
  if (secret.length === 0 || secret.length > MAX_SECRET_BYTES)
    throw new SluiceError('SLUICE_ERR_INVALID_ARGUMENT', `a secret is 1 to ${MAX_SECRET_BYTES} bytes`);
  const cipher = createCipheriv('aes-256-gcm', sealKey, nonce, { authTagLength: TAG_BYTES });
  cipher.setAAD(associatedData(credential));
  const body = Buffer.concat([cipher.update(secret), cipher.final(), cipher.getAuthTag()]);
  return `${SEALED_PREFIX}${nonce.toString('base64url')}.${body.toString('base64url')}`;
}

/** Opens a sealed blob (surrounding whitespace, as in a file, is allowed; nothing else is). */
export function openSealed(sealKey: Buffer, credential: string, text: string): OpenSealed {
  const blob = text.trim();
  if (blob.length > MAX_SEALED_CHARS || !blob.startsWith(SEALED_PREFIX)) return { ok: false, reason: 'malformed' };
  const parts = blob.slice(SEALED_PREFIX.length).split('.');
  if (parts.length !== 2) return { ok: false, reason: 'malformed' };
  const nonce = decodeBase64urlStrict(parts[0]!);
  const body = decodeBase64urlStrict(parts[1]!);
  if (!nonce || !body || nonce.length !== NONCE_BYTES || body.length <= TAG_BYTES)
    return { ok: false, reason: 'malformed' };
  try {
    const decipher = createDecipheriv('aes-256-gcm', sealKey, nonce, { authTagLength: TAG_BYTES });
    decipher.setAAD(associatedData(credential));
    decipher.setAuthTag(body.subarray(body.length - TAG_BYTES));
    const secret = Buffer.concat([decipher.update(body.subarray(0, body.length - TAG_BYTES)), decipher.final()]);
    return { ok: true, secret };
  } catch {
    return { ok: false, reason: 'unauthentic' };
  }
}
