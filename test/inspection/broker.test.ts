// The credential broker inside inspected sessions: a request read inside an HTTPS tunnel takes the very http path
// an absolute-form request takes, so the handle is replaced by the secret on the way to its integration, the
// secret is scrubbed from the answer, and a handle sent elsewhere is refused — over the stock `https://` URL.
import { execFile } from 'node:child_process';
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
    const rec = await waitFor(() =>
      h.decisions().find((d) => d[FIELD.inspected] === true && d[FIELD.targetPath] === '/echo'),
    );
    t.match(rec, { verdict: 'allow', 'credential.name': CREDENTIAL, 'credential.action': 'injected' });
    tls.destroy();
  });

  t.test('stock clients over https:// with only the handle and the trust bundle: curl, Python requests', async (t) => {
    // The proxy URL carries the run token: what an orchestrator hands a run, beside the handle.
    const [user, token] = Buffer.from(w.auth().replace(/^Basic /, ''), 'base64')
      .toString()
      .split(/:(.*)/s);
    const env = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HTTPS_PROXY: `http://${user}:${encodeURIComponent(token!)}@127.0.0.1:${h.port}`,
      CURL_CA_BUNDLE: ca.bundleFile,
      REQUESTS_CA_BUNDLE: ca.bundleFile,
      API_TOKEN: canary.handle,
    };
    const clients: [string, string, string[]][] = [
      [
        'curl',
        'curl',
        ['-sS', '--max-time', '20', '-H', `Authorization: Bearer ${canary.handle}`, 'https://api.test/echo'],
      ],
      [
        'Python requests',
        'python3',
        [
          '-c',
          "import os, requests\nr = requests.get('https://api.test/echo', headers={'Authorization': 'Bearer ' + os.environ['API_TOKEN']}, timeout=20)\nprint(r.status_code)\nprint(r.text)",
        ],
      ],
    ];
    for (const [name, cmd, args] of clients) {
      const before = w.api.requests.length;
      // Asynchronously: Sluice runs in this very process.
      const r = await new Promise<{ status: number; stdout: string; stderr: string }>((resolve) => {
        execFile(cmd, args, { encoding: 'utf8', env, timeout: 30_000 }, (err, stdout, stderr) =>
          resolve({ status: err ? Number(err.code ?? 1) : 0, stdout, stderr }),
        );
      });
      t.equal(r.status, 0, `${name}: ${r.stderr}`);
      t.equal(w.api.requests.length, before + 1, `${name}: one request reached the integration`);
      t.equal(
        w.api.requests.at(-1)?.headers.authorization,
        `Bearer ${canary.secret}`,
        `${name}: the integration sees the secret`,
      );
      t.ok(r.stdout.includes(canary.handle), `${name}: the echo hands back the handle`);
      t.same(
        canary.leaks(r.stdout + r.stderr, ['handle', 'handleBody']),
        [],
        `${name}: no form of the secret reaches the client`,
      );
    }
  });

  t.test('the handle toward another integration is refused inside the session', async (t) => {
    const tls = await inspectedSession(h.port, 'other.test', ca.certPem, w.auth());
    const r = await sessionClient(tls, 'other.test').request({ path: '/echo', headers: bearer });
    t.equal(r.status, 403);
    t.equal(proxyCode(r), 'EGR_DENY_CREDENTIAL_SCOPE');
    t.notOk(
      w.other.requests.some((q) => JSON.stringify(q.headers).includes(canary.handle)),
      'the handle never left',
    );
    tls.destroy();
  });
}
