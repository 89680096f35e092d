// The address guard, row by row: both edges of every special-purpose range (IPv4 and IPv6), the IPv6 forms
// that embed IPv4, every IPv4 spelling the WHATWG URL parser accepts, and the config-driven rules.
import t from 'tap';
import { checkAddress, checkAnswerSet, compileGuard } from '../../firewall/address-guard.js';
import { isDeny } from '../../firewall/codes.js';
import { normaliseHost } from '../../firewall/normalise.js';
import { type AddressClass, classifyAddress } from '../../firewall/ranges.js';

type Row = [input: string, expected: AddressClass | null];

const v4: Row[] = [
  ['0.0.0.0', 'reserved'], ['0.255.255.255', 'reserved'], ['1.0.0.0', 'public'],
  ['9.255.255.255', 'public'], ['10.0.0.0', 'private'], ['10.255.255.255', 'private'], ['11.0.0.0', 'public'],
  ['100.63.255.255', 'public'], ['100.64.0.0', 'private'], ['100.127.255.255', 'private'], ['100.128.0.0', 'public'],
  ['126.255.255.255', 'public'], ['127.0.0.0', 'loopback'], ['127.0.0.1', 'loopback'], ['127.255.255.255', 'loopback'], ['128.0.0.0', 'public'],
  ['169.253.255.255', 'public'], ['169.254.0.0', 'link_local'], ['169.254.169.254', 'link_local'], ['169.254.255.255', 'link_local'], ['169.255.0.0', 'public'],
  ['172.15.255.255', 'public'], ['172.16.0.0', 'private'], ['172.31.255.255', 'private'], ['172.32.0.0', 'public'],
  ['191.255.255.255', 'public'], ['192.0.0.0', 'reserved'], ['192.0.0.8', 'reserved'], ['192.0.0.170', 'reserved'], ['192.0.0.255', 'reserved'], ['192.0.1.0', 'public'],
  ['192.0.2.0', 'reserved'], ['192.0.2.255', 'reserved'], ['192.0.3.0', 'public'],
  ['192.31.195.255', 'public'], ['192.31.196.0', 'reserved'], ['192.31.196.255', 'reserved'], ['192.31.197.0', 'public'],
  ['192.52.192.255', 'public'], ['192.52.193.0', 'reserved'], ['192.52.193.255', 'reserved'], ['192.52.194.0', 'public'],
  ['192.88.98.255', 'public'], ['192.88.99.0', 'reserved'], ['192.88.99.255', 'reserved'], ['192.88.100.0', 'public'],
  ['192.167.255.255', 'public'], ['192.168.0.0', 'private'], ['192.168.255.255', 'private'], ['192.169.0.0', 'public'],
  ['192.175.47.255', 'public'], ['192.175.48.0', 'reserved'], ['192.175.48.255', 'reserved'], ['192.175.49.0', 'public'],
  ['198.17.255.255', 'public'], ['198.18.0.0', 'reserved'], ['198.19.255.255', 'reserved'], ['198.20.0.0', 'public'],
  ['198.51.99.255', 'public'], ['198.51.100.0', 'reserved'], ['198.51.100.255', 'reserved'], ['198.51.101.0', 'public'],
  ['203.0.112.255', 'public'], ['203.0.113.0', 'reserved'], ['203.0.113.255', 'reserved'], ['203.0.114.0', 'public'],
  ['223.255.255.255', 'public'], ['224.0.0.0', 'reserved'], ['239.255.255.255', 'reserved'], ['240.0.0.0', 'reserved'], ['255.255.255.255', 'reserved'],
  ['8.8.8.8', 'public'], ['93.184.216.34', 'public'],
];

const v6: Row[] = [
  ['::', 'reserved'], ['::1', 'loopback'], ['::2', 'embedded'], ['::7f00:1', 'embedded'], ['::ffff:ffff', 'embedded'],
  // ipaddr.js reads this as IPv4-mapped; it is IPv4-compatible (deprecated) and must be refused as embedded.
  ['::127.0.0.1', 'embedded'], ['::169.254.169.254', 'embedded'],
  ['::ffff:127.0.0.1', 'loopback'], ['::ffff:7f00:1', 'loopback'], ['::ffff:10.0.0.1', 'private'], ['::ffff:a9fe:a9fe', 'link_local'],
  ['::ffff:169.254.169.254', 'link_local'], ['::ffff:8.8.8.8', 'public'], ['0:0:0:0:0:ffff:0:0', 'reserved'],
  ['::ffff:0:a00:1', 'embedded'], ['::ffff:0:0:0', 'embedded'], ['::ffff:0:ffff:ffff', 'embedded'],
  ['64:ff9b::', 'embedded'], ['64:ff9b::a00:1', 'embedded'], ['64:ff9b::808:808', 'embedded'], ['64:ff9b::ffff:ffff', 'embedded'],
  ['64:ff9b:1::', 'embedded'], ['64:ff9b:1:ffff:ffff:ffff:ffff:ffff', 'embedded'], ['64:ff9b:2::', 'reserved'],
  ['100::', 'reserved'], ['100::ffff:ffff:ffff:ffff', 'reserved'], ['100:0:0:1::', 'reserved'], ['100:0:0:1:ffff:ffff:ffff:ffff', 'reserved'],
  ['2001::', 'embedded'], ['2001:0:4136:e378:8000:63bf:3fff:fdd2', 'embedded'], ['2001:0:ffff:ffff:ffff:ffff:ffff:ffff', 'embedded'],
  ['2001:1::1', 'reserved'], ['2001:2::', 'reserved'], ['2001:3::', 'reserved'], ['2001:20::', 'reserved'], ['2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff', 'reserved'], ['2001:200::', 'public'],
  ['2001:db7:ffff:ffff:ffff:ffff:ffff:ffff', 'public'], ['2001:db8::', 'reserved'], ['2001:db8:ffff:ffff:ffff:ffff:ffff:ffff', 'reserved'], ['2001:db9::', 'public'],
  ['2001:4860:4860::8888', 'public'], ['2606:4700:4700::1111', 'public'],
  ['2002::', 'embedded'], ['2002:a00:1::', 'embedded'], ['2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 'embedded'], ['2003::', 'public'],
  ['2620:4f:7fff:ffff:ffff:ffff:ffff:ffff', 'public'], ['2620:4f:8000::', 'reserved'], ['2620:4f:8000:ffff:ffff:ffff:ffff:ffff', 'reserved'], ['2620:4f:8001::', 'public'],
  ['3ffe::', 'public'], ['3fff::', 'reserved'], ['3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff', 'reserved'], ['3fff:1000::', 'public'],
  ['1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 'reserved'], ['4000::', 'reserved'], ['5f00::', 'reserved'], ['5f00:ffff::', 'reserved'],
  ['fc00::', 'private'], ['fd00:ec2::254', 'private'], ['fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 'private'],
  ['fe80::', 'link_local'], ['fe80::1', 'link_local'], ['febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 'link_local'],
  ['fec0::', 'private'], ['feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 'private'],
  ['ff00::', 'reserved'], ['ff02::1', 'reserved'], ['ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 'reserved'],
];

const notAddresses: Row[] = [
  ['fe80::1%eth0', null], ['fe80::1%25eth0', null], ['example.com', null], ['', null], ['1.2.3', null], ['0x7f.1', null],
  ['01.2.3.4', null], ['1.2.3.4/32', null], ['[::1]', null], ['::ffff:1.2.3', null],
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
  ['0x7f.1', '127.0.0.1', 'loopback'], ['0177.0.0.1', '127.0.0.1', 'loopback'], ['2130706433', '127.0.0.1', 'loopback'],
  ['127.1', '127.0.0.1', 'loopback'], ['127.0.1', '127.0.0.1', 'loopback'], ['0x7f000001', '127.0.0.1', 'loopback'],
  ['017700000001', '127.0.0.1', 'loopback'], ['0x7f.0.0.1', '127.0.0.1', 'loopback'], ['0X7F.0X0.0X0.0X1', '127.0.0.1', 'loopback'],
  ['127.000.000.001', '127.0.0.1', 'loopback'], ['0x7f.1.', '127.0.0.1', 'loopback'],
  ['0xa9.0xfe.0xa9.0xfe', '169.254.169.254', 'link_local'], ['2852039166', '169.254.169.254', 'link_local'],
  ['0251.0376.0251.0376', '169.254.169.254', 'link_local'], ['169.254.43518', '169.254.169.254', 'link_local'],
  ['0xA9FEA9FE', '169.254.169.254', 'link_local'], ['169.16689662', '169.254.169.254', 'link_local'],
  ['10.1', '10.0.0.1', 'private'], ['012.0.0.1', '10.0.0.1', 'private'], ['0xc0.0xa8.1.1', '192.168.1.1', 'private'],
  ['3232235777', '192.168.1.1', 'private'], ['0', '0.0.0.0', 'reserved'], ['0x0', '0.0.0.0', 'reserved'],
  ['1.2.3.4.', '1.2.3.4', 'public'], ['134744072', '8.8.8.8', 'public'],
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
    ['[::ffff:a9fe:a9fe]', 'link_local'], ['[::ffff:169.254.169.254]', 'link_local'], ['[0:0:0:0:0:ffff:7f00:1]', 'loopback'],
    ['[::127.0.0.1]', 'embedded'], ['[64:ff9b::169.254.169.254]', 'embedded'], ['[::1]', 'loopback'], ['[FE80::1]', 'link_local'],
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
  t.equal(code('::ffff:10.20.1.5', 'artifactory.corp'), 'allow:addressGuard.allow[0]', 'mapped form matches the IPv4 exception');
  t.equal(code('127.0.0.2', 'api.test'), 'allow:addressGuard.allow[1]');
  t.equal(code('127.0.0.1', 'api.test'), 'EGR_DENY_ADDRESS_SELF', 'the proxy itself is never an exception');
  t.equal(code('::ffff:127.0.0.1', 'api.test'), 'EGR_DENY_ADDRESS_SELF', 'nor in its mapped spelling');
  t.equal(code('169.254.169.254', 'metadata.test'), 'EGR_DENY_ADDRESS_LINK_LOCAL', 'link-local is never overridable');
  t.equal(code('64:ff9b::a14:105', 'artifactory.corp'), 'EGR_DENY_ADDRESS_EMBEDDED', 'embedded forms are never overridable');
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

t.test('row count', async (t) => {
  t.ok(v4.length + v6.length + notAddresses.length + spellings.length >= 100, 'at least 100 rows');
});
