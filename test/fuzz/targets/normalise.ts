// Target normalisation (firewall/normalise.ts): every answer is a Host/Target or an EGR_INVALID_TARGET denial;
// what is accepted is canonical (normalising it again changes nothing) and agrees with the references a
// client or resolver would use: the WHATWG URL parser for names and IPv4 spellings, node:net and ipaddr.js
// (RFC 5952 text) for IPv6. A host the references read differently from Sluice is a policy bypass.
import assert from 'node:assert/strict';
import { isIP } from 'node:net';
import fc from 'fast-check';
import ipaddr from 'ipaddr.js';
import {
  type Host,
  formatAuthority,
  normaliseHost,
  parseAbsoluteTarget,
  parseAuthority,
} from '../../../firewall/normalise.js';
import { isDeny } from '../../../firewall/codes.js';
import { assertDeny, type FuzzTarget } from '../target.js';

/** What a WHATWG client (fetch, curl's URL API, browsers) connects to for `raw` as a URL host, or null. */
function whatwgHost(raw: string): string | null {
  let h: string;
  try {
    h = new URL(`http://${raw}/`).hostname;
  } catch {
    return null;
  }
  if (h.startsWith('[')) return h.slice(1, -1);
  return h.endsWith('.') ? h.slice(0, -1) : h;
}

function checkHost(raw: string, r: Host | ReturnType<typeof normaliseHost>): void {
  if (isDeny(r)) return assertDeny(r, ['EGR_INVALID_TARGET']);
  const h = r as Host;
  if (h.kind === 'ipv6') {
    assert.equal(isIP(h.host), 6);
    assert.equal(h.host, ipaddr.IPv6.parse(h.host).toRFC5952String(), 'IPv6 not in RFC 5952 form');
  } else if (h.kind === 'ipv4') {
    assert.equal(isIP(h.host), 4);
  } else {
    assert.equal(h.kind, 'name');
    assert.equal(isIP(h.host), 0);
    assert.ok(h.host.length >= 1 && h.host.length <= 253);
    assert.match(h.host, /^[a-z0-9_.-]+$/, 'name outside lowercase LDH');
    assert.ok(!h.host.endsWith('.') && !h.host.includes('..'));
  }
  // Canonical: normalising the canonical form again is the identity.
  const again = normaliseHost(h.kind === 'ipv6' ? `[${h.host}]` : h.host);
  assert.deepEqual(again, h, 'normalisation is not idempotent');
  // Differential: a WHATWG client reads the raw spelling as the same host.
  assert.equal(whatwgHost(raw), h.host, `WHATWG URL reads ${JSON.stringify(raw)} as another host`);
}

const hostAlphabet = fc.constantFrom(
  ...'abcxyzABCXYZ0123456789-._:[]%@/\\?#'.split(''),
  '0x',
  '0X',
  '00',
  '\u00fc',
  '\u0131',
  '\u212a',
  '\uff0e',
  '\u3002',
  '\u200b',
  '\u00ad',
  'xn--',
  ' ',
  '\t',
  '\x00',
  '\x7f',
  '\u0430',
);
const hostish = fc.oneof(
  fc.string({ unit: hostAlphabet, maxLength: 40 }),
  fc.string({ maxLength: 40 }),
  fc.domain(),
  fc.ipV4(),
  fc.ipV4Extended(),
  fc.ipV6().map((v) => `[${v}]`),
  fc.string({ unit: fc.constantFrom(...'0123456789abcdefABCDEF:.'.split('')), maxLength: 45 }).map((v) => `[${v}]`),
);

// Every IPv4 spelling the WHATWG parser accepts (RFC 3986 inet_aton forms): 1–4 parts, decimal, 0x hex,
// leading-zero octal; the last part fills the remaining bytes.
const ipv4Spelling = fc
  .tuple(
    fc.integer({ min: 0, max: 0xffffffff }),
    fc.integer({ min: 1, max: 4 }),
    fc.array(fc.constantFrom('dec', 'hex', 'HEX', 'oct'), { minLength: 4, maxLength: 4 }),
    fc.boolean(),
  )
  .map(([n, parts, radix, dot]) => {
    const bytes = [n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
    const values = [...bytes.slice(0, parts - 1), bytes.slice(parts - 1).reduce((a, b) => a * 256 + b, 0)];
    const text = values.map((v, i) =>
      radix[i] === 'hex'
        ? `0x${v.toString(16)}`
        : radix[i] === 'HEX'
          ? `0X${v.toString(16).toUpperCase()}`
          : radix[i] === 'oct'
            ? `0${v.toString(8)}`
            : String(v),
    );
    return { raw: text.join('.') + (dot ? '.' : ''), canonical: bytes.join('.') };
  });

const ipv6Spelling = fc
  .tuple(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.boolean(), fc.boolean())
  .map(([b, upper, full]) => {
    const addr = new ipaddr.IPv6([...b]);
    let text = full ? addr.toNormalizedString() : addr.toString();
    if (upper) text = text.toUpperCase();
    return { raw: `[${text}]`, canonical: addr.toRFC5952String() };
  });

export const normaliseTargets: FuzzTarget[] = [
  {
    name: 'normalise-host',
    weight: 14,
    sliceRuns: 2000,
    property: () => fc.property(hostish, (raw) => checkHost(raw, normaliseHost(raw))),
  },
  {
    name: 'normalise-ip-spellings',
    weight: 6,
    sliceRuns: 1000,
    property: () =>
      fc.property(fc.oneof(ipv4Spelling, ipv6Spelling), ({ raw, canonical }) => {
        const r = normaliseHost(raw);
        assert.ok(!isDeny(r), `${raw} refused`);
        assert.equal((r as Host).host, canonical);
        checkHost(raw, r);
      }),
  },
  {
    name: 'connect-authority',
    weight: 10,
    sliceRuns: 1500,
    property: () =>
      fc.property(
        fc.oneof(
          fc
            .tuple(
              hostish,
              fc.option(fc.oneof(fc.integer({ min: -1, max: 70000 }).map(String), fc.string({ maxLength: 7 })), {
                nil: undefined,
              }),
            )
            .map(([h, p]) => (p === undefined ? h : `${h}:${p}`)),
          fc.string({ maxLength: 60 }),
        ),
        (authority) => {
          const r = parseAuthority(authority);
          if (isDeny(r)) return assertDeny(r, ['EGR_INVALID_TARGET']);
          const { target, explicitPort } = r;
          assert.ok(explicitPort, 'CONNECT needs a port');
          assert.ok(Number.isInteger(target.port) && target.port >= 1 && target.port <= 65535);
          // Round trip: the logged/Host form parses back to the same target.
          assert.deepEqual(parseAuthority(formatAuthority(target)), { target, explicitPort: true });
          // Differential: a WHATWG client puts the same host and port on the wire.
          const u = new URL(`http://${authority}/`);
          assert.equal(whatwgHost(u.host.replace(/:\d+$/, '')), target.host);
          assert.equal(Number(u.port || 80), target.port);
        },
      ),
  },
  {
    name: 'absolute-target',
    weight: 8,
    sliceRuns: 1500,
    property: () =>
      fc.property(
        fc.oneof(
          fc
            .tuple(
              fc.constantFrom('http', 'https', 'HTTP', 'ftp', 'http:', 'ws'),
              hostish,
              fc.string({ unit: fc.constantFrom(...'/?#@:\\%.a1'.split('')), maxLength: 12 }),
            )
            .map(([s, h, rest]) => `${s}://${h}${rest}`),
          fc.webUrl({ withQueryParameters: true, withFragments: true }),
          fc.string({ maxLength: 60 }),
        ),
        (raw) => {
          const r = parseAbsoluteTarget(raw);
          if (isDeny(r)) return assertDeny(r, ['EGR_INVALID_TARGET']);
          assert.ok(r.path.startsWith('/') && !r.path.includes('#'));
          assert.doesNotMatch(r.path, /[\x00-\x20\x7f]/);
          // Differential: the WHATWG parser agrees on scheme, host and port of what Sluice will judge.
          const u = new URL(raw);
          assert.equal(u.protocol, `${r.scheme}:`);
          assert.equal(
            whatwgHost(u.host.replace(/:\d+$/, '')),
            r.target.host,
            `WHATWG reads another host in ${JSON.stringify(raw)}`,
          );
          assert.equal(Number(u.port || (r.scheme === 'https' ? 443 : 80)), r.target.port);
        },
      ),
  },
];
