// The resolver against a fake DNS server on loopback, with an injected clock for TTLs. The answers here
// are only data: nothing connects to them.
import t from 'tap';
import { isDeny } from '../../firewall/codes.js';
import { createResolver } from '../../proxy/egress/resolver.js';
import { startFakeDns } from '../helpers/fake-dns.js';

t.test('TTL cache with min/max, in-flight de-duplication, failures', async (t) => {
  const dns = await startFakeDns();
  t.teardown(() => dns.close());
  let now = 0;
  const r = createResolver({ servers: [dns.server], timeoutMs: 300, minTtlS: 5, maxTtlS: 60, nowMs: () => now });

  dns.set('a.test', { a: ['192.0.2.1'], aaaa: ['2001:db8::1'], ttl: 1 });
  const first = await r.resolve('a.test');
  t.match(first, { addresses: ['192.0.2.1', '2001:db8::1'], cached: false });
  t.equal(dns.asked('a.test'), 2, 'A and AAAA');
  now += 4000;
  t.match(await r.resolve('a.test'), { cached: true }, 'a 1s TTL is held for minTtlS');
  now += 2000;
  t.match(await r.resolve('a.test'), { cached: false }, 'and refreshed after it');

  dns.set('long.test', { a: ['192.0.2.2'], ttl: 86400 });
  await r.resolve('long.test');
  now += 61_000;
  t.match(await r.resolve('long.test'), { cached: false }, 'a day-long TTL is capped at maxTtlS');

  dns.set('burst.test', { a: ['192.0.2.3'] });
  const before = dns.asked('burst.test');
  await Promise.all(Array.from({ length: 25 }, () => r.resolve('burst.test')));
  t.equal(dns.asked('burst.test') - before, 2, '25 concurrent lookups, one query pair');

  const nx = await r.resolve('nope.test');
  t.ok(isDeny(nx) && nx.code === 'EGR_FAIL_DNS');
  const asked = dns.asked('nope.test');
  await r.resolve('nope.test');
  t.equal(dns.asked('nope.test'), asked, 'NXDOMAIN is cached briefly');

  dns.set('slow.test', 'timeout');
  const slow = await r.resolve('slow.test');
  t.ok(isDeny(slow) && slow.code === 'EGR_FAIL_DNS_TIMEOUT');

  dns.set('v6only.test', { aaaa: ['2001:db8::2'] });
  t.match(await r.resolve('v6only.test'), { addresses: ['2001:db8::2'] }, 'one family is enough');

  dns.set('chain.test', { cname: 'a.test' });
  t.match(
    await r.resolve('chain.test'),
    { addresses: ['192.0.2.1', '2001:db8::1'] },
    'CNAMEs are followed to the final addresses',
  );
});

t.test('the resolver never reads /etc/hosts', async (t) => {
  const dns = await startFakeDns();
  t.teardown(() => dns.close());
  const r = createResolver({ servers: [dns.server], timeoutMs: 300, minTtlS: 0, maxTtlS: 1, nowMs: () => 0 });
  const local = await r.resolve('localhost');
  t.ok(isDeny(local), '"localhost" is only what the DNS server says (here: nothing)');
});
