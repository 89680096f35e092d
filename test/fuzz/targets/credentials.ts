// Proxy-Authorization (proxy/auth/identity.ts parseBasic): never throws; answers null (absent), 'malformed' or
// credentials; `Basic base64(user:pass)` round-trips for every user without a colon and every password, in
// either base64 alphabet and any scheme case; whatever it returns for junk is never an empty user.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseBasic } from '../../../proxy/auth/identity.js';
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
            assert.ok(r === 'malformed' || (typeof r === 'object' && r !== null && r.user.length > 0), `junk gave ${JSON.stringify(r)}`);
          }
        },
      ),
  },
];
