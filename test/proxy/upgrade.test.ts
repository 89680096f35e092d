// HTTP Upgrade through Sluice, inside a namespace holding only lo. An upgraded connection is an opaque pipe, so
// it exists only where the operator opted in (`integrations.<name>.upgrade`), only once the origin answered 101
// with a protocol that was asked for, and nothing the client sent after its request head moves before that:
// a client that pipelines more requests behind an upgrade never gets them past the policy.
import { connect, type Socket } from 'node:net';
import t from 'tap';
import { AGENT_AUTH, rawExchange, startSluice, waitFor } from '../helpers/harness.js';
import { isolate } from '../helpers/netns.js';
import { type RecordingOrigin, startRecordingOrigin } from '../helpers/recording-origin.js';
import { buildWorld, worldConfig } from '../helpers/world.js';

const ORIGIN = '127.0.0.5';

/** An upgrade request for `path` with `upgrade`, then whatever `after` pipelines in the same write. */
const upgradeRequest = (path: string, upgrade: string, after = '', extra = '') =>
  `GET http://ws.test${path} HTTP/1.1\r\nHost: ws.test\r\nConnection: Upgrade\r\nUpgrade: ${upgrade}\r\n${extra}Proxy-Authorization: ${AGENT_AUTH}\r\n\r\n${after}`;

/** The smuggling attempt: a GET that asks to upgrade, then a DELETE and a POST (to another Host) in the same packet. */
const pipelined =
  'DELETE http://ws.test/repos/1 HTTP/1.1\r\nHost: ws.test\r\nContent-Length: 0\r\n\r\n' +
  'POST http://ws.test/exfil HTTP/1.1\r\nHost: other.test\r\nContent-Length: 6\r\n\r\nsecret';

/** Opens a raw connection, writes `bytes`, and resolves once a complete response head has arrived. */
async function openRaw(port: number, bytes: string): Promise<{ socket: Socket; head: string; rest: () => string }> {
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  let text = '';
  socket.on('data', (c: Buffer) => (text += c.toString('latin1')));
  await new Promise<void>((r) => socket.once('connect', () => r()));
  socket.write(bytes);
  const end = await waitFor(() => (text.includes('\r\n\r\n') ? text.indexOf('\r\n\r\n') + 4 : 0));
  return { socket, head: text.slice(0, end), rest: () => text.slice(end) };
}

if (isolate(t, import.meta.url)) {
  const w = await buildWorld(t);
  const origin: RecordingOrigin = await startRecordingOrigin(ORIGIN, w.pki);
  t.teardown(() => origin.close());
  // The origin's certificate names api.test; ws.test reaches it through an integration named for it.
  w.dns.set('ws.test', { a: [ORIGIN] });
  w.dns.set('api.test', { a: [ORIGIN] });
  const config = (upgrade: string[] | null) =>
    worldConfig(w, {
      integrations: {
        // GET only, no tunnel: what the attacker was granted.
        ws: { hosts: ['ws.test', 'api.test'], methods: ['GET'], tunnel: false, ...(upgrade ? { upgrade } : {}) },
      },
      identities: { agent: { password: 'agent-password-123', integrations: ['ws'] } },
      addressGuard: { allow: [{ cidr: '127.0.0.0/8', hosts: ['*.test'] }] },
    });
  // The certificate is for api.test: the upgrade tests address the origin by that name.
  const req = (path: string, upgrade: string, after = '', extra = '') =>
    upgradeRequest(path, upgrade, after, extra).replaceAll('ws.test', 'api.test');

  t.test('without an upgrade opt-in, an upgrade is refused and nothing reaches the integration', async (t) => {
    const h = await startSluice(t, config(null));
    const before = origin.raw().length;
    const r = await rawExchange(h.port, req('/x', 'foo', pipelined));
    t.match(r.text, /^HTTP\/1\.1 403 /);
    t.match(r.text, /EGR_DENY_UPGRADE/);
    t.notMatch(r.text, /plain GET/, 'no answer from the origin');
    t.equal(origin.raw().length, before, 'the integration received nothing at all');
    const rec = await waitFor(() => h.decisions().find((d) => d.code === 'EGR_DENY_UPGRADE'));
    t.match(rec, { verdict: 'deny', rule: 'integrations.ws.upgrade', method: 'GET' });
    t.equal(h.decisions().length, 1, 'one record: the pipelined requests were never parsed as requests');
  });

  t.test('an upgrade to a protocol the integration did not list is refused', async (t) => {
    const h = await startSluice(t, config(['websocket']));
    const before = origin.raw().length;
    for (const upgrade of ['foo', 'h2c', 'websocket, foo']) {
      const r = await rawExchange(h.port, req('/ws', upgrade, pipelined));
      t.match(r.text, /EGR_DENY_UPGRADE/, upgrade);
    }
    t.equal(origin.raw().length, before);
  });

  t.test(
    'an upgrade the origin declines is relayed as an ordinary answer; pipelined requests never leave',
    async (t) => {
      const h = await startSluice(t, config(['websocket']));
      const seenBefore = origin.requests.length;
      const rawBefore = origin.raw().length;
      const r = await rawExchange(h.port, req('/declined', 'websocket', pipelined));
      t.ok(r.closed, 'Sluice closes the connection after the answer');
      t.match(r.text, /^HTTP\/1\.1 200 OK\r\n/);
      t.match(r.text, /\r\nconnection: close\r\n/i);
      t.match(r.text, /plain GET \/declined$/, "the origin's answer, whole");
      t.equal((r.text.match(/HTTP\/1\.1 /g) ?? []).length, 1, 'exactly one response: nothing else was answered');
      t.same(
        origin.requests.slice(seenBefore).map((s) => [s.method, s.url]),
        [['GET', '/declined']],
        'the origin saw one request',
      );
      const received = origin.raw().slice(rawBefore);
      t.notMatch(
        received,
        /DELETE|POST|secret|other\.test/,
        'not one byte of the pipelined requests reached the origin',
      );
      const rec = await waitFor(() => h.decisions().find((d) => d['target.path'] === '/declined'));
      t.match(rec, { verdict: 'allow', status: 200, rule: 'integrations.ws' });
      t.equal(h.decisions().length, 1);
    },
  );

  t.test('a 101 with the protocol asked for becomes a pipe; held bytes follow the switch, in order', async (t) => {
    const h = await startSluice(t, config(['websocket']));
    const afterBefore = origin.afterSwitch().length;
    const c = await openRaw(
      h.port,
      req(
        '/ws',
        'websocket',
        'early-frame',
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n',
      ),
    );
    t.match(c.head, /^HTTP\/1\.1 101 Switching Protocols\r\n/);
    t.match(c.head, /\r\nupgrade: websocket\r\n/i);
    t.match(
      c.head,
      /\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=\r\n/,
      "the origin's handshake headers are relayed",
    );
    await waitFor(() => c.rest().includes('echo:early-frame'));
    t.equal(origin.afterSwitch().slice(afterBefore), 'early-frame', 'bytes sent before the 101 arrived only after it');
    c.socket.write('second');
    await waitFor(() => c.rest().includes('echo:second'));
    t.equal(h.sluice.state.flows.count('upgrade'), 1, 'the pipe is a registered flow');
    c.socket.end();
    const rec = await waitFor(() => h.decisions().find((d) => d['target.path'] === '/ws'));
    t.match(rec, { verdict: 'allow', status: 101, rule: 'integrations.ws', close: null });
    t.ok(
      (rec['bytes.up'] as number) >= 'early-framesecond'.length && (rec['bytes.down'] as number) > 0,
      'bytes through the pipe are counted',
    );
    await waitFor(() => h.sluice.state.flows.count('upgrade') === 0);
  });

  t.test('a 101 to a protocol that was not asked for is refused and closed; held bytes never leave', async (t) => {
    const h = await startSluice(t, config(['websocket']));
    const afterBefore = origin.afterSwitch().length;
    const r = await rawExchange(h.port, req('/other', 'websocket', pipelined));
    t.match(r.text, /^HTTP\/1\.1 502 /);
    t.match(r.text, /EGR_FAIL_UPSTREAM/);
    t.ok(r.closed);
    await new Promise((r) => setTimeout(r, 100));
    t.equal(origin.afterSwitch().slice(afterBefore), '', 'nothing was written into the unexpected protocol');
  });

  t.test('an upgrade request with a body is refused: its bytes would land in the new protocol', async (t) => {
    const h = await startSluice(t, config(['websocket']));
    const before = origin.raw().length;
    const r = await rawExchange(h.port, req('/ws', 'websocket', 'hello', 'Content-Length: 5\r\n'));
    t.match(r.text, /EGR_UNSUPPORTED/);
    t.equal(origin.raw().length, before);
  });

  t.test('an Upgrade that is not a list of protocol tokens is a bad request', async (t) => {
    const h = await startSluice(t, config(['websocket']));
    const r = await rawExchange(h.port, req('/ws', 'web socket'));
    t.match(r.text, /EGR_BAD_REQUEST/);
  });

  t.test(
    "report mode: a would-be denied upgrade is logged with wouldDeny and judged by the origin's answer",
    async (t) => {
      const h = await startSluice(t, { ...config(null), mode: 'report' });
      const before = origin.raw().length;
      const r = await rawExchange(h.port, req('/declined-report', 'foo', pipelined));
      t.match(r.text, /^HTTP\/1\.1 200 OK/);
      t.notMatch(origin.raw().slice(before), /DELETE|POST/, 'even in report mode, pipelined bytes stay held');
      const rec = await waitFor(() => h.decisions().find((d) => d['target.path'] === '/declined-report'));
      t.match(rec, { verdict: 'allow', wouldDeny: 'EGR_DENY_UPGRADE', rule: 'mode.report' });
    },
  );
}
