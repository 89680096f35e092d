// "Never returned": responses from a credential's hosts are scanned for the real secret and its common
// encodings, and what is found is replaced before the workload sees it. Streaming, with bounded memory: at
// most (longest pattern − 1) bytes are held back between chunks, never the body.
//
//   pattern                                 replaced by
//   the secret                              the handle the request carried (else a placeholder)
//   percent-encoded (upper/lower hex)       the handle (handles are unreserved characters)
//   JSON-escaped (incl. "\/")               the handle
//   base64 / base64url, each alignment      the same alignment's base64 of '*' × secret length: the base64
//                                           text keeps its length and still decodes, to '***…' where the
//                                           secret was (the ≤ 4 bits the edge characters share are left)
//
// Search is Buffer#indexOf per pattern (Boyer–Moore–Horspool in Node's C++), which for tokens of 20+ bytes
// skips most of the input; matches are resolved leftmost-first, longest at a tie, as a one-shot replacement
// of the whole body would. Throughput is in docs/ARCHITECTURE.md.
import { Transform, type TransformCallback } from 'node:stream';
import { base64Core, base64Cores, jsonEscapings, percentEncodings } from './encodings.js';

export interface ScanPattern {
  readonly bytes: Buffer;
  readonly replacement: Buffer;
  /** `bytes` as a latin1 string, for header values (which Node hands over as strings). */
  readonly text: string;
}

/** What goes back in place of a credential's secret when the request carried no handle for it. */
export const placeholderFor = (credential: string): string => `sluice-redacted-${credential}`;

/** A form a secret takes, and what replaces it: the caller's replacement (null) or a fixed filler. */
export interface SecretForm {
  readonly bytes: Buffer;
  readonly text: string;
  readonly filler: Buffer | null;
}

/** Every form of one secret (computed once per credential, not per request). */
export function secretForms(secret: Buffer): SecretForm[] {
  const text = secret.toString('latin1');
  const out = new Map<string, Buffer | null>();
  for (const form of [text, ...percentEncodings(text), ...jsonEscapings(text)]) out.set(form, null);
  const filler = Buffer.alloc(secret.length, '*');
  for (const core of base64Cores(secret)) {
    if (!out.has(core.text)) out.set(core.text, Buffer.from(base64Core(filler, core.shift, core.alphabet), 'latin1'));
  }
  return [...out].map(([form, f]) => ({ bytes: Buffer.from(form, 'latin1'), text: form, filler: f }));
}

/** The forms as patterns, the textual ones replaced by `replacement` (a handle or a placeholder). */
export function patternsOf(forms: readonly SecretForm[], replacement: string): ScanPattern[] {
  const rep = Buffer.from(replacement, 'latin1');
  return forms.map((f) => ({ bytes: f.bytes, replacement: f.filler ?? rep, text: f.text }));
}

/** The patterns for one secret, replaced by `replacement`. */
export const patternsForSecret = (secret: Buffer, replacement: string): ScanPattern[] =>
  patternsOf(secretForms(secret), replacement);

interface Match {
  readonly start: number;
  readonly end: number;
  readonly replacement: Buffer;
}

const EMPTY = Buffer.alloc(0);

/** A push-style scanner: write(chunk) returns what may be sent now; end() returns the rest. */
export class SecretScanner {
  readonly #patterns: readonly ScanPattern[];
  readonly #keep: number;
  #pending: Buffer = EMPTY;
  #replaced = 0;

  constructor(patterns: readonly ScanPattern[]) {
    this.#patterns = patterns.filter((p) => p.bytes.length > 0);
    this.#keep = Math.max(0, ...this.#patterns.map((p) => p.bytes.length)) - 1;
  }

  /** Occurrences replaced so far (for the audit record). */
  get replaced(): number {
    return this.#replaced;
  }

  /** Bytes held back at most between writes. */
  get holdBack(): number {
    return Math.max(0, this.#keep);
  }

  write(chunk: Uint8Array): Buffer[] {
    if (chunk.length === 0) return [];
    const c = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
    const keep = this.#keep;
    const out: Buffer[] = [];
    let rest = c;
    if (this.#pending.length) {
      if (c.length < keep) {
        // A small chunk: join it to what is held and go on as one buffer.
        rest = Buffer.concat([this.#pending, c]);
      } else {
        // The junction — what is held plus the chunk's first `keep` bytes — decides every match that starts
        // in the held bytes; the chunk itself is then searched in place, never copied.
        const junction = Buffer.concat([this.#pending, c.subarray(0, keep)]);
        const cut = this.#emit(junction, this.#pending.length, out);
        rest = c.subarray(cut - this.#pending.length);
      }
      this.#pending = EMPTY;
    }
    // A match may be judged only where every pattern would fit: starts before `limit`.
    const limit = rest.length - keep;
    if (limit <= 0) {
      this.#pending = Buffer.from(rest);
      return out;
    }
    const cut = this.#emit(rest, limit, out);
    // Copied: the held-back tail must not pin (or alias) the caller's chunk.
    this.#pending = Buffer.from(rest.subarray(cut));
    return out;
  }

  end(): Buffer[] {
    const buf = this.#pending;
    this.#pending = EMPTY;
    const out: Buffer[] = [];
    if (buf.length) this.#emit(buf, buf.length, out, true);
    return out;
  }

  /** Emits `buf` up to the returned offset, replacing matches that start before `limit`. */
  #emit(buf: Buffer, limit: number, out: Buffer[], final = false): number {
    let matches: Match[] | null = null;
    for (const p of this.#patterns) {
      for (let i = buf.indexOf(p.bytes); i !== -1 && i < limit; i = buf.indexOf(p.bytes, i + 1)) {
        (matches ??= []).push({ start: i, end: i + p.bytes.length, replacement: p.replacement });
      }
    }
    let at = 0;
    if (matches) {
      matches.sort((a, b) => a.start - b.start || b.end - a.end);
      for (const m of matches) {
        if (m.start < at) continue;
        if (m.start > at) out.push(buf.subarray(at, m.start));
        out.push(m.replacement);
        at = m.end;
        this.#replaced++;
      }
    }
    const cut = final ? buf.length : Math.max(limit, at);
    if (cut > at) out.push(buf.subarray(at, cut));
    return cut;
  }
}

/** One-shot replacement (header values; latin1 as Node hands them over). */
export function scrubValue(patterns: readonly ScanPattern[], value: string): { value: string; replaced: number } {
  // Nearly every value holds no pattern: a string search each, no buffers.
  if (!patterns.some((p) => value.includes(p.text))) return { value, replaced: 0 };
  const s = new SecretScanner(patterns);
  const parts = [...s.write(Buffer.from(value, 'latin1')), ...s.end()];
  return s.replaced === 0
    ? { value, replaced: 0 }
    : { value: Buffer.concat(parts).toString('latin1'), replaced: s.replaced };
}

/** Response headers with every value scrubbed (flat name/value list); the same array when nothing matched. */
export function scrubHeaders(
  patterns: readonly ScanPattern[],
  rawHeaders: readonly string[],
): { rawHeaders: readonly string[]; replaced: number } {
  let out: string[] | null = null;
  let replaced = 0;
  for (let i = 1; i < rawHeaders.length; i += 2) {
    const r = scrubValue(patterns, rawHeaders[i]!);
    if (r.replaced === 0) continue;
    out ??= [...rawHeaders];
    out[i] = r.value;
    replaced += r.replaced;
  }
  return { rawHeaders: out ?? rawHeaders, replaced };
}

/** The scanner as a Transform stream. */
export function createScrubStream(scanner: SecretScanner): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback) {
      for (const b of scanner.write(chunk)) this.push(b);
      done();
    },
    flush(done: TransformCallback) {
      for (const b of scanner.end()) this.push(b);
      done();
    },
  });
}
