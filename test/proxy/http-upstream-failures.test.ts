// Upstream failures have their own codes: refused, unreachable, timed out, and a TLS certificate that does
// not verify. The timeout is made real with a DROP rule inside the test's own lo-only namespace.
import { execFileSync } from 'node:child_process';
import t from 'tap';
import { realHello } from '../helpers/client-hello.js';
import { AGENT_AUTH, codeOf, rawExchange, startSluice, viaProxy, waitFor } from '../helpers/harness.js';
import { isolate } from '../helpers/netns.js';
import { buildWorld, worldConfig } from '../helpers/world.js';

const iptablesWorks = () => {
  try {
    execFileSync('iptables', ['-w', '-L', 'OUTPUT', '-n'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};

if (isolate(t, import.meta.url)) {
  const w = await buildWorld(t);
  const h = await startSluice(
    t,
    worldConfig(w, { upstream: { caFile: w.pki.caFile, connectTimeoutMs: 800, tunnelHelloTimeoutMs: 1000 } }),
  );

  t.test('refused: nothing listens on the port', async (t) => {
    w.dns.set('closed.test', { a: ['127.0.0.2'] });
    const r = await viaProxy(h.port, { url: 'http://closed.test:1099/' });
    t.equal(r.status, 502);
    t.equal(codeOf(r), 'EGR_FAIL_CONNECT_REFUSED');
  });

  t.test('unreachable: no route in this namespace', async (t) => {
    // 192.0.2.0/24 would be refused by the guard; an exception for this test name lets the dialer try it,
    // and the namespace holds only lo, so there is no route to it.
    const h2 = await startSluice(
      t,
      worldConfig(w, {
        addressGuard: {
          allow: [
            { cidr: '127.0.0.0/8', hosts: ['*.test'] },
            { cidr: '100.64.0.0/10', hosts: ['nowhere.test'] },
          ],
        },
      }),
    );
    w.dns.set('nowhere.test', { a: ['100.64.1.1'] });
    const r = await viaProxy(h2.port, { url: 'http://nowhere.test:8080/' });
    t.equal(r.status, 502);
    t.equal(codeOf(r), 'EGR_FAIL_CONNECT_UNREACHABLE');
  });

  t.test(
    'timeout: SYNs dropped',
    { skip: iptablesWorks() ? false : 'iptables not available in this namespace' },
    async (t) => {
      execFileSync('ip', ['addr', 'add', '127.0.0.9/32', 'dev', 'lo']);
      execFileSync('iptables', ['-w', '-A', 'OUTPUT', '-d', '127.0.0.9', '-p', 'tcp', '--dport', '8080', '-j', 'DROP']);
      w.dns.set('blackhole.test', { a: ['127.0.0.9'] });
      const r = await viaProxy(h.port, { url: 'http://blackhole.test:8080/' });
      t.equal(r.status, 504);
      t.equal(codeOf(r), 'EGR_FAIL_CONNECT_TIMEOUT');
    },
  );

  t.test('a certificate that does not verify is an upstream failure, never a silent downgrade', async (t) => {
    const h2 = await startSluice(t, worldConfig(w, { upstream: { connectTimeoutMs: 800 } })); // no test CA
    const r = await viaProxy(h2.port, { method: 'POST', url: 'http://api.test/x', body: 'x' });
    t.equal(r.status, 502);
    t.equal(codeOf(r), 'EGR_UPSTREAM_TLS');
    t.equal(
      w.integration.requests.filter((q) => q.url === '/x').length,
      0,
      'the body never reached the unverified peer',
    );
  });

  t.test('a tunnel whose upstream refuses closes after the ClientHello, with the code in the audit log', async (t) => {
    w.dns.set('registry.test', { a: ['127.0.0.2'] }); // nothing listens on 127.0.0.2:443
    h.sluice.resolver.clear();
    const hello = await realHello('registry.test');
    const head = Buffer.from(
      `CONNECT registry.test:443 HTTP/1.1\r\nHost: registry.test:443\r\nProxy-Authorization: ${AGENT_AUTH}\r\n\r\n`,
    );
    const r = await rawExchange(h.port, Buffer.concat([head, hello]));
    t.match(r.text, /^HTTP\/1\.1 200 /, 'the tunnel was opened before the upstream could be tried');
    t.ok(r.closed, 'and closed when the upstream refused');
    t.match(
      await waitFor(() => h.decisions().find((d) => d.code === 'EGR_FAIL_CONNECT_REFUSED' && d.method === 'CONNECT')),
      { verdict: 'error' },
    );
    w.dns.set('registry.test', { a: ['127.0.0.4'] });
    h.sluice.resolver.clear();
  });
}
