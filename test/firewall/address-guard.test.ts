// The address guard, row by row: both edges of every special-purpose range (IPv4 and IPv6), the IPv6 forms
// that embed IPv4, every IPv4 spelling the WHATWG URL parser accepts, and the config-driven rules.
import ipaddr from 'ipaddr.js';
import t from 'tap';
import {
  checkAddress,
  checkAnswerSet,
  compileGuard,
  inGlobalDenyCidrs,
  literalException,
} from '../../firewall/address-guard.js';
import { isDeny } from '../../firewall/codes.js';
import { normaliseHost } from '../../firewall/normalise.js';
import {
  type AddressClass,
  classifyAddress,
  coversMappedRange,
  embeddedRangeOf,
  parsePrefix,
  parseRulePrefix,
} from '../../firewall/ranges.js';

type Row = [input: string, expected: AddressClass | null];

const v4: Row[] = [
  ['0.0.0.0', 'reserved'],
  ['0.255.255.255', 'reserved'],
  ['1.0.0.0', 'public'],
  ['9.255.255.255', 'public'],
  ['10.0.0.0', 'private'],
  ['10.255.255.255', 'private'],
  ['11.0.0.0', 'public'],
  ['100.63.255.255', 'public'],
  ['100.64.0.0', 'private'],
  ['100.127.255.255', 'private'],
  ['100.128.0.0', 'public'],
  ['126.255.255.255', 'public'],
  ['127.0.0.0', 'loopback'],
  ['127.0.0.1', 'loopback'],
  ['127.255.255.255', 'loopback'],
  ['128.0.0.0', 'public'],
  ['169.253.255.255', 'public'],
  ['169.254.0.0', 'link_local'],
  ['169.254.169.254', 'link_local'],
  ['169.254.255.255', 'link_local'],
  ['169.255.0.0', 'public'],
  ['172.15.255.255', 'public'],
  ['172.16.0.0', 'private'],
  ['172.31.255.255', 'private'],
  ['172.32.0.0', 'public'],
  ['191.255.255.255', 'public'],
  ['192.0.0.0', 'reserved'],
  ['192.0.0.8', 'reserved'],
  ['192.0.0.170', 'reserved'],
  ['192.0.0.255', 'reserved'],
  ['192.0.1.0', 'public'],
  ['192.0.2.0', 'reserved'],
  ['192.0.2.255', 'reserved'],
  ['192.0.3.0', 'public'],
  ['192.31.195.255', 'public'],
  ['192.31.196.0', 'reserved'],
  ['192.31.196.255', 'reserved'],
  ['192.31.197.0', 'public'],
  ['192.52.192.255', 'public'],
  ['192.52.193.0', 'reserved'],
  ['192.52.193.255', 'reserved'],
  ['192.52.194.0', 'public'],
  ['192.88.98.255', 'public'],
  ['192.88.99.0', 'reserved'],
  ['192.88.99.255', 'reserved'],
  ['192.88.100.0', 'public'],
  ['192.167.255.255', 'public'],
  ['192.168.0.0', 'private'],
  ['192.168.255.255', 'private'],
  ['192.169.0.0', 'public'],
  ['192.175.47.255', 'public'],
  ['192.175.48.0', 'reserved'],
  ['192.175.48.255', 'reserved'],
  ['192.175.49.0', 'public'],
  ['198.17.255.255', 'public'],
  ['198.18.0.0', 'reserved'],
  ['198.19.255.255', 'reserved'],
  ['198.20.0.0', 'public'],
  ['198.51.99.255', 'public'],
  ['198.51.100.0', 'reserved'],
  ['198.51.100.255', 'reserved'],
  ['198.51.101.0', 'public'],
  ['203.0.112.255', 'public'],
  ['203.0.113.0', 'reserved'],
  ['203.0.113.255', 'reserved'],
  ['203.0.114.0', 'public'],
  ['223.255.255.255', 'public'],
  ['224.0.0.0', 'reserved'],
  ['239.255.255.255', 'reserved'],
  ['240.0.0.0', 'reserved'],
  ['255.255.255.255', 'reserved'],
  ['8.8.8.8', 'public'],
  ['93.184.216.34', 'public'],
];

const v6: Row[] = [
  ['::', 'reserved'],
  ['::1', 'loopback'],
  ['::2', 'embedded'],
  ['::7f00:1', 'embedded'],
  ['::ffff:ffff', 'embedded'],
  // ipaddr.js reads this as IPv4-mapped; it is IPv4-compatible (deprecated) and must be refused as embedded.
  ['::127.0.0.1', 'embedded'],
  ['::169.254.169.254', 'embedded'],
  ['::ffff:127.0.0.1', 'loopback'],
  ['::ffff:7f00:1', 'loopback'],
  ['::ffff:10.0.0.1', 'private'],
  ['::ffff:a9fe:a9fe', 'link_local'],
  ['::ffff:169.254.169.254', 'link_local'],
  ['::ffff:8.8.8.8', 'public'],
  ['0:0:0:0:0:ffff:0:0', 'reserved'],
  ['::ffff:0:a00:1', 'embedded'],
  ['::ffff:0:0:0', 'embedded'],
  ['::ffff:0:ffff:ffff', 'embedded'],
  ['64:ff9b::', 'embedded'],
  ['64:ff9b::a00:1', 'embedded'],
  ['64:ff9b::808:808', 'embedded'],
  ['64:ff9b::ffff:ffff', 'embedded'],
  ['64:ff9b:1::', 'embedded'],
  ['64:ff9b:1:ffff:ffff:ffff:ffff:ffff', 'embedded'],
  ['64:ff9b:2::', 'reserved'],
  ['100::', 'reserved'],
  ['100::ffff:ffff:ffff:ffff', 'reserved'],
  ['100:0:0:1::', 'reserved'],
  ['100:0:0:1:ffff:ffff:ffff:ffff', 'reserved'],
  ['2001::', 'embedded'],
  ['2001:0:4136:e378:8000:63bf:3fff:fdd2', 'embedded'],
  ['2001:0:ffff:ffff:ffff:ffff:ffff:ffff', 'embedded'],
  ['2001:1::1', 'reserved'],
  ['2001:2::', 'reserved'],
  ['2001:3::', 'reserved'],
  ['2001:20::', 'reserved'],
  ['2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff', 'reserved'],
  ['2001:200::', 'public'],
  ['2001:db7:ffff:ffff:ffff:ffff:ffff:ffff', 'public'],
  ['2001:db8::', 'reserved'],
  ['2001:db8:ffff:ffff:ffff:ffff:ffff:ffff', 'reserved'],
  ['2001:db9::', 'public'],
  ['2001:4860:4860::8888', 'public'],
  ['2606:4700:4700::1111', 'public'],
  ['2002::', 'embedded'],
  ['2002:a00:1::', 'embedded'],
  ['2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 'embedded'],
  ['2003::', 'public'],
  ['2620:4f:7fff:ffff:ffff:ffff:ffff:ffff', 'public'],
  ['2620:4f:8000::', 'reserved'],
  ['2620:4f:8000:ffff:ffff:ffff:ffff:ffff', 'reserved'],
  ['2620:4f:8001::', 'public'],
  ['3ffe::', 'public'],
  ['3fff::', 'reserved'],
  ['3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff', 'reserved'],
  ['3fff:1000::', 'public'],
  ['1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 'reserved'],
  ['4000::', 'reserved'],
  ['5f00::', 'reserved'],
  ['5f00:ffff::', 'reserved'],
  ['fc00::', 'private'],
  ['fd00:ec2::254', 'private'],
  ['fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 'private'],
  ['fe80::', 'link_local'],
  ['fe80::1', 'link_local'],
  ['febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 'link_local'],
  ['fec0::', 'private'],
  ['feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 'private'],
  ['ff00::', 'reserved'],
  ['ff02::1', 'reserved'],
  ['ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 'reserved'],
];

const notAddresses: Row[] = [
  ['fe80::1%eth0', null],
  ['fe80::1%25eth0', null],
  ['example.com', null],
  ['', null],
  ['1.2.3', null],
  ['0x7f.1', null],
  ['01.2.3.4', null],
  ['1.2.3.4/32', null],
  ['[::1]', null],
  ['::ffff:1.2.3', null],
];

t.test('IPv4 special-purpose edges', async (t) => {
  for (const [ip, cls] of v4) t.equal(classifyAddress(ip)?.class ?? null, cls, ip);
});

t.test('IPv6 special-purpose edges and embedded IPv4', async (t) => {
  for (const [ip, cls] of v6) t.equal(classifyAddress(ip)?.class ?? null, cls, ip);
});

t.test('input that is not an address is refused before parsing', async (t) => {
  for (const [ip, cls] of notAddresses) t.equal(classifyAddress(ip)?.class ?? null, cls, JSON.stringify(ip));
});

t.test('IPv4-mapped addresses are dialled as IPv4', async (t) => {
  t.equal(classifyAddress('::ffff:8.8.8.8')?.address, '8.8.8.8');
  t.equal(classifyAddress('::ffff:8.8.8.8')?.family, 4);
  t.equal(classifyAddress('2001:4860:4860:0:0:0:0:8888')?.address, '2001:4860:4860::8888');
});

// Every spelling the WHATWG URL host parser turns into an IPv4 address must land on the same class.
const spellings: [spelling: string, canonical: string, cls: AddressClass][] = [
  ['0x7f.1', '127.0.0.1', 'loopback'],
  ['0177.0.0.1', '127.0.0.1', 'loopback'],
  ['2130706433', '127.0.0.1', 'loopback'],
  ['127.1', '127.0.0.1', 'loopback'],
  ['127.0.1', '127.0.0.1', 'loopback'],
  ['0x7f000001', '127.0.0.1', 'loopback'],
  ['017700000001', '127.0.0.1', 'loopback'],
  ['0x7f.0.0.1', '127.0.0.1', 'loopback'],
  ['0X7F.0X0.0X0.0X1', '127.0.0.1', 'loopback'],
  ['127.000.000.001', '127.0.0.1', 'loopback'],
  ['0x7f.1.', '127.0.0.1', 'loopback'],
  ['0xa9.0xfe.0xa9.0xfe', '169.254.169.254', 'link_local'],
  ['2852039166', '169.254.169.254', 'link_local'],
  ['0251.0376.0251.0376', '169.254.169.254', 'link_local'],
  ['169.254.43518', '169.254.169.254', 'link_local'],
  ['0xA9FEA9FE', '169.254.169.254', 'link_local'],
  ['169.16689662', '169.254.169.254', 'link_local'],
  ['10.1', '10.0.0.1', 'private'],
  ['012.0.0.1', '10.0.0.1', 'private'],
  ['0xc0.0xa8.1.1', '192.168.1.1', 'private'],
  ['3232235777', '192.168.1.1', 'private'],
  ['0', '0.0.0.0', 'reserved'],
  ['0x0', '0.0.0.0', 'reserved'],
  ['1.2.3.4.', '1.2.3.4', 'public'],
  ['134744072', '8.8.8.8', 'public'],
];

t.test('every WHATWG IPv4 spelling is canonicalised before classification', async (t) => {
  for (const [spelling, canonical, cls] of spellings) {
    const h = normaliseHost(spelling);
    if (isDeny(h)) {
      t.fail(`${spelling} was refused`);
      continue;
    }
    t.equal(h.kind, 'ipv4', `${spelling} is an IPv4 literal`);
    t.equal(h.host, canonical, `${spelling} → ${canonical}`);
    t.equal(classifyAddress(h.host)?.class, cls, `${spelling} is ${cls}`);
  }
});

t.test('bracketed IPv6 literals are canonicalised', async (t) => {
  const rows: [string, AddressClass][] = [
    ['[::ffff:a9fe:a9fe]', 'link_local'],
    ['[::ffff:169.254.169.254]', 'link_local'],
    ['[0:0:0:0:0:ffff:7f00:1]', 'loopback'],
    ['[::127.0.0.1]', 'embedded'],
    ['[64:ff9b::169.254.169.254]', 'embedded'],
    ['[::1]', 'loopback'],
    ['[FE80::1]', 'link_local'],
  ];
  for (const [lit, cls] of rows) {
    const h = normaliseHost(lit);
    t.notOk(isDeny(h), `${lit} parses`);
    if (!isDeny(h)) t.equal(classifyAddress(h.host)?.class, cls, lit);
  }
  t.ok(isDeny(normaliseHost('[fe80::1%eth0]')), 'zone id refused');
  t.ok(isDeny(normaliseHost('[fe80::1%25eth0]')), 'encoded zone id refused');
});

t.test('the guard: exceptions, rules, self, global deny', async (t) => {
  const guard = compileGuard(
    {
      addressGuard: {
        allow: [
          { cidr: '10.20.0.0/16', hosts: ['artifactory.corp'] },
          { cidr: '127.0.0.0/8', hosts: ['*.test'] },
          { cidr: '169.254.0.0/16', hosts: ['metadata.test'] }, // config validation refuses this; the guard must too
        ],
        deny: ['8.8.4.0/24'],
      },
      globalDeny: { hosts: [], cidrs: ['1.1.1.0/24'] },
    },
    ['127.0.0.1', '::1/128'],
  );
  const code = (ip: string, host: string) => {
    const r = checkAddress(guard, ip, host);
    return isDeny(r) ? r.code : `allow:${r.rule}`;
  };
  t.equal(code('10.20.1.5', 'artifactory.corp'), 'allow:addressGuard.allow[0]');
  t.equal(code('10.20.1.5', 'other.corp'), 'EGR_DENY_ADDRESS_PRIVATE', 'exception is bound to its hosts');
  t.equal(code('10.21.0.1', 'artifactory.corp'), 'EGR_DENY_ADDRESS_PRIVATE', 'exception is bound to its CIDR');
  t.equal(
    code('::ffff:10.20.1.5', 'artifactory.corp'),
    'allow:addressGuard.allow[0]',
    'mapped form matches the IPv4 exception',
  );
  t.equal(code('127.0.0.2', 'api.test'), 'allow:addressGuard.allow[1]');
  t.equal(code('127.0.0.1', 'api.test'), 'EGR_DENY_ADDRESS_SELF', 'the proxy itself is never an exception');
  t.equal(code('::ffff:127.0.0.1', 'api.test'), 'EGR_DENY_ADDRESS_SELF', 'nor in its mapped spelling');
  t.equal(code('169.254.169.254', 'metadata.test'), 'EGR_DENY_ADDRESS_LINK_LOCAL', 'link-local is never overridable');
  t.equal(
    code('64:ff9b::a14:105', 'artifactory.corp'),
    'EGR_DENY_ADDRESS_EMBEDDED',
    'embedded forms are never overridable',
  );
  t.equal(code('8.8.4.4', 'dns.google'), 'EGR_DENY_ADDRESS_RULE');
  t.equal(code('1.1.1.1', 'one.one'), 'EGR_DENY_GLOBAL');
  t.equal(code('8.8.8.8', 'dns.google'), 'allow:unicast');
  t.equal(code('not-an-ip', 'x'), 'EGR_DENY_ADDRESS_RESERVED');

  const mixed = checkAnswerSet(guard, ['8.8.8.8', '10.0.0.1'], 'mixed.example');
  t.ok(isDeny(mixed) && mixed.code === 'EGR_DENY_ADDRESS_PRIVATE', 'one private answer blocks the whole set');
  const empty = checkAnswerSet(guard, [], 'empty.example');
  t.ok(isDeny(empty) && empty.code === 'EGR_FAIL_DNS', 'an empty answer set is a DNS failure, not an allow');
  const ok = checkAnswerSet(guard, ['8.8.8.8', '2001:4860:4860::8888'], 'dns.google');
  t.ok(!isDeny(ok) && ok.length === 2, 'all-public set passes');
});

// A rule is compared with the address as the guard judges it, and an IPv4-mapped address is judged as IPv4:
// a rule written in the mapped form must be the IPv4 rule it spells, or a deny written that way fails open.
t.test(
  'rule prefixes: IPv4-mapped forms are the IPv4 prefixes they spell, other embedded forms stay IPv6',
  async (t) => {
    const rows: [cidr: string, parsed: string | null][] = [
      ['::ffff:8.8.8.8/128', '4 8.8.8.8/32'],
      ['::ffff:8.8.8.8', '4 8.8.8.8/32'],
      ['::ffff:808:808/128', '4 8.8.8.8/32'],
      ['0:0:0:0:0:ffff:0808:0808/128', '4 8.8.8.8/32'],
      ['::FFFF:8.8.4.0/120', '4 8.8.4.0/24'],
      ['::ffff:10.0.0.0/104', '4 10.0.0.0/8'],
      ['::ffff:10.1.2.3/104', '4 10.0.0.0/8'],
      ['::ffff:0:0/96', '4 0.0.0.0/0'],
      ['::ffff:169.254.0.0/112', '4 169.254.0.0/16'],
      // not mapped: IPv4-compatible, NAT64, SIIT, a /95 that merely contains the mapped range, and plain IPv6
      ['::8.8.8.8/128', '6 ::808:808/128'],
      ['64:ff9b::8.8.8.8/128', '6 64:ff9b::808:808/128'],
      ['::ffff:0:808:808/128', '6 ::ffff:0:808:808/128'],
      ['::ffff:0:0/95', '6 ::ffff:0:0/95'],
      ['::/0', '6 ::/0'],
      ['2001:db8::/32', '6 2001:db8::/32'],
      ['8.8.8.0/24', '4 8.8.8.0/24'],
      ['::ffff:8.8.8.8/129', null],
      ['::ffff:8.8.8.8%eth0/128', null],
      ['nope', null],
    ];
    for (const [cidr, expected] of rows) {
      const p = parseRulePrefix(cidr);
      const shown = p
        ? `${p.family} ${p.family === 4 ? `${[...p.bytes].join('.')}/${p.bits}` : `${classifyAddressText(p.bytes)}/${p.bits}`}`
        : null;
      t.equal(shown, expected, cidr);
    }
    t.ok(
      coversMappedRange(parsePrefix('::/0')!) && coversMappedRange(parsePrefix('::ffff:0:0/95')!),
      'short prefixes over the mapped range',
    );
    t.notOk(coversMappedRange(parsePrefix('::ffff:0:0/96')!) || coversMappedRange(parsePrefix('2000::/3')!));
    t.same(embeddedRangeOf(parseRulePrefix('::8.8.8.8/128')!), { name: 'ipv4-compatible', ipv4: '8.8.8.8/32' });
    t.same(embeddedRangeOf(parseRulePrefix('64:ff9b::808:800/120')!), { name: 'nat64', ipv4: '8.8.8.0/24' });
    t.same(embeddedRangeOf(parseRulePrefix('2002:808:808::/48')!), { name: '6to4', ipv4: null });
    t.same(embeddedRangeOf(parseRulePrefix('2001:0:4136::/48')!), { name: 'teredo', ipv4: null });
    t.equal(embeddedRangeOf(parseRulePrefix('::/96')!), null, '::/96 holds :: and ::1, which are not embedded');
    t.equal(embeddedRangeOf(parseRulePrefix('::1/128')!), null);
    t.equal(embeddedRangeOf(parseRulePrefix('2001::/23')!), null, 'wider than Teredo');
    t.equal(embeddedRangeOf(parseRulePrefix('::ffff:8.8.8.8/128')!), null, 'mapped is IPv4, not embedded');
  },
);

const classifyAddressText = (bytes: Uint8Array): string => ipaddr.fromByteArray([...bytes]).toString();

t.test('the guard: rules written as IPv4-mapped prefixes match, in every rule list and for self', async (t) => {
  const guard = compileGuard(
    {
      addressGuard: {
        allow: [{ cidr: '::ffff:10.20.0.0/112', hosts: ['svc.test', '10.20.0.5'] }],
        deny: ['::ffff:8.8.8.8/128', '::9.9.9.9/128', '64:ff9b::1.0.0.1/128'],
      },
      globalDeny: { hosts: [], cidrs: ['::ffff:1.1.1.0/120'] },
    },
    ['::ffff:127.0.0.1'],
  );
  const code = (ip: string, host: string) => {
    const r = checkAddress(guard, ip, host);
    return isDeny(r) ? `${r.code} ${r.rule}` : `allow:${r.rule}`;
  };
  t.equal(
    code('8.8.8.8', 'dns.google'),
    'EGR_DENY_ADDRESS_RULE addressGuard.deny[0]',
    'a mapped deny rule denies the IPv4 address',
  );
  t.equal(code('::ffff:8.8.8.8', 'dns.google'), 'EGR_DENY_ADDRESS_RULE addressGuard.deny[0]', 'in either spelling');
  t.equal(
    code('1.1.1.1', 'one.one'),
    'EGR_DENY_GLOBAL globalDeny.cidrs[0]',
    'a mapped globalDeny rule denies the IPv4 address',
  );
  t.equal(inGlobalDenyCidrs(guard, '1.1.1.1'), 'globalDeny.cidrs[0]', 'and the literal, at decide() step 2');
  t.equal(inGlobalDenyCidrs(guard, '::ffff:101:101'), 'globalDeny.cidrs[0]');
  t.equal(code('10.20.0.9', 'svc.test'), 'allow:addressGuard.allow[0]', 'a mapped exception opens the IPv4 range');
  t.equal(literalException(guard, '10.20.0.5'), 'addressGuard.allow[0]');
  t.equal(
    code('127.0.0.1', 'svc.test'),
    'EGR_DENY_ADDRESS_SELF addressGuard.self',
    'a mapped self address is the IPv4 one',
  );
  // IPv4-compatible and NAT64 rules name IPv6 addresses (always denied as embedded), not the IPv4 they hold.
  t.equal(code('9.9.9.9', 'quad9'), 'allow:unicast', '::9.9.9.9/128 does not deny 9.9.9.9');
  t.equal(code('1.0.0.1', 'one.one'), 'allow:unicast', '64:ff9b::1.0.0.1/128 does not deny 1.0.0.1');
  t.match(code('::9.9.9.9', 'quad9'), /^EGR_DENY_ADDRESS_(RULE|EMBEDDED) /);
  t.match(code('64:ff9b::101', 'one.one'), /^EGR_DENY_ADDRESS_(RULE|EMBEDDED) /);
});

t.test('row count', async (t) => {
  t.ok(v4.length + v6.length + notAddresses.length + spellings.length >= 100, 'at least 100 rows');
});
