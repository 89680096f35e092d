// "Never returned": the streaming scanner, byte-exact against a one-shot reference, across every chunk
// boundary, and through compressed bodies.
import { randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { brotliCompressSync, deflateSync, gzipSync } from 'node:zlib';
import t from 'tap';
import { base64Core } from '../../proxy/broker/encodings.js';
import { bodyScrubStages, decodingFor } from '../../proxy/broker/response-body.js';
import {
  SecretScanner,
  patternsForSecret,
  scrubHeaders,
  scrubValue,
  secretForms,
} from '../../proxy/broker/secret-scanner.js';

const SECRET = Buffer.from('ghp_R8x2Kq9LmN4pZ7vB1cD3eF5gH6jK0aS2dF4g');
const HANDLE = 'sluice_h1_ThisStandsInForTheHandle';
const patterns = patternsForSecret(SECRET, HANDLE);

/** Runs `input` through a fresh scanner in the given chunk sizes. */
function stream(input: Buffer, sizes: (i: number) => number): { out: Buffer; replaced: number } {
  const s = new SecretScanner(patterns);
  const parts: Buffer[] = [];
  for (let i = 0, at = 0; at < input.length; i++) {
    const n = Math.max(1, sizes(i));
    for (const b of s.write(input.subarray(at, at + n))) parts.push(Buffer.from(b));
    at += n;
  }
  for (const b of s.end()) parts.push(Buffer.from(b));
  return { out: Buffer.concat(parts), replaced: s.replaced };
}

const decodesWithout = (text: string) => {
  for (const alphabet of ['base64', 'base64url'] as const) {
    for (let o = 0; o < 4; o++)
      t.notOk(Buffer.from(text.slice(o), alphabet).includes(SECRET), `no secret in base64 (${alphabet}, offset ${o})`);
  }
};

t.test('the forms of a secret', async (t) => {
  const forms = secretForms(SECRET).map((f) => f.bytes.toString());
  t.ok(forms.includes(SECRET.toString()));
  for (const shift of [0, 1, 2] as const)
    t.ok(forms.includes(base64Core(SECRET, shift, 'base64')), `base64 at alignment ${shift}`);
  const odd = secretForms(Buffer.from('p@ss/w"rd\\with+odd&chars')).map((f) => f.bytes.toString());
  for (const f of [
    'p%40ss%2Fw%22rd%5Cwith%2Bodd%26chars',
    'p%40ss%2fw%22rd%5cwith%2bodd%26chars',
    'p@ss/w\\"rd\\\\with+odd&chars',
    'p@ss\\/w\\"rd\\\\with+odd&chars',
  ]) {
    t.ok(odd.includes(f), `has ${f}`);
  }
});

t.test('one shot: every encoding is replaced, nothing else is touched', async (t) => {
  const plain = 'nothing to see here, not even ghp_ or sluice';
  t.same(scrubValue(patterns, plain), { value: plain, replaced: 0 });
  t.equal(scrubValue(patterns, `token=${SECRET}`).value, `token=${HANDLE}`);
  t.equal(scrubValue(patterns, `{"t":"${SECRET}"}`).value, `{"t":"${HANDLE}"}`);
  for (const prefix of ['', 'a', 'ab', 'abc']) {
    for (const alphabet of ['base64', 'base64url'] as const) {
      const enc = Buffer.from(`${prefix}user:${SECRET}:tail`).toString(alphabet);
      const r = scrubValue(patterns, `x ${enc} y`);
      t.equal(r.replaced, 1, `${alphabet} with ${prefix.length} bytes before`);
      t.equal(r.value.length, `x ${enc} y`.length, 'base64 keeps its length');
      decodesWithout(r.value.slice(2, -2));
      const back = Buffer.from(r.value.slice(2, -2), alphabet).toString('latin1');
      t.match(back, /\*{30,}/, 'and decodes to stars where the secret was');
    }
  }
  const headers = scrubHeaders(patterns, [
    'X-Echo',
    `Bearer ${SECRET}`,
    'Location',
    `https://x/?t=${SECRET}`,
    'Date',
    'now',
  ]);
  t.same(headers.rawHeaders, ['X-Echo', `Bearer ${HANDLE}`, 'Location', `https://x/?t=${HANDLE}`, 'Date', 'now']);
  t.equal(headers.replaced, 2);
  const untouched = ['A', 'b'];
  t.equal(scrubHeaders(patterns, untouched).rawHeaders, untouched, 'the same array when nothing matched');
});

t.test('streaming equals one shot across every chunk boundary', async (t) => {
  const doc = Buffer.from(
    `head ${SECRET} mid ${Buffer.from(`u:${SECRET}`).toString('base64')} ${encodeURIComponent(`a/${SECRET}`)} ${SECRET}${SECRET} end`,
  );
  const expected = scrubValue(patterns, doc.toString('latin1')).value;
  t.notMatch(expected, /ghp_R8x2/);
  // Two chunks, split at every byte.
  for (let cut = 0; cut <= doc.length; cut++) {
    const r = stream(doc, (i) => (i === 0 ? cut || doc.length : doc.length));
    if (r.out.toString('latin1') !== expected) {
      t.fail(`split at ${cut}`);
      return;
    }
  }
  t.pass('split at every offset');
  t.equal(stream(doc, () => 1).out.toString('latin1'), expected, 'one byte at a time');
  // Chunks shorter than the hold-back are joined to it; longer ones are searched in place after the
  // junction: both paths, and every mix of them.
  for (const spread of [13, 130]) {
    for (let seed = 0; seed < 200; seed++) {
      const sizes = Array.from({ length: 400 }, (_, i) => ((seed * 7919 + i * 104729) % spread) + 1);
      if (stream(doc, (i) => sizes[i % sizes.length]!).out.toString('latin1') !== expected)
        t.fail(`random chunking ${seed} (up to ${spread})`);
    }
  }
  t.pass('400 random chunkings');
  const big = Buffer.concat(Array.from({ length: 50 }, () => doc));
  const bigExpected = scrubValue(patterns, big.toString('latin1')).value;
  for (const size of [53, 64, 100, 1000, 4096])
    t.equal(stream(big, () => size).out.toString('latin1'), bigExpected, `${size}-byte chunks`);
});

t.test("fuzz: random documents seeded with the secret's forms, random chunking, equal to one shot", async (t) => {
  const forms = secretForms(SECRET).map((f) => f.bytes);
  let bad = 0;
  for (let round = 0; round < 150; round++) {
    const parts: Buffer[] = [];
    for (let i = 0; i < 20; i++) {
      parts.push(randomBytes(Math.floor(Math.random() * 300)));
      // Whole forms, and halves of forms back to back (near misses).
      const f = forms[Math.floor(Math.random() * forms.length)]!;
      parts.push(Math.random() < 0.7 ? f : f.subarray(0, Math.floor(f.length / 2)));
    }
    const doc = Buffer.concat(parts);
    const expected = scrubValue(patterns, doc.toString('latin1')).value;
    const got = stream(doc, () => 1 + Math.floor(Math.random() * 200)).out.toString('latin1');
    if (got !== expected || got.includes(SECRET.toString())) bad++;
  }
  t.equal(bad, 0);
});

t.test('base64 at every offset inside a large body, streamed', async (t) => {
  for (let pad = 0; pad < 6; pad++) {
    for (const alphabet of ['base64', 'base64url'] as const) {
      const inner = Buffer.concat([randomBytes(1000 + pad), SECRET, randomBytes(777)]);
      const body = Buffer.from(`{"blob":"${inner.toString(alphabet)}"}`);
      const r = stream(body, (i) => 61 + (i % 5));
      t.equal(r.replaced, 1, `${alphabet}, ${pad} bytes before`);
      const text = r.out.toString('latin1');
      const blob = text.slice(9, -2);
      t.notOk(Buffer.from(blob, alphabet).includes(SECRET), 'the decoded blob no longer holds the secret');
    }
  }
});

t.test('bounded memory: at most the longest pattern − 1 bytes held back', async (t) => {
  const s = new SecretScanner(patterns);
  const longest = Math.max(...patterns.map((p) => p.bytes.length));
  t.equal(s.holdBack, longest - 1);
  const chunk = randomBytes(4096)
    .toString('base64')
    .replace(/[A-Za-z0-9+/=]/g, (c) => (c === 'g' ? 'G' : c)); // no 'ghp_' by luck
  let held = 0;
  let out = 0;
  for (let i = 0; i < 2000; i++) {
    const b = Buffer.from(chunk.slice(0, 1 + (i % 97)));
    held += b.length;
    for (const o of s.write(b)) {
      held -= o.length;
      out += o.length;
    }
    if (held > longest - 1) {
      t.fail(`held ${held} bytes`);
      return;
    }
  }
  for (const o of s.end()) {
    held -= o.length;
    out += o.length;
  }
  t.equal(held, 0, 'everything comes out at the end');
  t.ok(out > 0);
});

async function throughStages(stages: ReturnType<typeof bodyScrubStages>, input: Buffer, chunk = 100): Promise<Buffer> {
  const parts: Buffer[] = [];
  const chunks: Buffer[] = [];
  for (let i = 0; i < input.length; i += chunk) chunks.push(input.subarray(i, i + chunk));
  await pipeline(
    Readable.from(chunks),
    ...(stages as [ReturnType<typeof bodyScrubStages>[0]]),
    new Writable({
      write(c: Buffer, _e, done) {
        parts.push(c);
        done();
      },
    }),
  );
  return Buffer.concat(parts);
}

t.test('compressed responses: decoded, scanned, bounded', async (t) => {
  t.same(decodingFor(undefined), { decode: null });
  t.same(decodingFor('identity'), { decode: null });
  t.same(decodingFor('GZIP'), { decode: 'gzip' });
  t.same(decodingFor('x-gzip'), { decode: 'gzip' });
  t.same(decodingFor(['br']), { decode: 'br' });
  t.same(decodingFor('deflate'), { decode: 'deflate' });
  t.match(decodingFor('zstd'), { refuse: /cannot decode/ });
  t.match(decodingFor('gzip, br'), { refuse: /stacked/ });
  t.match(decodingFor(['gzip', 'gzip']), { refuse: /stacked/ });
  const body = Buffer.from(
    `{"echo":"Bearer ${SECRET}","b64":"${Buffer.from(`x:${SECRET}`).toString('base64')}"}`.repeat(50),
  );
  for (const [name, encode] of [
    ['gzip', gzipSync],
    ['deflate', deflateSync],
    ['br', brotliCompressSync],
  ] as const) {
    const s = new SecretScanner(patterns);
    const out = await throughStages(bodyScrubStages(s, name), encode(body), 37);
    t.notOk(out.includes(SECRET), `${name}: no secret`);
    t.equal(s.replaced, 100, `${name}: every occurrence replaced`);
    t.ok(out.toString().includes(`Bearer ${HANDLE}`), `${name}: the handle is back`);
  }
  const bomb = gzipSync(Buffer.alloc(64 * 1024 * 1024));
  t.ok(bomb.length < 100_000, 'a 64 MiB bomb in under 100 KB');
  await t.rejects(
    throughStages(
      bodyScrubStages(new SecretScanner(patterns), 'gzip', { maxRatio: 100, floorBytes: 1024 * 1024 }),
      bomb,
      1000,
    ),
    { name: 'DecodedTooLarge' },
  );
  await t.rejects(
    throughStages(bodyScrubStages(new SecretScanner(patterns), 'gzip'), Buffer.from('not gzip at all')),
    'a broken encoding is an error, not a pass-through',
  );
  const plain = await throughStages(bodyScrubStages(new SecretScanner(patterns), null), body, 7);
  t.notOk(plain.includes(SECRET));
});
