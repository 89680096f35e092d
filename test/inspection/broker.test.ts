// The credential broker inside inspected sessions: a request read inside an HTTPS tunnel takes the very http path
// an absolute-form request takes, so the handle is replaced by the secret on the way to its integration, the
// secret is scrubbed from the answer, and a handle sent elsewhere is refused — over the stock `https://` URL.
import t from 'tap';
import { FIELD } from '../../proxy/ops/audit.js';
import { startSluice, waitFor } from '../helpers/harness.js';
import { isolate } from '../helpers/netns.js';
import { CREDENTIAL, buildBrokerWorld } from '../broker/world.js';
import { inspectedSession, inspectionCaFiles, proxyCode, sessionClient } from './wire-helpers.js';

if (isolate(t, import.meta.url)) {
  const w = await buildBrokerWorld(t);
  const ca = await inspectionCaFiles();
  const h = await startSluice(t, w.config({ inspection: { caCertFile: ca.certFile, caKeyFile: ca.keyFile } }));
  const { canary } = w;
  const bearer = { authorization: `Bearer ${canary.handle}` };

  t.test('https://integration: the handle is injected inside the session, the echo scrubbed', async (t) => {
    const tls = await inspectedSession(h.port, 'api.test', ca.certPem, w.auth());
    const c = sessionClient(tls, 'api.test');
    const r = await c.request({ path: '/echo', headers: bearer });
    t.equal(r.status, 200);
    t.equal(w.api.requests.at(-1)!.headers.authorization, `Bearer ${canary.secret}`, 'the upstream sees the secret');
    t.notOk(r.body.includes(canary.secret), 'no secret comes back');
    t.ok(r.body.includes(canary.handle), 'the handle instead');
    const rec = await waitFor(() => h.decisions().find((d) => d[FIELD.inspected] === true && d[FIELD.targetPath] === '/echo'));
    t.match(rec, { verdict: 'allow', 'credential.name': CREDENTIAL, 'credential.action': 'injected' });
    tls.destroy();
  });

  t.test('the handle toward another integration is refused inside the session', async (t) => {
    const tls = await inspectedSession(h.port, 'other.test', ca.certPem, w.auth());
    const r = await sessionClient(tls, 'other.test').request({ path: '/echo', headers: bearer });
    t.equal(r.status, 403);
    t.equal(proxyCode(r), 'EGR_DENY_CREDENTIAL_SCOPE');
    t.notOk(w.other.requests.some((q) => JSON.stringify(q.headers).includes(canary.handle)), 'the handle never left');
    tls.destroy();
  });
}
