import t from 'tap';
import { isDeny } from '../../firewall/codes.js';
import {
  MEMO_MAX,
  formatAuthority,
  memoSize,
  normaliseHost,
  parseAbsoluteTarget,
  parseAuthority,
} from '../../firewall/normalise.js';

t.test('host names collapse to one canonical form', async (t) => {
  const rows: [string, string, string][] = [
    ['Example.COM', 'example.com', 'name'],
    ['example.com.', 'example.com', 'name'],
    ['EXAMPLE.com.', 'example.com', 'name'],
    ['bücher.de', 'xn--bcher-kva.de', 'name'],
    ['BÜCHER.de', 'xn--bcher-kva.de', 'name'],
    ['xn--bcher-kva.de', 'xn--bcher-kva.de', 'name'],
    ['ｅｘａｍｐｌｅ.com', 'example.com', 'name'], // full-width letters fold to ASCII under IDNA
    ['_acme-challenge.example.com', '_acme-challenge.example.com', 'name'],
    ['a-b.c', 'a-b.c', 'name'],
    ['1.2.3.4', '1.2.3.4', 'ipv4'],
    ['[2001:DB8::1]', '2001:db8::1', 'ipv6'],
    ['[::ffff:1.2.3.4]', '::ffff:102:304', 'ipv6'],
  ];
  for (const [raw, host, kind] of rows) {
    const r = normaliseHost(raw);
    t.same(isDeny(r) ? r.code : { host: r.host, kind: r.kind }, { host, kind }, raw);
  }
});

t.test('bad hosts are EGR_INVALID_TARGET', async (t) => {
  const bad = [
    '',
    'a..b',
    '.example.com',
    'example..com.',
    'exa mple.com',
    'example.com\r\nX: y',
    'exa\x00mple.com',
    '%41.com',
    'a%2eb.com',
    'user@example.com',
    'a/b',
    'a\\b',
    'a?b',
    'a#b',
    '[fe80::1%eth0]',
    '[fe80::1%25eth0]',
    '[::1',
    '::1',
    '[1.2.3.4]',
    '[zz::1]',
    'x'.repeat(64) + '.com',
    ('a'.repeat(60) + '.').repeat(5) + 'com',
    'xn--',
    '-a.com',
    'a-.com',
    '*.example.com',
    'example.com:80',
    '1.2.3.4.5',
    'foo.123',
    '256.0.0.1',
    'a.b.c.d.0x100000000',
  ];
  for (const raw of bad) {
    const r = normaliseHost(raw);
    t.ok(isDeny(r) && r.code === 'EGR_INVALID_TARGET', JSON.stringify(raw));
  }
});

t.test('authority-form (CONNECT)', async (t) => {
  const ok: [string, string, number][] = [
    ['registry.npmjs.org:443', 'registry.npmjs.org', 443],
    ['REGISTRY.npmjs.org.:443', 'registry.npmjs.org', 443],
    ['[2001:db8::1]:443', '2001:db8::1', 443],
    ['0x7f.1:443', '127.0.0.1', 443],
    ['a.com:1', 'a.com', 1],
    ['a.com:65535', 'a.com', 65535],
  ];
  for (const [raw, host, port] of ok) {
    const r = parseAuthority(raw);
    t.same(isDeny(r) ? r.code : [r.target.host, r.target.port], [host, port], raw);
  }
  const bad = [
    'a.com',
    'a.com:',
    'a.com:0',
    'a.com:65536',
    'a.com:+443',
    'a.com:44 3',
    'a.com:0x1bb',
    'user:pw@a.com:443',
    '[::1]x:443',
    ':443',
    'a.com:443:443',
    '[fe80::1%eth0]:443',
  ];
  for (const raw of bad) {
    const r = parseAuthority(raw);
    t.ok(isDeny(r) && r.code === 'EGR_INVALID_TARGET', raw);
  }
});

t.test('absolute-form targets', async (t) => {
  const r = parseAbsoluteTarget('HTTP://Example.com./a/b?c=d');
  t.same(isDeny(r) ? r : [r.scheme, r.target.host, r.target.port, r.path, r.explicitPort], [
    'http',
    'example.com',
    80,
    '/a/b?c=d',
    false,
  ]);
  const s = parseAbsoluteTarget('https://example.com:8443');
  t.same(isDeny(s) ? s : [s.scheme, s.target.port, s.path, s.explicitPort], ['https', 8443, '/', true]);
  const q = parseAbsoluteTarget('http://example.com?x=1');
  t.same(isDeny(q) ? q : q.path, '/?x=1');
  const bad = [
    '/relative',
    'ftp://example.com/',
    'http:/example.com/',
    'http://user:pw@example.com/',
    'http://example.com/#frag',
    'http://example.com\\@evil.com/',
    'http://exa mple.com/',
    'http://example.com/\r\n',
    'http://[fe80::1%25eth0]/',
    'http://example.com:99999/',
    'http:///path',
    'http://' + 'a'.repeat(9000),
  ];
  for (const raw of bad) {
    const b = parseAbsoluteTarget(raw);
    t.ok(isDeny(b) && b.code === 'EGR_INVALID_TARGET', JSON.stringify(raw.slice(0, 60)));
  }
});

t.test('formatAuthority', async (t) => {
  t.equal(formatAuthority({ host: 'a.com', kind: 'name', port: 443 }, 443), 'a.com');
  t.equal(formatAuthority({ host: 'a.com', kind: 'name', port: 8443 }, 443), 'a.com:8443');
  t.equal(formatAuthority({ host: '2001:db8::1', kind: 'ipv6', port: 80 }, 80), '[2001:db8::1]');
});

t.test('remembered hosts: the same answer as a first call, frozen, and denials never kept', async (t) => {
  const first = normaliseHost('Memo.Example.COM.');
  const again = normaliseHost('Memo.Example.COM.');
  t.same(again, { host: 'memo.example.com', kind: 'name' });
  t.equal(again, first, 'the remembered value');
  t.ok(Object.isFrozen(again), 'shared, so frozen');
  // A flood of distinct names, three times the bound, while one host stays in use: the memory stays bounded
  // and evicts the least recently used, so the host in use is never recomputed.
  const hot = normaliseHost('Hot.Example.COM');
  for (let i = 0; i < 3 * MEMO_MAX; i++) {
    normaliseHost(`h${i}.flood.test`);
    if (i % 256 === 0) t.equal(normaliseHost('Hot.Example.COM'), hot);
  }
  t.ok(memoSize() <= MEMO_MAX, 'bounded');
  t.equal(normaliseHost('Hot.Example.COM'), hot, 'a host in steady use survives the flood');
  t.not(normaliseHost('Memo.Example.COM.'), first, 'an idle one was evicted');
  t.same(normaliseHost('Memo.Example.COM.'), { host: 'memo.example.com', kind: 'name' }, 'and recomputed the same');
  const bad = normaliseHost('0x7f.1');
  t.same(isDeny(bad) ? bad.code : bad, { host: '127.0.0.1', kind: 'ipv4' }, 'IPv4 spellings still canonicalised');
  const size = memoSize();
  t.ok(isDeny(normaliseHost('a..b')) && isDeny(normaliseHost('a..b')), 'denials stay denials');
  t.ok(isDeny(normaliseHost('z..z')));
  t.ok(memoSize() <= size, 'and are not kept');
});
