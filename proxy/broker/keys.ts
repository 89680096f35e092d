// The broker's key: one file (`secrets.keyFile`) of at least 32 bytes, from which HKDF-SHA256 derives a key
// per purpose. Distinct labels mean a sealed blob can never be read as a handle, nor a handle forged from a
// sealing key; a leak of one derived key gives nothing about the other or the file.
import { hkdfSync } from 'node:crypto';
import { SluiceError } from '../../firewall/errors.js';

export const MIN_BROKER_KEY_BYTES = 32;

/** HKDF `info` labels, one per purpose (RFC 5869 §3.2: info binds a derived key to its context). */
export const KEY_LABELS = Object.freeze({
  seal: 'sluice broker: sealed secrets v1',
  handle: 'sluice broker: handles v1',
});

// A fixed, public salt: the key file is already uniformly random (or refused below); the salt only
// separates Sluice's derivations from any other use of the same bytes.
const SALT = Buffer.from('sluice-broker-hkdf-salt-v1');

export interface BrokerKeys {
  /** AES-256-GCM key for sealed secret files. */
  readonly seal: Buffer;
  /** AES-256-GCM key that encrypts and authenticates handles. */
  readonly handle: Buffer;
}

/** The key material as the file holds it: surrounding whitespace (a trailing newline) is not key. */
export function keyMaterialOf(fileBytes: Buffer): Buffer {
  let start = 0;
  let end = fileBytes.length;
  const space = (b: number) => b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d;
  while (start < end && space(fileBytes[start]!)) start++;
  while (end > start && space(fileBytes[end - 1]!)) end--;
  return fileBytes.subarray(start, end);
}

// Words that mark a key somebody copied from an example rather than generated.
const PLACEHOLDERS = [
  'changeme',
  'change-me',
  'change_me',
  'replaceme',
  'replace-me',
  'replace_me',
  'example',
  'placeholder',
  'default',
  'insecure',
  'dummy',
  'do-not-use',
  'donotuse',
  'notasecret',
  'not-a-secret',
  'your-key',
  'yourkey',
  'secretkey',
  'secret-key',
  'password',
  'sluice-broker-key',
];

/** Why this key material must not be used, or null. Never quotes the key. */
export function keyMaterialProblem(material: Buffer | null): { message: string; hint: string } | null {
  const hint = 'generate one: head -c 48 /dev/urandom | base64 > sluice-broker-key';
  if (material === null)
    return { message: 'cannot be read', hint: "check the path and that Sluice's user may read it" };
  if (material.length < MIN_BROKER_KEY_BYTES)
    return { message: `holds ${material.length} bytes; at least ${MIN_BROKER_KEY_BYTES} are required`, hint };
  const distinct = new Set(material).size;
  if (distinct === 1)
    return { message: material[0] === 0 || material[0] === 0x30 ? 'is all zeros' : 'repeats a single byte', hint };
  const lower = material.toString('latin1').toLowerCase();
  if (PLACEHOLDERS.some((p) => lower.includes(p)))
    return { message: 'is a placeholder or example key, not a generated one', hint };
  // 32 random bytes, or their base64/hex text, hold far more than 8 distinct values; a repeated pattern does not.
  if (distinct < 8) return { message: `has only ${distinct} distinct byte values: it is not random`, hint };
  return null;
}

export function deriveBrokerKeys(material: Buffer): BrokerKeys {
  if (material.length < MIN_BROKER_KEY_BYTES)
    throw new SluiceError('SLUICE_ERR_INVALID_ARGUMENT', `broker key must be at least ${MIN_BROKER_KEY_BYTES} bytes`);
  const derive = (label: string) => Buffer.from(hkdfSync('sha256', material, SALT, label, 32));
  return Object.freeze({ seal: derive(KEY_LABELS.seal), handle: derive(KEY_LABELS.handle) });
}
