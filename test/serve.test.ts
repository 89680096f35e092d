// `sluice serve` as a real process: hot reload (SIGHUP, file change, admin API), an invalid reload that keeps
// the last good config, production start-up checks, and graceful shutdown. Everything stays on loopback:
// the only origin is a canary on 127.0.0.2 reached through an audited exception.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { startHttpCanary } from './helpers/canary.js';
import { cliArgv } from './helpers/cli.js';
import { startFakeDns } from './helpers/fake-dns.js';
import { basic, codeOf, viaProxy, eventually, waitFor } from './helpers/harness.js';
import { adminCall, poll, serve } from './helpers/serve.js';

const dir = mkdtempSync(join(tmpdir(), 'sluice-serve-'));
const ADMIN_TOKEN = 'serve-test-admin-token-0123456789';
const adminTokenFile = join(dir, 'admin-token');
writeFileSync(adminTokenFile, ADMIN_TOKEN);
const AUTH = basic('agent', 'agent-password-1');

const configText = (dnsServer: string, globalDeny: string[], extra = '') => `
listen: { http: "127.0.0.1:0", socks5: null, admin: "127.0.0.1:0" }
dns: { servers: ["${dnsServer}"], minTtlS: 0, maxTtlS: 1, timeoutMs: 1000 }
identities:
  agent: { password: agent-password-1 }
admin: { tokenFile: ${adminTokenFile} }
globalDeny: { hosts: ${JSON.stringify(globalDeny)} }
addressGuard: { allow: [{ cidr: 127.0.0.2/32, hosts: ["*.test"] }] }
${extra}`;

t.test('hot reload', async (t) => {
  const dns = await startFakeDns();
  const origin = await startHttpCanary('127.0.0.2');
  t.teardown(async () => {
    await dns.close();
    await origin.close();
  });
  dns.set('site.test', { a: ['127.0.0.2'] });
  const url = `http://site.test:${origin.port}/`;
  const path = join(dir, 'reload.yaml');
  writeFileSync(path, configText(dns.server, []));
  const s = await serve(t, path);
  t.equal((await viaProxy(s.http, { url, auth: AUTH })).status, 200);

  writeFileSync(path, configText(dns.server, ['site.test']));
  s.child.kill('SIGHUP');
  t.equal(
    codeOf(await waitForCode(s.http, url, 'EGR_DENY_GLOBAL')),
    'EGR_DENY_GLOBAL',
    'SIGHUP: the next request sees the new policy',
  );

  writeFileSync(path, configText(dns.server, []));
  t.equal((await waitForStatus(s.http, url, 200)).status, 200, 'a change of the file reloads by itself');

  writeFileSync(path, configText(dns.server, ['site.test'], 'registries: ["bad.*"]\n'));
  const bad = await adminCall(s.admin, 'POST', '/v1/reload', ADMIN_TOKEN);
  t.equal(bad.status, 422, 'an invalid config is refused');
  t.match(JSON.parse(bad.body), { result: 'error', issues: [/registries\/0/] });
  t.equal((await viaProxy(s.http, { url, auth: AUTH })).status, 200, 'and the last good config stays');
  const metrics = (await adminCall(s.admin, 'GET', '/metrics')).body;
  t.match(metrics, /sluice_policy_reloads_total\{result="error"\} [1-9]/);
  t.match(metrics, /sluice_policy_reloads_total\{result="success"\} [1-9]/);
  // The log is buffered for up to a second.
  t.ok(await eventually(() => /config\.reload_failed/.test(s.stdout())), 'the failed reload is logged');

  writeFileSync(
    path,
    configText(dns.server, ['site.test'])
      .replace('admin: "127.0.0.1:0"', 'admin: "127.0.0.1:0"')
      .replace('socks5: null', 'socks5: "127.0.0.1:0"'),
  );
  const restart = await adminCall(s.admin, 'POST', '/v1/reload', ADMIN_TOKEN);
  t.equal(restart.status, 200);
  t.match(
    JSON.parse(restart.body),
    { result: 'success', restartRequired: ['listen'] },
    'listener changes are reported as needing a restart',
  );
  t.equal(codeOf(await viaProxy(s.http, { url, auth: AUTH })), 'EGR_DENY_GLOBAL', 'while the policy part applies');

  t.equal((await adminCall(s.admin, 'POST', '/v1/reload')).status, 401, 'reload needs the token');
  s.child.kill('SIGTERM');
  t.equal(await s.exit, 0);
});

const waitForCode = (port: number, url: string, code: string) => poll(port, url, AUTH, (r) => codeOf(r) === code);
const waitForStatus = (port: number, url: string, status: number) => poll(port, url, AUTH, (r) => r.status === status);

t.test('graceful shutdown: SIGTERM drains in-flight requests and exits 0', async (t) => {
  const dns = await startFakeDns();
  const origin = await startHttpCanary('127.0.0.2', 0, (req, res) => {
    setTimeout(() => res.end(`slow ${req.url}`), 1500);
  });
  t.teardown(async () => {
    await dns.close();
    await origin.close();
  });
  dns.set('slow.test', { a: ['127.0.0.2'] });
  const path = join(dir, 'drain.yaml');
  writeFileSync(path, configText(dns.server, [], 'limits: { drainMs: 20000 }\n'));
  const s = await serve(t, path);
  const inFlight = viaProxy(s.http, { url: `http://slow.test:${origin.port}/x`, auth: AUTH });
  await waitFor(() => origin.requests.length > 0 || origin.connections > 0);
  s.child.kill('SIGTERM');
  // The signal is asynchronous: wait for /readyz to turn (the request is still in flight meanwhile).
  let readyStatus = 200;
  for (let i = 0; i < 100 && readyStatus === 200; i++) {
    readyStatus = (await adminCall(s.admin, 'GET', '/readyz').catch(() => ({ status: 0, body: '' }))).status;
    if (readyStatus === 200) await new Promise((r) => setTimeout(r, 10));
  }
  t.not(readyStatus, 200, 'not ready while draining');
  const r = await inFlight;
  t.equal(r.status, 200, 'the in-flight request finished');
  t.equal(r.body, 'slow /x');
  t.equal(await s.exit, 0);
  t.match(s.stdout(), /shutdown\.complete/, 'buffered log lines are flushed on the way out');
});

t.test('a second SIGTERM exits at once', async (t) => {
  const dns = await startFakeDns();
  const origin = await startHttpCanary('127.0.0.2', 0, () => undefined); // never answers
  t.teardown(async () => {
    await dns.close();
    await origin.close();
  });
  dns.set('hang.test', { a: ['127.0.0.2'] });
  const path = join(dir, 'hang.yaml');
  writeFileSync(path, configText(dns.server, [], 'limits: { drainMs: 600000 }\n'));
  const s = await serve(t, path);
  void viaProxy(s.http, { url: `http://hang.test:${origin.port}/`, auth: AUTH }).catch(() => undefined);
  await waitFor(() => origin.connections > 0);
  s.child.kill('SIGTERM');
  await waitFor(() => /shutdown\.draining/.test(s.stdout()));
  s.child.kill('SIGTERM');
  t.equal(await s.exit, 143);
});

t.test('production start-up refuses insecure configs', async (t) => {
  const key = join(dir, 'key');
  writeFileSync(key, 'k'.repeat(48));
  const hash = 'scrypt$32768$8$1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2g=';
  const rows: [string, string, RegExp][] = [
    ['no identities', `tokens: { keyFile: ${key} }\nadmin: { tokenFile: ${adminTokenFile} }\n`, /no identities/],
    [
      'plaintext password',
      `identities: { a: { password: x } }\ntokens: { keyFile: ${key} }\nadmin: { tokenFile: ${adminTokenFile} }\n`,
      /plaintext password/,
    ],
    [
      'no token key',
      `identities: { a: { passwordHash: "${hash}" } }\nadmin: { tokenFile: ${adminTokenFile} }\n`,
      /tokens\.keyFile is not set/,
    ],
    [
      'admin without token',
      `identities: { a: { passwordHash: "${hash}" } }\ntokens: { keyFile: ${key} }\n`,
      /admin API has no token/,
    ],
  ];
  for (const [name, text, re] of rows) {
    const p = join(dir, `prod-${name.replace(/\W/g, '-')}.yaml`);
    writeFileSync(p, `listen: { http: "127.0.0.1:0", socks5: null, admin: "127.0.0.1:0" }\n${text}`);
    const r = spawnSync(process.execPath, [...cliArgv(), 'serve', '--config', p], {
      env: { ...process.env, SLUICE_ENV: 'production' },
      encoding: 'utf8',
      timeout: 60_000,
    });
    t.equal(r.status, 2, `${name}: refuses to start`);
    t.match(r.stderr, re, name);
  }
  const exposed = join(dir, 'exposed.yaml');
  writeFileSync(
    exposed,
    'listen: { http: "127.0.0.1:0", socks5: null, admin: "0.0.0.0:0" }\nidentities: { a: { password: x } }\n',
  );
  const r = spawnSync(process.execPath, [...cliArgv(), 'serve', '--config', exposed], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  t.equal(r.status, 2, 'even outside production, the admin listener refuses to bind beyond loopback without a token');
  t.match(r.stderr, /beyond loopback without an admin token/);
});
