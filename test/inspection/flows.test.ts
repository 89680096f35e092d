// Inspected sessions are flows (kind `inspected`): a run token's expiry, a reload that takes the grant away and
// the idle timeout end them, like every other flow; a reload that changes the inspection section rebuilds the
// leaf issuer without touching open sessions.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { validateConfig } from '../../settings/config.js';
import { issueToken } from '../../proxy/auth/run-token.js';
import { FIELD } from '../../proxy/ops/audit.js';
import { AGENT_AUTH, basic, startSluice, waitFor } from '../helpers/harness.js';
import { isolate } from '../helpers/netns.js';
import { buildWorld, worldConfig } from '../helpers/world.js';
import { startHttpsCanary } from '../helpers/canary.js';
import { inspectedSession, inspectionCaFiles, sessionClient } from './wire-helpers.js';

const closed = (s: { destroyed: boolean; once(e: 'close', f: () => void): unknown }) =>
  new Promise<void>((r) => (s.destroyed ? r() : void s.once('close', () => r())));

if (isolate(t, import.meta.url)) {
  const w = await buildWorld(t);
  const www = await startHttpsCanary('127.0.0.2', 443, w.pki, (req, res) => {
    if (req.url.startsWith('/slow')) setTimeout(() => res.end(`www ${req.method} ${req.url}`), 500);
    else res.end(`www ${req.method} ${req.url}`);
  });
  t.teardown(() => www.close());
  const ca = await inspectionCaFiles();
  const cfg = (extra: Record<string, unknown> = {}) =>
    worldConfig(w, { inspection: { caCertFile: ca.certFile, caKeyFile: ca.keyFile }, ...extra });

  t.test("a run token's expiry closes its inspected session", async (t) => {
    const key = Buffer.from('i'.repeat(48));
    const keyFile = join(w.tokenKeyFile + '-inspect');
    writeFileSync(keyFile, key);
    const clock = { now: Date.now() };
    const h = await startSluice(t, cfg({ tokens: { keyFile } }), { wallClockMs: () => clock.now });
    const token = issueToken(key, { sub: 'agent', ttlS: 60, nowS: Math.floor(clock.now / 1000) });
    const tls = await inspectedSession(h.port, 'public.test', ca.certPem, basic('agent', token));
    t.equal((await sessionClient(tls, 'public.test').request({ path: '/t' })).status, 200);
    const other = await inspectedSession(h.port, 'public.test', ca.certPem, AGENT_AUTH);
    clock.now += 61_000;
    await closed(tls);
    t.notOk(other.destroyed, 'a session opened with a password stays');
    const rec = await waitFor(() => h.decisions().find((d) => d.method === 'CONNECT' && d.close === 'token-expired'));
    t.match(rec, { [FIELD.inspected]: true, detail: /EGR_AUTH_EXPIRED/ });
    other.destroy();
  });

  t.test('a reload that takes the read right away closes the session', async (t) => {
    const h = await startSluice(t, cfg());
    const tls = await inspectedSession(h.port, 'public.test', ca.certPem);
    const registry = await inspectedSession(h.port, 'registry.test', ca.certPem);
    t.equal((await sessionClient(tls, 'public.test').request({ path: '/r' })).status, 200);
    const base = cfg();
    const ids = base.identities as Record<string, Record<string, unknown>>;
    const next = validateConfig({
      listen: { http: '127.0.0.1:0', socks5: null, admin: null },
      ...base,
      identities: { ...ids, agent: { ...ids.agent, reads: 'none' } },
    });
    if (!next.ok) throw new Error('bad test config');
    h.sluice.state.swap(next.config);
    await closed(tls);
    t.notOk(registry.destroyed, 'a registry session is still allowed (registries are read by all)');
    const rec = await waitFor(() => h.decisions().find((d) => d.method === 'CONNECT' && d.close === 'revoked'));
    t.match(rec, { [FIELD.targetHost]: 'public.test', detail: /EGR_DENY_READ/ });
    registry.destroy();
  });

  t.test('an idle session is closed', async (t) => {
    // Between requests a session waits for the next request's headers at most headersTimeoutMs (the listener's
    // keep-alive rule); inside a request, idleTimeoutMs bounds a stall.
    const h = await startSluice(t, cfg({ limits: { idleTimeoutMs: 400, headersTimeoutMs: 500 } }));
    const tls = await inspectedSession(h.port, 'public.test', ca.certPem);
    t.equal((await sessionClient(tls, 'public.test').request({ path: '/i' })).status, 200);
    await closed(tls);
    await waitFor(() => h.sluice.state.flows.count('inspected') === 0);
    t.pass('closed after the idle timeout');
  });

  t.test('a reload with a new CA: new sessions get leaves from it', async (t) => {
    const h = await startSluice(t, cfg());
    const before = await inspectedSession(h.port, 'public.test', ca.certPem);
    const ca2 = await inspectionCaFiles();
    const next = validateConfig({
      listen: { http: '127.0.0.1:0', socks5: null, admin: null },
      ...worldConfig(w, { inspection: { caCertFile: ca2.certFile, caKeyFile: ca2.keyFile } }),
    });
    if (!next.ok) throw new Error('bad test config');
    h.sluice.state.swap(next.config);
    const after = await waitFor(
      async () => inspectedSession(h.port, 'public.test', ca2.certPem).catch(() => null),
      5000,
    );
    t.ok(await after, 'a session trusting only the new CA');
    t.notOk(before.destroyed, 'the session signed by the old CA is not cut');
    t.equal((await sessionClient(before, 'public.test').request({ path: '/old' })).status, 200);
    before.destroy();
    (await after)!.destroy();
  });

  t.test('graceful shutdown: idle sessions end at once, a request in flight finishes first', async (t) => {
    const h = await startSluice(t, cfg());
    const idle = await inspectedSession(h.port, 'public.test', ca.certPem);
    const busy = await inspectedSession(h.port, 'public.test', ca.certPem);
    const slow = sessionClient(busy, 'public.test').request({ path: '/slow' });
    await waitFor(() => www.requests.some((r) => r.url === '/slow'));
    const draining = h.sluice.drain(5000);
    await closed(idle);
    t.notOk(busy.destroyed, 'the busy session is still open while its request runs');
    const r = await slow;
    t.equal(r.status, 200, 'the request in flight got its answer');
    t.equal(r.headers.connection, 'close', 'with Connection: close');
    await closed(busy);
    await draining;
    t.equal(h.sluice.state.flows.count('inspected'), 0);
  });
}
