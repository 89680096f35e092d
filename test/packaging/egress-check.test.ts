// The `helm test` script (charts/sluice/files/egress-check.mjs), run for real: against a real Sluice, where an
// allowed read gets 200 and the metadata address gets 403 EGR_DENY_IP_LITERAL without anything reaching the
// metadata canary; and against stand-in proxies that misbehave, where it must fail. Runs in a lo-only namespace
// (the script names 169.254.169.254).
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { issueToken } from '../../proxy/auth/run-token.js';
import { startSluice } from '../helpers/harness.js';
import { isolate } from '../helpers/netns.js';
import { ADDR, buildWorld, worldConfig } from '../helpers/world.js';
import { CHART } from './helm.js';

const SCRIPT = join(CHART, 'files/egress-check.mjs');
const DENIED = 'http://169.254.169.254/latest/meta-data/';

function runCheck(env: Record<string, string>): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [SCRIPT], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('exit', (code) => resolve({ code, out }));
  });
}

/** A stand-in proxy answering by request target; records what it was sent. */
async function fakeProxy(t: Test, answer: (url: string) => { status: number; proxyStatus?: string }) {
  const seen: { url: string; headers: IncomingHttpHeaders }[] = [];
  const server = createServer((req, res) => {
    seen.push({ url: req.url ?? '', headers: req.headers });
    const a = answer(req.url ?? '');
    res.writeHead(a.status, a.proxyStatus ? { 'proxy-status': a.proxyStatus } : {}).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => server.close());
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

if (isolate(t, import.meta.url)) {
  const w = await buildWorld(t);
  const h = await startSluice(t, worldConfig(w));
  const token = issueToken(readFileSync(w.tokenKeyFile), { sub: 'agent', ttlS: 300, nowS: Math.floor(Date.now() / 1000) });
  const allowedUrl = `http://public.test:${w.publicHttp.port}/`;
  const base = { SLUICE_IDENTITY: 'agent', SLUICE_TOKEN: token, SLUICE_ALLOWED_URL: allowedUrl, SLUICE_DENIED_URL: DENIED };

  t.test('against a real Sluice: passes', async (t) => {
    const hits = w.forbiddenHits();
    const r = await runCheck({ ...base, SLUICE_PROXY: `http://127.0.0.1:${h.port}` });
    t.equal(r.code, 0, r.out);
    t.match(r.out, /ok - allowed request/);
    t.match(r.out, /ok - metadata request: .*EGR_DENY_IP_LITERAL/);
    t.equal(w.forbiddenHits(), hits, 'nothing reached the forbidden canaries');
    t.equal(w.metadata.connections, 0, `nothing reached ${ADDR.metadata}`);
  });

  t.test('with a bad run token: fails (407 is not 200)', async (t) => {
    const r = await runCheck({ ...base, SLUICE_TOKEN: 'sluice.v1.e30.AAAA', SLUICE_PROXY: `http://127.0.0.1:${h.port}` });
    t.equal(r.code, 1, r.out);
    t.match(r.out, /FAIL - allowed request: expected 200, got 407/);
  });

  t.test('a proxy that lets the metadata request through: fails', async (t) => {
    const p = await fakeProxy(t, () => ({ status: 200 }));
    const r = await runCheck({ ...base, SLUICE_PROXY: p.url });
    t.equal(r.code, 1, r.out);
    t.match(r.out, /FAIL - metadata request/);
    t.same(p.seen.map((s) => s.url), [allowedUrl, DENIED], 'absolute-form requests, through the proxy');
    t.equal(p.seen[0]!.headers['proxy-authorization'], `Basic ${Buffer.from(`agent:${token}`).toString('base64')}`);
  });

  t.test('a 403 that is not a policy code: fails', async (t) => {
    const p = await fakeProxy(t, (url) => (url === DENIED ? { status: 403 } : { status: 200 }));
    const r = await runCheck({ ...base, SLUICE_PROXY: p.url });
    t.equal(r.code, 1, r.out);
  });

  t.test('no proxy at all: fails', async (t) => {
    const r = await runCheck({ ...base, SLUICE_PROXY: 'http://127.0.0.1:1' });
    t.equal(r.code, 1, r.out);
  });

  t.test('a missing setting: fails', async (t) => {
    const r = await runCheck({ ...base, SLUICE_PROXY: `http://127.0.0.1:${h.port}`, SLUICE_TOKEN: '' });
    t.not(r.code, 0, r.out);
  });
}
