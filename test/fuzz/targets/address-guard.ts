// The address guard (firewall/ranges.ts classifyAddress, firewall/address-guard.ts checkAddress): every spelling
// of one address is judged alike (dotted, compressed, full, upper case, IPv4-mapped in both notations), and an
// address judged public is in none of the IANA special-purpose ranges — checked with node:net's BlockList, an
// arithmetic independent of Sluice's prefix code. Fail closed: only a public address passes a guard without
// exceptions; anything else is a denial with an address code.
import assert from 'node:assert/strict';
import { BlockList, isIP } from 'node:net';
import fc from 'fast-check';
import ipaddr from 'ipaddr.js';
import { isDeny } from '../../../firewall/codes.js';
import { checkAddress, compileGuard } from '../../../firewall/address-guard.js';
import { classifyAddress } from '../../../firewall/ranges.js';
import { assertDeny, type FuzzTarget } from '../target.js';

// IANA IPv4 / IPv6 special-purpose registries, multicast and the deprecated ranges (as CONTRACT §6 lists them).
const V4 = [
  '0.0.0.0/8',
  '10.0.0.0/8',
  '100.64.0.0/10',
  '127.0.0.0/8',
  '169.254.0.0/16',
  '172.16.0.0/12',
  '192.0.0.0/24',
  '192.0.2.0/24',
  '192.31.196.0/24',
  '192.52.193.0/24',
  '192.88.99.0/24',
  '192.168.0.0/16',
  '192.175.48.0/24',
  '198.18.0.0/15',
  '198.51.100.0/24',
  '203.0.113.0/24',
  '224.0.0.0/4',
  '240.0.0.0/4',
];
const V6 = [
  '::/96',
  '::ffff:0:0:0/96',
  '64:ff9b::/96',
  '64:ff9b:1::/48',
  '100::/64',
  '100:0:0:1::/64',
  '2001::/23',
  '2001:db8::/32',
  '2002::/16',
  '2620:4f:8000::/48',
  '3fff::/20',
  '5f00::/16',
  'fc00::/7',
  'fe80::/10',
  'fec0::/10',
  'ff00::/8',
];
const special = new BlockList();
for (const c of V4) special.addSubnet(c.split('/')[0]!, Number(c.split('/')[1]), 'ipv4');
for (const c of V6) special.addSubnet(c.split('/')[0]!, Number(c.split('/')[1]), 'ipv6');

const GUARD = compileGuard(
  { addressGuard: { allow: [], deny: [] }, globalDeny: { hosts: [], cidrs: [] } } as never,
  [],
);

/** Bytes near the edges of a special range (or anywhere), so that off-by-one prefix arithmetic shows. */
const v4Bytes = fc.oneof(
  fc.uint8Array({ minLength: 4, maxLength: 4 }),
  fc.tuple(fc.constantFrom(...V4), fc.boolean(), fc.integer({ min: -2, max: 2 })).map(([c, end, d]) => {
    const [net, bits] = [c.split('/')[0]!, Number(c.split('/')[1])];
    let n = ipaddr.IPv4.parse(net)
      .toByteArray()
      .reduce((a, b) => a * 256 + b, 0);
    if (end) n += 2 ** (32 - bits) - 1;
    n = (n + d + 2 ** 32) % 2 ** 32;
    return Uint8Array.from([n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]);
  }),
);
const v6Bytes = fc.oneof(
  fc.uint8Array({ minLength: 16, maxLength: 16 }),
  fc
    .tuple(fc.constantFrom(...V6), fc.boolean(), fc.uint8Array({ minLength: 16, maxLength: 16 }))
    .map(([c, end, noise]) => {
      const [net, bits] = [c.split('/')[0]!, Number(c.split('/')[1])];
      const b = Uint8Array.from(ipaddr.IPv6.parse(net).toByteArray());
      // Keep the prefix, fill the host bits with all-ones (end), or noise.
      for (let bit = bits; bit < 128; bit++) {
        const on = end ? true : ((noise[bit >> 3]! >> (7 - (bit & 7))) & 1) === 1;
        if (on) b[bit >> 3] = b[bit >> 3]! | (0x80 >> (bit & 7));
      }
      return b;
    }),
  v4Bytes.map((v4) => Uint8Array.from([...new Array<number>(10).fill(0), 255, 255, ...v4])),
);

function spellings(bytes: Uint8Array): string[] {
  if (bytes.length === 4) {
    const d = [...bytes].join('.');
    const hex = (i: number) => ((bytes[i]! << 8) | bytes[i + 1]!).toString(16);
    return [d, `::ffff:${d}`, `::FFFF:${d}`, `::ffff:${hex(0)}:${hex(2)}`, `0:0:0:0:0:ffff:${d}`];
  }
  const a = new ipaddr.IPv6([...bytes]);
  const full = [...bytes].reduce(
    (acc, b, i) => acc + b.toString(16).padStart(2, '0') + (i % 2 === 1 && i < 15 ? ':' : ''),
    '',
  );
  return [a.toRFC5952String(), a.toNormalizedString(), full, a.toRFC5952String().toUpperCase()];
}

function inSpecial(bytes: Uint8Array): boolean {
  if (bytes.length === 4) return special.check([...bytes].join('.'), 'ipv4');
  const mapped = bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 255 && bytes[11] === 255;
  if (mapped) return special.check([...bytes.slice(12)].join('.'), 'ipv4');
  return special.check(new ipaddr.IPv6([...bytes]).toNormalizedString(), 'ipv6') || (bytes[0]! & 0xe0) !== 0x20; // outside 2000::/3
}

export const addressGuardTargets: FuzzTarget[] = [
  {
    name: 'address-guard',
    weight: 6,
    sliceRuns: 1000,
    property: () =>
      fc.property(fc.oneof(v4Bytes, v6Bytes), (bytes) => {
        const texts = spellings(bytes);
        const classes = texts.map((t) => {
          assert.ok(isIP(t) !== 0, `reference says ${t} is no address`);
          const c = classifyAddress(t);
          assert.ok(c, `${t} not classified`);
          return c.class;
        });
        assert.ok(
          classes.every((c) => c === classes[0]),
          `spellings judged differently: ${texts.map((t, i) => `${t}=${classes[i]}`).join(', ')}`,
        );
        if (classes[0] === 'public')
          assert.ok(!inSpecial(bytes), `${texts[0]} judged public, but it is in a special-purpose range`);
        for (const t of texts) {
          const r = checkAddress(GUARD, t, 'fuzz.test');
          if (classes[0] === 'public') assert.ok(!isDeny(r), `${t}: public but denied`);
          else assertDeny(r);
        }
      }),
  },
];
