// RFC 9110 / RFC 9112 MUST-level requirements on a forward proxy, each held at the byte level through a live
// listener (the table in docs/ARCHITECTURE.md, "HTTP conformance", names each row). Node's llhttp refuses much
// of this already; proxy/edge/http-validate.ts refuses the rest before any identity, policy or DNS work.
import { connect } from 'node:net';
import t from 'tap';
import { AGENT_AUTH, rawExchange, startSluice } from '../helpers/harness.js';
import { isolate } from '../helpers/netns.js';
import { buildWorld, worldConfig } from '../helpers/world.js';

/** Writes `first`, waits `pauseMs` collecting what comes back, then writes `rest` (if any) and collects until close. */
function conversation(port: number, first: string, opts: { rest?: string; pauseMs?: number; waitMs?: number } = {}) {
  return new Promise<{ early: string; text: string; closed: boolean }>((resolve) => {
    const s = connect(port, '127.0.0.1', () => s.write(first));
    const chunks: Buffer[] = [];
    let early: string | null = null;
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', () => undefined);
    const done = (closed: boolean) => {
      clearTimeout(timer);
      clearTimeout(pause);
      const text = Buffer.concat(chunks).toString('latin1');
      resolve({ early: early ?? text, text, closed });
    };
    const pause = setTimeout(() => {
      early = Buffer.concat(chunks).toString('latin1');
      if (opts.rest !== undefined && !s.destroyed) s.write(opts.rest);
    }, opts.pauseMs ?? 300);
    const timer = setTimeout(() => {
      s.destroy();
      done(false);
    }, opts.waitMs ?? 3000);
    s.on('close', () => done(true));
  });
}

if (isolate(t, import.meta.url)) {
  const w = await buildWorld(t);
  const ALL = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'TRACE'];
  const h = await startSluice(
    t,
    worldConfig(w, {
      integrations: { api: { hosts: ['api.test'], methods: ALL }, gh: { hosts: ['gh.test'], tunnel: true } },
    }),
  );
  const pub = `http://public.test:${w.publicHttp.port}`;
  const auth = `Proxy-Authorization: ${AGENT_AUTH}\r\n`;
  const upstream = () => w.publicHttp.connections + w.integration.connections + w.registry.connections;
  const codeIn = (text: string) => /details="([A-Z_]+)"/.exec(text)?.[1];

  // [RFC section, what, request bytes, status, code]. Every row: answered, connection closed, nothing upstream.
  const refused: [string, string, string, number, string][] = [
    ['9112 §3.2', 'HTTP/1.1 request without Host', `GET ${pub}/ HTTP/1.1\r\n${auth}\r\n`, 400, 'EGR_BAD_REQUEST'],
    [
      '9112 §3.2',
      'two Host lines, same value',
      `GET ${pub}/ HTTP/1.1\r\nHost: public.test\r\nHost: public.test\r\n${auth}\r\n`,
      400,
      'EGR_BAD_REQUEST',
    ],
    [
      '9112 §3.2',
      'two Host lines, different values',
      `GET ${pub}/ HTTP/1.1\r\nHost: public.test\r\nHost: evil.test\r\n${auth}\r\n`,
      400,
      'EGR_BAD_REQUEST',
    ],
    [
      '9112 §3.2',
      'Host as a list',
      `GET ${pub}/ HTTP/1.1\r\nHost: public.test, evil.test\r\n${auth}\r\n`,
      400,
      'EGR_BAD_REQUEST',
    ],
    [
      '9112 §3.2',
      'Host with userinfo',
      `GET ${pub}/ HTTP/1.1\r\nHost: user@public.test\r\n${auth}\r\n`,
      400,
      'EGR_BAD_REQUEST',
    ],
    [
      '9112 §3.2',
      'Host with a path',
      `GET ${pub}/ HTTP/1.1\r\nHost: public.test/x\r\n${auth}\r\n`,
      400,
      'EGR_BAD_REQUEST',
    ],
    [
      '9112 §3.2',
      'Host with a bad port',
      `GET ${pub}/ HTTP/1.1\r\nHost: public.test:80x\r\n${auth}\r\n`,
      400,
      'EGR_BAD_REQUEST',
    ],
    ['9112 §3.2', 'CONNECT without Host', `CONNECT registry.test:443 HTTP/1.1\r\n${auth}\r\n`, 400, 'EGR_BAD_REQUEST'],
    [
      '9112 §3.2',
      'CONNECT with two Host lines',
      `CONNECT registry.test:443 HTTP/1.1\r\nHost: registry.test:443\r\nHost: registry.test:443\r\n${auth}\r\n`,
      400,
      'EGR_BAD_REQUEST',
    ],
    [
      '9110 §4.2.4',
      'absolute-form target with userinfo',
      `GET http://user:pw@public.test:${w.publicHttp.port}/ HTTP/1.1\r\nHost: public.test\r\n${auth}\r\n`,
      400,
      'EGR_INVALID_TARGET',
    ],
    [
      '9110 §4.2.1',
      'http URI with an empty host',
      `GET http:///x HTTP/1.1\r\nHost: public.test\r\n${auth}\r\n`,
      400,
      'EGR_INVALID_TARGET',
    ],
    [
      '9112 §3.2.3',
      'CONNECT in absolute form',
      `CONNECT http://registry.test:443/ HTTP/1.1\r\nHost: registry.test:443\r\n${auth}\r\n`,
      400,
      'EGR_INVALID_TARGET',
    ],
    [
      '9112 §3.2.3',
      'CONNECT without a port',
      `CONNECT registry.test HTTP/1.1\r\nHost: registry.test\r\n${auth}\r\n`,
      400,
      'EGR_INVALID_TARGET',
    ],
    [
      '9110 §9.3.6',
      'CONNECT with content (Content-Length)',
      `CONNECT registry.test:443 HTTP/1.1\r\nHost: registry.test:443\r\n${auth}Content-Length: 5\r\n\r\nhello`,
      400,
      'EGR_BAD_REQUEST',
    ],
    [
      '9110 §9.3.6',
      'CONNECT with content (Transfer-Encoding)',
      `CONNECT registry.test:443 HTTP/1.1\r\nHost: registry.test:443\r\n${auth}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`,
      400,
      'EGR_BAD_REQUEST',
    ],
    [
      '9112 §6.3 (5)',
      'Content-Length: -1',
      `POST http://api.test/ HTTP/1.1\r\nHost: api.test\r\n${auth}Content-Length: -1\r\n\r\n`,
      400,
      'EGR_BAD_REQUEST',
    ],
    [
      '9112 §6.3 (5)',
      'Content-Length: +4',
      `POST http://api.test/ HTTP/1.1\r\nHost: api.test\r\n${auth}Content-Length: +4\r\n\r\nabcd`,
      400,
      'EGR_BAD_REQUEST',
    ],
    [
      '9112 §6.3 (5)',
      'Content-Length: 0x4',
      `POST http://api.test/ HTTP/1.1\r\nHost: api.test\r\n${auth}Content-Length: 0x4\r\n\r\nabcd`,
      400,
      'EGR_BAD_REQUEST',
    ],
    [
      '9112 §6.3 (5)',
      'Content-Length: 4 4',
      `POST http://api.test/ HTTP/1.1\r\nHost: api.test\r\n${auth}Content-Length: 4 4\r\n\r\nabcd`,
      400,
      'EGR_BAD_REQUEST',
    ],
    [
      '9112 §6.3 (5)',
      'Content-Length: empty',
      `POST http://api.test/ HTTP/1.1\r\nHost: api.test\r\n${auth}Content-Length: \r\n\r\nabcd`,
      400,
      'EGR_BAD_REQUEST',
    ],
    [
      '9110 §8.6',
      'Content-Length list of differing values',
      `POST http://api.test/ HTTP/1.1\r\nHost: api.test\r\n${auth}Content-Length: 4, 5\r\n\r\nabcde`,
      400,
      'EGR_BAD_REQUEST',
    ],
    [
      '9110 §8.6',
      'Content-Length list of equal values',
      `POST http://api.test/ HTTP/1.1\r\nHost: api.test\r\n${auth}Content-Length: 4, 4\r\n\r\nabcd`,
      400,
      'EGR_BAD_REQUEST',
    ],
    [
      '9110 §8.6',
      'Content-Length past 2^53 (no overflow, no precision loss)',
      `POST http://api.test/ HTTP/1.1\r\nHost: api.test\r\n${auth}Content-Length: 99999999999999999999999\r\n\r\nabcd`,
      400,
      'EGR_BAD_REQUEST',
    ],
    [
      '9112 §6.1',
      'Transfer-Encoding in an HTTP/1.0 request',
      `POST http://api.test/ HTTP/1.0\r\nHost: api.test\r\n${auth}Transfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n`,
      400,
      'EGR_BAD_REQUEST',
    ],
    [
      '9112 §6.1',
      'Transfer-Encoding and Content-Length in HTTP/1.0',
      `POST http://api.test/ HTTP/1.0\r\nHost: api.test\r\n${auth}Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\nabcd`,
      400,
      'EGR_BAD_REQUEST',
    ],
    [
      '9112 §6.3 (4)',
      'chunked not the final coding',
      `POST http://api.test/ HTTP/1.1\r\nHost: api.test\r\n${auth}Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n`,
      400,
      'EGR_BAD_REQUEST',
    ],
    [
      '9112 §6.1',
      'chunked applied twice',
      `POST http://api.test/ HTTP/1.1\r\nHost: api.test\r\n${auth}Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n`,
      400,
      'EGR_BAD_REQUEST',
    ],
    [
      '9112 §6.1',
      'chunked applied twice, in two lines',
      `POST http://api.test/ HTTP/1.1\r\nHost: api.test\r\n${auth}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
      400,
      'EGR_BAD_REQUEST',
    ],
    [
      '9112 §6.1',
      'a transfer coding Sluice does not decode (gzip, chunked)',
      `POST http://api.test/ HTTP/1.1\r\nHost: api.test\r\n${auth}Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n`,
      501,
      'EGR_UNSUPPORTED',
    ],
    [
      '9112 §6.3 (3)',
      'Content-Length and Transfer-Encoding',
      `POST http://api.test/ HTTP/1.1\r\nHost: api.test\r\n${auth}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
      400,
      'EGR_BAD_REQUEST',
    ],
    [
      '9112 §5.1',
      'whitespace between field name and colon',
      `GET ${pub}/ HTTP/1.1\r\nHost: public.test\r\n${auth}X-A : 1\r\n\r\n`,
      400,
      'EGR_BAD_REQUEST',
    ],
    [
      '9112 §2.2',
      'whitespace before the first header line',
      `GET ${pub}/ HTTP/1.1\r\n Host: public.test\r\n${auth}\r\n`,
      400,
      'EGR_BAD_REQUEST',
    ],
    [
      '9112 §2.2',
      'bare CR in a field value',
      `GET ${pub}/ HTTP/1.1\r\nHost: public.test\r\n${auth}X-A: 1\rX-B: 2\r\n\r\n`,
      400,
      'EGR_BAD_REQUEST',
    ],
    [
      '9110 §5.5',
      'NUL in a field value',
      `GET ${pub}/ HTTP/1.1\r\nHost: public.test\r\n${auth}X-A: 1\x002\r\n\r\n`,
      400,
      'EGR_BAD_REQUEST',
    ],
    [
      '9112 §5.2',
      'obs-fold',
      `GET ${pub}/ HTTP/1.1\r\nHost: public.test\r\n${auth}X-A: 1\r\n 2\r\n\r\n`,
      400,
      'EGR_BAD_REQUEST',
    ],
    [
      '9112 §3.2',
      'a fragment in the target',
      `GET ${pub}/a#b HTTP/1.1\r\nHost: public.test\r\n${auth}\r\n`,
      400,
      'EGR_INVALID_TARGET',
    ],
    [
      '9110 §7.6.2',
      'Max-Forwards that is not a number (OPTIONS)',
      `OPTIONS http://api.test/ HTTP/1.1\r\nHost: api.test\r\n${auth}Max-Forwards: x\r\n\r\n`,
      400,
      'EGR_BAD_REQUEST',
    ],
    [
      '9110 §7.6.2',
      'Max-Forwards twice (TRACE)',
      `TRACE http://api.test/ HTTP/1.1\r\nHost: api.test\r\n${auth}Max-Forwards: 1\r\nMax-Forwards: 2\r\n\r\n`,
      400,
      'EGR_BAD_REQUEST',
    ],
    [
      '9110 §7.6.2',
      'Max-Forwards: 0 on OPTIONS: Sluice is the final recipient',
      `OPTIONS http://api.test/ HTTP/1.1\r\nHost: api.test\r\n${auth}Max-Forwards: 0\r\n\r\n`,
      501,
      'EGR_UNSUPPORTED',
    ],
    [
      '9110 §7.6.2',
      'Max-Forwards: 0 on TRACE: Sluice is the final recipient',
      `TRACE http://api.test/ HTTP/1.1\r\nHost: api.test\r\n${auth}Max-Forwards: 0\r\n\r\n`,
      501,
      'EGR_UNSUPPORTED',
    ],
    [
      '9110 §10.1.1',
      'an expectation other than 100-continue',
      `POST http://api.test/ HTTP/1.1\r\nHost: api.test\r\n${auth}Expect: the-unexpected\r\nContent-Length: 4\r\n\r\nabcd`,
      501,
      'EGR_UNSUPPORTED',
    ],
  ];

  for (const [rfc, name, bytes, status, code] of refused) {
    t.test(`RFC ${rfc}: ${name} → ${status} ${code}`, async (t) => {
      const before = upstream();
      const decisions = h.decisions().length;
      const r = await rawExchange(h.port, bytes);
      t.match(r.text, new RegExp(`^HTTP/1\\.1 ${status} `), `${status}`);
      t.equal(codeIn(r.text), code, code);
      t.ok(r.closed, 'connection closed');
      t.equal(upstream(), before, 'nothing reached upstream');
      t.equal(h.decisions().length, decisions + 1, 'one audit record');
    });
  }

  t.test('RFC 9110 §7.6.2: Max-Forwards is decremented on OPTIONS and TRACE, untouched on other methods', async (t) => {
    const before = w.integration.requests.length;
    const r = await rawExchange(
      h.port,
      `OPTIONS http://api.test/ HTTP/1.1\r\nHost: api.test\r\n${auth}Max-Forwards: 3\r\nConnection: close\r\n\r\n`,
    );
    t.match(r.text, /^HTTP\/1\.1 200 /);
    t.equal(w.integration.requests[before]?.headers['max-forwards'], '2');
    const trace = await rawExchange(
      h.port,
      `TRACE http://api.test/ HTTP/1.1\r\nHost: api.test\r\n${auth}Max-Forwards: 1000000\r\nConnection: close\r\n\r\n`,
    );
    t.match(trace.text, /^HTTP\/1\.1 200 /);
    t.equal(w.integration.requests[before + 1]?.headers['max-forwards'], '255', "capped at Sluice's maximum");
    const reads = w.publicHttp.requests.length;
    await rawExchange(
      h.port,
      `GET ${pub}/mf HTTP/1.1\r\nHost: public.test\r\n${auth}Max-Forwards: 0\r\nConnection: close\r\n\r\n`,
    );
    t.equal(w.publicHttp.requests[reads]?.headers['max-forwards'], '0', 'other methods: untouched');
  });

  t.test(
    'RFC 9110 §10.1.1: Expect: 100-continue gets a final status, not 100, when the request is refused',
    async (t) => {
      const before = upstream();
      // The body is never sent: a proxy that answered 100 first would wait for it.
      const r = await conversation(
        h.port,
        `POST ${pub}/ HTTP/1.1\r\nHost: public.test\r\n${auth}Expect: 100-continue\r\nContent-Length: 5\r\n\r\n`,
        { pauseMs: 1000, waitMs: 1500 },
      );
      t.notMatch(r.early, /^HTTP\/1\.1 100/, 'no 100 Continue for a request that will be refused');
      t.match(r.early, /^HTTP\/1\.1 403 /, 'the final status at once');
      t.equal(codeIn(r.early), 'EGR_DENY_WRITE');
      t.equal(upstream(), before);
    },
  );

  t.test(
    'RFC 9110 §10.1.1: Expect: 100-continue on an allowed request: 100 once it is allowed, then the final status',
    async (t) => {
      const before = w.integration.requests.length;
      const r = await conversation(
        h.port,
        `POST http://api.test/up HTTP/1.1\r\nHost: api.test\r\n${auth}Expect: 100-continue\r\nContent-Length: 5\r\nConnection: close\r\n\r\n`,
        { rest: 'hello', pauseMs: 500 },
      );
      t.match(r.early, /^HTTP\/1\.1 100 Continue\r\n\r\n$/, '100 Continue, and nothing else, before the body');
      t.match(r.text, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 /, 'then the final status');
      t.equal(w.integration.requests[before]?.body, 'hello');
      t.equal(
        w.integration.requests[before]?.headers.expect,
        undefined,
        "the expectation is Sluice's to meet, not forwarded",
      );
    },
  );

  t.test('RFC 9110 §10.1.1: a 100-continue expectation in an HTTP/1.0 request is ignored', async (t) => {
    const before = w.integration.requests.length;
    const r = await conversation(
      h.port,
      `POST http://api.test/old HTTP/1.0\r\nHost: api.test\r\n${auth}Expect: 100-continue\r\nContent-Length: 5\r\n\r\n`,
      { rest: 'hello', pauseMs: 300 },
    );
    t.equal(r.early, '', 'nothing before the body');
    t.match(r.text, /^HTTP\/1\.1 200 /);
    t.notMatch(r.text, / 100 /);
    t.equal(w.integration.requests[before]?.body, 'hello');
  });

  t.test('RFC 9112 §9.3: no persistent connection with an HTTP/1.0 client, even when it asks for one', async (t) => {
    const r = await rawExchange(
      h.port,
      `GET ${pub}/ HTTP/1.0\r\nHost: public.test\r\n${auth}Connection: keep-alive\r\n\r\n`,
    );
    t.match(r.text, /^HTTP\/1\.1 200 /);
    t.notMatch(r.text, /^Connection: keep-alive/im);
    t.ok(r.closed, 'closed after the response');
  });

  t.test('RFC 9112 §6.3: a request whose body stops short is never forwarded as complete', async (t) => {
    const before = w.integration.requests.length;
    const r = await conversation(
      h.port,
      `POST http://api.test/short HTTP/1.1\r\nHost: api.test\r\n${auth}Content-Length: 10\r\n\r\nabcde`,
      { pauseMs: 300, waitMs: 800 },
    );
    t.notMatch(r.text, /^HTTP\/1\.1 200/);
    await new Promise((r) => setTimeout(r, 200));
    t.equal(w.integration.requests.length, before, 'the origin never saw a complete request');
  });

  const badChunks: [string, string][] = [
    ['a chunk size that is not hex', 'zz\r\nabcd\r\n0\r\n\r\n'],
    ['a chunk size past 64 bits', 'fffffffffffffffffff\r\nabcd\r\n0\r\n\r\n'],
    ['chunk data longer than its size', '2\r\nabcd\r\n0\r\n\r\n'],
    ['a chunk size with a sign', '-4\r\nabcd\r\n0\r\n\r\n'],
  ];
  for (const [name, body] of badChunks) {
    t.test(
      `RFC 9112 §7.1: ${name}: the connection is closed and the origin never sees a complete request`,
      async (t) => {
        const before = w.integration.requests.length;
        const r = await conversation(
          h.port,
          `POST http://api.test/chunk HTTP/1.1\r\nHost: api.test\r\n${auth}Transfer-Encoding: chunked\r\n\r\n${body}`,
          { pauseMs: 100 },
        );
        t.ok(r.closed, 'closed');
        t.notMatch(r.text, /^HTTP\/1\.1 200/);
        await new Promise((r) => setTimeout(r, 200));
        t.equal(w.integration.requests.length, before);
      },
    );
  }

  t.test('RFC 9112 §7.1.1: unknown chunk extensions are ignored', async (t) => {
    const before = w.integration.requests.length;
    const r = await rawExchange(
      h.port,
      `POST http://api.test/ext HTTP/1.1\r\nHost: api.test\r\n${auth}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n4;foo=bar\r\nabcd\r\n0\r\n\r\n`,
    );
    t.match(r.text, /^HTTP\/1\.1 200 /);
    t.equal(w.integration.requests[before]?.body, 'abcd');
  });

  t.test(
    "RFC 9110 §7.2 / 9112 §3.2.2: the upstream Host is generated from the target, never the client's",
    async (t) => {
      const before = w.publicHttp.requests.length;
      await rawExchange(h.port, `GET ${pub}/h HTTP/1.1\r\nHost: evil.test\r\n${auth}Connection: close\r\n\r\n`);
      t.equal(w.publicHttp.requests[before]?.headers.host, `public.test:${w.publicHttp.port}`);
      t.equal(
        w.publicHttp.requests[before]?.rawHeaders.filter((v, i) => i % 2 === 0 && v.toLowerCase() === 'host').length,
        1,
      );
    },
  );

  t.test('RFC 9110 §7.6.1: Connection options and the fields they name are removed both ways', async (t) => {
    const before = w.publicHttp.requests.length;
    const r = await rawExchange(
      h.port,
      `GET ${pub}/c HTTP/1.1\r\nHost: public.test\r\n${auth}Connection: close, x-secret\r\nX-Secret: 1\r\nKeep-Alive: 5\r\nProxy-Connection: keep-alive\r\n\r\n`,
    );
    const seen = w.publicHttp.requests[before]!;
    t.equal(seen.headers['x-secret'], undefined);
    t.equal(seen.headers['keep-alive'], undefined);
    t.equal(seen.headers['proxy-connection'], undefined);
    t.notMatch(r.text, /^x-hop:/im, 'the response field the origin named in Connection is gone');
  });

  t.test('RFC 9110 §7.6.3: Via on what Sluice forwards, with a pseudonym; names from inside are hidden', async (t) => {
    const before = w.publicHttp.requests.length;
    const r = await rawExchange(
      h.port,
      `GET ${pub}/via HTTP/1.1\r\nHost: public.test\r\n${auth}Via: 1.0 build-runner-7.corp.internal (squid), HTTP/1.1 dev-box\r\nConnection: close\r\n\r\n`,
    );
    const seen = w.publicHttp.requests[before]!;
    t.equal(
      seen.headers.via,
      '1.0 hidden, 1.1 hidden, 1.1 sluice',
      "the client's chain kept by protocol, its host names replaced",
    );
    t.match(r.text, /^Via: 1\.1 sluice\r$/im, 'and on the response');
    const malformed = w.publicHttp.requests.length;
    await rawExchange(
      h.port,
      `GET ${pub}/via-malformed HTTP/1.1\r\nHost: public.test\r\n${auth}Via: build-runner-7.corp.internal, dev-box.corp.internal proxy, 2 edge\r\nConnection: close\r\n\r\n`,
    );
    t.equal(
      w.publicHttp.requests[malformed]?.headers.via,
      '2 hidden, 1.1 sluice',
      'a member that is not "protocol received-by" is dropped: its lone token may be a name from inside',
    );
    const plain = w.publicHttp.requests.length;
    await rawExchange(h.port, `GET ${pub}/via2 HTTP/1.0\r\nHost: public.test\r\n${auth}\r\n`);
    t.equal(w.publicHttp.requests[plain]?.headers.via, '1.0 sluice', "the received protocol is the client's");
  });

  t.test('RFC 9110 §9.3.6: a 2xx to CONNECT carries no Content-Length or Transfer-Encoding', async (t) => {
    const r = await conversation(
      h.port,
      `CONNECT registry.test:443 HTTP/1.1\r\nHost: registry.test:443\r\n${auth}\r\n`,
      { pauseMs: 300, waitMs: 400 },
    );
    t.equal(r.early, 'HTTP/1.1 200 Connection Established\r\n\r\n');
  });
}
