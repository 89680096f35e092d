// The encodings a secret or a handle is carried in, computed once per value: base64 (standard and URL
// alphabets) at each of the three byte alignments, percent-encoding and JSON string escaping.

/** The base64 characters that depend only on `bytes` when they are encoded starting `shift` bytes (0, 1, 2)
 * into a 3-byte group: what appears in any base64 text that contains `bytes` at that alignment, whatever
 * surrounds them. The characters at either end that mix in neighbouring bits are left out (at most 4 bits of
 * `bytes` at each end). */
export function base64Core(bytes: Buffer, shift: 0 | 1 | 2, alphabet: 'base64' | 'base64url'): string {
  const padded = Buffer.concat([Buffer.alloc(shift), bytes]);
  const text = padded.toString(alphabet).replace(/=+$/, '');
  return text.slice(Math.ceil((8 * shift) / 6), Math.floor((8 * padded.length) / 6));
}

export const SHIFTS = [0, 1, 2] as const;

/** Every distinct base64 core of `bytes` (both alphabets, three alignments), with how it was made. */
export function base64Cores(
  bytes: Buffer,
): { readonly text: string; readonly shift: 0 | 1 | 2; readonly alphabet: 'base64' | 'base64url' }[] {
  const out: { text: string; shift: 0 | 1 | 2; alphabet: 'base64' | 'base64url' }[] = [];
  const seen = new Set<string>();
  for (const shift of SHIFTS) {
    for (const alphabet of ['base64', 'base64url'] as const) {
      const text = base64Core(bytes, shift, alphabet);
      if (text.length > 0 && !seen.has(text)) {
        seen.add(text);
        out.push({ text, shift, alphabet });
      }
    }
  }
  return out;
}

/** JSON string escaping without the quotes (what JSON.stringify writes inside a string), and the
 * `\/` form some encoders use for `/`. */
export function jsonEscapings(text: string): string[] {
  const plain = JSON.stringify(text).slice(1, -1);
  return [...new Set([plain, plain.replace(/\//g, '\\/')])];
}

/** Percent-encodings: encodeURIComponent (upper-case hex, what most encoders write) and its lower-case twin. */
export function percentEncodings(text: string): string[] {
  const upper = encodeURIComponent(text);
  return [...new Set([upper, upper.replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase())])];
}

/** Decodes `%XX` sequences one level, leaving malformed ones (latin1: one char per byte). */
export const percentDecode = (text: string): string =>
  text.replace(/%([0-9A-Fa-f]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));

/** Decodes JSON `\uXXXX` and `\/` escapes one level. */
export const jsonUnescape = (text: string): string =>
  text.replace(/\\u([0-9A-Fa-f]{4})|\\\//g, (_m, h: string | undefined) =>
    h ? String.fromCharCode(parseInt(h, 16)) : '/',
  );
