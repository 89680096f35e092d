// Inside an inspected tunnel (proxy/inspection/session.ts checkAuthority): a request may only name the tunnel's
// own host and port, by Host or by an absolute-form target. Never throws; `ok` only when a WHATWG client
// reads the same authority as the tunnel's (fail closed: any doubt is a 421, never a request to another host).
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import fc from 'fast-check';
import { checkAuthority } from '../../../proxy/inspection/session.js';
import type { FuzzTarget } from '../target.js';

const FACTS = { host: 'api.test', port: 443, tunnelId: 'fuzz' };
const spellings = fc.constantFrom(
  'api.test',
  'API.test.',
  'api.test:443',
  'api.test:0443',
  'api.test:8443',
  'api.test:80',
  'evil.test',
  'api.test@evil.test',
  'evil.test@api.test',
  'api.test.evil.test',
  'api%2etest',
  'api\uff0etest',
  '',
  ':443',
  'api.test:',
  'api.test:443:443',
  '[::1]',
  'api.test#x',
  'api.test\\evil.test',
  'api.test/x',
);
const authority = fc.oneof(spellings, fc.string({ maxLength: 20 }));
const req = fc.record({
  absolute: fc.option(
    fc.tuple(fc.constantFrom('https', 'http', 'HTTPS', 'wss'), authority, fc.constantFrom('/', '/x?y', '', '#f')),
    { nil: null },
  ),
  path: fc.constantFrom('/', '/a', '*', 'api.test:443', '//evil.test/'),
  hosts: fc.array(authority, { maxLength: 2 }),
});

/** How a WHATWG client reads `https://<authority>`: host and port, or null when it cannot. */
function reference(a: string): { host: string; port: number } | null {
  try {
    const u = new URL(`https://${a}/`);
    if (u.username || u.password || u.pathname !== '/' || u.search || u.hash) return null;
    return { host: u.hostname.replace(/\.$/, ''), port: Number(u.port || 443) };
  } catch {
    return null;
  }
}

export const inspectionTargets: FuzzTarget[] = [
  {
    name: 'inspection-authority',
    weight: 3,
    sliceRuns: 500,
    property: () =>
      fc.property(req, (r) => {
        const url = r.absolute ? `${r.absolute[0]}://${r.absolute[1]}${r.absolute[2]}` : r.path;
        const rawHeaders = r.hosts.flatMap((h) => ['Host', h]);
        const fake = {
          url,
          rawHeaders,
          headers: r.hosts.length ? { host: r.hosts[0] } : {},
        } as unknown as IncomingMessage;
        const { authority: a, path } = checkAuthority(fake, FACTS);
        assert.equal(typeof path, 'string');
        if (!a.ok) {
          assert.ok(['missing', 'multiple', 'invalid', 'other-host'].includes(a.reason));
          return;
        }
        if (url.startsWith('/')) {
          assert.equal(r.hosts.length, 1);
          assert.deepEqual(
            reference(r.hosts[0]!),
            { host: FACTS.host, port: FACTS.port },
            `Host ${JSON.stringify(r.hosts[0])} passed`,
          );
        } else {
          assert.equal(r.absolute![0].toLowerCase(), 'https');
          const u = new URL(url);
          assert.equal(u.username + u.password, '', `target with userinfo ${JSON.stringify(url)} passed`);
          assert.deepEqual(
            { host: u.hostname.replace(/\.$/, ''), port: Number(u.port || 443) },
            { host: FACTS.host, port: FACTS.port },
            `target ${JSON.stringify(url)} passed`,
          );
        }
      }),
  },
];
