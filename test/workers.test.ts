// `sluice serve` with `workers`: a primary and N worker processes sharing the proxy ports. Both workers serve;
// the kill switch, reloads (SIGHUP and the admin API) and a drain reach every worker before the primary
// answers; /metrics adds the workers up; a killed worker is replaced and the replacement honours the engaged
// kill switch; every line the processes write to the shared stdout stays whole. Runs in the lo-only
// namespace (the registry stand-in listens on 443).
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import t from 'tap';
import { type Canary, startHttpCanary } from './helpers/canary.js';
import { AGENT_AUTH, type Reply, codeOf, viaProxy, eventually, settles, waitFor } from './helpers/harness.js';
import { isolate } from './helpers/netns.js';
import { type Served, adminCall, logLines, serve } from './helpers/serve.js';
import { type World, buildWorld, worldConfig } from './helpers/world.js';

const dir = mkdtempSync(join(tmpdir(), 'sluice-workers-'));
const ADMIN_TOKEN = 'workers-test-admin-token-0123456789';
const adminTokenFile = join(dir, 'admin-token');
writeFileSync(adminTokenFile, ADMIN_TOKEN);

/** Writes a config file (JSON is YAML) from the test world's config. */
function writeConfig(path: string, w: World, extra: Record<string, unknown>): void {
  const base = worldConfig(w, {
    listen: { http: '127.0.0.1:0', socks5: null, admin: '127.0.0.1:0' },
    admin: { tokenFile: adminTokenFile },
    ...extra,
  });
  writeFileSync(path, JSON.stringify(base, null, 2));
}

const workerPids = (s: Served): number[] => {
  const m = /Sluice runs \d+ workers \(pids ([\d, ]+)\)/.exec(s.stderr());
  return m ? m[1]!.split(', ').map(Number) : [];
};
const decisions = (s: Served) => logLines(s).filter((l) => l.msg === 'egress.decision');

/** `count` requests on fresh connections, `parallel` at a time. */
async function burst(port: number, url: string, count: number, parallel = 16): Promise<Reply[]> {
  const out: Reply[] = [];
  for (let i = 0; i < count; i += parallel) {
    out.push(
      ...(await Promise.all(Array.from({ length: Math.min(parallel, count - i) }, () => viaProxy(port, { url })))),
    );
  }
  return out;
}

/** Sends bursts until requests have been audited by `pids.length` distinct workers (each satisfying `want`);
 * returns every reply. The audit log is buffered for up to a second, so records are awaited. */
async function untilEveryWorker(
  s: Served,
  url: string,
  want: (r: Reply) => boolean,
  expectPids: number,
  since = decisions(s).length,
): Promise<{ replies: Reply[]; pids: Set<number> }> {
  const replies: Reply[] = [];
  for (let round = 0; round < 30; round++) {
    replies.push(...(await burst(s.http, url, 16)));
    const sent = replies.length;
    await waitFor(() => decisions(s).length - since >= sent, 10_000);
    const pids = new Set(
      decisions(s)
        .slice(since)
        .map((d) => d.pid as number),
    );
    if (pids.size >= expectPids || replies.some((r) => !want(r))) return { replies, pids };
  }
  return {
    replies,
    pids: new Set(
      decisions(s)
        .slice(since)
        .map((d) => d.pid as number),
    ),
  };
}

/** Opens a CONNECT tunnel to the registry and completes TLS through it. */
async function openTunnel(port: number): Promise<TLSSocket> {
  const socket: Socket = connect(port, '127.0.0.1');
  await new Promise<void>((r, j) => socket.once('connect', r).once('error', j));
  socket.write(
    `CONNECT registry.test:443 HTTP/1.1\r\nHost: registry.test:443\r\nProxy-Authorization: ${AGENT_AUTH}\r\n\r\n`,
  );
  let head = '';
  await new Promise<void>((resolve, reject) => {
    const onData = (c: Buffer) => {
      head += c.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      socket.removeListener('data', onData);
      socket.pause();
      if (!/^HTTP\/1\.1 200 /.test(head)) reject(new Error(head));
      else resolve();
    };
    socket.on('data', onData);
  });
  return new Promise((resolve, reject) => {
    const tls = tlsConnect({ socket, servername: 'registry.test', ca: worldCa });
    tls.once('secureConnect', () => resolve(tls)).once('error', reject);
  });
}
let worldCa = '';

const metricValue = (text: string, re: RegExp): number[] => [...text.matchAll(re)].map((m) => Number(m[1]));
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

/** /readyz, polled until it is 200 (a replacement worker starts asynchronously); the last status otherwise. */
async function readyz(s: Served): Promise<number> {
  let status = 0;
  for (let i = 0; i < 300 && status !== 200; i++) {
    status = (await adminCall(s.admin, 'GET', '/readyz')).status;
    if (status !== 200) await new Promise((r) => setTimeout(r, 50));
  }
  return status;
}

async function stopped(s: Served): Promise<number | null> {
  s.child.kill('SIGTERM');
  return s.exit;
}

if (isolate(t, import.meta.url)) {
  const w = await buildWorld(t);
  worldCa = w.pki.caPem;
  const url = `http://public.test:${w.publicHttp.port}/hello`;

  t.test(
    'two workers: both serve; kill switch, reload and metrics reach every worker; a dead worker is replaced',
    async (t) => {
      const path = join(dir, 'two.yaml');
      writeConfig(path, w, { workers: 2 });
      const s = await serve(t, path);
      const pids = workerPids(s);
      t.equal(pids.length, 2, 'the primary reports two workers');

      const served = await untilEveryWorker(s, url, (r) => r.status === 200, 2);
      t.ok(
        served.replies.every((r) => r.status === 200),
        'every request is served',
      );
      t.same([...served.pids].sort(), [...pids].sort(), 'requests were served by both workers (audit pid)');
      t.notOk(served.pids.has(s.child.pid!), 'the primary serves no proxy traffic');

      // Tunnels on both workers, then the aggregated metrics.
      const tunnels = await Promise.all(Array.from({ length: 8 }, () => openTunnel(s.http)));
      const metrics = (await adminCall(s.admin, 'GET', '/metrics')).body;
      t.same(metricValue(metrics, /^sluice_active_tunnels (\d+)$/gm), [8], 'sluice_active_tunnels sums the workers');
      t.same(
        metricValue(metrics, /^sluice_build_info\{[^}]*\} (\d+)$/gm),
        [1],
        'build info is one series of 1, not one per process',
      );
      const audited = decisions(s).length;
      t.equal(
        sum(metricValue(metrics, /^sluice_requests_total\{[^}]*\} (\d+)$/gm)),
        audited,
        'sluice_requests_total sums the workers',
      );
      t.equal((await adminCall(s.admin, 'GET', '/readyz')).status, 200, 'ready: every worker is ready');
      t.equal((await adminCall(s.admin, 'GET', '/healthz')).status, 200);

      // Kill switch: once the API has answered, no worker serves a request, and every tunnel is closed.
      const closed = tunnels.map(
        (tls) => new Promise<void>((r) => (tls.destroyed ? r() : tls.once('close', () => r()))),
      );
      for (const tls of tunnels) tls.on('error', () => undefined);
      const engage = await adminCall(s.admin, 'POST', '/v1/kill-switch', ADMIN_TOKEN, '{"engaged":true}');
      t.same([engage.status, JSON.parse(engage.body)], [200, { engaged: true }]);
      const killed = await untilEveryWorker(s, url, (r) => codeOf(r) === 'EGR_DENY_KILL_SWITCH', 2);
      t.ok(
        killed.replies.every((r) => r.status === 403 && codeOf(r) === 'EGR_DENY_KILL_SWITCH'),
        `all ${killed.replies.length} requests after the API returned were refused`,
      );
      t.equal(killed.pids.size, 2, 'by both workers');
      t.ok(await settles(Promise.all(closed)), 'every open tunnel, on both workers, was closed');
      const during = (await adminCall(s.admin, 'GET', '/metrics')).body;
      t.same(
        metricValue(during, /^sluice_kill_switch_engaged (\d+)$/gm),
        [1],
        'sluice_kill_switch_engaged is 1, not 1 per process',
      );
      t.same(metricValue(during, /^sluice_active_tunnels (\d+)$/gm), [0]);

      // A worker that dies is replaced; the replacement starts with the kill switch engaged.
      const [victim, survivor] = pids as [number, number];
      process.kill(victim, 'SIGKILL');
      const replaced = await waitFor(() => logLines(s).find((l) => l.msg === 'worker.ready'), 30_000);
      const fresh = replaced.workerPid as number;
      t.ok(
        logLines(s).some(
          (l) => l.msg === 'worker.exit: replacing it' && l.workerPid === victim && l.signal === 'SIGKILL',
        ),
        'the death is logged',
      );
      t.not(fresh, victim);
      t.equal(await readyz(s), 200, 'ready again once the replacement listens');
      const after = await untilEveryWorker(s, url, (r) => codeOf(r) === 'EGR_DENY_KILL_SWITCH', 2);
      t.ok(
        after.replies.every((r) => codeOf(r) === 'EGR_DENY_KILL_SWITCH'),
        'the replacement refuses too: it never served without the kill switch',
      );
      t.same([...after.pids].sort(), [fresh, survivor].sort(), 'the replacement served requests');

      const disengage = await adminCall(s.admin, 'POST', '/v1/kill-switch', ADMIN_TOKEN, '{"engaged":false}');
      t.equal(disengage.status, 200);
      const back = await untilEveryWorker(s, url, (r) => r.status === 200, 2);
      t.ok(
        back.replies.every((r) => r.status === 200),
        'service is back on every worker',
      );

      // Reload by SIGHUP: once the primary logs it, every worker has the new policy.
      writeConfig(path, w, { workers: 2, globalDeny: { hosts: ['public.test'] } });
      const reloadsBefore = logLines(s).filter((l) => l.msg === 'config.reloaded').length;
      s.child.kill('SIGHUP');
      await waitFor(() => logLines(s).filter((l) => l.msg === 'config.reloaded').length > reloadsBefore, 10_000);
      const denied = await untilEveryWorker(s, url, (r) => codeOf(r) === 'EGR_DENY_GLOBAL', 2);
      t.ok(
        denied.replies.every((r) => codeOf(r) === 'EGR_DENY_GLOBAL'),
        'SIGHUP: every request after the reload sees the new policy',
      );
      t.equal(denied.pids.size, 2, 'on both workers');

      // Reload by the admin API: the answer comes once every worker has swapped.
      writeConfig(path, w, { workers: 3 });
      const reload = await adminCall(s.admin, 'POST', '/v1/reload', ADMIN_TOKEN);
      t.equal(reload.status, 200);
      t.match(
        JSON.parse(reload.body),
        { result: 'success', restartRequired: ['workers'] },
        'a new worker count needs a restart',
      );
      const open = await untilEveryWorker(s, url, (r) => r.status === 200, 2);
      t.ok(
        open.replies.every((r) => r.status === 200),
        'admin reload: every request after the answer sees the new policy',
      );
      t.equal(open.pids.size, 2, 'on both workers (still two)');

      const reloads = (await adminCall(s.admin, 'GET', '/metrics')).body;
      const counted = metricValue(reloads, /^sluice_policy_reloads_total\{result="success"\} (\d+)$/gm);
      // The file watch may apply a change before (or besides) the signal: count what the primary logged — once its
      // buffered log (flushed at 3 KiB or every second) has caught up with the metric.
      const logged = () => logLines(s).filter((l) => String(l.msg).startsWith('config.reloaded')).length;
      await eventually(() => logged() >= (counted[0] ?? 0), 5000);
      const applied = logged();
      t.ok(applied >= 2);
      t.same(counted, [applied], 'reloads are counted once, by the primary (not once per worker)');

      t.equal(await stopped(s), 0);
      t.ok(
        await eventually(() => [survivor, fresh].every((p) => !existsSync(`/proc/${p}`)), 10_000),
        'no worker outlives the primary',
      );
    },
  );

  t.test(
    'SIGTERM drains every worker and exits 0; a second SIGTERM exits at once and takes the workers along',
    async (t) => {
      const slow: Canary = await startHttpCanary('127.0.0.5', 0, (req, res) => {
        setTimeout(() => res.end(`slow ${req.url}`), 1500);
      });
      const hang: Canary = await startHttpCanary('127.0.0.6', 0, () => undefined);
      t.teardown(async () => {
        await slow.close();
        await hang.close();
      });
      w.dns.set('slow.test', { a: ['127.0.0.5'] });
      w.dns.set('hang.test', { a: ['127.0.0.6'] });

      const path = join(dir, 'drain.yaml');
      writeConfig(path, w, { workers: 2, limits: { drainMs: 20_000 } });
      // Sluice leaves accept() to the kernel (SCHED_NONE), which under load may hand every connection to one
      // worker; round-robin from the primary makes "both workers hold requests" certain rather than likely.
      const s = await serve(t, path, { NODE_CLUSTER_SCHED_POLICY: 'rr' });
      // Enough requests in flight that both workers hold some.
      const inFlight = Array.from({ length: 6 }, (_, i) =>
        viaProxy(s.http, { url: `http://slow.test:${slow.port}/x${i}` }),
      );
      await waitFor(() => slow.connections >= 6, 10_000);
      s.child.kill('SIGTERM');
      let ready = 200;
      for (let i = 0; i < 200 && ready === 200; i++) {
        ready = (await adminCall(s.admin, 'GET', '/readyz').catch(() => ({ status: 0, body: '' }))).status;
        if (ready === 200) await new Promise((r) => setTimeout(r, 10));
      }
      t.not(ready, 200, 'not ready while draining');
      const replies = await Promise.all(inFlight);
      t.same(
        replies.map((r) => r.status),
        [200, 200, 200, 200, 200, 200],
        'every in-flight request finished',
      );
      t.equal(await s.exit, 0);
      t.match(s.stdout(), /shutdown\.complete/);
      const served = new Set(decisions(s).map((d) => d.pid));
      t.equal(served.size, 2, 'the drained requests were spread over both workers');

      const path2 = join(dir, 'hang.yaml');
      writeConfig(path2, w, { workers: 2, limits: { drainMs: 600_000 } });
      const h = await serve(t, path2);
      const hpids = workerPids(h);
      void viaProxy(h.http, { url: `http://hang.test:${hang.port}/` }).catch(() => undefined);
      await waitFor(() => hang.connections > 0, 10_000);
      h.child.kill('SIGTERM');
      await waitFor(() => /shutdown\.draining/.test(h.stdout()), 10_000);
      h.child.kill('SIGTERM');
      t.equal(await h.exit, 143);
      t.ok(await eventually(() => hpids.every((p) => !existsSync(`/proc/${p}`)), 10_000), 'the workers are gone too');
    },
  );

  t.test('several processes on one stdout pipe: every line stays whole', async (t) => {
    const path = join(dir, 'lines.yaml');
    writeConfig(path, w, { workers: 4 });
    const s = await serve(t, path);
    // Long paths make long audit lines (target.path is capped at 256 characters; the rest is the record).
    const agent = new Agent({ keepAlive: true, maxSockets: 48 });
    t.teardown(() => agent.destroy());
    const one = (i: number) =>
      new Promise<number>((resolve, reject) => {
        const path = `/${'p'.repeat(200 + (i % 300))}?q=${i}&k=${'v'.repeat(i % 500)}`;
        const req = request(
          {
            host: '127.0.0.1',
            port: s.http,
            path: `http://public.test:${w.publicHttp.port}${path}`,
            agent,
            headers: { 'proxy-authorization': AGENT_AUTH },
          },
          (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode ?? 0));
          },
        );
        req.on('error', reject);
        req.end();
      });
    const total = 3000;
    const statuses: number[] = [];
    for (let i = 0; i < total; i += 200)
      statuses.push(...(await Promise.all(Array.from({ length: 200 }, (_, k) => one(i + k)))));
    t.ok(statuses.every((x) => x === 200));
    // A log line longer than a pipe keeps whole (a reload refused with many issues) is shortened, not split.
    writeFileSync(
      path,
      JSON.stringify({ ...worldConfig(w), workers: 4, registries: Array.from({ length: 200 }, (_, i) => `bad${i}.*`) }),
    );
    t.equal((await adminCall(s.admin, 'POST', '/v1/reload', ADMIN_TOKEN)).status, 422);
    t.equal(await stopped(s), 0);
    const lines = s.stdout().split('\n').filter(Boolean);
    const broken = lines.filter((l) => {
      try {
        JSON.parse(l);
        return false;
      } catch {
        return true;
      }
    });
    t.same(broken, [], `all ${lines.length} lines parse as JSON`);
    const parsed = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    t.equal(parsed.filter((l) => l.msg === 'egress.decision').length, total, 'one audit record per request, none lost');
    t.ok(
      new Set(parsed.filter((l) => l.msg === 'egress.decision').map((l) => l.pid)).size > 1,
      'written by several workers',
    );
    t.ok(
      lines.every((l) => Buffer.byteLength(l) + 1 <= 4096),
      'no line is longer than PIPE_BUF',
    );
    t.match(
      parsed.find((l) => String(l.msg).startsWith('config.reload_failed')),
      { truncated: true },
      'the over-long line was shortened and marked',
    );
  });
}
