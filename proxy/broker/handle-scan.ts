// Finding handles in a request: in header values, the URL, the host and the first KiB of the body, written
// plainly, percent-encoded (to any depth up to 3), JSON-escaped, or inside base64 (either alphabet, any
// alignment: an `Authorization: Basic` value, a base64 JSON body). One regular expression gates all of it,
// so a request without any trace of a handle costs one scan per value.
//
// This is defence in depth, not the guarantee: a workload that re-encodes a handle in a way of its own
// (hex, reversed, split across requests) passes it here, but a handle is worth nothing outside Sluice — it is
// honoured only from its own run, toward its own integration — so the real token still cannot leave.
import { HANDLE_PREFIX, handleAt } from './handle.js';
import { base64Cores, jsonUnescape, percentDecode } from './encodings.js';

export type Place = 'header' | 'path' | 'body' | 'host';
export type Encoding = 'raw' | 'percent' | 'json' | 'base64';

export interface Sighting {
  readonly place: Place;
  /** Index of the header's name in the flat raw header list; -1 elsewhere. */
  readonly header: number;
  readonly encoding: Encoding;
  /** The handle text when it could be cut out whole; null when only its trace was seen. */
  readonly handle: string | null;
}

const PREFIX_CORES = base64Cores(Buffer.from(HANDLE_PREFIX, 'latin1')).map((c) => c.text);
const escape = (s: string) => s.replace(/[+/]/g, '\\$&');
// A percent-escape that could hide part of a handle or its base64: one that decodes to a letter, a digit,
// "_", "%" (double encoding) or "\\" (a JSON escape inside a URL). Escapes of other characters (%20, %2F,
// %7B) cannot conceal the prefix or a base64 core, so a URL full of them costs no decoding.
const PCT = '%(?:3[0-9]|4[1-9A-Fa-f]|5[0-9AaCcFf]|6[1-9A-Fa-f]|7[0-9Aa]|25)';
const PCT_GATE = new RegExp(PCT);
/** The gate: the prefix, its base64 cores, and the escapes that could hide them. */
export const HANDLE_GATE = new RegExp([HANDLE_PREFIX, ...PREFIX_CORES].map(escape).join('|') + `|${PCT}|\\\\u`);

const BASE64_CHAR = /[A-Za-z0-9+/_-]/;
const MAX_DEPTH = 3;

function inBase64(text: string, at: number): (string | null)[] {
  let start = at;
  let end = at;
  while (start > 0 && BASE64_CHAR.test(text[start - 1]!)) start--;
  while (end < text.length && BASE64_CHAR.test(text[end]!)) end++;
  const run = text.slice(start, end);
  const found: string[] = [];
  // The run may begin mid-group; one of four starting points lines the groups up. Node's base64 decoder
  // reads both alphabets.
  for (let o = 0; o < 4 && found.length === 0; o++) {
    const decoded = Buffer.from(run.slice(o), 'base64').toString('latin1');
    for (let i = decoded.indexOf(HANDLE_PREFIX); i !== -1; i = decoded.indexOf(HANDLE_PREFIX, i + 1)) {
      const h = handleAt(decoded, i);
      if (h) found.push(h);
    }
  }
  return found.length ? found : [null];
}

function scan(text: string, place: Place, header: number, encoding: Encoding, depth: number, out: Sighting[]): void {
  if (!HANDLE_GATE.test(text)) return;
  for (let i = text.indexOf(HANDLE_PREFIX); i !== -1; i = text.indexOf(HANDLE_PREFIX, i + 1)) {
    out.push({ place, header, encoding, handle: handleAt(text, i) });
  }
  for (const core of PREFIX_CORES) {
    for (let i = text.indexOf(core); i !== -1; i = text.indexOf(core, i + 1)) {
      for (const handle of inBase64(text, i))
        out.push({ place, header, encoding: encoding === 'raw' ? 'base64' : encoding, handle });
    }
  }
  if (depth >= MAX_DEPTH) return;
  if (PCT_GATE.test(text)) {
    const d = percentDecode(text);
    if (d !== text) scan(d, place, header, encoding === 'raw' ? 'percent' : encoding, depth + 1, out);
  }
  if (text.includes('\\u')) {
    const d = jsonUnescape(text);
    if (d !== text) scan(d, place, header, encoding === 'raw' ? 'json' : encoding, depth + 1, out);
  }
}

export interface ScannedRequest {
  readonly host: string;
  readonly rawHeaders: readonly string[];
  readonly path: string;
  readonly bodyPrefix: Uint8Array | null;
}

/** How much of the body is looked at. */
export const BODY_PREFIX_BYTES = 1024;

const NONE: readonly Sighting[] = Object.freeze([]);

/** Every trace of a handle in the request. `Proxy-Authorization` is skipped: it holds the run token, never
 * goes upstream, and a handle there fails authentication anyway. */
export function findHandles(req: ScannedRequest): readonly Sighting[] {
  let out: Sighting[] | null = null;
  const take = (text: string, place: Place, header: number) => {
    if (!HANDLE_GATE.test(text)) return;
    out ??= [];
    scan(text, place, header, 'raw', 0, out);
  };
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 19 && name.toLowerCase() === 'proxy-authorization') continue;
    take(raw[i + 1]!, 'header', i);
    // A header name can carry data too (`sluice_h1_…: 1`).
    take(name, 'header', i);
  }
  take(req.path, 'path', -1);
  take(req.host, 'host', -1);
  if (req.bodyPrefix && req.bodyPrefix.length) {
    const b = req.bodyPrefix;
    take(Buffer.from(b.buffer, b.byteOffset, Math.min(b.length, BODY_PREFIX_BYTES)).toString('latin1'), 'body', -1);
  }
  return out ?? NONE;
}
