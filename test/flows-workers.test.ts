// The flow registry with workers (`sluice serve`, workers: 2, the compiled dist/): upgraded connections and
// uploads in flight are counted across the workers, a new token key (watched by the primary, sent to every
// worker) closes the flows opened under the old one, and the kill switch closes every flow in every worker.
// Runs in the lo-only namespace (the recording origin listens on 443).
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { issueToken } from '../proxy/auth/run-token.js';
import { AGENT_AUTH, basic, codeOf, viaProxy, settles, waitFor } from './helpers/harness.js';
import { isolate } from './helpers/netns.js';
import { closed, openTunnel, openUpgrade, startUpload } from './helpers/open-flows.js';
import { startRecordingOrigin } from './helpers/recording-origin.js';
import { adminCall, logLines, serve } from './helpers/serve.js';
import { PASSWORD, buildWorld, worldConfig } from './helpers/world.js';

const dir = mkdtempSync(join(tmpdir(), 'sluice-flows-workers-'));
const ADMIN_TOKEN = 'flows-workers-admin-token-0123456789';
const adminTokenFile = join(dir, 'admin-token');
writeFileSync(adminTokenFile, ADMIN_TOKEN);
const keyFile = join(dir, 'token-key');
const K1 = Buffer.from('a'.repeat(48));
const K2 = Buffer.from('b'.repeat(48));

const metric = (text: string, re: RegExp): number => Number(re.exec(text)?.[1] ?? NaN);

if (isolate(t, import.meta.url)) {
  const w = await buildWorld(t);
  const origin = await startRecordingOrigin('127.0.0.5', w.pki);
  t.teardown(() => origin.close());
  w.dns.set('api.test', { a: ['127.0.0.5'] });

  t.test(
    'two workers: flows counted across workers; a new token key and the kill switch reach every flow',
    async (t) => {
      writeFileSync(keyFile, K1);
      const path = join(dir, 'flows.yaml');
      writeFileSync(
        path,
        JSON.stringify(
          worldConfig(w, {
            listen: { http: '127.0.0.1:0', socks5: null, admin: '127.0.0.1:0' },
            admin: { tokenFile: adminTokenFile },
            tokens: { keyFile },
            workers: 2,
            integrations: { ws: { hosts: ['api.test'], methods: ['GET', 'POST'], upgrade: ['websocket'] } },
            identities: { agent: { password: PASSWORD, integrations: ['ws'] } },
          }),
        ),
      );
      const s = await serve(t, path);
      const nowS = Math.floor(Date.now() / 1000);
      const t1 = basic('agent', issueToken(K1, { sub: 'agent', ttlS: 3600, nowS }));
      const t2 = basic('agent', issueToken(K2, { sub: 'agent', ttlS: 3600, nowS }));

      const pipes = await Promise.all(
        Array.from({ length: 8 }, () => openUpgrade(s.http, 'http://api.test/ws', AGENT_AUTH)),
      );
      const chunks = origin.uploadChunks.length;
      const uploads = Array.from({ length: 6 }, (_, i) =>
        startUpload(s.http, `http://api.test/upload-${i}`, AGENT_AUTH, `first-${i}`),
      );
      await waitFor(() => origin.uploadChunks.length - chunks >= 6, 10_000);
      const tokenTunnels = await Promise.all(
        Array.from({ length: 4 }, () => openTunnel(s.http, 'registry.test:443', t1, w.pki.caPem)),
      );

      const m = (await adminCall(s.admin, 'GET', '/metrics')).body;
      t.equal(metric(m, /^sluice_active_flows\{kind="upgrade"\} (\d+)$/m), 8, 'upgrades, summed over the workers');
      t.equal(metric(m, /^sluice_active_flows\{kind="forward"\} (\d+)$/m), 6, 'uploads in flight');
      t.equal(metric(m, /^sluice_active_flows\{kind="tunnel"\} (\d+)$/m), 4);
      t.equal(metric(m, /^sluice_active_tunnels (\d+)$/m), 12, 'sluice_active_tunnels: tunnels and upgrades');

      // The primary watches the key file and sends the new key to every worker.
      writeFileSync(keyFile, K2);
      t.ok(
        await settles(Promise.all(tokenTunnels.map(closed))),
        'every tunnel opened with a token under the old key was closed',
      );
      t.ok(
        pipes.every((p) => !p.socket.destroyed),
        'the password flows stay open',
      );
      t.equal(
        codeOf(await viaProxy(s.http, { url: `http://public.test:${w.publicHttp.port}/`, auth: t1 })),
        'EGR_AUTH_INVALID',
      );
      for (let i = 0; i < 6; i++)
        t.equal(
          (await viaProxy(s.http, { url: `http://public.test:${w.publicHttp.port}/`, auth: t2 })).status,
          200,
          'the new key works',
        );

      const engage = await adminCall(s.admin, 'POST', '/v1/kill-switch', ADMIN_TOKEN, '{"engaged":true}');
      t.equal(engage.status, 200);
      t.ok(
        await settles(Promise.all([...pipes.map((p) => closed(p.socket)), ...uploads.map((u) => u.done)])),
        'every upgraded connection and every upload, in every worker, was closed',
      );
      const during = (await adminCall(s.admin, 'GET', '/metrics')).body;
      for (const kind of ['tunnel', 'upgrade', 'forward'])
        t.equal(metric(during, new RegExp(`^sluice_active_flows\\{kind="${kind}"\\} (\\d+)$`, 'm')), 0, kind);

      const records = await waitFor(() => {
        const r = logLines(s).filter((l) => l.msg === 'egress.decision' && l.close);
        return r.length >= 18 ? r : null;
      }, 10_000);
      t.equal(records.filter((r) => r.close === 'revoked').length, 4, 'four records closed by the new key');
      t.equal(records.filter((r) => r.close === 'kill-switch').length, 14, 'fourteen closed by the kill switch');
      const pids = new Set(records.map((r) => r.pid));
      t.notOk(pids.has(s.child.pid), 'closed in the workers, not the primary');
      t.comment(`flows were closed in ${pids.size} worker(s)`);
      await adminCall(s.admin, 'POST', '/v1/kill-switch', ADMIN_TOKEN, '{"engaged":false}');

      writeFileSync(keyFile, 'too short');
      await waitFor(() => logLines(s).some((l) => String(l.msg).startsWith('tokens.key_reload_failed')), 10_000);
      const after = (await adminCall(s.admin, 'GET', '/metrics')).body;
      t.equal(
        metric(after, /^sluice_policy_reloads_total\{result="error"\} (\d+)$/m),
        1,
        'an invalid key is counted once, by the primary',
      );
      t.equal(
        (await viaProxy(s.http, { url: `http://public.test:${w.publicHttp.port}/`, auth: t2 })).status,
        200,
        'the last good key holds',
      );
      s.child.kill('SIGTERM');
      t.equal(await s.exit, 0);
    },
  );
}
