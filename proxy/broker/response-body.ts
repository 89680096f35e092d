// Compressed responses. A scanner that sees gzip sees noise, so the request to a credential's hosts asks for
// `Accept-Encoding: identity` (request-check.ts) and nearly every server answers unencoded. One that encodes
// anyway is decoded here, streaming, scanned, and sent on decoded (Content-Encoding and Content-Length
// dropped), with the decoded size bounded relative to the encoded one so a decompression bomb costs a
// bounded amount of CPU before the response is cut. Codings Node cannot decode (zstd on Node 20, compress,
// stacked codings) are refused: an unscanned body from a credential's host never reaches the workload.
import type { Transform } from 'node:stream';
import {
  type BrotliDecompress,
  type Gunzip,
  type Inflate,
  createBrotliDecompress,
  createGunzip,
  createInflate,
} from 'node:zlib';
import { Transform as TransformStream } from 'node:stream';
import { type SecretScanner, createScrubStream } from './secret-scanner.js';

export type Decoding = 'gzip' | 'deflate' | 'br' | null;

/** How a response body with this Content-Encoding is scanned, or why it cannot be. */
export function decodingFor(
  contentEncoding: string | readonly string[] | undefined,
): { readonly decode: Decoding } | { readonly refuse: string } {
  const values =
    contentEncoding === undefined ? [] : typeof contentEncoding === 'string' ? [contentEncoding] : contentEncoding;
  const codings = values
    .flatMap((v) => v.split(','))
    .map((v) => v.trim().toLowerCase())
    .filter((v) => v !== '' && v !== 'identity');
  if (codings.length === 0) return { decode: null };
  if (codings.length > 1) return { refuse: 'stacked content codings cannot be scanned' };
  switch (codings[0]) {
    case 'gzip':
    case 'x-gzip':
      return { decode: 'gzip' };
    case 'deflate':
      return { decode: 'deflate' };
    case 'br':
      return { decode: 'br' };
    default:
      return { refuse: 'a content coding Sluice cannot decode cannot be scanned' };
  }
}

/** Response headers that no longer hold once the body is decoded or rewritten (lower-case). The body's
 * length changes with every replacement, so it is re-framed (chunked) by the server side. */
export const HEADERS_INVALIDATED_BY_SCRUB = Object.freeze([
  'content-length',
  'content-encoding',
  'content-md5',
  'digest',
  'repr-digest',
  'content-digest',
  'etag',
]);

export interface BodyScrubOptions {
  /** Decoded bytes allowed per encoded byte, beyond `floorBytes` (a decompression bomb's bound). */
  readonly maxRatio?: number;
  readonly floorBytes?: number;
}

export class DecodedTooLarge extends Error {
  override readonly name = 'DecodedTooLarge';
  constructor() {
    super('the decoded response grew beyond its bound relative to the encoded one');
  }
}

function bounded(opts: BodyScrubOptions, counter: { encoded: number }): Transform {
  const maxRatio = opts.maxRatio ?? 200;
  const floor = opts.floorBytes ?? 1024 * 1024;
  let decoded = 0;
  return new TransformStream({
    transform(chunk: Buffer, _e, done) {
      decoded += chunk.length;
      if (decoded > floor + counter.encoded * maxRatio) return done(new DecodedTooLarge());
      done(null, chunk);
    },
  });
}

/** The stages a response body goes through, in order: [count → decoder → bound →] scanner. The caller puts
 * them in its stream.pipeline (which carries backpressure and errors through them). An error — a broken or
 * bombing encoding — must cut the response, never let it through unscanned. */
export function bodyScrubStages(scanner: SecretScanner, decode: Decoding, opts: BodyScrubOptions = {}): Transform[] {
  const scrub = createScrubStream(scanner);
  if (decode === null) return [scrub];
  const counter = { encoded: 0 };
  const count = new TransformStream({
    transform(chunk: Buffer, _e, done) {
      counter.encoded += chunk.length;
      done(null, chunk);
    },
  });
  const decoder: Gunzip | Inflate | BrotliDecompress =
    decode === 'gzip' ? createGunzip() : decode === 'deflate' ? createInflate() : createBrotliDecompress();
  return [count, decoder, bounded(opts, counter), scrub];
}
