// The SOCKS5 listener as deployed (createSocks5Listener → the real pipeline, stub dialer; see http-live.ts):
// greetings, RFC 1929 credentials and CONNECT requests, clean or mangled, with early data, written to a live
// listener. No crash, no hang; no tunnel is ever reported open (the stub dialer refuses every name); the
// dialer is reached only with valid credentials, for a CONNECT, to the one host:port tunnels are granted for,
// and for unmangled inputs only when decide() allows what a WHATWG client reads in the domain bytes.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isDeny } from '../../../firewall/codes.js';
import { normaliseHost } from '../../../firewall/normalise.js';
import { type Policy, decide, rightsFor } from '../../../firewall/policy.js';
import { type Live, PASSWORD, exchange, startLive } from './http-live.js';
import type { FuzzTarget } from '../target.js';

const DOMAINS = [
  'tunnel.test',
  'TUNNEL.Test.',
  'tunnel\uff0etest',
  'allowed.test',
  'evil.test',
  'tunnel.test.evil.test',
  'tunnel.test:443',
  'tunnel.test\u0000',
  '127.0.0.1',
  '::1',
  '[::1]',
  '0x7f.1',
  'tunnel%2etest',
  'evil.test@tunnel.test',
  'tunnel.test/x',
  'xn--tunnel-.test',
  ' tunnel.test',
];
const credentials = {
  good: ['agent', PASSWORD],
  wrong: ['agent', 'wrong-password-1'],
  unknown: ['nobody', PASSWORD],
  empty: ['agent', ''],
} as const;

const conversation = fc.record({
  greeting: fc.constantFrom<number[]>([5, 1, 2], [5, 2, 0, 2], [5, 1, 0], [4, 1, 0, 80], [5, 0], [5, 3, 2, 2, 2]),
  auth: fc.oneof(
    fc.constantFrom(...(Object.keys(credentials) as (keyof typeof credentials)[])),
    fc.constant('latin1' as const),
  ),
  authVersion: fc.constantFrom(1, 1, 1, 5),
  cmd: fc.constantFrom(1, 1, 1, 2, 3, 9),
  address: fc.oneof(
    fc.constantFrom(...DOMAINS).map((d) => ({ atyp: 3, bytes: [...Buffer.from(d)], domain: d as string | null })),
    fc
      .constantFrom('tunnel.test', 'TUNNEL.Test.', 'tunnel\uff0etest')
      .map((d) => ({ atyp: 3, bytes: [...Buffer.from(d)], domain: d as string | null })),
    fc.constantFrom([127, 0, 0, 1], [8, 8, 8, 8], [10, 0, 0, 1]).map((b) => ({ atyp: 1, bytes: b, domain: null })),
    fc.constant({ atyp: 4, bytes: [...new Array<number>(15).fill(0), 1], domain: null }),
    fc.constant({ atyp: 7, bytes: [1, 2, 3, 4], domain: null }),
  ),
  port: fc.constantFrom(443, 443, 80, 0, 8443, 65535),
  early: fc.oneof(
    fc.constant<number[]>([]),
    fc.uint8Array({ maxLength: 40 }).map((b) => [...b]),
    fc.constant([22, 3, 1, 0, 5, 1, 0, 0, 1, 0]),
  ),
  clean: fc.boolean(),
});
type Conversation = typeof conversation extends fc.Arbitrary<infer T> ? T : never;

function render(c: Conversation): Buffer {
  const greeting = c.clean ? [5, 1, 2] : c.greeting;
  const auth = c.clean ? 'good' : c.auth;
  const [user, pass] = auth === 'latin1' ? ['ag\u00e9nt', 'p\u00e4ss'] : credentials[auth];
  const u = auth === 'latin1' ? Buffer.from(user, 'latin1') : Buffer.from(user);
  const p = auth === 'latin1' ? Buffer.from(pass, 'latin1') : Buffer.from(pass);
  const userpass = [c.clean ? 1 : c.authVersion, u.length, ...u, p.length, ...p];
  const addr = c.address.atyp === 3 ? [c.address.bytes.length, ...c.address.bytes] : c.address.bytes;
  const port = c.clean ? 443 : c.port;
  const request = [5, c.clean ? 1 : c.cmd, 0, c.address.atyp, ...addr, port >> 8, port & 0xff];
  return Buffer.from([...greeting, ...userpass, ...request, ...c.early]);
}

/** decide() for the tunnel a WHATWG client means by the request's address, or null when it reads none. */
function referenceAllows(policy: Policy, c: Conversation): boolean | null {
  if (c.address.domain === null) return false;
  let hostname: string;
  try {
    hostname = new URL(`http://${c.address.domain}/`).hostname;
  } catch {
    return null;
  }
  const host = normaliseHost(hostname);
  if (isDeny(host)) return false;
  const port = c.clean ? 443 : c.port;
  return (
    decide(policy, { killSwitch: false }, rightsFor(policy, 'agent')!, { kind: 'tunnel', target: { ...host, port } })
      .verdict === 'allow'
  );
}

const SUCCESS_REPLY = Buffer.from([5, 0, 0, 1, 0, 0, 0, 0, 0, 0]);

let live: Live | null = null;
const counts = { runs: 0, passedDecide: 0, checkedAgainstReference: 0 };

export const socks5LiveTargets: FuzzTarget[] = [
  {
    name: 'socks5-live',
    weight: 2,
    sliceRuns: 100,
    property: async () => {
      live = await startLive();
      const l = live;
      const mutation = fc.oneof(
        { weight: 3, arbitrary: fc.constant<[number, number][]>([]) },
        {
          weight: 1,
          arbitrary: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 3 }),
        },
      );
      return fc.asyncProperty(conversation, mutation, async (c, flips) => {
        const bytes = render(c);
        for (const [at, v] of flips) bytes[at % bytes.length] = v;
        l.take();
        const text = await exchange(l.socksPort, bytes, 5000);
        assert.ok(text !== null, 'no answer and no close within 5 s (hang)');
        counts.runs++;
        assert.equal(Buffer.from(text, 'latin1').indexOf(SUCCESS_REPLY), -1, 'a tunnel was reported open');
        const { hosts, passed } = l.take();
        assert.equal(passed.length, hosts.length, 'the dialer was reached other than through decide()');
        assert.ok(passed.length <= 1, 'more than one request on one SOCKS5 connection');
        for (const p of passed) {
          assert.equal(p.identity, 'agent');
          assert.equal(p.host, 'tunnel.test', `a tunnel to ${String(p.host)}, which no tunnel grant names`);
          assert.equal(p.port, 443);
        }
        counts.passedDecide += passed.length;
        if (passed.length > 0 && flips.length === 0) {
          counts.checkedAgainstReference++;
          assert.ok(
            c.clean || (c.auth === 'good' && c.cmd === 1 && c.authVersion === 1),
            'reached the dialer without valid credentials or CONNECT',
          );
          assert.notEqual(
            referenceAllows(l.policy, c),
            false,
            'allowed a tunnel that decide() denies for what a WHATWG client means by it',
          );
        }
      });
    },
    stats: () =>
      `${counts.runs} connections, ${counts.passedDecide} tunnels allowed by decide() (reached the dialer), ${counts.checkedAgainstReference} checked against the reference`,
    close: async () => {
      await live?.close();
      live = null;
    },
  },
];
