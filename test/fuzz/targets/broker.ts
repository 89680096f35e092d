// Credential broker parsers (proxy/broker/): handles and sealed envelopes open only as what was issued or
// sealed — any other text, including any one-character change of a real one, is refused with a reason and
// never throws; strict base64url accepts exactly one spelling per byte string; the handle scanner finds a
// handle however a request carries it among the encodings it promises (raw, percent, JSON \u, base64).
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decodeBase64urlStrict } from '../../../proxy/broker/base64url.js';
import { HANDLE_PREFIX, handleAt, issueHandle, openHandle } from '../../../proxy/broker/handle.js';
import { findHandles } from '../../../proxy/broker/handle-scan.js';
import { openSealed, sealSecret } from '../../../proxy/broker/sealed.js';
import type { FuzzTarget } from '../target.js';

const KEY = Buffer.alloc(32, 7);
const OTHER_KEY = Buffer.alloc(32, 8);
const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

const name = fc.stringMatching(/^[a-z][a-z0-9_-]{0,20}$/);
const claims = fc.record({
  run: fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,40}$/),
  identity: name,
  credential: name,
  expS: fc.integer({ min: 0, max: 0xffffffff }),
});
const nonce = fc.uint8Array({ minLength: 12, maxLength: 12 }).map((b) => Buffer.from(b));
/** One character of `text` (after `from`) replaced by another; never the same text. */
const edit = fc.tuple(
  fc.nat(),
  fc.oneof(fc.constantFrom(...B64URL.split('')), fc.constantFrom('=', '.', ' ', '\n', '+', '/', '\u00e9')),
);
const applyEdit = (text: string, from: number, [at, ch]: [number, string]) => {
  const i = from + (at % (text.length - from));
  return text[i] === ch ? null : text.slice(0, i) + ch + text.slice(i + 1);
};

const percentAll = (s: string) =>
  [...Buffer.from(s)].map((b) => `%${b.toString(16).padStart(2, '0').toUpperCase()}`).join('');
const jsonEscapeAll = (s: string) => [...s].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`).join('');

export const brokerTargets: FuzzTarget[] = [
  {
    name: 'broker-handle',
    weight: 3,
    sliceRuns: 400,
    property: () =>
      fc.property(claims, nonce, edit, fc.string({ maxLength: 80 }), (c, n, e, junk) => {
        const h = issueHandle(KEY, c, n);
        assert.deepEqual(openHandle(KEY, h), { ok: true, claims: { ...c } });
        assert.deepEqual(openHandle(OTHER_KEY, h), { ok: false, reason: 'unauthentic' });
        // The scanner cuts out exactly the handle that would open, whatever surrounds it.
        assert.equal(handleAt(`${junk}${h}${junk}`, junk.length), h);
        const changed = applyEdit(h, HANDLE_PREFIX.length, e);
        if (changed !== null) assert.equal(openHandle(KEY, changed).ok, false, `an altered handle opened: ${changed}`);
        for (const text of [junk, HANDLE_PREFIX + junk, h + junk.slice(0, 3), h.slice(0, -1)]) {
          if (text === h) continue;
          const r = openHandle(KEY, text);
          assert.equal(r.ok, false);
          assert.ok(r.ok === false && ['malformed', 'unauthentic'].includes(r.reason));
        }
      }),
  },
  {
    name: 'broker-sealed',
    weight: 2,
    sliceRuns: 300,
    property: () =>
      fc.property(
        name,
        fc.uint8Array({ minLength: 1, maxLength: 200 }),
        nonce,
        edit,
        fc.string({ maxLength: 60 }),
        (cred, secret, n, e, junk) => {
          const s = sealSecret(KEY, cred, Buffer.from(secret), n);
          const opened = openSealed(KEY, cred, `\n ${s}\n`);
          assert.ok(opened.ok && opened.secret.equals(Buffer.from(secret)));
          assert.equal(openSealed(KEY, `${cred}x`, s).ok, false, 'opened under another credential');
          const changed = applyEdit(s, 'sluice-sealed.v1.'.length, e);
          if (changed !== null && changed.trim() !== s)
            assert.equal(openSealed(KEY, cred, changed).ok, false, `an altered envelope opened: ${changed}`);
          const r = openSealed(KEY, cred, `sluice-sealed.v1.${junk}`);
          assert.equal(r.ok, false);
        },
      ),
  },
  {
    name: 'broker-base64url',
    weight: 3,
    sliceRuns: 500,
    property: () =>
      fc.property(
        fc.uint8Array({ maxLength: 64 }),
        fc.string({ unit: fc.constantFrom(...(B64URL + '=+/ .').split('')), maxLength: 40 }),
        (bytes, text) => {
          const canonical = Buffer.from(bytes).toString('base64url');
          assert.deepEqual(decodeBase64urlStrict(canonical), Buffer.from(bytes));
          const d = decodeBase64urlStrict(text);
          // One spelling per byte string: what decodes re-encodes to the very same text.
          if (d !== null) assert.equal(d.toString('base64url'), text);
        },
      ),
  },
  {
    name: 'broker-handle-scan',
    weight: 2,
    sliceRuns: 300,
    property: () =>
      fc.property(
        claims,
        nonce,
        fc.constantFrom(
          'header-raw',
          'header-basic',
          'path-percent',
          'path-double-percent',
          'body-json',
          'body-raw',
          'none',
        ),
        fc.string({ maxLength: 30 }),
        fc.string({ maxLength: 30 }),
        (c, n, where, before, after) => {
          const h = issueHandle(KEY, c, n);
          const req = {
            host: 'api.test',
            rawHeaders: ['X-A', `${before}`],
            path: `/p?q=${encodeURIComponent(after)}`,
            bodyPrefix: null as Uint8Array | null,
          };
          if (where === 'header-raw') req.rawHeaders.push('X-Token', `${before} ${h} ${after}`);
          if (where === 'header-basic')
            req.rawHeaders.push('Authorization', `Basic ${Buffer.from(`user:${h}`).toString('base64')}`);
          if (where === 'path-percent') req.path = `/p?t=${percentAll(h)}`;
          if (where === 'path-double-percent') req.path = `/p?t=${percentAll(percentAll(h))}`;
          if (where === 'body-json')
            req.bodyPrefix = Buffer.from(JSON.stringify({ a: before }).slice(0, -1) + `,"t":"${jsonEscapeAll(h)}"}`);
          if (where === 'body-raw') req.bodyPrefix = Buffer.from(`${before}${h}`);
          const found = findHandles(req);
          if (where === 'none') {
            // Random text around no handle: the scanner may see a trace, never a whole handle.
            for (const s of found) assert.equal(s.handle, null);
            return;
          }
          if (where === 'body-raw' && Buffer.byteLength(before + h) > 1024) return;
          assert.ok(found.length > 0, `handle not found (${where})`);
          for (const s of found) if (s.handle !== null && s.encoding === 'raw') assert.equal(s.handle, h);
        },
      ),
  },
];
