// The broker in the runtime: what refuses a start (production and always), a reload that cannot build a
// broker keeps the last good one, the admin API issues and revokes, a second replica watching the same list
// refuses a revoked run within its poll interval, and a restarted replica honours handles it never saw issued.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { formatIssue, validateConfig } from '../../settings/config.js';
import { createSluice } from '../../proxy/runtime/sluice.js';
import { deriveBrokerKeys } from '../../proxy/broker/keys.js';
import { sealSecret } from '../../proxy/broker/sealed.js';
import { startIssues } from '../../proxy/runtime/production.js';
import { isolate } from '../helpers/netns.js';
import { codeOf, startSluice, viaProxy } from '../helpers/harness.js';
import { adminCall } from '../helpers/serve.js';
import { captureLogs } from '../helpers/log-capture.js';
import { CREDENTIAL, RUN, buildBrokerWorld } from './world.js';

const ADMIN_TOKEN = 'admin-token-0123456789abcdef';

if (isolate(t, import.meta.url)) {
  const w = await buildBrokerWorld(t);
  const { canary } = w;
  const adminTokenFile = join(w.dir, 'admin.token');
  writeFileSync(adminTokenFile, ADMIN_TOKEN, { mode: 0o600 });
  const withAdmin = (extra: Record<string, unknown> = {}) =>
    w.config({
      listen: { http: '127.0.0.1:0', admin: '127.0.0.1:0', socks5: null },
      admin: { tokenFile: adminTokenFile },
      ...extra,
    });
  const validated = (raw: Record<string, unknown>) => {
    const r = validateConfig({ listen: { http: '127.0.0.1:0', socks5: null, admin: null }, ...raw });
    if (!r.ok) throw new Error(r.issues.map(formatIssue).join('\n'));
    return r.config;
  };
  const build = (raw: Record<string, unknown>, production: boolean) => {
    const { destination } = captureLogs();
    return () => createSluice({ config: validated(raw), production, logTo: { destination } });
  };
  const secrets = (over: Record<string, unknown>) => ({
    secrets: {
      keyFile: w.files.key,
      handles: { maxTtl: '8h', revocationFile: w.files.revocations, pollMs: 100 },
      ...over,
    },
  });

  t.test('what refuses a start', async (t) => {
    const shortKey = join(w.dir, 'short.key');
    writeFileSync(shortKey, 'too-short', { mode: 0o600 });
    const otherSealed = join(w.dir, 'other.sealed');
    // One character of the sealed blob altered: the GCM tag no longer verifies.
    writeFileSync(
      otherSealed,
      canary.sealed.replace(/.$/, (c) => (c === 'A' ? 'B' : 'A')),
      { mode: 0o600 },
    );
    const cred = (source: Record<string, unknown>) => ({
      credentials: {
        [CREDENTIAL]: {
          integration: 'api',
          inject: { type: 'header', name: 'Authorization', template: 'Bearer {secret}' },
          source,
        },
      },
    });

    t.throws(
      build(w.config(secrets({ keyFile: shortKey })), false),
      { code: 'SLUICE_ERR_CONFIG', message: /secrets\.keyFile/ },
      'a short key, in any mode',
    );
    t.throws(
      build(w.config(secrets({ keyFile: join(w.dir, 'missing.key') })), false),
      { code: 'SLUICE_ERR_CONFIG', message: /secrets\.keyFile/ },
      'a missing key',
    );
    t.throws(
      build(w.config(cred({ sealedFile: otherSealed })), false),
      { code: 'SLUICE_ERR_CONFIG', message: /does not decrypt|not a sealed secret/ },
      'a credential that does not decrypt',
    );
    const noMax = w.config(secrets({ handles: { revocationFile: w.files.revocations } }));
    t.doesNotThrow(build(noMax, false), 'no maximum TTL: a warning in development');
    t.throws(
      build(noMax, true),
      { code: 'SLUICE_ERR_CONFIG', message: /maxTtl/ },
      'production refuses a handle TTL without a maximum',
    );
    const tunnelled = w.config({
      integrations: { api: { hosts: ['api.test'], tunnel: true }, other: { hosts: ['other.test'] } },
    });
    t.throws(
      build(tunnelled, true),
      { code: 'SLUICE_ERR_CONFIG', message: /opaque tunnels/ },
      'production refuses a credential behind uninspected tunnels',
    );
    const noList = w.config(secrets({ handles: { maxTtl: '8h' } }));
    t.throws(
      build(noList, true),
      { code: 'SLUICE_ERR_CONFIG', message: /revocationFile|reaches only/ },
      'production refuses revocation that reaches one replica',
    );
    t.doesNotThrow(build(w.config(), true), 'the world config itself is production-ready as far as the broker goes');

    // `sluice check` reports the same (startIssues is what check and serve run).
    const issues = startIssues(validated(noMax), { production: true, generatedIdentity: false });
    t.ok(
      issues.some((i) => i.severity === 'error' && i.path === '/secrets/handles/maxTtl'),
      'check names the missing maximum',
    );
    const bad = startIssues(validated(w.config(cred({ sealedFile: otherSealed }))), {
      production: false,
      generatedIdentity: false,
    });
    t.ok(
      bad.some((i) => i.severity === 'error' && i.path === `/credentials/${CREDENTIAL}/source`),
      'check names the credential that does not decrypt',
    );
    t.same(canary.leaks(JSON.stringify(bad)), [], 'and quotes no secret');
  });

  t.test('a reload whose broker cannot be built is refused, and the last good broker keeps working', async (t) => {
    const h = await startSluice(t, w.config());
    const bad = join(w.dir, 'garbage.sealed');
    writeFileSync(bad, 'sluice-sealed.v1.AAAA.BBBB', { mode: 0o600 });
    const next = validated(
      w.config({
        credentials: {
          [CREDENTIAL]: {
            integration: 'api',
            inject: { type: 'header', name: 'Authorization', template: 'Bearer {secret}' },
            source: { sealedFile: bad },
          },
        },
      }),
    );
    t.throws(() => h.sluice.state.swap(next), { code: 'SLUICE_ERR_CONFIG', message: /credentials/ });
    const r = await viaProxy(h.port, {
      url: 'http://api.test/echo',
      headers: { authorization: `Bearer ${canary.handle}` },
      auth: w.auth(),
    });
    t.equal(r.status, 200);
    t.equal(w.api.requests.at(-1)!.headers.authorization, `Bearer ${canary.secret}`);

    // Rotating the secret: seal the new one, reload; handles issued before keep working (they name the
    // credential, not the secret).
    const rotated = join(w.dir, 'rotated.sealed');
    const fresh = 'ghp_RotatedCanarySecret0123456789AbCdEf';
    writeFileSync(
      rotated,
      sealSecret(deriveBrokerKeys(Buffer.from(canary.keyMaterial)).seal, CREDENTIAL, Buffer.from(fresh)),
      { mode: 0o600 },
    );
    h.sluice.state.swap(
      validated(
        w.config({
          credentials: {
            [CREDENTIAL]: {
              integration: 'api',
              inject: { type: 'header', name: 'Authorization', template: 'Bearer {secret}' },
              source: { sealedFile: rotated },
            },
          },
        }),
      ),
    );
    const after = await viaProxy(h.port, {
      url: 'http://api.test/echo',
      headers: { authorization: `Bearer ${canary.handle}` },
      auth: w.auth(),
    });
    t.equal(after.status, 200);
    t.equal(w.api.requests.at(-1)!.headers.authorization, `Bearer ${fresh}`, 'the new secret goes out');
    t.notOk(after.body.includes(fresh), 'and is scrubbed from the echo');
  });

  t.test('a revocation list that cannot be read refuses every handle (fail closed), nothing else', async (t) => {
    const unreadable = join(w.dir, 'list-is-a-directory');
    mkdirSync(unreadable);
    const h = await startSluice(
      t,
      w.config(secrets({ handles: { maxTtl: '8h', revocationFile: unreadable, pollMs: 100 } })),
    );
    const r = await viaProxy(h.port, {
      url: 'http://api.test/echo',
      headers: { authorization: `Bearer ${canary.handle}` },
      auth: w.auth(),
    });
    t.equal(codeOf(r), 'EGR_INTERNAL');
    t.match(h.decisions().at(-1), { rule: 'secrets.handles.revocationFile' });
    const plain = await viaProxy(h.port, { url: 'http://api.test/echo', auth: w.auth() });
    t.equal(plain.status, 200, 'a request without a handle is unaffected');
    t.ok(
      h.logs.some((l) => String(l.msg).startsWith('broker.revocations_unreadable')),
      'logged',
    );
  });

  t.test('admin API: issue, use, revoke; a second replica and a restarted one', async (t) => {
    const a = await startSluice(t, withAdmin());
    const b = await startSluice(t, w.config());
    const port = a.adminPort!;
    t.equal((await adminCall(port, 'POST', '/v1/handles', undefined, '{}')).status, 401, 'the token is required');
    const bad = await adminCall(
      port,
      'POST',
      '/v1/handles',
      ADMIN_TOKEN,
      JSON.stringify({ run: 'run-9', identity: 'agent', credential: 'nope', ttl: '1h' }),
    );
    t.equal(bad.status, 404);
    const tooLong = await adminCall(
      port,
      'POST',
      '/v1/handles',
      ADMIN_TOKEN,
      JSON.stringify({ run: 'run-9', identity: 'agent', credential: CREDENTIAL, ttl: '9h' }),
    );
    t.equal(tooLong.status, 400, 'beyond maxTtl');
    const issued = await adminCall(
      port,
      'POST',
      '/v1/handles',
      ADMIN_TOKEN,
      JSON.stringify({ run: 'run-9', identity: 'agent', credential: CREDENTIAL, ttl: '1h' }),
    );
    t.equal(issued.status, 200, issued.body);
    const { handle, handleId } = JSON.parse(issued.body) as { handle: string; handleId: string };
    t.match(handle, /^sluice_h1_/);
    t.match(handleId, /^[0-9a-f]{12}$/);
    t.same(canary.leaks(issued.body), [], 'the admin response holds the handle only: no secret, key or sealed blob');
    const auth9 = w.auth({ run: 'run-9' });
    const use = (port: number) =>
      viaProxy(port, { url: 'http://api.test/echo', headers: { authorization: `Bearer ${handle}` }, auth: auth9 });
    t.equal((await use(a.port)).status, 200, 'replica A honours it');
    t.equal((await use(b.port)).status, 200, 'replica B honours it: no shared state');

    const revoked = await adminCall(port, 'POST', '/v1/runs/revoke', ADMIN_TOKEN, JSON.stringify({ run: 'run-9' }));
    t.equal(revoked.status, 200, revoked.body);
    t.match(JSON.parse(revoked.body), { run: 'run-9', shared: true });
    t.equal(codeOf(await use(a.port)), 'EGR_DENY_CREDENTIAL_REVOKED', 'at once on the replica asked');
    let code: string | undefined;
    for (let i = 0; i < 100 && code === undefined; i++) {
      code = codeOf(await use(b.port));
      if (code === undefined) await new Promise((r) => setTimeout(r, 50));
    }
    t.equal(code, 'EGR_DENY_CREDENTIAL_REVOKED', 'on the other replica within its poll interval');
    t.equal(
      (
        await viaProxy(b.port, {
          url: 'http://api.test/echo',
          headers: { authorization: `Bearer ${canary.handle}` },
          auth: w.auth(),
        })
      ).status,
      200,
      `run ${RUN} is untouched`,
    );

    // A restarted replica: nothing is lost (handles need no state; the list is read at start).
    await b.sluice.stop();
    const c = await startSluice(t, w.config());
    t.equal(codeOf(await use(c.port)), 'EGR_DENY_CREDENTIAL_REVOKED', 'a revoked run stays revoked after a restart');
    t.equal(
      (
        await viaProxy(c.port, {
          url: 'http://api.test/echo',
          headers: { authorization: `Bearer ${canary.handle}` },
          auth: w.auth(),
        })
      ).status,
      200,
      'a live handle works on a replica that never saw it issued',
    );

    for (const h of [a, b, c])
      t.same(canary.leaks(h.logText()), [], 'no secret, key, sealed blob or handle in any log line');
    const metrics = await adminCall(port, 'GET', '/metrics', ADMIN_TOKEN);
    t.same(canary.leaks(metrics.body), []);
    t.notOk(metrics.body.includes(handle), 'not the admin-issued handle either');
    t.notOk(a.logText().includes(handle) || b.logText().includes(handle) || c.logText().includes(handle));
  });
}
