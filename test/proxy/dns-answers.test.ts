// DNS answer bombs: a name under an attacker's domain answers hundreds of records over TCP. The resolver keeps
// a bounded number per family, its cache and lookups in flight are bounded, the address guard still sees the
// whole set, and the dialer's validated plans expire with the record TTL. The answers are data except in the
// last test, whose servers are on loopback; the file runs in a namespace holding only lo (CONTRACT §10).
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { request } from 'undici';
import { isDeny } from '../../firewall/codes.js';
import { validateConfig } from '../../settings/config.js';
import { type Policy, compilePolicy } from '../../firewall/policy.js';
import { createDialer } from '../../proxy/egress/dialer.js';
import {
  MAX_PER_FAMILY,
  type NameResolver,
  type Resolution,
  createResolver,
  sizeOfEntry,
} from '../../proxy/egress/resolver.js';
import { startFakeDns } from '../helpers/fake-dns.js';
import { isolate } from '../helpers/netns.js';
import { viaDialer } from '../helpers/via-dialer.js';

// Public unicast space (IBM's 9/8, Google's 2001:4860::/32): the guard passes every one of them.
const v4 = (n: number) => Array.from({ length: n }, (_, i) => `9.9.${i >> 8}.${i & 255}`);
const v6 = (n: number) => Array.from({ length: n }, (_, i) => `2001:4860::${(i + 1).toString(16)}`);

const policyWith = (config: Record<string, unknown>): Policy => {
  const r = validateConfig({ listen: { http: '127.0.0.9:3128', socks5: null, admin: null }, ...config });
  if (!r.ok) throw new Error('bad test config');
  return compilePolicy(r.config, ['127.0.0.9']);
};

if (isolate(t, import.meta.url)) {
  t.test('an answer bomb over TCP: 16 addresses of each family kept, in the order the server gave', async (t) => {
    const dns = await startFakeDns();
    t.teardown(() => dns.close());
    const r = createResolver({ servers: [dns.server], timeoutMs: 3000, minTtlS: 5, maxTtlS: 60, nowMs: () => 0 });
    dns.set('bomb.attacker.test', { a: v4(600), aaaa: v6(600) });
    const fresh = await r.resolve('bomb.attacker.test');
    if (isDeny(fresh)) throw new Error(fresh.code);
    t.ok(dns.tcpQuestions.includes('bomb.attacker.test'), 'the answer came over TCP, whole');
    t.equal(MAX_PER_FAMILY, 16);
    t.same(fresh.addresses, [...v4(16), ...v6(16)], 'the first 16 of each family');
    t.equal(fresh.truncated, true);
    t.equal(fresh.all?.length, 1200, 'the fresh answer carries every address, for the guard');
    const hit = await r.resolve('bomb.attacker.test');
    if (isDeny(hit)) throw new Error(hit.code);
    t.match(hit, { cached: true, truncated: true, addresses: fresh.addresses });
    t.equal(hit.all, undefined, 'the cache keeps only what was kept');

    dns.set('small.test', { a: v4(3) });
    const small = await r.resolve('small.test');
    t.match(small, { addresses: v4(3), cached: false });
    t.equal((small as Resolution).truncated, undefined);
    t.equal((small as Resolution).all, undefined);
  });

  t.test('the cache is bounded in bytes: 40 names of 16 addresses do not all stay', async (t) => {
    const dns = await startFakeDns();
    t.teardown(() => dns.close());
    const names = Array.from({ length: 40 }, (_, i) => `n${i}.wide.test`);
    for (const n of names) dns.set(n, { a: v4(16) });
    const entry = sizeOfEntry(names[0]!, v4(16));
    const maxBytes = entry * 10;
    const r = createResolver({
      servers: [dns.server],
      timeoutMs: 3000,
      minTtlS: 60,
      maxTtlS: 60,
      nowMs: () => 0,
      maxBytes,
    });
    for (const n of names) t.notOk(isDeny(await r.resolve(n)));
    let cached = 0;
    for (const n of [...names].reverse()) {
      const again = await r.resolve(n);
      if (!isDeny(again) && again.cached) cached++;
      else break;
    }
    t.ok(cached >= 1, 'the latest names are cached');
    t.ok(cached * entry <= maxBytes, `${cached} entries of ${entry} bytes fit in ${maxBytes}`);
    t.ok(cached <= 10);
  });

  t.test('lookups in flight are bounded: the excess gets 429 EGR_LIMIT_CONCURRENCY at once', async (t) => {
    const dns = await startFakeDns();
    t.teardown(() => dns.close());
    const r = createResolver({
      servers: [dns.server],
      timeoutMs: 300,
      minTtlS: 5,
      maxTtlS: 60,
      nowMs: () => 0,
      maxInflight: 4,
    });
    const order: string[] = [];
    const names = Array.from({ length: 6 }, (_, i) => `slow${i}.test`);
    for (const n of names) dns.set(n, 'timeout');
    const all = names.map((n) =>
      r.resolve(n).then((res) => {
        order.push(isDeny(res) ? res.code : 'ok');
        return res;
      }),
    );
    const joined = r.resolve('slow0.test');
    const results = await Promise.all([...all, joined]);
    t.same(
      results.map((x) => (isDeny(x) ? x.code : 'ok')),
      [
        'EGR_FAIL_DNS_TIMEOUT',
        'EGR_FAIL_DNS_TIMEOUT',
        'EGR_FAIL_DNS_TIMEOUT',
        'EGR_FAIL_DNS_TIMEOUT',
        'EGR_LIMIT_CONCURRENCY',
        'EGR_LIMIT_CONCURRENCY',
        'EGR_FAIL_DNS_TIMEOUT',
      ],
      'four lookups, two refused, and a lookup of a name in flight joins it',
    );
    t.same(
      order.slice(0, 2),
      ['EGR_LIMIT_CONCURRENCY', 'EGR_LIMIT_CONCURRENCY'],
      'the refusals did not wait for the lookups',
    );
    t.match(results[4], { rule: 'dns.inflight', retryAfterS: 1 });
    dns.set('slow0.test', { a: v4(1) });
    t.match(await r.resolve('slow0.test'), { addresses: v4(1) }, 'slots come back when lookups end');
  });

  t.test('one blocked answer beyond the cap still blocks the set', async (t) => {
    const dns = await startFakeDns();
    t.teardown(() => dns.close());
    const r = createResolver({ servers: [dns.server], timeoutMs: 3000, minTtlS: 60, maxTtlS: 60, nowMs: () => 0 });
    const dialer = createDialer({ resolver: r, policy: () => policyWith({}), connectTimeoutMs: 1000, nowMs: () => 0 });
    t.teardown(() => dialer.close());
    const mixed = v4(200);
    mixed[150] = '10.0.0.1';
    dns.set('mixed.attacker.test', { a: mixed });
    const plan = await dialer.prepare({ host: 'mixed.attacker.test', kind: 'name' });
    t.ok(isDeny(plan) && plan.code === 'EGR_DENY_ADDRESS_PRIVATE', 'answer 151 of 200 is private');
    const again = await dialer.prepare({ host: 'mixed.attacker.test', kind: 'name' });
    t.ok(isDeny(again) && again.code === 'EGR_DENY_ADDRESS_PRIVATE', 'and so it stays on a cache hit');
  });

  t.test('a new guard judges the whole truncated set again, not only the part kept', async (t) => {
    const dns = await startFakeDns();
    t.teardown(() => dns.close());
    const r = createResolver({ servers: [dns.server], timeoutMs: 3000, minTtlS: 60, maxTtlS: 60, nowMs: () => 0 });
    let policy = policyWith({});
    const dialer = createDialer({ resolver: r, policy: () => policy, connectTimeoutMs: 1000, nowMs: () => 0 });
    t.teardown(() => dialer.close());
    dns.set('wide.attacker.test', { a: v4(200) });
    const host = { host: 'wide.attacker.test', kind: 'name' } as const;
    const plan = await dialer.prepare(host);
    if (isDeny(plan)) throw new Error(plan.code);
    t.equal(plan.addresses.length, 16);
    t.equal(await dialer.prepare(host), plan, 'a cache hit under the same guard reuses the plan');
    const asked = dns.asked('wide.attacker.test');
    // The operator denies a range that holds only answer 101: it was dropped from the kept 16.
    policy = policyWith({ addressGuard: { deny: [`${v4(200)[100]}/32`] } });
    const reloaded = await dialer.prepare(host);
    t.ok(isDeny(reloaded) && reloaded.code === 'EGR_DENY_ADDRESS_RULE', 'the set is refused under the new guard');
    t.ok(dns.asked('wide.attacker.test') > asked, 'by asking the server for the whole set again');
  });

  t.test("a validated plan lives as long as its record's TTL: the Agent then resolves again", async (t) => {
    // Two origins on one port: the name first points at 127.0.0.2, then at 127.0.0.3.
    const servers: Server[] = [];
    const listen = (address: string, body: string, port = 0) =>
      new Promise<number>((resolve, reject) => {
        const s = createServer((_req, res) => res.end(body));
        s.keepAliveTimeout = 60_000;
        s.once('error', reject);
        s.listen(port, address, () => resolve((s.address() as AddressInfo).port));
        servers.push(s);
      });
    const port = await listen('127.0.0.2', 'old');
    await listen('127.0.0.3', 'new', port);
    t.teardown(() =>
      Promise.all(
        servers.map(
          (s) =>
            new Promise((r) => {
              s.closeAllConnections();
              s.close(r);
            }),
        ),
      ),
    );
    let now = 0;
    let answer = '127.0.0.2';
    let ttlMs = 30_000;
    const resolver: NameResolver = {
      resolve: async () => ({ addresses: [answer], ms: 1, cached: false, ttlMs }),
      clear: () => undefined,
    };
    const policy = policyWith({ addressGuard: { allow: [{ cidr: '127.0.0.0/8', hosts: ['svc.test'] }] } });
    const dialer = createDialer({ resolver, policy: () => policy, connectTimeoutMs: 1000, nowMs: () => now });
    t.teardown(() => dialer.close());
    t.notOk(isDeny(await dialer.prepare({ host: 'svc.test', kind: 'name' })));
    const get = async () =>
      (await request(`http://svc.test:${port}/`, { dispatcher: viaDialer(dialer), reset: true })).body.text();
    t.equal(await get(), 'old');
    answer = '127.0.0.3';
    now = 29_000;
    t.equal(await get(), 'old', 'within the TTL the Agent connects to the validated address');
    now = 30_001;
    t.equal(await get(), 'new', 'after it, the name is resolved and validated again');

    // A record with TTL 0 is still pinned long enough for the request that validated it to connect through it.
    ttlMs = 0;
    answer = '127.0.0.2';
    t.notOk(isDeny(await dialer.prepare({ host: 'svc.test', kind: 'name' })));
    answer = '127.0.0.3';
    t.equal(await get(), 'old', 'TTL 0: the connection goes to the address just validated, not to a second answer');
  });
}
