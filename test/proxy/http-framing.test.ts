// Ambiguous or malformed HTTP is refused with 400 and the connection closed, before any upstream
// connection: request smuggling (CL/TE), CRLF or NUL in the target, over-long targets and headers.
import t from 'tap';
import { AGENT_AUTH, rawExchange, startSluice } from '../helpers/harness.js';
import { isolate } from '../helpers/netns.js';
import { buildWorld, worldConfig } from '../helpers/world.js';

if (isolate(t, import.meta.url)) {
  const w = await buildWorld(t);
  const h = await startSluice(t, worldConfig(w, { limits: { maxHeaderBytes: 8192 } }));
  const target = `http://public.test:${w.publicHttp.port}`;
  const auth = `Proxy-Authorization: ${AGENT_AUTH}\r\n`;

  const cases: [string, string][] = [
    [
      'CL + TE',
      `POST http://api.test/ HTTP/1.1\r\nHost: api.test\r\n${auth}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n`,
    ],
    [
      'duplicate Content-Length',
      `POST http://api.test/ HTTP/1.1\r\nHost: api.test\r\n${auth}Content-Length: 4\r\nContent-Length: 5\r\n\r\nabcde`,
    ],
    [
      'duplicate equal Content-Length',
      `POST http://api.test/ HTTP/1.1\r\nHost: api.test\r\n${auth}Content-Length: 4\r\nContent-Length: 4\r\n\r\nabcd`,
    ],
    [
      'TE not ending in chunked',
      `POST http://api.test/ HTTP/1.1\r\nHost: api.test\r\n${auth}Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n`,
    ],
    [
      'obfuscated TE',
      `POST http://api.test/ HTTP/1.1\r\nHost: api.test\r\n${auth}Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n`,
    ],
    ['CR in target', `GET ${target}/a\rb HTTP/1.1\r\nHost: public.test\r\n${auth}\r\n`],
    ['LF in target', `GET ${target}/a\nX-Injected: 1 HTTP/1.1\r\nHost: public.test\r\n${auth}\r\n`],
    ['NUL in target', `GET ${target}/a\x00b HTTP/1.1\r\nHost: public.test\r\n${auth}\r\n`],
    ['over-long target', `GET ${target}/${'a'.repeat(9000)} HTTP/1.1\r\nHost: public.test\r\n${auth}\r\n`],
    ['over-long header', `GET ${target}/ HTTP/1.1\r\nHost: public.test\r\n${auth}X-Big: ${'b'.repeat(9000)}\r\n\r\n`],
    ['obs-fold', `GET ${target}/ HTTP/1.1\r\nHost: public.test\r\n${auth}X-A: 1\r\n folded\r\n\r\n`],
    ['bare LF line endings', `GET ${target}/ HTTP/1.1\nHost: public.test\n${auth.trim()}\n\n`],
    ['bad version', `GET ${target}/ HTTP/9.1\r\nHost: public.test\r\n${auth}\r\n`],
    ['space in header name', `GET ${target}/ HTTP/1.1\r\nHost: public.test\r\n${auth}Bad Header: x\r\n\r\n`],
  ];

  for (const [name, bytes] of cases) {
    t.test(name, async (t) => {
      const conns = w.publicHttp.connections + w.integration.connections;
      const r = await rawExchange(h.port, bytes);
      t.match(r.text, /^HTTP\/1\.1 400 /, '400');
      t.match(r.text, /EGR_BAD_REQUEST|EGR_INVALID_TARGET/);
      t.match(r.text, /Connection: close/i);
      t.ok(r.closed, 'connection closed');
      t.equal(w.publicHttp.connections + w.integration.connections, conns, 'nothing reached upstream');
    });
  }

  t.test('the audit log records parse failures without request data', async (t) => {
    const before = h.decisions().length;
    await rawExchange(h.port, `GET ${target}/x\x00 HTTP/1.1\r\nHost: public.test\r\n${auth}\r\n`);
    const rec = h.decisions().slice(before)[0];
    t.match(rec, { code: 'EGR_BAD_REQUEST', verdict: 'deny', 'target.host': null, identity: null });
  });

  t.test('a well-formed request on the same connection after a good one still works (keep-alive)', async (t) => {
    const r = await rawExchange(
      h.port,
      `GET ${target}/1 HTTP/1.1\r\nHost: public.test\r\n${auth}\r\nGET ${target}/2 HTTP/1.1\r\nHost: public.test\r\n${auth}Connection: close\r\n\r\n`,
    );
    t.equal(r.text.match(/HTTP\/1\.1 200/g)?.length, 2);
  });
}
