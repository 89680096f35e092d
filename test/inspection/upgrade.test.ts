// WebSocket inside an inspected session: the same rules as an absolute-form upgrade. An integration that opted
// in (`upgrade: [websocket]`) gets a pipe once the origin answers 101; without the opt-in it is refused, and
// bytes the client sent after its request head never move before the switch.
import t from 'tap';
import { FIELD } from '../../proxy/ops/audit.js';
import { startSluice, waitFor } from '../helpers/harness.js';
import { isolate } from '../helpers/netns.js';
import { type RecordingOrigin, startRecordingOrigin } from '../helpers/recording-origin.js';
import { buildWorld, worldConfig } from '../helpers/world.js';
import { inspectedSession, inspectionCaFiles } from './wire-helpers.js';

const ORIGIN = '127.0.0.5';
const upgrade = (path: string, after = '') =>
  `GET ${path} HTTP/1.1\r\nHost: api.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n${after}`;

if (isolate(t, import.meta.url)) {
  const w = await buildWorld(t);
  const origin: RecordingOrigin = await startRecordingOrigin(ORIGIN, w.pki);
  t.teardown(() => origin.close());
  w.dns.set('api.test', { a: [ORIGIN] });
  const ca = await inspectionCaFiles();
  const config = (opt: string[] | null) =>
    worldConfig(w, {
      integrations: { ws: { hosts: ['api.test'], methods: ['GET'], ...(opt ? { upgrade: opt } : {}) } },
      identities: { agent: { password: 'agent-password-123', integrations: ['ws'] } },
      inspection: { caCertFile: ca.certFile, caKeyFile: ca.keyFile },
    });

  t.test('an opted-in integration: 101, then a pipe inside the session', async (t) => {
    const h = await startSluice(t, config(['websocket']));
    const tls = await inspectedSession(h.port, 'api.test', ca.certPem);
    let text = '';
    tls.on('data', (c: Buffer) => (text += c.toString('latin1')));
    const before = origin.afterSwitch().length;
    tls.write(upgrade('/ws', 'early'));
    await waitFor(() => text.includes('echo:early'));
    t.match(text, /^HTTP\/1\.1 101 Switching Protocols\r\n/);
    t.equal(origin.afterSwitch().slice(before), 'early', 'bytes sent before the 101 followed it');
    tls.write('more');
    await waitFor(() => text.includes('echo:more'));
    t.equal(h.sluice.state.flows.count('upgrade'), 1);
    tls.end();
    const rec = await waitFor(() => h.decisions().find((d) => d[FIELD.targetPath] === '/ws'));
    t.match(rec, { verdict: 'allow', status: 101, rule: 'integrations.ws', [FIELD.inspected]: true });
  });

  t.test('without the opt-in: EGR_DENY_UPGRADE inside, nothing after the head reaches the origin', async (t) => {
    const h = await startSluice(t, config(null));
    const tls = await inspectedSession(h.port, 'api.test', ca.certPem);
    const before = origin.raw().length;
    tls.write(upgrade('/ws-denied', 'DELETE /repos/1 HTTP/1.1\r\nHost: api.test\r\n\r\n'));
    let text = '';
    const timer = setTimeout(() => tls.destroy(), 3000);
    for await (const c of tls) text += c;
    clearTimeout(timer);
    t.match(text, /^HTTP\/1\.1 403 [\s\S]*EGR_DENY_UPGRADE/);
    t.equal(origin.raw().length, before, 'the origin saw nothing');
  });
}
