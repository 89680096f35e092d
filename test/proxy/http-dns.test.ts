// Names that resolve somewhere they should not: rebinding, mixed answer sets, CNAME chains into private
// space, IPv6 answers, NXDOMAIN and timeouts. Canaries on the forbidden addresses prove nothing connected.
import t from 'tap';
import { codeOf, startSluice, viaProxy } from '../helpers/harness.js';
import { isolate } from '../helpers/netns.js';
import { ADDR, buildWorld, worldConfig } from '../helpers/world.js';

if (isolate(t, import.meta.url)) {
  const w = await buildWorld(t);
  const h = await startSluice(t, worldConfig(w));
  const port = w.publicHttp.port;

  t.test('DNS rebinding: first answer public, then private', async (t) => {
    w.dns.set('rebind.test', (n) => (n === 0 ? { a: [ADDR.public], ttl: 0 } : { a: [ADDR.private], ttl: 0 }));
    const first = await viaProxy(h.port, { url: `http://rebind.test:${port}/` });
    t.equal(first.status, 200, 'the first, public answer is used');
    const hits = w.forbiddenHits();
    const second = await viaProxy(h.port, { url: `http://rebind.test:${port}/` });
    t.equal(codeOf(second), 'EGR_DENY_ADDRESS_PRIVATE', 'the rebound answer is validated, not trusted');
    t.equal(w.forbiddenHits(), hits, 'and nothing connected to it');
  });

  t.test('a mixed public+private answer set is refused whole', async (t) => {
    const conns = w.publicHttp.connections;
    w.dns.set('mixed.test', { a: [ADDR.public, ADDR.private] });
    const r = await viaProxy(h.port, { url: `http://mixed.test:${port}/` });
    t.equal(codeOf(r), 'EGR_DENY_ADDRESS_PRIVATE');
    t.equal(w.publicHttp.connections, conns, 'not even the public address was tried');
    w.dns.set('mixed6.test', { a: [ADDR.public], aaaa: ['fd00::1'] });
    const r6 = await viaProxy(h.port, { url: `http://mixed6.test:${port}/` });
    t.equal(codeOf(r6), 'EGR_DENY_ADDRESS_PRIVATE', 'an IPv6 ULA answer poisons the set');
    w.dns.set('mapped.test', { aaaa: ['::ffff:169.254.169.254'] });
    const rm = await viaProxy(h.port, { url: 'http://mapped.test/' });
    t.equal(codeOf(rm), 'EGR_DENY_ADDRESS_LINK_LOCAL', 'IPv4-mapped metadata in AAAA');
    w.dns.set('nat64.test', { aaaa: ['64:ff9b::a9fe:a9fe'] });
    const rn = await viaProxy(h.port, { url: 'http://nat64.test/' });
    t.equal(codeOf(rn), 'EGR_DENY_ADDRESS_EMBEDDED', 'NAT64 metadata in AAAA');
    w.dns.set('self.test', { a: ['127.0.0.1'] });
    const rs = await viaProxy(h.port, { url: `http://self.test:${h.port}/` });
    t.equal(codeOf(rs), 'EGR_DENY_ADDRESS_SELF', 'a name that points back at Sluice');
  });

  t.test('a CNAME into private space', async (t) => {
    const hits = w.forbiddenHits();
    w.dns.set('alias.test', { cname: 'internal.test' });
    const r = await viaProxy(h.port, { url: 'http://alias.test/' });
    t.equal(codeOf(r), 'EGR_DENY_ADDRESS_PRIVATE');
    w.dns.set('meta-alias.test', { cname: 'meta.test' });
    const m = await viaProxy(h.port, { url: 'http://meta-alias.test/latest/meta-data/' });
    t.equal(codeOf(m), 'EGR_DENY_ADDRESS_LINK_LOCAL');
    t.equal(w.forbiddenHits(), hits);
  });

  t.test('resolution failures have their own codes', async (t) => {
    const nx = await viaProxy(h.port, { url: 'http://no-such-name.test/' });
    t.equal(nx.status, 502);
    t.equal(codeOf(nx), 'EGR_FAIL_DNS');
    w.dns.set('slow.test', 'timeout');
    const slow = await viaProxy(h.port, { url: 'http://slow.test/' });
    t.equal(slow.status, 504);
    t.equal(codeOf(slow), 'EGR_FAIL_DNS_TIMEOUT');
    w.dns.set('broken.test', 'servfail');
    const broken = await viaProxy(h.port, { url: 'http://broken.test/' });
    t.equal(codeOf(broken), 'EGR_FAIL_DNS');
    w.dns.set('empty.test', { a: [] });
    const empty = await viaProxy(h.port, { url: 'http://empty.test/' });
    t.equal(codeOf(empty), 'EGR_FAIL_DNS', 'NODATA is a DNS failure, never an allow');
  });

  t.test('denied names never reach the resolver', async (t) => {
    const before = w.dns.questions.length;
    await viaProxy(h.port, { url: 'http://blocked.test/' });
    await viaProxy(h.port, { method: 'POST', url: 'http://c2VjcmV0.exfil.test/' });
    await viaProxy(h.port, { method: 'OPTIONS', url: 'http://probe.test/' });
    await viaProxy(h.port, { url: 'http://sub.public.test/', auth: null });
    t.equal(w.dns.questions.length, before, 'no DNS question was asked for any denied request');
  });

  t.test('concurrent requests for one name share one lookup', async (t) => {
    w.dns.set('shared.test', { a: [ADDR.public], ttl: 30 });
    const before = w.dns.asked('shared.test');
    const replies = await Promise.all(
      Array.from({ length: 10 }, () => viaProxy(h.port, { url: `http://shared.test:${port}/` })),
    );
    t.ok(replies.every((r) => r.status === 200));
    t.equal(w.dns.asked('shared.test') - before, 2, 'one A and one AAAA question for ten requests');
  });
}
