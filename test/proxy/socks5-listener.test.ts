// The SOCKS5 listener at the byte level, in the lo-only namespace: the same policy as CONNECT (identity,
// tunnel rules, IP literals, the address guard, the SNI check), whole RFC 1928 replies, RFC 1929 failures,
// SOCKS4 and strangers refused, handshake timeouts and caps, and early data that reaches the upstream.
import { connect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import t, { type Test } from 'tap';
import { CODES, type Code } from '../../firewall/codes.js';
import { validateConfig } from '../../settings/config.js';
import { FIELD } from '../../proxy/ops/audit.js';
import { createSluice } from '../../proxy/runtime/sluice.js';
import { realHello } from '../helpers/client-hello.js';
import { AGENT, AGENT_AUTH, type Harness, rawExchange, startSluice, settles, waitFor } from '../helpers/harness.js';
import { isolate } from '../helpers/netns.js';
import { captureLogs } from '../helpers/log-capture.js';
import { buildWorld, worldConfig } from '../helpers/world.js';

const b = (...parts: (number | string | number[] | Buffer)[]) =>
  Buffer.concat(
    parts.map((p) =>
      typeof p === 'number' ? Buffer.from([p]) : typeof p === 'string' ? Buffer.from(p, 'utf8') : Buffer.from(p),
    ),
  );
const port16 = (p: number) => [p >> 8, p & 0xff];
const GREETING = b(5, 2, 0, 2);
const userPass = (user: string, pass: string) => b(1, Buffer.byteLength(user), user, Buffer.byteLength(pass), pass);
const AUTH = userPass(AGENT.user, AGENT.pass);
const domain = (host: string, port = 443, cmd = 1) => b(5, cmd, 0, 3, Buffer.byteLength(host), host, port16(port));
const ipv4 = (ip: string, port = 443) => b(5, 1, 0, 1, ip.split('.').map(Number), port16(port));
const ipv6 = (bytes: number[], port = 443) => b(5, 1, 0, 4, bytes, port16(port));
const replyHex = (code: Code) => `05${CODES[code].socks.toString(16).padStart(2, '0')}00010000000000` + '00';

/** A client socket with an exact-length reader over everything the proxy sends. */
function converse(port: number) {
  const socket = connect(port, '127.0.0.1');
  socket.setNoDelay(true);
  let buf = Buffer.alloc(0);
  let closed = false;
  let wake: (() => void) | null = null;
  socket.on('data', (c: Buffer) => {
    buf = Buffer.concat([buf, c]);
    wake?.();
  });
  socket.on('error', () => undefined);
  socket.on('close', () => {
    closed = true;
    wake?.();
  });
  return {
    socket,
    write: (bytes: Buffer) => socket.write(bytes),
    /** Exactly n bytes, or what arrived before the proxy closed. */
    async read(n: number): Promise<Buffer> {
      while (buf.length < n && !closed) await new Promise<void>((r) => (wake = r));
      const out = buf.subarray(0, n);
      buf = buf.subarray(out.length);
      return out;
    },
    async closed(): Promise<Buffer> {
      while (!closed) await new Promise<void>((r) => (wake = r));
      return buf;
    },
  };
}

/** Greeting and credentials, checked; returns the conversation ready for its request. */
async function authed(t: Test, port: number, auth: Buffer = AUTH) {
  const c = converse(port);
  c.write(GREETING);
  t.equal((await c.read(2)).toString('hex'), '0502', 'username/password selected');
  c.write(auth);
  return c;
}

const recordFor = (h: Harness, pred: (d: Record<string, unknown>) => boolean) =>
  waitFor(() => h.decisions().find((d) => d[FIELD.listener] === 'socks5' && pred(d)));

if (isolate(t, import.meta.url)) {
  const w = await buildWorld(t);
  w.dns.set('internal-registry.test', { a: ['10.0.0.1'] });
  w.dns.set('meta-registry.test', { a: ['169.254.169.254'] });
  w.dns.set('mixed-registry.test', { a: ['127.0.0.4', '10.0.0.1'] });
  const h = await startSluice(
    t,
    worldConfig(w, {
      listen: { http: '127.0.0.1:0', socks5: '127.0.0.1:0', admin: null },
      registries: [
        'registry.test',
        'internal-registry.test',
        'meta-registry.test',
        'mixed-registry.test',
        'nxdomain-registry.test',
      ],
      limits: { headersTimeoutMs: 1000, idleTimeoutMs: 60000, maxHeaderBytes: 16384 },
    }),
  );
  const port = h.socks5Port!;
  const socksCount = (code: Code) =>
    h.decisions().filter((d) => d[FIELD.listener] === 'socks5' && d.code === code).length;

  t.test('a registry tunnel: RFC 1929 success, a 10-byte reply, TLS end to end, one audit record', async (t) => {
    const c = await authed(t, port);
    t.equal((await c.read(2)).toString('hex'), '0100', 'RFC 1929 success');
    c.write(domain('registry.test'));
    t.equal((await c.read(10)).toString('hex'), '05000001000000000000', 'success, BND 0.0.0.0:0');
    c.socket.removeAllListeners('data');
    const tls = tlsConnect({ socket: c.socket, servername: 'registry.test', ca: w.pki.caPem });
    await new Promise<void>((r, j) => tls.once('secureConnect', r).once('error', j));
    tls.write('GET /pkg HTTP/1.1\r\nHost: registry.test\r\nConnection: close\r\n\r\n');
    let text = '';
    for await (const chunk of tls) text += chunk;
    t.match(text, /^HTTP\/1\.1 200 [\s\S]*canary GET \/pkg/);
    const rec = await recordFor(h, (d) => d.rule === 'registries' && d.verdict === 'allow');
    t.match(rec, {
      method: 'CONNECT',
      identity: 'agent',
      'target.host': 'registry.test',
      'target.port': 443,
      'dial.address': '127.0.0.4',
      code: null,
    });
    t.ok((rec['bytes.up'] as number) > 0 && (rec['bytes.down'] as number) > 0, 'bytes counted both ways');
    // The same canonical record as HTTP: same fields, only the listener differs.
    await rawExchange(
      h.port,
      `CONNECT public.test:443 HTTP/1.1\r\nHost: public.test:443\r\nProxy-Authorization: ${AGENT_AUTH}\r\n\r\n`,
    );
    const http = await waitFor(() => h.decisions().find((d) => d[FIELD.listener] === 'http'));
    t.same(
      Object.keys(rec)
        .filter((k) => k !== 'time' && k !== 'pid' && k !== 'hostname')
        .sort(),
      Object.keys(http)
        .filter((k) => k !== 'time' && k !== 'pid' && k !== 'hostname')
        .sort(),
      'same fields as an HTTP record',
    );
  });

  t.test(
    'an optimistic client: greeting, credentials, request and ClientHello in one write, nothing lost',
    async (t) => {
      const hello = await realHello('registry.test');
      const before = w.registry.connections;
      const allowed = () => h.decisions().filter((d) => d[FIELD.listener] === 'socks5' && d.verdict === 'allow');
      const seen = allowed().length;
      const c = converse(port);
      c.write(Buffer.concat([GREETING, AUTH, domain('registry.test'), hello]));
      t.equal((await c.read(14)).toString('hex'), '0502' + '0100' + '05000001000000000000');
      // The upstream answered the replayed ClientHello: a TLS handshake record came back through the tunnel.
      const back = await c.read(3);
      t.equal(back[0], 22, 'a TLS handshake record from the registry');
      t.equal(w.registry.connections, before + 1);
      c.socket.destroy();
      const rec = await waitFor(() => allowed()[seen]);
      t.equal(rec['bytes.up'], hello.length, 'exactly the early data went upstream');
    },
  );

  t.test('a client that dribbles every byte separately is served the same', async (t) => {
    const c = converse(port);
    const all = Buffer.concat([GREETING, AUTH, domain('registry.test', 22)]);
    for (const byte of all) {
      c.write(Buffer.from([byte]));
      await new Promise((r) => setTimeout(r, 2));
    }
    t.equal((await c.closed()).toString('hex'), '0502' + '0100' + replyHex('EGR_DENY_PORT'));
  });

  t.test('what policy refuses gets a whole reply with the REP of its code, then the connection closes', async (t) => {
    const v6 = (...tail: number[]) => [...Array<number>(16 - tail.length).fill(0), ...tail];
    const rows: [string, Buffer, Code][] = [
      ['a public host', domain('public.test'), 'EGR_DENY_TUNNEL'],
      ['an integration without tunnel: true', domain('api.test'), 'EGR_DENY_TUNNEL'],
      ['a registry on port 22', domain('registry.test', 22), 'EGR_DENY_PORT'],
      ['a registry on port 80', domain('registry.test', 80), 'EGR_DENY_PORT'],
      ['global deny', domain('blocked.test'), 'EGR_DENY_GLOBAL'],
      ['ATYP IPv4 loopback', ipv4('127.0.0.4'), 'EGR_DENY_IP_LITERAL'],
      ['ATYP IPv4 private', ipv4('10.0.0.1'), 'EGR_DENY_IP_LITERAL'],
      ['ATYP IPv4 metadata', ipv4('169.254.169.254', 80), 'EGR_DENY_IP_LITERAL'],
      ['ATYP IPv6 ::1', ipv6(v6(1)), 'EGR_DENY_IP_LITERAL'],
      ['ATYP IPv6 mapped metadata', ipv6(v6(0xff, 0xff, 169, 254, 169, 254)), 'EGR_DENY_IP_LITERAL'],
      ['a literal spelled as a domain', domain('0x7f.1'), 'EGR_DENY_IP_LITERAL'],
      ['a dotted literal as a domain', domain('10.0.0.1'), 'EGR_DENY_IP_LITERAL'],
      ['an IPv6 literal as a domain', domain('::1'), 'EGR_DENY_IP_LITERAL'],
      ['a registry that resolves to a private address', domain('internal-registry.test'), 'EGR_DENY_ADDRESS_PRIVATE'],
      ['a registry that resolves to the metadata address', domain('meta-registry.test'), 'EGR_DENY_ADDRESS_LINK_LOCAL'],
      ['one private answer among public ones', domain('mixed-registry.test'), 'EGR_DENY_ADDRESS_PRIVATE'],
      ['a registry that does not resolve', domain('nxdomain-registry.test'), 'EGR_FAIL_DNS'],
      ['port 0', domain('registry.test', 0), 'EGR_INVALID_TARGET'],
      ['a name with a space', domain('registry .test'), 'EGR_INVALID_TARGET'],
      ['a name with CRLF', domain('registry.test\r\nx'), 'EGR_INVALID_TARGET'],
      ['domain length 0', b(5, 1, 0, 3, 0, port16(443)), 'EGR_INVALID_TARGET'],
      ['BIND', domain('registry.test', 443, 2), 'EGR_UNSUPPORTED'],
      ['UDP ASSOCIATE', b(5, 3, 0, 1, [0, 0, 0, 0], port16(0)), 'EGR_UNSUPPORTED'],
      ['an unknown command', domain('registry.test', 443, 0x7f), 'EGR_UNSUPPORTED'],
      ['an unknown ATYP', b(5, 1, 0, 0x05, [1, 2, 3, 4], port16(443)), 'EGR_UNSUPPORTED_ADDRESS_TYPE'],
      ['a bad request version', b(4, 1, 0, 1, [1, 2, 3, 4], port16(443)), 'EGR_BAD_REQUEST'],
    ];
    const hits = w.forbiddenHits();
    const upstream = w.registry.connections;
    for (const [name, request, code] of rows) {
      const before = socksCount(code);
      const c = await authed(t, port);
      c.write(request);
      const all = await c.closed();
      t.equal(
        all.toString('hex'),
        '0100' + replyHex(code),
        `${name} → ${code} (REP 0x${CODES[code].socks.toString(16)})`,
      );
      await waitFor(() => socksCount(code) > before);
    }
    t.equal(w.forbiddenHits(), hits, 'no private or metadata canary was reached');
    t.equal(w.registry.connections, upstream, 'no upstream connection for any refusal');
    t.equal(w.dns.asked('public.test'), 0, 'a name refused by policy is never resolved');
  });

  t.test('credentials: RFC 1929 failure status, then close; the code is in the audit record', async (t) => {
    const { issueToken } = await import('../../proxy/auth/run-token.js');
    const { readFileSync } = await import('node:fs');
    const key = Buffer.from(readFileSync(w.tokenKeyFile, 'utf8').trim());
    const nowS = Math.floor(Date.now() / 1000);
    const rows: [string, Buffer, Code][] = [
      ['wrong password', userPass('agent', 'wrong'), 'EGR_AUTH_INVALID'],
      ['unknown user', userPass('nobody', 'x'), 'EGR_AUTH_INVALID'],
      ['empty password', b(1, 5, 'agent', 0), 'EGR_AUTH_INVALID'],
      [
        'expired run token',
        userPass('agent', issueToken(key, { sub: 'agent', ttlS: 1, nowS: nowS - 10 })),
        'EGR_AUTH_EXPIRED',
      ],
      [
        'run token for another user',
        userPass('sealed', issueToken(key, { sub: 'agent', ttlS: 600, nowS })),
        'EGR_AUTH_INVALID',
      ],
      ['zero-length username', b(1, 0, 1, 'x'), 'EGR_AUTH_INVALID'],
      ['bad sub-negotiation version', b(5, 5, 'agent', 3, 'pwd'), 'EGR_AUTH_INVALID'],
    ];
    for (const [name, auth, code] of rows) {
      const before = socksCount(code);
      const c = await authed(t, port, auth);
      t.equal((await c.closed()).toString('hex'), '0101', `${name}: status failure and close`);
      await waitFor(() => socksCount(code) > before);
    }
    const token = issueToken(key, { sub: 'agent', ttlS: 600, nowS });
    const c = await authed(t, port, userPass('agent', token));
    t.equal((await c.read(2)).toString('hex'), '0100', 'a valid run token is accepted');
    c.write(domain('public.test'));
    t.equal((await c.closed()).toString('hex'), replyHex('EGR_DENY_TUNNEL'));
    const rec = await recordFor(h, (d) => d.run !== null && d.code === 'EGR_DENY_TUNNEL');
    t.equal(rec.identity, 'agent');
    t.notMatch(h.logText(), new RegExp(token.split('.').at(-1)!), 'the token never reaches the log');
    t.notMatch(h.logText(), new RegExp(AGENT.pass), 'the password never reaches the log');
  });

  t.test('greetings Sluice will not serve', async (t) => {
    const noAuth = converse(port);
    noAuth.write(b(5, 1, 0));
    t.equal((await noAuth.closed()).toString('hex'), '05ff', 'only "no auth" offered: 0xFF and close');
    await recordFor(h, (d) => d.code === 'EGR_AUTH_REQUIRED');

    const socks4 = converse(port);
    socks4.write(b(4, 1, port16(443), [127, 0, 0, 4], 'agent', 0));
    t.equal((await socks4.closed()).toString('hex'), '005b000000000000', 'SOCKS4: a SOCKS4 rejection and close');
    const socks4a = converse(port);
    socks4a.write(b(4, 1, port16(443), [0, 0, 0, 1], 'agent', 0, 'registry.test', 0));
    t.equal((await socks4a.closed()).toString('hex'), '005b000000000000', 'SOCKS4a too');
    await recordFor(h, (d) => d.code === 'EGR_UNSUPPORTED');

    const stranger = await rawExchange(port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    t.same(stranger, { text: '', closed: true }, 'HTTP on the SOCKS port: closed without a word');
    await recordFor(h, (d) => d.code === 'EGR_BAD_REQUEST' && d.rule === 'socks5.greeting');
  });

  t.test('handshake timeouts and the size cap', async (t) => {
    // limits.headersTimeoutMs is 1s in this config.
    const silent = converse(port);
    t.equal((await silent.closed()).length, 0, 'a silent client is closed without a reply');
    const half = converse(port);
    half.write(b(5, 2, 0));
    t.equal((await half.closed()).length, 0, 'half a greeting: closed');
    const stalled = await authed(t, port);
    t.equal((await stalled.read(2)).toString('hex'), '0100');
    stalled.write(b(5, 1, 0, 3, 20, 'regis'));
    t.equal((await stalled.closed()).length, 0, 'half a request: closed');
    await recordFor(h, (d) => d.code === 'EGR_BAD_REQUEST' && d.rule === 'socks5.request' && d.identity === 'agent');

    const upstream = w.registry.connections;
    const flood = converse(port);
    flood.write(Buffer.concat([GREETING, Buffer.alloc(40_000, 1)]));
    const got = await flood.closed();
    t.notOk(got.includes(Buffer.from([5, 0, 0, 1])), 'closed, never with a success reply');
    t.equal(w.registry.connections, upstream, 'no upstream connection');
  });

  t.test('the kill switch refuses new SOCKS requests and closes open ones', async (t) => {
    const c = await authed(t, port);
    await c.read(2);
    c.write(domain('registry.test'));
    await c.read(10);
    c.socket.removeAllListeners('data');
    const tls = tlsConnect({ socket: c.socket, servername: 'registry.test', ca: w.pki.caPem });
    await new Promise<void>((r, j) => tls.once('secureConnect', r).once('error', j));
    await waitFor(() => h.sluice.state.flows.count('tunnel') === 1);
    h.sluice.state.setKillSwitch(true);
    t.ok(
      await settles(new Promise<void>((r) => (c.socket.destroyed ? r() : c.socket.once('close', () => r())))),
      'open tunnel closed',
    );
    const next = await authed(t, port);
    await next.read(2);
    next.write(domain('registry.test'));
    t.equal((await next.closed()).toString('hex'), replyHex('EGR_DENY_KILL_SWITCH'));
    h.sluice.state.setKillSwitch(false);
  });

  t.test('an IP-literal ATYP passes only where addressGuard.allow names it (and it is a tunnel target)', async (t) => {
    const h2 = await startSluice(
      t,
      worldConfig(w, {
        listen: { http: '127.0.0.1:0', socks5: '127.0.0.1:0', admin: null },
        registries: ['registry.test', '127.0.0.4'],
        addressGuard: { allow: [{ cidr: '127.0.0.0/8', hosts: ['*.test', '127.0.0.4'] }] },
      }),
    );
    const open = await authed(t, h2.socks5Port!);
    await open.read(2);
    open.write(ipv4('127.0.0.4'));
    t.equal(
      (await open.read(10)).toString('hex'),
      '05000001000000000000',
      'a listed literal that is a registry: success',
    );
    open.socket.destroy();
    const unlisted = await authed(t, h2.socks5Port!);
    await unlisted.read(2);
    unlisted.write(ipv4('127.0.0.3'));
    t.equal(
      (await unlisted.closed()).toString('hex'),
      replyHex('EGR_DENY_IP_LITERAL'),
      'in the CIDR but not listed: refused',
    );
  });

  t.test('stop() closes SOCKS connections still in their handshake', async (t) => {
    const r = validateConfig(worldConfig(w, { listen: { http: null, socks5: '127.0.0.1:0', admin: null } }));
    if (!r.ok) throw new Error('config');
    const sluice = createSluice({
      config: r.config,
      logTo: { destination: captureLogs().destination, level: 'silent' },
    });
    const { socks5 } = await sluice.start();
    const c = converse(socks5!.port);
    c.write(GREETING);
    await c.read(2);
    await sluice.stop();
    t.ok(await settles(c.closed()), 'closed by stop()');
  });
}
