// The broker under `sluice serve` with workers: every worker builds its own broker from the files, the
// primary's admin API issues handles, and a revocation through it reaches every worker before it answers
// (here without any revocation list, so nothing but the primary's message can have done it). And serve
// refuses to start with what production refuses.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { isolate } from '../helpers/netns.js';
import { codeOf, viaProxy } from '../helpers/harness.js';
import { adminCall, serve } from '../helpers/serve.js';
import { spawnSync } from 'node:child_process';
import { cliArgv } from '../helpers/cli.js';
import { CREDENTIAL, buildBrokerWorld } from './world.js';

const ADMIN_TOKEN = 'admin-token-0123456789abcdef';

if (isolate(t, import.meta.url)) {
  const w = await buildBrokerWorld(t);
  const adminTokenFile = join(w.dir, 'admin.token');
  writeFileSync(adminTokenFile, ADMIN_TOKEN, { mode: 0o600 });

  t.test('workers: issue through the primary, revoke reaches every worker at once', async (t) => {
    const path = join(w.dir, 'workers.json');
    writeFileSync(
      path,
      JSON.stringify(
        w.config({
          workers: 2,
          listen: { http: '127.0.0.1:0', admin: '127.0.0.1:0', socks5: null },
          admin: { tokenFile: adminTokenFile },
          secrets: { keyFile: w.files.key, handles: { maxTtl: '8h', pollMs: 60_000 } },
        }),
      ),
    );
    const s = await serve(t, path, { NODE_CLUSTER_SCHED_POLICY: 'rr' });
    const issued = await adminCall(
      s.admin,
      'POST',
      '/v1/handles',
      ADMIN_TOKEN,
      JSON.stringify({ run: 'run-w', identity: 'agent', credential: CREDENTIAL, ttl: '1h' }),
    );
    t.equal(issued.status, 200, issued.body);
    const { handle } = JSON.parse(issued.body) as { handle: string };
    const auth = w.auth({ run: 'run-w' });
    const use = () =>
      viaProxy(s.http, { url: 'http://api.test/echo', headers: { authorization: `Bearer ${handle}` }, auth });
    for (let i = 0; i < 6; i++) {
      const r = await use();
      t.equal(r.status, 200, `request ${i}`);
      t.ok(r.body.includes(handle) && !r.body.includes(w.canary.secret));
    }
    const revoked = await adminCall(s.admin, 'POST', '/v1/runs/revoke', ADMIN_TOKEN, JSON.stringify({ run: 'run-w' }));
    t.equal(revoked.status, 200, revoked.body);
    t.match(JSON.parse(revoked.body), { shared: false });
    for (let i = 0; i < 6; i++)
      t.equal(codeOf(await use()), 'EGR_DENY_CREDENTIAL_REVOKED', `request ${i} after the revocation`);
    t.same(w.canary.leaks(s.stdout() + s.stderr()), [], 'no secret, key, sealed blob or handle in any log line');
    t.notOk((s.stdout() + s.stderr()).includes(handle));
  });

  t.test('serve refuses what production refuses', async (t) => {
    const path = join(w.dir, 'prod.json');
    writeFileSync(
      path,
      JSON.stringify(w.config({ secrets: { keyFile: w.files.key, handles: { revocationFile: w.files.revocations } } })),
    );
    const r = spawnSync(process.execPath, [...cliArgv(), 'serve', '--config', path], {
      env: { ...process.env, SLUICE_ENV: 'production' },
      encoding: 'utf8',
      timeout: 30_000,
    });
    t.not(r.status, 0);
    t.match(r.stderr, /\/secrets\/handles\/maxTtl/);
    t.match(r.stderr, /nothing was started/);
    const check = spawnSync(process.execPath, [...cliArgv(), 'check', path, '--production'], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    t.equal(check.status, 1);
    t.match(check.stdout, /\/secrets\/handles\/maxTtl/);
    t.same(w.canary.leaks(r.stderr + check.stdout), []);
  });
}
