// The `helm test` script (charts/sluice/files/egress-check.mjs), run for real: against a real Sluice, where an
// allowed read gets 200 and the metadata address gets 403 EGR_DENY_IP_LITERAL without anything reaching the
// metadata canary; and against stand-in proxies that misbehave, where it must fail. Runs in a lo-only namespace
// (the script names 169.254.169.254).
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import { type AddressInfo, createServer as createTcpServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { issueToken } from '../../proxy/auth/run-token.js';
import { startFakeDns } from '../helpers/fake-dns.js';
import { startSluice } from '../helpers/harness.js';
import { isolate } from '../helpers/netns.js';
import { ADDR, buildWorld, worldConfig } from '../helpers/world.js';
import { CHART } from './helm.js';

const SCRIPT = join(CHART, 'files/egress-check.mjs');
const DENIED = 'http://169.254.169.254/latest/meta-data/';

function runCheck(env: Record<string, string>): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [SCRIPT], {
      env: { PATH: process.env.PATH ?? '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
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
  const token = issueToken(readFileSync(w.tokenKeyFile), {
    sub: 'agent',
    ttlS: 300,
    nowS: Math.floor(Date.now() / 1000),
  });
  const allowedUrl = `http://public.test:${w.publicHttp.port}/`;
  const base = {
    SLUICE_IDENTITY: 'agent',
    SLUICE_TOKEN: token,
    SLUICE_ALLOWED_URL: allowedUrl,
    SLUICE_DENIED_URL: DENIED,
  };

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
    const r = await runCheck({
      ...base,
      SLUICE_TOKEN: 'sluice.v1.e30.AAAA',
      SLUICE_PROXY: `http://127.0.0.1:${h.port}`,
    });
    t.equal(r.code, 1, r.out);
    t.match(r.out, /FAIL - allowed request: expected 200, got 407/);
  });

  t.test('a proxy that lets the metadata request through: fails', async (t) => {
    const p = await fakeProxy(t, () => ({ status: 200 }));
    const r = await runCheck({ ...base, SLUICE_PROXY: p.url });
    t.equal(r.code, 1, r.out);
    t.match(r.out, /FAIL - metadata request/);
    t.same(
      p.seen.map((s) => s.url),
      [allowedUrl, DENIED],
      'absolute-form requests, through the proxy',
    );
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

  // SLUICE_CHECK=containment, the workload-namespace half of `helm test`. The lo-only namespace is a contained
  // pod (no route anywhere), then a leaky one: the same targets on addresses that answer.
  const resolvConf = (servers: string[]) => {
    const f = join(mkdtempSync(join(tmpdir(), 'sluice-resolv-')), 'resolv.conf');
    writeFileSync(f, servers.map((s) => `nameserver ${s}`).join('\n') + '\n');
    return f;
  };
  const containment = {
    SLUICE_CHECK: 'containment',
    SLUICE_IDENTITY: 'agent',
    SLUICE_ALLOWED_URL: allowedUrl,
    SLUICE_TIMEOUT_MS: '1000',
    SLUICE_DIRECT_TCP: '203.0.113.9:443,[2001:db8:9::9]:443',
    SLUICE_DIRECT_DNS: '203.0.113.9,2001:db8:9::9',
    SLUICE_PROXY: `http://127.0.0.1:${h.port}`,
  };

  t.test('containment: direct TCP, UDP and DNS fail, Sluice answers (407 without a credential)', async (t) => {
    const r = await runCheck({ ...containment, SLUICE_RESOLV_CONF: resolvConf(['203.0.113.53']) });
    t.equal(r.code, 0, r.out);
    for (const line of [
      'direct TCP 203.0.113.9:443: blocked',
      'direct TCP [2001:db8:9::9]:443: blocked',
      'direct DNS over UDP to 203.0.113.53: blocked',
      'direct DNS over TCP to 2001:db8:9::9: blocked',
    ])
      t.match(r.out, `ok - ${line}`);
    t.match(r.out, /ok - Sluice answers on its proxy port: expected 407 EGR_AUTH_REQUIRED, got 407/);
    const withToken = await runCheck({ ...containment, SLUICE_TOKEN: token, SLUICE_RESOLV_CONF: resolvConf([]) });
    t.equal(withToken.code, 0, withToken.out);
    t.match(withToken.out, /ok - through Sluice: expected 200, got 200/);
  });

  t.test('containment: fails when anything gets out directly', async (t) => {
    for (const [ip, v6] of [
      ['203.0.113.77', false],
      ['2001:db8:77::77', true],
    ] as const) {
      t.equal(
        spawnSync('ip', [
          ...(v6 ? ['-6'] : []),
          'addr',
          'add',
          `${ip}/${v6 ? 128 : 32}`,
          'dev',
          'lo',
          ...(v6 ? ['nodad'] : []),
        ]).status,
        0,
      );
    }
    const tcp = createTcpServer((s) => s.destroy());
    await new Promise<void>((r) => tcp.listen(443, '203.0.113.77', r));
    t.teardown(() => tcp.close());
    const leaked = await runCheck({
      ...containment,
      SLUICE_DIRECT_TCP: '203.0.113.77:443',
      SLUICE_DIRECT_DNS: '2001:db8:77::77',
      SLUICE_RESOLV_CONF: resolvConf([]),
    });
    t.equal(leaked.code, 1, leaked.out);
    t.match(leaked.out, /FAIL - direct TCP 203\.0\.113\.77:443: connected/);

    const dns = await startFakeDns('203.0.113.77', 53);
    t.teardown(() => dns.close());
    dns.set('example.com', { a: ['203.0.113.80'] });
    const resolved = await runCheck({
      ...containment,
      SLUICE_DIRECT_TCP: '203.0.113.9:443',
      SLUICE_DIRECT_DNS: '',
      SLUICE_RESOLV_CONF: resolvConf(['203.0.113.77']),
    });
    t.equal(resolved.code, 1, resolved.out);
    t.match(
      resolved.out,
      /FAIL - direct DNS over UDP to 203\.0\.113\.77: answered \(rcode 0, 1 answers\)/,
      "the pod's own resolver answering is a leak",
    );
    t.equal(dns.asked('example.com'), 1);

    const wrongProxy = await fakeProxy(t, () => ({ status: 200 }));
    const notSluice = await runCheck({
      ...containment,
      SLUICE_PROXY: wrongProxy.url,
      SLUICE_RESOLV_CONF: resolvConf([]),
    });
    t.equal(notSluice.code, 1, 'something that is not Sluice answering the proxy port fails');
    t.match(notSluice.out, /FAIL - Sluice answers on its proxy port/);
  });
}
