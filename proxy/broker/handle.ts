// Handles: what a workload holds instead of a credential. `sluice_h1_` (a fixed prefix, so scanners and the
// request check can spot one) followed by base64url of
//
//   L (1 byte) ‖ nonce (12) ‖ AES-256-GCM(plaintext) ‖ tag (16)        L = total length, a multiple of 3
//   plaintext = exp (u32 BE, unix s) ‖ len ‖ run ‖ len ‖ identity ‖ len ‖ credential ‖ zero padding
//
// under the broker's handle key (HKDF, its own label), with `sluice_h1_` ‖ L as associated data. The GCM tag
// is the MAC: a handle cannot be forged, altered or moved to another run, identity or credential without
// the key; and the claims are encrypted, so a handle says nothing about the secret or whom it belongs to.
// Any replica with the key verifies one without shared state. L makes a handle self-delimiting inside text
// that continues with base64url characters, and padding to a multiple of 3 bytes keeps the text free of
// partial base64 characters (one canonical spelling).
import { createCipheriv, createDecipheriv, hash, randomBytes } from 'node:crypto';
import { decodeBase64urlStrict } from './base64url.js';
import { SluiceError } from '../../firewall/errors.js';

export const HANDLE_PREFIX = 'sluice_h1_';
const NONCE = 12;
const TAG = 16;
const MAX_LEN = 255;
/** Longest handle text. */
export const MAX_HANDLE_CHARS = HANDLE_PREFIX.length + ((MAX_LEN - (MAX_LEN % 3)) / 3) * 4;

/** Run ids: what an orchestrator names a run (a job id, a UUID). Printable, short, and never a metric label. */
export const RUN_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;
// Identity and credential names follow the config's name pattern.
const NAME = /^[a-z][a-z0-9_-]{0,62}$/;

export interface HandleClaims {
  readonly run: string;
  readonly identity: string;
  readonly credential: string;
  /** Unix seconds; the handle is refused from this second on. */
  readonly expS: number;
}

export type OpenHandle =
  | { readonly ok: true; readonly claims: HandleClaims }
  /** malformed: not a v1 handle; unauthentic: another key (another deployment), altered or forged. */
  | { readonly ok: false; readonly reason: 'malformed' | 'unauthentic' };

const aad = (len: number) => Buffer.from([...Buffer.from(HANDLE_PREFIX, 'latin1'), len]);

export function issueHandle(handleKey: Buffer, claims: HandleClaims, nonce: Buffer = randomBytes(NONCE)): string {
  if (!RUN_ID.test(claims.run))
    throw new SluiceError('SLUICE_ERR_INVALID_ARGUMENT', 'run id must match ' + RUN_ID.source);
  if (!NAME.test(claims.identity) || !NAME.test(claims.credential))
    throw new SluiceError('SLUICE_ERR_INVALID_ARGUMENT', 'identity and credential must be config names');
  if (!Number.isInteger(claims.expS) || claims.expS < 0 || claims.expS > 0xffffffff)
    throw new SluiceError('SLUICE_ERR_INVALID_ARGUMENT', 'expS out of range');
  if (nonce.length !== NONCE) throw new SluiceError('SLUICE_ERR_INVALID_ARGUMENT', 'nonce must be 12 bytes');
  const fields = [claims.run, claims.identity, claims.credential].map((s) => Buffer.from(s, 'latin1'));
  let plainLen = 4 + fields.reduce((n, f) => n + 1 + f.length, 0);
  const len = 1 + NONCE + plainLen + TAG;
  const padded = len + ((3 - (len % 3)) % 3);
  plainLen += padded - len;
  const plain = Buffer.alloc(plainLen);
  plain.writeUInt32BE(claims.expS, 0);
  let at = 4;
  for (const f of fields) {
    plain[at++] = f.length;
    f.copy(plain, at);
    at += f.length;
  }
  const cipher = createCipheriv('aes-256-gcm', handleKey, nonce, { authTagLength: TAG });
  cipher.setAAD(aad(padded));
  const out = Buffer.concat([Buffer.from([padded]), nonce, cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
  return HANDLE_PREFIX + out.toString('base64url');
}

const B64URL_RUN = /^[A-Za-z0-9_-]*$/;
const VALUE: Record<string, number> = Object.fromEntries(
  [...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'].map((c, i) => [c, i]),
);

/** The exact handle text starting at `index` (where `sluice_h1_` starts), or null when the text there is not
 * shaped like a whole handle. Shape only: authenticity is openHandle's business. */
export function handleAt(text: string, index: number): string | null {
  const body = index + HANDLE_PREFIX.length;
  if (body + 2 > text.length) return null;
  const hi = VALUE[text[body]!];
  const lo = VALUE[text[body + 1]!];
  if (hi === undefined || lo === undefined) return null;
  const len = (hi << 2) | (lo >> 4);
  if (len % 3 !== 0 || len < 1 + NONCE + TAG + 10) return null;
  const end = body + (len / 3) * 4;
  if (end > text.length) return null;
  const handle = text.slice(index, end);
  return B64URL_RUN.test(handle.slice(HANDLE_PREFIX.length + 2)) ? handle : null;
}

export function openHandle(handleKey: Buffer, text: string): OpenHandle {
  if (!text.startsWith(HANDLE_PREFIX) || text.length > MAX_HANDLE_CHARS) return { ok: false, reason: 'malformed' };
  const bytes = decodeBase64urlStrict(text.slice(HANDLE_PREFIX.length));
  if (!bytes || bytes.length < 1 + NONCE + TAG + 10 || bytes[0] !== bytes.length || bytes.length % 3 !== 0) {
    return { ok: false, reason: 'malformed' };
  }
  let plain: Buffer;
  try {
    const decipher = createDecipheriv('aes-256-gcm', handleKey, bytes.subarray(1, 1 + NONCE), { authTagLength: TAG });
    decipher.setAAD(aad(bytes.length));
    decipher.setAuthTag(bytes.subarray(bytes.length - TAG));
    plain = Buffer.concat([decipher.update(bytes.subarray(1 + NONCE, bytes.length - TAG)), decipher.final()]);
  } catch {
    return { ok: false, reason: 'unauthentic' };
  }
  // Authentic, so written by issueHandle; parsed strictly all the same (a bug must not become a bypass).
  const expS = plain.readUInt32BE(0);
  const fields: string[] = [];
  let at = 4;
  for (let i = 0; i < 3; i++) {
    const n = plain[at++];
    if (n === undefined || at + n > plain.length) return { ok: false, reason: 'malformed' };
    fields.push(plain.toString('latin1', at, at + n));
    at += n;
  }
  if (plain.length - at > 2 || plain.subarray(at).some((b) => b !== 0)) return { ok: false, reason: 'malformed' };
  const [run, identity, credential] = fields as [string, string, string];
  if (!RUN_ID.test(run) || !NAME.test(identity) || !NAME.test(credential)) return { ok: false, reason: 'malformed' };
  return { ok: true, claims: { run, identity, credential, expS } };
}

/** A short, stable name for a handle in audit records and metrics-free logs: 12 hex characters of its
 * SHA-256. Handles are 96+ bits of nonce and ciphertext, so the id cannot be turned back into one. */
export const handleId = (handle: string): string => hash('sha256', handle, 'hex').slice(0, 12);
