// Proxy-Authorization (proxy/auth/identity.ts parseBasic): never throws; answers null (absent), 'malformed' or
// credentials; `Basic base64(user:pass)` round-trips for every user without a colon and every password, in
// either base64 alphabet and any scheme case; whatever it returns for junk is never an empty user.
// Run tokens (proxy/auth/run-token.ts): accepted only exactly as issued — any one-character change, padding or
// a neighbouring spelling of the same bytes is invalid.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseBasic } from '../../../proxy/auth/identity.js';
import { issueToken, verifyToken } from '../../../proxy/auth/run-token.js';
import type { FuzzTarget } from '../target.js';

export const credentialTargets: FuzzTarget[] = [
  {
    name: 'proxy-authorization',
    weight: 3,
    sliceRuns: 500,
    property: () =>
      fc.property(
        fc.string({ unit: 'grapheme', minLength: 1, maxLength: 20 }).filter((u) => !u.includes(':')),
        fc.string({ unit: 'grapheme', maxLength: 40 }),
        fc.constantFrom('Basic', 'basic', 'BASIC'),
        fc.constantFrom('base64', 'base64url'),
        fc.string({ maxLength: 60 }),
        (user, pass, scheme, alphabet, junk) => {
          const header = `${scheme} ${Buffer.from(`${user}:${pass}`).toString(alphabet as BufferEncoding)}`;
          assert.deepEqual(parseBasic(header), { user, pass });
          for (const h of [junk, `Basic ${junk}`, `Basic  ${junk} `]) {
            const r = parseBasic(h);
            assert.ok(
              r === 'malformed' || (typeof r === 'object' && r !== null && r.user.length > 0),
              `junk gave ${JSON.stringify(r)}`,
            );
          }
        },
      ),
  },
  {
    name: 'run-token',
    weight: 2,
    sliceRuns: 300,
    property: () =>
      fc.property(
        fc.stringMatching(/^[a-z][a-z0-9_-]{0,12}$/),
        fc.integer({ min: 1, max: 86400 }),
        fc.option(fc.array(fc.stringMatching(/^[a-z]{1,8}$/), { maxLength: 3 }), { nil: undefined }),
        fc.tuple(
          fc.nat(),
          fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=.+/ '.split('')),
        ),
        fc.constantFrom('', '=', '==', ' ', '.', '\n'),
        (sub, ttlS, int, [at, ch], suffix) => {
          const key = Buffer.alloc(32, 3);
          const nowS = 1_800_000_000;
          const token = issueToken(key, { sub, ttlS, nowS, ...(int ? { int } : {}) });
          const ok = verifyToken(key, token, nowS);
          assert.ok(ok.ok && ok.claims.sub === sub);
          assert.deepEqual(verifyToken(key, token, nowS + ttlS), { ok: false, reason: 'expired' });
          const i = 'sluice.v1.'.length + (at % (token.length - 'sluice.v1.'.length));
          const changed = token.slice(0, i) + ch + token.slice(i + 1);
          if (changed !== token)
            assert.equal(verifyToken(key, changed, nowS).ok, false, `an altered token verified: ${changed}`);
          if (suffix)
            assert.equal(
              verifyToken(key, token + suffix, nowS).ok,
              false,
              `token + ${JSON.stringify(suffix)} verified`,
            );
        },
      ),
  },
];
