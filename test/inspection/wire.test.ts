// TLS inspection wired into the proxy, in the lo-only namespace: CONNECT (and SOCKS5) to a name that is not
// opaque is terminated with a leaf from the inspection CA, and every request inside is judged as
// `METHOD https://host/path` by the same pipeline as an absolute-form request, with one audit record each.
import { connect as netConnect } from 'node:net';
import t from 'tap';
import { SocksClient } from 'socks';
import { FIELD } from '../../proxy/ops/audit.js';
import { AGENT_AUTH, basic, rawExchange, waitFor } from '../helpers/harness.js';
import { isolate } from '../helpers/netns.js';
import { PASSWORD } from '../helpers/world.js';
import {
  handshake,
  inspectedSession,
  openTunnel,
  proxyCode,
  sessionClient,
  startInspectingSluice,
} from './wire-helpers.js';

const SEALED_AUTH = basic('sealed', PASSWORD);

if (isolate(t, import.meta.url)) {
  const { w, h, ca, www } = await startInspectingSluice(
    t,
    {
      listen: { http: '127.0.0.1:0', socks5: '127.0.0.1:0', admin: null },
    },
    { opaque: ['gh.test'] },
  );
  const metric = async (name: string) => {
    const m = await h.sluice.metrics.registry.getSingleMetricAsString(name);
    return m;
  };
  const sum = async (name: string) => {
    const text = await metric(name);
    let n = 0;
    for (const line of text.split('\n')) if (line && !line.startsWith('#')) n += Number(line.split(' ').pop());
    return n;
  };
  const decisionsOf = (tunnel: string) => h.decisions().filter((d) => d[FIELD.tunnel] === tunnel);

  t.test('a public HTTPS read is inspected: one record for the tunnel, one per request inside', async (t) => {
    const tls = await inspectedSession(h.port, 'public.test', ca.certPem);
    t.match(tls.getPeerCertificate().issuer.O, 'Sluice', 'the client sees a leaf from the inspection CA');
    t.equal(tls.alpnProtocol, false, 'no ALPN asked, none chosen');
    const c = sessionClient(tls, 'public.test');
    const a = await c.request({ path: '/hello?x=1' });
    t.equal(a.status, 200);
    t.equal(a.body, 'www GET /hello?x=1 ');
    const denied = await c.request({ method: 'POST', path: '/submit', body: 'data' });
    t.equal(denied.status, 403, 'a write to a public host is refused inside the session');
    t.equal(proxyCode(denied), 'EGR_DENY_WRITE');
    const b = await c.request({ path: '/again' });
    t.equal(b.status, 200, 'the session stays usable after a denial');
    t.equal(www.requests.filter((r) => r.method === 'POST').length, 0, 'the write never reached the origin');
    tls.end();
    const tunnel = await waitFor(() =>
      h.decisions().find((d) => d.method === 'CONNECT' && d[FIELD.targetHost] === 'public.test'),
    );
    t.match(tunnel, {
      verdict: 'allow',
      rule: 'identities.agent.reads',
      [FIELD.inspected]: true,
      [FIELD.tunnel]: tunnel.id,
      [FIELD.dialAddress]: null,
    });
    const inner = decisionsOf(tunnel.id as string).filter((d) => d.method !== 'CONNECT');
    t.same(
      inner.map((d) => [d.method, d[FIELD.targetPath], d.verdict, d.code ?? null]),
      [
        ['GET', '/hello?x=', 'allow', null],
        ['POST', '/submit', 'deny', 'EGR_DENY_WRITE'],
        ['GET', '/again', 'allow', null],
      ],
    );
    for (const d of inner)
      t.match(d, {
        identity: 'agent',
        [FIELD.inspected]: true,
        [FIELD.targetHost]: 'public.test',
        [FIELD.targetPort]: 443,
      });
    t.equal(inner[0]![FIELD.dialAddress], '127.0.0.2', 'forwarded through the dialer to the validated address');
  });

  t.test(
    'a git fetch negotiation is a read only while it is as small as one: a large or chunked one is a write',
    async (t) => {
      const tls = await inspectedSession(h.port, 'public.test', ca.certPem);
      const c = sessionClient(tls, 'public.test');
      const type = { 'content-type': 'application/x-git-upload-pack-request' };
      const before = www.requests.length;
      const small = await c.request({
        method: 'POST',
        path: '/r.git/git-upload-pack',
        headers: type,
        body: '0032want 0123456789012345678901234567890123456789\n00000009done\n',
      });
      t.equal(small.status, 200, 'a clone-sized negotiation reads');
      const big = await c.request({
        method: 'POST',
        path: '/r.git/git-upload-pack',
        headers: type,
        body: 'x'.repeat(64 * 1024 + 1),
      });
      t.equal(proxyCode(big), 'EGR_DENY_WRITE', 'over 64 KiB: an upload to a host the identity may only read');
      const chunked = await c.request({
        method: 'POST',
        path: '/r.git/git-upload-pack',
        headers: { ...type, 'transfer-encoding': 'chunked' },
        body: 'data',
      });
      t.equal(proxyCode(chunked), 'EGR_DENY_WRITE', 'a body of no declared length: a write');
      t.equal(www.requests.length, before + 1, 'only the small negotiation reached the origin');
      tls.destroy();
    },
  );

  t.test('an integration (tunnel: false) is inspected: its writes pass, judged per request', async (t) => {
    const tls = await inspectedSession(h.port, 'api.test', ca.certPem);
    const c = sessionClient(tls, 'api.test');
    const r = await c.request({ method: 'POST', path: '/issues', body: 'hello' });
    t.equal(r.status, 200);
    t.match(r.body, /canary POST \/issues hello/);
    t.notOk(r.headers['x-hop'], 'hop-by-hop headers of the origin are dropped, as for absolute-form requests');
    const override = await c.request({ method: 'GET', path: '/x', headers: { 'x-http-method-override': 'TRACE' } });
    t.equal(proxyCode(override), 'EGR_DENY_METHOD', 'the disguised-write rules hold inside');
    tls.destroy();
  });

  t.test('registries are read-only when inspected, for every identity', async (t) => {
    const tls = await inspectedSession(h.port, 'registry.test', ca.certPem, SEALED_AUTH);
    const c = sessionClient(tls, 'registry.test');
    t.equal((await c.request({ path: '/pkg' })).status, 200, 'GET passes (reads: none identity)');
    t.equal((await c.request({ method: 'HEAD', path: '/pkg' })).status, 200, 'HEAD passes');
    tls.destroy();
    // node:http's client closes after a HEAD answer without Content-Length (as the canary sends it): a new session.
    const tls2 = await inspectedSession(h.port, 'registry.test', ca.certPem, SEALED_AUTH);
    const c2 = sessionClient(tls2, 'registry.test');
    for (const method of ['PUT', 'POST', 'DELETE']) {
      const r = await c2.request({ method, path: '/pkg', body: 'tarball', headers: { 'content-length': '7' } });
      t.equal(proxyCode(r), 'EGR_DENY_WRITE', `${method} (npm publish, twine upload) → EGR_DENY_WRITE`);
    }
    tls2.destroy();
    const sealed = await openTunnel(h.port, 'public.test:443', SEALED_AUTH);
    t.match(
      sealed.head,
      /^HTTP\/1\.1 403 [\s\S]*EGR_DENY_READ/,
      'a reads: none identity cannot open a tunnel to a public host',
    );
    sealed.socket.destroy();
  });

  t.test('an opaque host keeps the spliced tunnel and its SNI check', async (t) => {
    const { head, socket } = await openTunnel(h.port, 'gh.test:443');
    t.match(head, /^HTTP\/1\.1 200 /);
    const tls = await handshake(socket, { servername: 'gh.test', ca: w.pki.caPem });
    t.notOk(tls instanceof Error, "the origin's own certificate reaches the client");
    if (!(tls instanceof Error)) tls.destroy();
    const rec = await waitFor(() =>
      h.decisions().find((d) => d.method === 'CONNECT' && d[FIELD.targetHost] === 'gh.test'),
    );
    t.match(rec, { [FIELD.inspected]: false, [FIELD.dialAddress]: '127.0.0.3' });
  });

  t.test('Host inside must name the tunnel host (421), absolute-form to another host too', async (t) => {
    const tls = await inspectedSession(h.port, 'public.test', ca.certPem);
    const c = sessionClient(tls, 'public.test');
    const other = await c.request({ path: '/', headers: { host: 'api.test' } });
    t.equal(other.status, 421);
    t.equal(proxyCode(other), 'EGR_MISDIRECTED');
    t.equal(www.requests.filter((r) => r.url === '/' && r.headers.host === 'api.test').length, 0);
    const tls2 = await inspectedSession(h.port, 'public.test', ca.certPem);
    tls2.write('POST https://api.test/issues HTTP/1.1\r\nHost: public.test\r\nContent-Length: 0\r\n\r\n');
    let text = '';
    for await (const chunk of tls2) text += chunk;
    t.match(
      text,
      /^HTTP\/1\.1 421 [\s\S]*EGR_MISDIRECTED/,
      'an absolute-form target naming another host is misdirected',
    );
  });

  t.test('an upstream certificate that does not verify is 502 EGR_UPSTREAM_TLS inside the session', async (t) => {
    const tls = await inspectedSession(h.port, 'wrongcert.test', ca.certPem);
    const c = sessionClient(tls, 'wrongcert.test');
    const r = await c.request({ path: '/' });
    t.equal(r.status, 502);
    t.equal(proxyCode(r), 'EGR_UPSTREAM_TLS');
    tls.destroy();
  });

  t.test('SNI ≠ CONNECT host, no SNI, literal CONNECT: refused, nothing minted', async (t) => {
    const mints = await sum('sluice_inspection_leaf_mints_total');
    const hits = await sum('sluice_inspection_leaf_cache_hits_total');
    w.dns.set('wrong-sni.test', { a: ['127.0.0.2'] });
    w.dns.set('nosni.test', { a: ['127.0.0.2'] });
    const mismatch = await openTunnel(h.port, 'wrong-sni.test:443');
    const e1 = await handshake(mismatch.socket, { servername: 'public.test', ca: ca.certPem });
    t.ok(e1 instanceof Error, 'SNI naming another host: no handshake');
    const none = await openTunnel(h.port, 'nosni.test:443');
    // An IP host and no servername: Node sends no SNI at all.
    const e2 = await handshake(none.socket, { ca: ca.certPem, host: '127.0.0.1' });
    t.ok(e2 instanceof Error, 'no SNI: no handshake');
    const literal = await rawExchange(
      h.port,
      `CONNECT 127.0.0.2:443 HTTP/1.1\r\nHost: 127.0.0.2:443\r\nProxy-Authorization: ${AGENT_AUTH}\r\n\r\n`,
    );
    t.match(literal.text, /^HTTP\/1\.1 403 [\s\S]*EGR_DENY_IP_LITERAL/);
    await waitFor(() => h.decisions().filter((d) => d.code === 'EGR_DENY_SNI_MISMATCH').length >= 2);
    t.equal(await sum('sluice_inspection_leaf_mints_total'), mints, 'no leaf minted');
    t.equal(await sum('sluice_inspection_leaf_cache_hits_total'), hits, 'no leaf served');
  });

  t.test('a client that does not trust the CA: audit EGR_CLIENT_TLS with the alert, metric by reason', async (t) => {
    const before = h.decisions().filter((d) => d.code === 'EGR_CLIENT_TLS').length;
    const { socket } = await openTunnel(h.port, 'public.test:443');
    const err = await handshake(socket, { servername: 'public.test', ca: w.pki.caPem });
    t.ok(err instanceof Error, 'the client rejects the leaf');
    // Node's client checks the chain after the handshake and sends no alert (curl does: clients.test.ts).
    socket.destroy();
    const rec = await waitFor(() => h.decisions().filter((d) => d.code === 'EGR_CLIENT_TLS')[before]);
    t.match(rec, { method: 'CONNECT', verdict: 'deny', [FIELD.inspected]: true, [FIELD.targetHost]: 'public.test' });
    t.match(
      await metric('sluice_inspection_client_handshake_failures_total'),
      /reason="(closed|timeout|other)"} [1-9]/,
    );
  });

  t.test('TLS 1.0 / 1.1 clients are refused', async (t) => {
    for (const v of ['TLSv1', 'TLSv1.1'] as const) {
      const { socket } = await openTunnel(h.port, 'public.test:443');
      const err = await handshake(socket, {
        servername: 'public.test',
        ca: ca.certPem,
        minVersion: v,
        maxVersion: v,
        ciphers: 'DEFAULT@SECLEVEL=0',
      });
      t.ok(err instanceof Error, `${v} refused`);
    }
    await waitFor(() => h.decisions().filter((d) => d.code === 'EGR_CLIENT_TLS').length >= 3);
  });

  t.test(
    'ALPN: h2 and http/1.1 offered → http/1.1; h2 alone → the handshake fails (no_application_protocol)',
    async (t) => {
      const both = await openTunnel(h.port, 'public.test:443');
      const tls = await handshake(both.socket, {
        servername: 'public.test',
        ca: ca.certPem,
        ALPNProtocols: ['h2', 'http/1.1'],
      });
      if (tls instanceof Error) throw tls;
      t.equal(tls.alpnProtocol, 'http/1.1');
      tls.destroy();
      const before = h.decisions().filter((d) => d.code === 'EGR_CLIENT_TLS').length;
      const only = await openTunnel(h.port, 'public.test:443');
      const err = await handshake(only.socket, { servername: 'public.test', ca: ca.certPem, ALPNProtocols: ['h2'] });
      t.ok(err instanceof Error, 'an h2-only client gets no session');
      only.socket.destroy();
      const rec = await waitFor(() => h.decisions().filter((d) => d.code === 'EGR_CLIENT_TLS')[before]);
      t.match(rec, { detail: /no_application_protocol/ });
    },
  );

  t.test('TLS 1.2 renegotiation is refused', async (t) => {
    const { socket } = await openTunnel(h.port, 'public.test:443');
    const tls = await handshake(socket, { servername: 'public.test', ca: ca.certPem, maxVersion: 'TLSv1.2' });
    if (tls instanceof Error) throw tls;
    t.equal(tls.getProtocol(), 'TLSv1.2');
    tls.on('error', () => undefined);
    const err = await new Promise<Error | null>((r) => {
      const started = tls.renegotiate({}, (e) => r(e ?? null));
      if (!started) r(new Error('renegotiation could not start'));
      tls.once('close', () => r(new Error('closed')));
      // A server that ignores the HelloRequest answer leaves the client waiting: a completed one calls back at once.
      setTimeout(() => r(new Error('not completed')), 1500).unref();
    });
    t.ok(err, `no second handshake: ${err?.message}`);
    tls.destroy();
  });

  t.test('SOCKS5 CONNECT is inspected the same way', async (t) => {
    const { socket } = await SocksClient.createConnection({
      proxy: { host: '127.0.0.1', port: h.socks5Port!, type: 5, userId: 'agent', password: PASSWORD },
      command: 'connect',
      destination: { host: 'public.test', port: 443 },
    });
    const tls = await handshake(socket, { servername: 'public.test', ca: ca.certPem });
    if (tls instanceof Error) throw tls;
    const c = sessionClient(tls, 'public.test');
    t.equal((await c.request({ path: '/socks' })).body, 'www GET /socks ');
    t.equal(proxyCode(await c.request({ method: 'DELETE', path: '/x' })), 'EGR_DENY_WRITE');
    tls.destroy();
    const rec = await waitFor(() =>
      h.decisions().find((d) => d[FIELD.listener] === 'socks5' && d[FIELD.targetPath] === '/socks'),
    );
    t.match(rec, { [FIELD.inspected]: true, verdict: 'allow' });
  });

  t.test('inside the session: smuggling, pipelining, h2 preface, CONNECT', async (t) => {
    const exchange = async (bytes: string) => {
      const tls = await inspectedSession(h.port, 'public.test', ca.certPem);
      tls.write(bytes);
      let text = '';
      const timer = setTimeout(() => tls.destroy(), 3000);
      for await (const chunk of tls) text += chunk;
      clearTimeout(timer);
      return text;
    };
    const pipelined = await exchange(
      'GET /p1 HTTP/1.1\r\nHost: public.test\r\n\r\nPOST /p2 HTTP/1.1\r\nHost: public.test\r\nContent-Length: 1\r\n\r\nxGET /p3 HTTP/1.1\r\nHost: public.test\r\nConnection: close\r\n\r\n',
    );
    t.match(
      pipelined,
      /^HTTP\/1\.1 200 [\s\S]*www GET \/p1[\s\S]*HTTP\/1\.1 403 [\s\S]*EGR_DENY_WRITE[\s\S]*HTTP\/1\.1 200 [\s\S]*www GET \/p3/,
      'pipelined requests are each judged, in order',
    );
    const smuggled = await exchange(
      'POST /s HTTP/1.1\r\nHost: public.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: public.test\r\n\r\n',
    );
    t.match(smuggled, /^HTTP\/1\.1 400 [\s\S]*EGR_BAD_REQUEST/, 'CL + TE is refused and the session closed');
    t.equal(www.requests.filter((r) => r.url === '/smuggled').length, 0);
    const h2 = await exchange('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
    t.match(h2, /^HTTP\/1\.1 501 [\s\S]*EGR_UNSUPPORTED/, 'an h2 preface in an HTTP/1.1 session');
    const nested = await exchange('CONNECT api.test:443 HTTP/1.1\r\nHost: api.test:443\r\n\r\n');
    t.match(nested, /^HTTP\/1\.1 501 [\s\S]*EGR_UNSUPPORTED/, 'CONNECT inside');
    const refused = await waitFor(
      () =>
        h.decisions().filter((d) => d[FIELD.inspected] === true && d.code === 'EGR_UNSUPPORTED' && d[FIELD.tunnel])
          .length >= 2,
    );
    t.ok(refused, "the session's own refusals are audited in the tunnel");
  });

  t.test('WebSocket upgrade inside: the same rules as plain', async (t) => {
    const tls = await inspectedSession(h.port, 'public.test', ca.certPem);
    tls.write(
      'GET /ws HTTP/1.1\r\nHost: public.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
    );
    let text = '';
    const timer = setTimeout(() => tls.destroy(), 3000);
    for await (const chunk of tls) text += chunk;
    clearTimeout(timer);
    const plain = await rawExchange(
      h.port,
      `GET https://public.test/ws HTTP/1.1\r\nHost: public.test\r\nProxy-Authorization: ${AGENT_AUTH}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`,
    );
    const code = (x: string) => /details="([A-Z_]+)"/.exec(x)?.[1];
    t.match(text, /^HTTP\/1\.1 403 /, 'refused inside: public.test is no integration');
    t.equal(code(text), code(plain.text), 'with the code an absolute-form upgrade gets');
    t.equal(code(text), 'EGR_DENY_DISGUISED_WRITE');
  });

  t.test('a name that rebinds between CONNECT and a request inside meets the address guard again', async (t) => {
    w.dns.set('rebind.test', { a: ['127.0.0.2'] });
    const tls = await inspectedSession(h.port, 'rebind.test', ca.certPem).catch((e: Error) => e);
    // The world's certificate does not name rebind.test, so a forwarded request would fail TLS: what matters
    // is that it never connects to the private address.
    if (tls instanceof Error) throw tls;
    w.dns.set('rebind.test', { a: ['10.0.0.1'] });
    h.sluice.resolver.clear();
    const hits = w.forbiddenHits();
    const c = sessionClient(tls, 'rebind.test');
    const r = await c.request({ path: '/' });
    t.equal(proxyCode(r), 'EGR_DENY_ADDRESS_PRIVATE');
    t.equal(w.forbiddenHits(), hits, 'nothing reached the private address');
    tls.destroy();
  });

  t.test('the kill switch ends inspected sessions', async (t) => {
    const tls = await inspectedSession(h.port, 'public.test', ca.certPem);
    const c = sessionClient(tls, 'public.test');
    t.equal((await c.request({ path: '/before' })).status, 200);
    const closed = new Promise<void>((r) => tls.once('close', () => r()));
    h.sluice.state.setKillSwitch(true);
    await closed;
    h.sluice.state.setKillSwitch(false);
    const rec = await waitFor(() =>
      h.decisions().find((d) => d.method === 'CONNECT' && d.close === 'kill-switch' && d[FIELD.inspected] === true),
    );
    t.ok(rec, 'the tunnel record says why it closed');
    t.equal(h.sluice.state.flows.count('inspected'), 0);
  });

  t.test('metrics count sessions, requests inside and leaves', async (t) => {
    t.ok((await sum('sluice_inspection_sessions_total')) > 0);
    t.ok((await sum('sluice_inspection_requests_total')) > 0);
    t.ok((await sum('sluice_inspection_leaf_mints_total')) > 0);
    t.ok((await sum('sluice_inspection_leaf_cache_hits_total')) > 0);
    t.match(await h.sluice.metrics.registry.getSingleMetricAsString('sluice_active_flows'), /kind="inspected"/);
    void netConnect;
  });
}
