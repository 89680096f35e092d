// Denied egress on /metrics, scraped from a live Sluice (issue 17): denials by destination class, the top denied
// hosts (bounded however many names are tried), report mode's would-be denials counted as such, and tunnel
// lifetimes in their own histogram rather than in request latency.
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import t from 'tap';
import { TOP_HOSTS_N } from '../../proxy/ops/metrics.js';
import { AGENT_AUTH, basic, codeOf, startSluice, viaProxy, waitFor } from '../helpers/harness.js';
import { isolate } from '../helpers/netns.js';
import { parseExposition, series, total } from '../helpers/scrape.js';
import { adminCall } from '../helpers/serve.js';
import { PASSWORD, buildWorld, worldConfig } from '../helpers/world.js';

if (isolate(t, import.meta.url)) {
  const w = await buildWorld(t);
  const h = await startSluice(
    t,
    worldConfig(w, {
      listen: { http: '127.0.0.1:0', socks5: null, admin: '127.0.0.1:0' },
      identities: {
        agent: { password: PASSWORD, integrations: ['api', 'gh'] },
        sealed: { password: PASSWORD, reads: 'none' },
        auditor: { password: PASSWORD, reads: 'none', mode: 'report' },
      },
    }),
  );
  const scrape = async () => parseExposition((await adminCall(h.adminPort!, 'GET', '/metrics')).body);
  const pub = `http://public.test:${w.publicHttp.port}`;
  const sealed = basic('sealed', PASSWORD);
  const auditor = basic('auditor', PASSWORD);

  t.test('denials by destination class, with the integration named', async (t) => {
    const sent: [Parameters<typeof viaProxy>[1], string][] = [
      [{ method: 'POST', url: 'http://exfil.test/a', body: 'x' }, 'EGR_DENY_WRITE'],
      [{ method: 'POST', url: 'http://exfil.test/b', body: 'x' }, 'EGR_DENY_WRITE'],
      [{ method: 'POST', url: 'http://api.test/hook', body: 'x', auth: sealed }, 'EGR_DENY_WRITE'],
      [{ url: 'http://meta.test/latest/meta-data/' }, 'EGR_DENY_ADDRESS_LINK_LOCAL'],
      [{ url: 'http://169.254.169.254/latest/meta-data/' }, 'EGR_DENY_IP_LITERAL'],
      [{ url: 'http://10.0.0.1/' }, 'EGR_DENY_IP_LITERAL'],
      [{ url: 'http://localhost/' }, 'EGR_DENY_ADDRESS_LOOPBACK'],
      [{ url: 'http://blocked.test/' }, 'EGR_DENY_GLOBAL'],
      [{ url: `${pub}/`, auth: null }, 'EGR_AUTH_REQUIRED'],
    ];
    for (const [req, code] of sent)
      t.equal(codeOf(await viaProxy(h.port, req)), code, `${req.method ?? 'GET'} ${req.url}`);
    await waitFor(() => h.decisions().length >= sent.length);
    const m = await scrape();
    const denied = (labels: Record<string, string>) =>
      total(m, 'sluice_denied_requests_total', { verdict: 'deny', ...labels });
    t.equal(
      denied({ code: 'EGR_DENY_WRITE', identity: 'agent', destination: 'public', integration: 'none' }),
      2,
      'a write to a public host',
    );
    t.equal(
      denied({ code: 'EGR_DENY_WRITE', identity: 'sealed', destination: 'integration', integration: 'api' }),
      1,
      'a write to an integration the identity lacks',
    );
    t.equal(
      denied({ code: 'EGR_DENY_ADDRESS_LINK_LOCAL', destination: 'link_local' }),
      1,
      'a name resolving to link-local space',
    );
    t.equal(denied({ code: 'EGR_DENY_IP_LITERAL', destination: 'metadata' }), 1, 'the metadata address');
    t.equal(denied({ code: 'EGR_DENY_IP_LITERAL', destination: 'private' }), 1, 'a private literal');
    t.equal(denied({ destination: 'loopback' }), 1, 'localhost');
    t.equal(denied({ code: 'EGR_DENY_GLOBAL', destination: 'public' }), 1);
    t.equal(
      denied({ code: 'EGR_AUTH_REQUIRED', identity: 'none', destination: 'unknown' }),
      1,
      'no target named before the credentials failed',
    );
    t.equal(total(m, 'sluice_denied_requests_total'), sent.length, 'one count per denial');
    t.equal(
      total(m, 'sluice_denied_requests_total'),
      total(m, 'sluice_requests_total', { verdict: 'deny' }),
      'the same denials as sluice_requests_total',
    );

    const top = series(m, 'sluice_denied_hosts_top');
    t.same(
      series(m, 'sluice_denied_hosts_top', { host: 'exfil.test' }).map((s) => [
        s.labels.verdict,
        s.labels.destination,
        s.value,
      ]),
      [['deny', 'public', 2]],
    );
    t.same(
      series(m, 'sluice_denied_hosts_top', { host: '169.254.169.254' }).map((s) => s.labels.destination),
      ['metadata'],
    );
    t.same(
      series(m, 'sluice_denied_hosts_top', { host: 'api.test' }).map((s) => s.labels.destination),
      ['integration'],
    );
    t.equal(top.length, 7, 'one series per denied host; the request without a target adds none');
  });

  t.test('report mode: would-be denials are counted as would_deny, not as allowed', async (t) => {
    const before = h.decisions().length;
    t.equal((await viaProxy(h.port, { url: `${pub}/report`, auth: auditor })).status, 200, 'let through');
    // A write would leave over TLS to 443, where the stand-in host has nothing: let through, then failed.
    t.equal((await viaProxy(h.port, { method: 'POST', url: `${pub}/report`, body: 'x', auth: auditor })).status, 502);
    await waitFor(() => h.decisions().length >= before + 2);
    const m = await scrape();
    t.equal(
      total(m, 'sluice_requests_total', { verdict: 'would_deny', code: 'EGR_DENY_READ', identity: 'auditor' }),
      1,
    );
    t.equal(
      total(m, 'sluice_requests_total', { verdict: 'allow', identity: 'auditor' }),
      0,
      'no longer verdict="allow",code="none"',
    );
    t.equal(
      total(m, 'sluice_requests_total', { verdict: 'error', identity: 'auditor' }),
      1,
      'one that then failed upstream is an error, like any other',
    );
    t.equal(
      total(m, 'sluice_denied_requests_total', {
        verdict: 'would_deny',
        code: 'EGR_DENY_READ',
        identity: 'auditor',
        destination: 'public',
      }),
      1,
    );
    t.equal(
      total(m, 'sluice_denied_requests_total', {
        verdict: 'would_deny',
        code: 'EGR_DENY_WRITE',
        identity: 'auditor',
        destination: 'public',
      }),
      1,
      'but its would-be denial is counted',
    );
    t.same(
      series(m, 'sluice_denied_hosts_top', { host: 'public.test' }).map((s) => [s.labels.verdict, s.value]),
      [['would_deny', 2]],
    );
  });

  t.test('tunnel lifetimes go to their own histogram, not to request latency', async (t) => {
    const m0 = await scrape();
    const socket: Socket = connect(h.port, '127.0.0.1');
    await new Promise<void>((r, j) => socket.once('connect', r).once('error', j));
    socket.write(
      `CONNECT registry.test:443 HTTP/1.1\r\nHost: registry.test:443\r\nProxy-Authorization: ${AGENT_AUTH}\r\n\r\n`,
    );
    await new Promise<void>((r) => socket.once('data', () => r()));
    const tls = tlsConnect({ socket, servername: 'registry.test', ca: w.pki.caPem });
    await new Promise<void>((r, j) => tls.once('secureConnect', r).once('error', j));
    // Held open for a while, so the lifetime is visibly the whole life and not the time to open.
    await new Promise((r) => setTimeout(r, 400));
    tls.end();
    await waitFor(() => h.decisions().find((d) => d.method === 'CONNECT' && d.verdict === 'allow'));
    const m = await scrape();
    const count = (name: string, labels: Record<string, string> = {}) =>
      total(m, name, labels) - total(m0, name, labels);
    t.equal(
      count('sluice_tunnel_duration_seconds_count', { listener: 'http', kind: 'tunnel' }),
      1,
      'the tunnel is one lifetime',
    );
    t.ok(
      count('sluice_tunnel_duration_seconds_sum') >= 0.4,
      'of its whole life (a lower bound: the client held it open that long)',
    );
    t.equal(count('sluice_request_duration_seconds_count'), 0, 'and no request latency');
    t.equal(count('sluice_requests_total', { verdict: 'allow' }), 1, 'still one request');
    t.equal(
      total(m, 'sluice_requests_total'),
      total(m, 'sluice_request_duration_seconds_count') + total(m, 'sluice_tunnel_duration_seconds_count'),
      'every request is in exactly one of the two histograms',
    );
  });

  t.test('a scan of distinct names keeps the top list bounded, and heavy hitters in it', async (t) => {
    for (let i = 0; i < 150; i++) await viaProxy(h.port, { method: 'POST', url: `http://n${i}.scan.test/`, body: 'x' });
    for (let i = 0; i < 5; i++) await viaProxy(h.port, { method: 'POST', url: 'http://exfil.test/again', body: 'x' });
    await waitFor(() => h.decisions().filter((d) => String(d['target.host']).endsWith('.scan.test')).length >= 150);
    const m = await scrape();
    const top = series(m, 'sluice_denied_hosts_top');
    t.ok(top.length <= TOP_HOSTS_N, `${top.length} series, at most ${TOP_HOSTS_N}`);
    t.equal(TOP_HOSTS_N <= 50, true, 'N ≤ 50');
    const exfil = series(m, 'sluice_denied_hosts_top', { host: 'exfil.test' });
    t.equal(exfil.length, 1, 'the host denied most is still listed');
    t.ok(exfil[0]!.value >= 7, 'and never undercounted');
    t.equal(top[0]!.labels.host, 'exfil.test', 'first');
    t.equal(
      total(m, 'sluice_denied_requests_total', { code: 'EGR_DENY_WRITE', destination: 'public', identity: 'agent' }),
      157,
      'the counter itself is exact',
    );
  });
}
