// Every open flow — tunnel, upgraded connection, forwarded request in flight — is registered, counted by kind,
// idle-timed-out, and closed the moment a right ends: the kill switch, a run token's expiry (driven by an
// injected clock), a reload that takes the grant away, a new token key. Each close is on the flow's own
// audit record (`close`). In a namespace holding only lo.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { validateConfig } from '../../settings/config.js';
import { issueToken } from '../../proxy/auth/run-token.js';
import { AGENT_AUTH, basic, codeOf, startSluice, viaProxy, settles, waitFor } from '../helpers/harness.js';
import { isolate } from '../helpers/netns.js';
import { closed, openTunnel, openUpgrade, startUpload } from '../helpers/open-flows.js';
import { type RecordingOrigin, startRecordingOrigin } from '../helpers/recording-origin.js';
import { PASSWORD, type World, buildWorld, worldConfig } from '../helpers/world.js';

const ORIGIN = '127.0.0.5';
const dir = mkdtempSync(join(tmpdir(), 'sluice-flows-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const metricsText = (h: { sluice: { metrics: { registry: { metrics(): Promise<string> } } } }) =>
  h.sluice.metrics.registry.metrics();
const gauge = (text: string, kind: string) =>
  Number(new RegExp(`^sluice_active_flows\\{kind="${kind}"\\} (\\d+)$`, 'm').exec(text)?.[1] ?? NaN);

function config(
  w: World,
  extra: Record<string, unknown> = {},
  grants = ['ws', 'gh'],
  upgrade = ['websocket'],
): Record<string, unknown> {
  return worldConfig(w, {
    integrations: {
      ws: { hosts: ['api.test'], methods: ['GET', 'POST'], upgrade },
      gh: { hosts: ['gh.test'], tunnel: true },
    },
    identities: { agent: { password: PASSWORD, integrations: grants } },
    ...extra,
  });
}

if (isolate(t, import.meta.url)) {
  const w = await buildWorld(t);
  const origin: RecordingOrigin = await startRecordingOrigin(ORIGIN, w.pki);
  t.teardown(() => origin.close());
  w.dns.set('api.test', { a: [ORIGIN] });
  const ca = w.pki.caPem;

  t.test('every kind of flow is counted, and the kill switch closes each of them at once', async (t) => {
    const h = await startSluice(t, config(w));
    const tunnel = await openTunnel(h.port, 'registry.test:443', AGENT_AUTH, ca);
    const pipe = await openUpgrade(h.port, 'http://api.test/ws', AGENT_AUTH);
    const chunks = origin.uploadChunks.length;
    const upload = startUpload(h.port, 'http://api.test/upload', AGENT_AUTH, 'one');
    await waitFor(() => origin.uploadChunks.length > chunks);

    const before = await metricsText(h);
    t.same(
      ['tunnel', 'upgrade', 'forward'].map((k) => gauge(before, k)),
      [1, 1, 1],
      'sluice_active_flows by kind',
    );
    t.match(
      before,
      /^sluice_active_tunnels 2$/m,
      'sluice_active_tunnels still counts the opaque flows (tunnels and upgrades)',
    );

    h.sluice.state.setKillSwitch(true, 'api');
    t.ok(
      await settles(Promise.all([closed(tunnel), closed(pipe.socket), upload.done])),
      'the tunnel, the upgraded connection and the upload in flight were all closed',
    );
    const sent = origin.uploadChunks.join('');
    upload.send('two');
    await waitFor(() => origin.uploadsAborted() > 0);
    t.equal(origin.uploadChunks.join(''), sent, 'nothing more of the upload reached the integration');
    t.notMatch(sent, /two/);

    const records = await waitFor(() => {
      const r = h.decisions().filter((d) => d.close === 'kill-switch');
      return r.length === 3 ? r : null;
    });
    t.same(
      records.map((r) => r.method).sort(),
      ['CONNECT', 'GET', 'POST'],
      'one record per flow, each saying why it closed',
    );
    const byMethod = Object.fromEntries(records.map((r) => [r.method, r]));
    for (const m of ['CONNECT', 'GET'])
      t.match(byMethod[m], { verdict: 'allow', detail: 'EGR_DENY_KILL_SWITCH' }, `${m}: allowed, then closed`);
    t.match(
      byMethod.POST,
      { verdict: 'deny', code: 'EGR_DENY_KILL_SWITCH' },
      'the upload had no answer yet: it was refused with the code',
    );
    t.match(upload.status(), 403, 'and the client was told so');
    const after = await metricsText(h);
    t.same(
      ['tunnel', 'upgrade', 'forward'].map((k) => gauge(after, k)),
      [0, 0, 0],
    );
    h.sluice.state.setKillSwitch(false, 'api');
  });

  t.test('idle flows are closed: a stalled response and a quiet upgraded connection', async (t) => {
    const h = await startSluice(t, config(w, { limits: { idleTimeoutMs: 400 } }));
    const pipe = await openUpgrade(h.port, 'http://api.test/ws', AGENT_AUTH);
    const stalled = viaProxy(h.port, { url: 'https://api.test/stall' }).catch((err: Error) => err);
    await closed(pipe.socket);
    await stalled;
    const records = await waitFor(() => {
      const r = h.decisions().filter((d) => d.close === 'idle');
      return r.length === 2 ? r : null;
    });
    t.same(records.map((r) => r['target.path']).sort(), ['/stall', '/ws']);
    t.equal(h.sluice.state.flows.size, 0);
  });

  t.test('flows opened with a run token close when it expires (injected clock)', async (t) => {
    const keyFile = join(dir, 'expiry-key');
    const key = Buffer.from('e'.repeat(48));
    writeFileSync(keyFile, key);
    const clock = { now: Date.now() };
    const h = await startSluice(t, config(w, { tokens: { keyFile } }), { wallClockMs: () => clock.now });
    const token = issueToken(key, { sub: 'agent', ttlS: 60, nowS: Math.floor(clock.now / 1000) });
    const auth = basic('agent', token);
    const tokenTunnel = await openTunnel(h.port, 'registry.test:443', auth, ca);
    const upload = startUpload(h.port, 'http://api.test/upload-token', auth, 'one');
    const passwordTunnel = await openTunnel(h.port, 'registry.test:443', AGENT_AUTH, ca);
    await waitFor(() => h.sluice.state.flows.size === 3);

    clock.now += 59_000;
    await new Promise((r) => setTimeout(r, 1200)); // past an expiry sweep
    t.notOk(tokenTunnel.destroyed, 'still open a second before expiry');
    clock.now += 2_000;
    t.ok(
      await settles(Promise.all([closed(tokenTunnel), upload.done])),
      "the token's tunnel and its upload were closed at expiry",
    );
    t.notOk(passwordTunnel.destroyed, 'a flow opened with a password is not affected');
    const records = await waitFor(() => {
      const r = h.decisions().filter((d) => d.close === 'token-expired');
      return r.length === 2 ? r : null;
    });
    for (const r of records) t.match(r.code ?? r.detail, /^EGR_AUTH_EXPIRED/, `${r.method}: closed as expired`);
    t.same(
      records.map((r) => r.identity),
      ['agent', 'agent'],
    );
    t.ok(
      records.every((r) => typeof r.run === 'string'),
      'the records carry the run id',
    );
    t.equal(
      codeOf(await viaProxy(h.port, { url: `http://public.test:${w.publicHttp.port}/`, auth })),
      'EGR_AUTH_EXPIRED',
      'and the token opens nothing new',
    );
    passwordTunnel.destroy();
  });

  t.test(
    'a reload that revokes a grant closes the flows it allowed, judged as new requests, and only those',
    async (t) => {
      const h = await startSluice(t, config(w));
      const gh = await openTunnel(h.port, 'gh.test:443', AGENT_AUTH, ca);
      const registry = await openTunnel(h.port, 'registry.test:443', AGENT_AUTH, ca);
      const pipe = await openUpgrade(h.port, 'http://api.test/ws', AGENT_AUTH);
      const chunks = origin.uploadChunks.length;
      const upload = startUpload(h.port, 'http://api.test/upload-reload', AGENT_AUTH, 'one');
      await waitFor(() => origin.uploadChunks.length > chunks);

      // gh is no longer granted; ws keeps POST but loses its upgrade opt-in.
      const next = validateConfig({
        listen: { http: '127.0.0.1:0', socks5: null, admin: null },
        ...config(w, {}, ['ws'], []),
      });
      if (!next.ok) throw new Error('bad test config');
      h.sluice.state.swap(next.config);
      t.ok(
        await settles(Promise.all([closed(gh), closed(pipe.socket)])),
        'the tunnel to gh.test and the upgraded connection were closed',
      );
      t.notOk(registry.destroyed, 'the registry tunnel is still allowed, and still open');
      upload.send('two');
      upload.req.end();
      await upload.done;
      t.match(
        origin.uploadChunks.slice(chunks).join(''),
        /onetwo/,
        'the upload the new config still allows went on to its end',
      );
      const revoked = await waitFor(() => {
        const r = h.decisions().filter((d) => d.close === 'revoked');
        return r.length === 2 ? r : null;
      });
      const byMethod = Object.fromEntries(revoked.map((r) => [r.method, r]));
      t.match(byMethod.CONNECT, { 'target.host': 'gh.test', verdict: 'allow', detail: 'EGR_DENY_TUNNEL' });
      t.match(byMethod.GET, { 'target.path': '/ws', status: 101, detail: 'EGR_DENY_UPGRADE' });

      // A changed password ends the flows opened with the old one.
      const changed = validateConfig({
        listen: { http: '127.0.0.1:0', socks5: null, admin: null },
        ...config(w, { identities: { agent: { password: 'another-password-456', integrations: ['ws'] } } }, ['ws'], []),
      });
      if (!changed.ok) throw new Error('bad test config');
      h.sluice.state.swap(changed.config);
      await closed(registry);
      const rec = await waitFor(() =>
        h.decisions().find((d) => d.close === 'revoked' && d['target.host'] === 'registry.test'),
      );
      t.match(rec, { detail: /^EGR_AUTH_INVALID/ });
    },
  );

  t.test(
    "the token key file is watched: a new key ends the old key's flows; an invalid one keeps the last good key",
    async (t) => {
      const keyFile = join(dir, 'rotating-key');
      const k1 = Buffer.from('1'.repeat(48));
      const k2 = Buffer.from('2'.repeat(48));
      writeFileSync(keyFile, k1);
      const h = await startSluice(t, config(w, { tokens: { keyFile } }));
      const nowS = Math.floor(Date.now() / 1000);
      const t1 = basic('agent', issueToken(k1, { sub: 'agent', ttlS: 3600, nowS }));
      const t2 = basic('agent', issueToken(k2, { sub: 'agent', ttlS: 3600, nowS }));
      const pub = `http://public.test:${w.publicHttp.port}/`;
      const old = await openTunnel(h.port, 'registry.test:443', t1, ca);
      const password = await openTunnel(h.port, 'registry.test:443', AGENT_AUTH, ca);

      writeFileSync(keyFile, `${k2.toString()}\n`);
      t.ok(await settles(closed(old)), 'the tunnel opened with a token under the old key was closed');
      t.notOk(password.destroyed, 'a password flow is not affected');
      const rec = await waitFor(() => h.decisions().find((d) => d.close === 'revoked'));
      t.match(rec, { method: 'CONNECT', detail: 'EGR_AUTH_INVALID: the run-token key changed' });
      t.ok(h.logs.some((l) => String(l.msg).startsWith('tokens.key_changed')));
      t.equal(
        codeOf(await viaProxy(h.port, { url: pub, auth: t1 })),
        'EGR_AUTH_INVALID',
        "the old key's tokens no longer work",
      );
      t.equal((await viaProxy(h.port, { url: pub, auth: t2 })).status, 200, "the new key's tokens do");

      writeFileSync(keyFile, 'short');
      await waitFor(() => h.logs.some((l) => String(l.msg).startsWith('tokens.key_reload_failed')));
      t.match(await metricsText(h), /sluice_policy_reloads_total\{result="error"\} 1/, 'counted like a failed reload');
      t.equal((await viaProxy(h.port, { url: pub, auth: t2 })).status, 200, 'the last good key still holds');
      rmSync(keyFile);
      await waitFor(() => h.logs.filter((l) => String(l.msg).startsWith('tokens.key_reload_failed')).length === 2);
      t.equal((await viaProxy(h.port, { url: pub, auth: t2 })).status, 200, 'a missing key file keeps it too');
      t.notOk(password.destroyed);
      t.notMatch(h.logText(), new RegExp('1'.repeat(48) + '|' + '2'.repeat(48)), 'no key in the log');
      password.destroy();
    },
  );
}
