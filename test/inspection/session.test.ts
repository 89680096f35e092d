// The inspected session core, driven by real TLS clients (node:tls, node:https, curl) on loopback: the
// handshake with a minted leaf, HTTP/1.1 requests handed out with the tunnel's facts, and every way a client
// can fail or misbehave inside.
import { execFile } from 'node:child_process';
import type { IncomingMessage } from 'node:http';
import { Agent, request as httpsRequest } from 'node:https';
import { Socket, connect as netConnect } from 'node:net';
import { type ConnectionOptions, type TLSSocket, connect as tlsConnect } from 'node:tls';
import t from 'tap';
import { type Deny, isDeny } from '../../firewall/codes.js';
import { createCa } from '../../proxy/inspection/ca.js';
import { classifyClientTlsError } from '../../proxy/inspection/client-tls.js';
import { createLeafIssuer } from '../../proxy/inspection/leaves.js';
import {
  type InnerRequest,
  type InspectedSession,
  type SessionHandlers,
  createInspector,
} from '../../proxy/inspection/session.js';
import { realHello } from '../helpers/client-hello.js';
import { countingObserver, startInspecting, writeTemp } from './helpers.js';

const HOST = 'inspected.example';
const { ca } = await createCa({ exportKey: false });
const caFile = writeTemp('ca.crt', ca.certPem);

const asSession = (s: InspectedSession | Deny): InspectedSession => {
  if (isDeny(s)) throw new Error(`inspect refused: ${s.code} ${s.detail ?? ''}`);
  return s;
};

/** Answers every request with what it saw. */
function echoHandlers(seen: InnerRequest[] = [], refused: Deny[] = []): SessionHandlers {
  return {
    request(r) {
      seen.push(r);
      let body = '';
      r.req.setEncoding('utf8');
      r.req.on('data', (c: string) => (body += c));
      r.req.on('end', () =>
        r.res.end(
          JSON.stringify({
            url: r.url,
            index: r.index,
            tunnel: r.session.tunnelId,
            authority: r.authority,
            method: r.req.method,
            body,
          }),
        ),
      );
    },
    refused(d) {
      refused.push(d);
      return 'req-1';
    },
  };
}

function get(
  port: number,
  opts: {
    path?: string;
    method?: string;
    body?: string;
    agent?: Agent;
    host?: string;
    servername?: string;
    ca?: string | null;
  } = {},
): Promise<{ status: number; headers: IncomingMessage['headers']; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port,
        servername: opts.servername ?? HOST,
        path: opts.path ?? '/',
        method: opts.method ?? 'GET',
        headers: { host: opts.host ?? `${HOST}:${port}` },
        ...(opts.ca === null ? {} : { ca: opts.ca ?? ca.certPem }),
        agent: opts.agent ?? false,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** A TLS connection that trusts the CA; resolves once secure, or with the error that ended the handshake. */
function tlsClient(port: number, opts: ConnectionOptions = {}): Promise<TLSSocket | Error> {
  return new Promise((resolve) => {
    const c = tlsConnect({ host: '127.0.0.1', port, servername: HOST, ca: ca.certPem, ...opts });
    c.once('secureConnect', () => resolve(c));
    c.once('error', (e) => resolve(e));
  });
}

/** Writes `text` and collects everything until the server closes the connection. */
function exchange(c: TLSSocket, text: string): Promise<string> {
  return new Promise((resolve) => {
    let got = '';
    c.setEncoding('utf8');
    c.on('data', (d: string) => (got += d));
    c.on('error', () => undefined);
    c.on('close', () => resolve(got));
    c.write(text);
  });
}

function curl(args: string[]): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile('curl', ['-sS', '--max-time', '20', ...args], (e, out, err) =>
      resolve({ code: (e as { code?: number } | null)?.code ?? 0, out, err }),
    );
  });
}

t.test(
  'node:https with the CA: requests inside are handed out with the tunnel facts, keep-alive and bodies work',
  async (t) => {
    const seen: InnerRequest[] = [];
    const { counts, observer } = countingObserver();
    const ins = await startInspecting(t, { ca, host: HOST, handlers: echoHandlers(seen), observer });
    const agent = new Agent({ keepAlive: true, maxSockets: 1, ca: ca.certPem, servername: HOST });
    t.teardown(() => agent.destroy());
    const sessionP = ins.next();
    const a = await get(ins.port, { path: '/a?q=1', agent });
    const b = await get(ins.port, { path: '/b', method: 'POST', body: 'hello', agent });
    t.equal(a.status, 200);
    t.same(JSON.parse(a.body), {
      url: `https://${HOST}:${ins.port}/a?q=1`,
      index: 1,
      tunnel: 't1',
      authority: { ok: true },
      method: 'GET',
      body: '',
    });
    t.same(
      JSON.parse(b.body),
      {
        url: `https://${HOST}:${ins.port}/b`,
        index: 2,
        tunnel: 't1',
        authority: { ok: true },
        method: 'POST',
        body: 'hello',
      },
      'same session',
    );
    const session = asSession(await sessionP);
    t.match(
      await session.handshake,
      { ok: true, protocol: 'TLSv1.3', alpn: false },
      'node:https offers no ALPN, which is fine',
    );
    t.equal(session.requests, 2);
    t.equal(seen[0]!.path, '/a?q=1');
    t.same(seen[0]!.session, { host: HOST, port: ins.port, tunnelId: 't1' });
    agent.destroy();
    t.match(await session.closed, { requests: 2, handshake: { ok: true } });
    t.equal(counts.sessions, 1);
    t.equal(counts.requests, 2);
    t.equal(counts.mints, 1);
    t.same(counts.failures, []);
    t.equal(ins.inspector.sessions, 0, 'forgotten once closed');
  },
);

t.test('TLS 1.2 clients are served too; the leaf is offered with ALPN http/1.1 only', async (t) => {
  const ins = await startInspecting(t, { ca, host: HOST, handlers: echoHandlers() });
  const c = await tlsClient(ins.port, { maxVersion: 'TLSv1.2', ALPNProtocols: ['h2', 'http/1.1'] });
  if (c instanceof Error) throw c;
  t.equal(c.getProtocol(), 'TLSv1.2');
  t.equal(c.alpnProtocol, 'http/1.1', 'an h2-capable client falls back to HTTP/1.1');
  const session = asSession(await ins.sessions[0]!);
  t.match(await session.handshake, { ok: true, protocol: 'TLSv1.2', alpn: 'http/1.1' });
  const got = await exchange(c, `GET /x HTTP/1.1\r\nHost: ${HOST}:${ins.port}\r\nConnection: close\r\n\r\n`);
  t.match(got, /^HTTP\/1\.1 200 OK/);
});

t.test('pipelined requests are handed out in order and answered in order', async (t) => {
  const seen: InnerRequest[] = [];
  const ins = await startInspecting(t, { ca, host: HOST, handlers: echoHandlers(seen) });
  const c = await tlsClient(ins.port);
  if (c instanceof Error) throw c;
  const h = `Host: ${HOST}:${ins.port}`;
  const got = await exchange(
    c,
    `GET /1 HTTP/1.1\r\n${h}\r\n\r\nGET /2 HTTP/1.1\r\n${h}\r\n\r\nGET /3 HTTP/1.1\r\n${h}\r\nConnection: close\r\n\r\n`,
  );
  t.same(
    seen.map((r) => [r.path, r.index]),
    [
      ['/1', 1],
      ['/2', 2],
      ['/3', 3],
    ],
  );
  t.same(
    [...got.matchAll(/"url":"https:\/\/[^/]+(\/\d)"/g)].map((m) => m[1]),
    ['/1', '/2', '/3'],
  );
});

t.test('the request must name the tunnel host: the caller learns why not (it renders the 421)', async (t) => {
  const seen: InnerRequest[] = [];
  const ins = await startInspecting(t, { ca, host: HOST, handlers: echoHandlers(seen) });
  const cases: [string, string, unknown][] = [
    [
      'Host is the tunnel host (case, trailing dot)',
      `GET / HTTP/1.1\r\nHost: INSPECTED.example.:${0}\r\n\r\n`,
      { ok: true },
    ],
    ['Host names another host', 'GET / HTTP/1.1\r\nHost: evil.example\r\n\r\n', { ok: false, reason: 'other-host' }],
    ['Host names another port', `GET / HTTP/1.1\r\nHost: ${HOST}:8443\r\n\r\n`, { ok: false, reason: 'other-host' }],
    ['Host defaults to 443', `GET / HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`, { ok: false, reason: 'other-host' }],
    ['Host is missing', 'GET / HTTP/1.1\r\n\r\n', { ok: false, reason: 'missing' }],
    [
      'two Host headers',
      `GET / HTTP/1.1\r\nHost: ${HOST}:${0}\r\nHost: evil.example\r\n\r\n`,
      { ok: false, reason: 'multiple' },
    ],
    ['Host is not a host', 'GET / HTTP/1.1\r\nHost: a b\r\n\r\n', { ok: false, reason: 'invalid' }],
    ['Host is a literal', 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n', { ok: false, reason: 'other-host' }],
    [
      'absolute-form naming the tunnel',
      `GET https://${HOST}:${0}/abs?x HTTP/1.1\r\nHost: evil.example\r\n\r\n`,
      { ok: true },
    ],
    [
      'absolute-form naming another host',
      `GET https://evil.example/ HTTP/1.1\r\nHost: ${HOST}:${0}\r\n\r\n`,
      { ok: false, reason: 'other-host' },
    ],
    [
      'absolute-form with http://',
      `GET http://${HOST}:${0}/ HTTP/1.1\r\nHost: ${HOST}:${0}\r\n\r\n`,
      { ok: false, reason: 'invalid' },
    ],
  ];
  for (const [name, raw, want] of cases) {
    const c = await tlsClient(ins.port);
    if (c instanceof Error) throw c;
    const text = raw.replaceAll(':0', `:${ins.port}`).replace('\r\n\r\n', '\r\nConnection: close\r\n\r\n');
    await exchange(c, text);
    const r = seen.at(-1)!;
    t.same(r.authority, want, name);
    t.equal(
      r.url.startsWith(`https://${HOST}:${ins.port}/`),
      true,
      `${name}: the URL is built from the tunnel, never from Host`,
    );
  }
  t.equal(
    seen.find((r) => r.path === '/abs?x')?.url,
    `https://${HOST}:${ins.port}/abs?x`,
    'an absolute-form target is reduced to its path',
  );
});

t.test('curl with --cacert works; curl without the CA fails with unknown_ca, counted', async (t) => {
  const { counts, observer } = countingObserver();
  const ins = await startInspecting(t, { ca, host: HOST, handlers: echoHandlers(), observer });
  const resolve = ['--resolve', `${HOST}:${ins.port}:127.0.0.1`, `https://${HOST}:${ins.port}/curl`];
  const ok = await curl(['--cacert', caFile, ...resolve]);
  t.equal(ok.code, 0, ok.err);
  t.match(JSON.parse(ok.out), { url: `https://${HOST}:${ins.port}/curl`, authority: { ok: true } });
  const bad = await curl(resolve);
  t.equal(bad.code, 60, 'curl: peer certificate cannot be authenticated');
  const failed = await asSession(ins.sessions[1]!).handshake;
  t.match(failed, {
    ok: false,
    verdict: 'deny',
    code: 'EGR_CLIENT_TLS',
    rule: 'inspection.handshake',
    reason: 'unknown_ca',
    alert: 'unknown_ca',
  });
  t.match(await asSession(ins.sessions[1]!).closed, { requests: 0, handshake: { reason: 'unknown_ca' } });
  const old = await curl(['--cacert', caFile, '--tlsv1.1', '--tls-max', '1.1', ...resolve]);
  t.not(old.code, 0, 'a TLS 1.1-only curl is refused');
  t.match(await asSession(ins.sessions[2]!).handshake, { ok: false, reason: 'protocol_version' });
  t.same(counts.failures, ['unknown_ca', 'protocol_version']);
  t.equal(counts.sessions, 1);
});

t.test('handshake failures from node:tls clients', async (t) => {
  const { counts, observer } = countingObserver();
  const ins = await startInspecting(t, { ca, host: HOST, handlers: echoHandlers(), observer });
  // Node verifies the chain after the handshake messages and closes without an alert.
  const noCa = await tlsClient(ins.port, { ca: undefined });
  t.match(noCa, { code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' });
  t.match(await asSession(ins.sessions[0]!).handshake, {
    ok: false,
    code: 'EGR_CLIENT_TLS',
    reason: 'closed',
    alert: null,
  });
  const tls11 = await tlsClient(ins.port, {
    minVersion: 'TLSv1',
    maxVersion: 'TLSv1.1',
    ciphers: 'DEFAULT@SECLEVEL=0',
  });
  t.ok(tls11 instanceof Error, 'a TLS 1.1-only client gets no session');
  t.match(await asSession(ins.sessions[1]!).handshake, { ok: false, reason: 'protocol_version' });
  const h2 = await tlsClient(ins.port, { ALPNProtocols: ['h2'] });
  t.match(h2, { code: 'ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL' }, 'an h2-only client fails the handshake');
  t.match(await asSession(ins.sessions[2]!).handshake, { ok: false, reason: 'no_application_protocol' });
  t.same(counts.failures, ['closed', 'protocol_version', 'no_application_protocol']);
  t.equal(counts.sessions, 0);
});

t.test('a client that stalls in its handshake is cut off (timeout)', async (t) => {
  const ins = await startInspecting(t, {
    ca,
    host: HOST,
    handlers: echoHandlers(),
    limits: { handshakeTimeoutMs: 200 },
  });
  const hello = await realHello(HOST);
  const raw = netConnect(ins.port, '127.0.0.1');
  raw.on('error', () => undefined);
  raw.write(hello);
  raw.resume();
  const session = asSession(await ins.next());
  t.match(await session.handshake, { ok: false, reason: 'timeout' });
  await new Promise((r) => raw.once('close', r));
  t.pass('the client socket was closed');
});

t.test('no SNI, another SNI, a leaf for another name: refused before any handshake', async (t) => {
  const noSni = await startInspecting(t, { ca, host: HOST, handlers: echoHandlers() });
  const a = await tlsClient(noSni.port, { servername: '' });
  t.ok(a instanceof Error);
  t.match(noSni.sessions[0], { verdict: 'deny', code: 'EGR_DENY_SNI_MISMATCH' });
  const other = await tlsClient(noSni.port, { servername: 'other.example' });
  t.ok(other instanceof Error);
  t.match(noSni.sessions[1], { verdict: 'deny', code: 'EGR_DENY_SNI_MISMATCH' });
  const wrongLeaf = await startInspecting(t, { ca, host: HOST, leafHost: 'other.example', handlers: echoHandlers() });
  const b = await tlsClient(wrongLeaf.port);
  t.ok(b instanceof Error);
  t.match(wrongLeaf.sessions[0], { verdict: 'deny', code: 'EGR_INTERNAL', detail: /another host/ });
});

t.test('renegotiation is refused and the process carries on', async (t) => {
  const seen: InnerRequest[] = [];
  const ins = await startInspecting(t, { ca, host: HOST, handlers: echoHandlers(seen) });
  const c = await tlsClient(ins.port, { maxVersion: 'TLSv1.2' });
  if (c instanceof Error) throw c;
  c.on('error', () => undefined);
  // Node calls back only on success; a refusal surfaces as an error on the socket.
  const renegotiated = await new Promise<Error | null>((resolve) => {
    c.once('error', resolve);
    const started = c.renegotiate({}, (e) => resolve(e ?? null));
    if (!started) resolve(new Error('not started'));
  });
  t.ok(renegotiated instanceof Error, 'the renegotiation failed');
  await asSession(ins.sessions[0]!).closed;
  t.equal(seen.length, 0);
  const after = await get(ins.port);
  t.equal(after.status, 200, 'the next session is served');
});

t.test('what the core refuses inside a session is answered and reported, never a crash', async (t) => {
  const seen: InnerRequest[] = [];
  const refused: Deny[] = [];
  const ins = await startInspecting(t, { ca, host: HOST, handlers: echoHandlers(seen, refused) });
  const h = `Host: ${HOST}:${ins.port}`;
  const cases: [string, string, RegExp, string][] = [
    ['an h2 preface', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', /^HTTP\/1\.1 501 /, 'EGR_UNSUPPORTED'],
    [
      'CL and TE together (smuggling)',
      `POST / HTTP/1.1\r\n${h}\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
      /^HTTP\/1\.1 400 /,
      'EGR_BAD_REQUEST',
    ],
    ['a bare LF', `GET / HTTP/1.1\n${h}\n\n`, /^HTTP\/1\.1 400 /, 'EGR_BAD_REQUEST'],
    [
      'CONNECT inside',
      `CONNECT other.example:443 HTTP/1.1\r\nHost: other.example:443\r\n\r\n`,
      /^HTTP\/1\.1 501 /,
      'EGR_UNSUPPORTED',
    ],
    [
      'an upgrade without an upgrade handler',
      `GET /ws HTTP/1.1\r\n${h}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n`,
      /^HTTP\/1\.1 501 /,
      'EGR_UNSUPPORTED',
    ],
    ['HTTP/0.9-style line', `GET /\r\n${h}\r\n\r\n`, /^HTTP\/1\.1 400 /, 'EGR_BAD_REQUEST'],
    [
      'oversized headers',
      `GET / HTTP/1.1\r\n${h}\r\nX-Big: ${'a'.repeat(20000)}\r\n\r\n`,
      /^HTTP\/1\.1 400 /,
      'EGR_BAD_REQUEST',
    ],
  ];
  for (const [name, raw, status, code] of cases) {
    t.comment(name);
    const c = await tlsClient(ins.port);
    if (c instanceof Error) throw c;
    const got = await exchange(c, raw);
    t.match(got, status, `${name}: answered`);
    t.match(got, new RegExp(`Proxy-Status: sluice; error=[a-z_]+; details="${code}"`), `${name}: with its code`);
    t.match(got, /\(request req-1\)/, `${name}: naming the id the caller gave`);
    t.equal(refused.at(-1)?.code, code, `${name}: reported`);
  }
  t.equal(seen.length, 0, 'none of it reached the request handler');
  t.equal((await get(ins.port)).status, 200, 'still serving');
});

t.test('an upgrade inside goes to the upgrade handler with the decrypted socket', async (t) => {
  const ins = await startInspecting(t, {
    ca,
    host: HOST,
    handlers: {
      request: () => t.fail('not a plain request'),
      upgrade(u) {
        t.equal(u.url, `https://${HOST}:${ins.port}/ws`);
        t.same(u.authority, { ok: true });
        t.equal(u.index, 1);
        u.socket.end('HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      },
    },
  });
  const c = await tlsClient(ins.port);
  if (c instanceof Error) throw c;
  const got = await exchange(
    c,
    `GET /ws HTTP/1.1\r\nHost: ${HOST}:${ins.port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n`,
  );
  t.match(got, /^HTTP\/1\.1 403 Forbidden/);
});

t.test('a session waiting for headers too long is closed; so is a stalled one between requests', async (t) => {
  const ins = await startInspecting(t, { ca, host: HOST, handlers: echoHandlers(), limits: { headersTimeoutMs: 300 } });
  const c = await tlsClient(ins.port);
  if (c instanceof Error) throw c;
  // A slowloris: header bytes trickle in, never finishing.
  const trickle = setInterval(() => c.write('X'), 50);
  const got = await exchange(c, `GET / HTTP/1.1\r\nHost: ${HOST}:${ins.port}\r\nX-Slow: `);
  clearInterval(trickle);
  t.equal(got, '', 'closed without an answer');
  const d = await tlsClient(ins.port);
  if (d instanceof Error) throw d;
  const first = await new Promise<string>((resolve) => {
    d.setEncoding('utf8');
    let text = '';
    d.on('data', (x: string) => (text += x));
    d.on('close', () => resolve(text));
    d.write(`GET / HTTP/1.1\r\nHost: ${HOST}:${ins.port}\r\n\r\n`);
  });
  t.match(first, /^HTTP\/1\.1 200 OK/, 'answered, then closed while idle');
});

t.test('destroy() and close() end sessions', async (t) => {
  const ins = await startInspecting(t, { ca, host: HOST, handlers: { request: () => undefined } });
  const c = await tlsClient(ins.port);
  if (c instanceof Error) throw c;
  c.on('error', () => undefined);
  const s = asSession(ins.sessions[0]!);
  await s.handshake;
  t.equal(ins.inspector.sessions, 1);
  const closedByServer = new Promise((r) => c.once('close', r));
  s.destroy();
  t.match(await s.closed, { requests: 0, handshake: { ok: true } });
  await closedByServer;
  const d = await tlsClient(ins.port);
  if (d instanceof Error) throw d;
  d.on('error', () => undefined);
  await asSession(ins.sessions[1]!).handshake;
  const gone = new Promise((r) => d.once('close', r));
  ins.inspector.close();
  await gone;
  t.equal(ins.inspector.sessions, 0);
});

t.test('a client gone before inspect, and a handler that throws, end cleanly', async (t) => {
  const hello = await realHello(HOST);
  const issuer = createLeafIssuer({ ca });
  const leaf = await issuer.leafFor(HOST);
  if (isDeny(leaf)) throw new Error('no leaf');
  const inspector = createInspector({
    limits: { handshakeTimeoutMs: 60_000, headersTimeoutMs: 60_000, idleTimeoutMs: 60_000, maxHeaderBytes: 16384 },
  });
  t.teardown(() => inspector.close());
  const gone = new Socket();
  gone.destroy();
  const s = asSession(
    inspector.inspect({
      socket: gone,
      head: hello,
      leaf,
      facts: { host: HOST, port: 443, tunnelId: 'x' },
      handlers: { request: () => undefined },
    }),
  );
  t.match(await s.handshake, { ok: false, reason: 'closed' });
  t.match(await s.closed, { requests: 0 });

  const refused: Deny[] = [];
  const ins = await startInspecting(t, {
    ca,
    host: HOST,
    handlers: {
      request: () => {
        throw new Error('bug');
      },
      refused: (d) => {
        refused.push(d);
        return null;
      },
    },
  });
  const c = await tlsClient(ins.port);
  if (c instanceof Error) throw c;
  const got = await exchange(c, `GET / HTTP/1.1\r\nHost: ${HOST}:${ins.port}\r\n\r\n`);
  t.match(got, /^HTTP\/1\.1 500 /);
  t.match(refused, [{ code: 'EGR_INTERNAL', detail: /handler threw: bug/ }]);
});

t.test('classifyClientTlsError: alerts received, what Sluice refused, how it ended', async (t) => {
  const rows: [string | null, string, string | null][] = [
    ['ERR_SSL_TLSV1_ALERT_UNKNOWN_CA', 'unknown_ca', 'unknown_ca'],
    ['ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE', 'bad_certificate', 'bad_certificate'],
    ['ERR_SSL_SSLV3_ALERT_CERTIFICATE_UNKNOWN', 'certificate_unknown', 'certificate_unknown'],
    ['ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED', 'certificate_expired', 'certificate_expired'],
    ['ERR_SSL_TLSV1_ALERT_DECRYPT_ERROR', 'decrypt_error', 'decrypt_error'],
    ['ERR_SSL_TLSV1_ALERT_ACCESS_DENIED', 'other', 'access_denied'],
    ['ERR_SSL_UNSUPPORTED_PROTOCOL', 'protocol_version', null],
    ['ERR_SSL_NO_SHARED_CIPHER', 'no_shared_cipher', null],
    ['ERR_SSL_NO_APPLICATION_PROTOCOL', 'no_application_protocol', null],
    ['ECONNRESET', 'closed', null],
    ['ERR_SOMETHING_NEW', 'other', null],
    [null, 'closed', null],
  ];
  for (const [code, reason, alert] of rows) {
    const f = classifyClientTlsError(code === null ? null : { code });
    t.match(f, { verdict: 'deny', code: 'EGR_CLIENT_TLS', ok: false, reason, alert }, String(code));
  }
  t.equal(classifyClientTlsError(null, 'timeout').reason, 'timeout');
});
