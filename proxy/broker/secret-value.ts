// A secret in memory. Every way an object reaches a log (JSON.stringify, util.inspect, template strings)
// prints a placeholder; only `reveal()` hands out the bytes, at the one place they go upstream.
import { inspect } from 'node:util';

const SHOWN = '[secret]';

export class SecretValue {
  readonly #bytes: Buffer;
  #text: string | null = null;

  constructor(bytes: Buffer) {
    this.#bytes = Buffer.from(bytes);
  }

  get length(): number {
    return this.#bytes.length;
  }

  /** The secret's bytes (a copy would cost an allocation per request; callers must not keep or log it). */
  reveal(): Buffer {
    return this.#bytes;
  }

  /** The secret as header text (secrets are printable ASCII, see secretProblem). */
  revealText(): string {
    return (this.#text ??= this.#bytes.toString('latin1'));
  }

  toString(): string {
    return SHOWN;
  }

  toJSON(): string {
    return SHOWN;
  }

  [inspect.custom](): string {
    return SHOWN;
  }
}

export const MIN_SECRET_BYTES = 12;
export const MAX_SECRET_TEXT = 4096;

/** Why these bytes cannot be a credential's secret, or null. Secrets go into header values, so they are
 * printable ASCII (no CR/LF: a secret must not be able to add a header line); and the response scanner
 * replaces every occurrence, so a very short one would rewrite ordinary text. Never quotes the secret. */
export function secretProblem(secret: Buffer): string | null {
  if (secret.length < MIN_SECRET_BYTES)
    return `is ${secret.length} bytes; at least ${MIN_SECRET_BYTES} are required (a shorter one cannot be told apart from ordinary text in responses)`;
  if (secret.length > MAX_SECRET_TEXT) return `is longer than ${MAX_SECRET_TEXT} bytes`;
  for (const b of secret)
    if (b < 0x20 || b > 0x7e) return 'holds a byte that is not printable ASCII (a header value cannot carry it)';
  return null;
}

/** The secret as a file holds it: surrounding whitespace (`echo token > file`) is not part of it. */
export function secretOfFile(bytes: Buffer): Buffer {
  const text = bytes.toString('latin1').trim();
  return Buffer.from(text, 'latin1');
}
