// CONNECT tunnels: registries and tunnel: true integrations only, by name, port 443, and the first bytes
// must be a ClientHello naming the tunnel host — checked before any upstream connection is opened.
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import t from 'tap';
import { AGENT_AUTH, openTunnel, rawExchange, startSluice, settles, waitFor } from '../helpers/harness.js';
import { isolate } from '../helpers/netns.js';
import { buildWorld, worldConfig } from '../helpers/world.js';

const closed = (s: Socket) => new Promise<void>((r) => (s.destroyed ? r() : s.once('close', () => r())));

if (isolate(t, import.meta.url)) {
  const w = await buildWorld(t);
  const h = await startSluice(t, worldConfig(w));

  t.test('a registry tunnel carries TLS end to end', async (t) => {
    const { head, socket } = await openTunnel(h.port, 'registry.test:443');
    t.match(head, /^HTTP\/1\.1 200 /);
    const tls = tlsConnect({ socket, servername: 'registry.test', ca: w.pki.caPem });
    await new Promise<void>((r, j) => tls.once('secureConnect', r).once('error', j));
    tls.write('GET /pkg HTTP/1.1\r\nHost: registry.test\r\nConnection: close\r\n\r\n');
    let text = '';
    for await (const c of tls) text += c;
    t.match(text, /^HTTP\/1\.1 200 [\s\S]*canary GET \/pkg/);
    const rec = await waitFor(() => h.decisions().find((d) => d.rule === 'registries' && d.verdict === 'allow'));
    t.match(rec, {
      method: 'CONNECT',
      'target.host': 'registry.test',
      verdict: 'allow',
      rule: 'registries',
      'dial.address': '127.0.0.4',
    });
    t.ok((rec['bytes.up'] as number) > 0 && (rec['bytes.down'] as number) > 0, 'bytes counted both ways');
  });

  t.test('an integration with tunnel: true may be tunnelled to', async (t) => {
    const { head, socket } = await openTunnel(h.port, 'gh.test:443');
    t.match(head, /^HTTP\/1\.1 200 /);
    const tls = tlsConnect({ socket, servername: 'gh.test', ca: w.pki.caPem });
    await new Promise<void>((r, j) => tls.once('secureConnect', r).once('error', j));
    tls.destroy();
  });

  t.test('SNI that differs from the CONNECT host closes the tunnel before any upstream connection', async (t) => {
    const conns = w.registry.connections + w.integration.connections;
    const { head, socket } = await openTunnel(h.port, 'registry.test:443');
    t.match(head, /^HTTP\/1\.1 200 /, 'the client is told the tunnel is open...');
    const tls = tlsConnect({ socket, servername: 'api.test', ca: w.pki.caPem });
    const err = await new Promise<Error | null>((r) => tls.once('error', r).once('secureConnect', () => r(null)));
    t.ok(err, '...but the handshake never completes');
    await closed(socket);
    t.equal(w.registry.connections + w.integration.connections, conns, 'no upstream connection was opened');
    t.match(await waitFor(() => h.decisions().find((d) => d.code === 'EGR_DENY_SNI_MISMATCH')), {
      verdict: 'deny',
      'connect.ms': null,
      'dial.address': null,
    });
  });

  t.test('a tunnel that does not start with a ClientHello is closed', async (t) => {
    const conns = w.registry.connections;
    const { socket } = await openTunnel(h.port, 'registry.test:443');
    socket.resume();
    socket.write('SSH-2.0-OpenSSH_9.6\r\n');
    await closed(socket);
    t.equal(w.registry.connections, conns);
    const silent = await openTunnel(h.port, 'registry.test:443');
    silent.socket.resume();
    await closed(silent.socket); // tunnelHelloTimeoutMs in the test config is 1s
    t.equal(w.registry.connections, conns);
    await waitFor(() => h.decisions().filter((d) => d.code === 'EGR_DENY_SNI_MISMATCH').length >= 3);
  });

  t.test('tunnels that policy refuses get 403 and no tunnel', async (t) => {
    const rows: [string, string][] = [
      ['public.test:443', 'EGR_DENY_TUNNEL'],
      ['api.test:443', 'EGR_DENY_TUNNEL'], // integration with tunnel: false
      ['registry.test:22', 'EGR_DENY_PORT'],
      ['registry.test:80', 'EGR_DENY_PORT'],
      ['127.0.0.4:443', 'EGR_DENY_IP_LITERAL'],
      ['[::1]:443', 'EGR_DENY_IP_LITERAL'],
      ['0x7f.0.0.4:443', 'EGR_DENY_IP_LITERAL'],
      ['blocked.test:443', 'EGR_DENY_GLOBAL'],
      ['registry.test', 'EGR_INVALID_TARGET'],
      ['registry.test:0', 'EGR_INVALID_TARGET'],
      ['user@registry.test:443', 'EGR_INVALID_TARGET'],
    ];
    for (const [authority, code] of rows) {
      // Host without the userinfo: a Host with one is refused first, as invalid (RFC 9112 §3.2, http-rfc.test.ts).
      const r = await rawExchange(
        h.port,
        `CONNECT ${authority} HTTP/1.1\r\nHost: ${authority.replace(/^.*@/, '')}\r\nProxy-Authorization: ${AGENT_AUTH}\r\n\r\n`,
      );
      t.match(r.text, new RegExp(`^HTTP/1\\.1 (403|400) [\\s\\S]*details="${code}"`), `${authority} → ${code}`);
      t.ok(r.closed, 'connection closed');
    }
    const noAuth = await rawExchange(h.port, 'CONNECT registry.test:443 HTTP/1.1\r\nHost: registry.test:443\r\n\r\n');
    t.match(noAuth.text, /^HTTP\/1\.1 407 [\s\S]*Proxy-Authenticate: Basic/);
  });

  t.test('a registry name that resolves to a private address is refused before the tunnel opens', async (t) => {
    w.dns.set('registry.test', { a: ['10.0.0.1'] });
    h.sluice.resolver.clear();
    const hits = w.forbiddenHits();
    const r = await rawExchange(
      h.port,
      `CONNECT registry.test:443 HTTP/1.1\r\nHost: registry.test:443\r\nProxy-Authorization: ${AGENT_AUTH}\r\n\r\n`,
    );
    t.match(r.text, /^HTTP\/1\.1 403 [\s\S]*EGR_DENY_ADDRESS_PRIVATE/);
    t.equal(w.forbiddenHits(), hits);
    w.dns.set('registry.test', { a: ['127.0.0.4'] });
    h.sluice.resolver.clear();
  });

  t.test('the kill switch closes open tunnels', async (t) => {
    const { socket } = await openTunnel(h.port, 'registry.test:443');
    const tls = tlsConnect({ socket, servername: 'registry.test', ca: w.pki.caPem });
    await new Promise<void>((r, j) => tls.once('secureConnect', r).once('error', j));
    await waitFor(() => h.sluice.state.flows.count('tunnel') === 1);
    h.sluice.state.setKillSwitch(true);
    t.ok(await settles(closed(socket)), 'tunnel closed');
    const r = await rawExchange(
      h.port,
      `CONNECT registry.test:443 HTTP/1.1\r\nHost: registry.test:443\r\nProxy-Authorization: ${AGENT_AUTH}\r\n\r\n`,
    );
    t.match(r.text, /EGR_DENY_KILL_SWITCH/);
    h.sluice.state.setKillSwitch(false);
  });
}
