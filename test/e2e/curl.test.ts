// curl, unchanged, in a workload whose only way out is Sluice: the proxy variables and CURL_CA_BUNDLE are all
// it gets. Allowed requests arrive at the stand-ins; each denial shows Sluice's code in what curl prints.
import t from 'tap';
import { PASSWORD } from '../helpers/world.js';
import { CA_VARIABLE, isolateClients, requireTool, show, startClients } from './lib/clients.js';
import { ADDR, PUBLIC_BODY } from './lib/stand-ins.js';

if (isolateClients(t, import.meta.url) && requireTool(t, 'curl', 'curl', ['--version'])) {
  const c = await startClients(t);
  const home = c.scratch();
  const env = c.env(home, { [CA_VARIABLE.curl]: c.world.pki.caFile });
  const curl = (...args: string[]) => c.run('curl', ['-sS', ...args], { env });

  t.test('a read over http://', async (t) => {
    const r = await curl('http://public.test/');
    t.equal(r.code, 0, r.output);
    t.equal(r.stdout, `${PUBLIC_BODY}\n`);
    t.match(await c.decision('public.test', null), { verdict: 'allow', method: 'GET', identity: 'agent' });
  });

  t.test('a registry over https:// through CONNECT, verified against the test CA', async (t) => {
    const r = await curl('https://registry.test/-/ping');
    t.equal(r.code, 0, r.output);
    t.match(JSON.parse(r.stdout), { ok: true, registry: 'registry.test' });
    t.match(await c.decision('registry.test', null), { verdict: 'allow', method: 'CONNECT', rule: 'registries' });
  });

  t.test('a write to the integration via http:// leaves over TLS', async (t) => {
    const r = await curl(
      '-X',
      'POST',
      '-H',
      'content-type: application/json',
      '-d',
      '{"title":"from curl"}',
      'http://api.test/v1/items',
    );
    t.equal(r.code, 0, r.output);
    t.match(JSON.parse(r.stdout), { ok: true, method: 'POST', path: '/v1/items', received: '{"title":"from curl"}' });
    t.equal(c.world.api.requests.at(-1)?.method, 'POST', 'the integration (a TLS-only server) received it');
    t.notOk(c.world.api.requests.at(-1)?.headers['proxy-authorization'], 'proxy credentials were not forwarded');
    t.match(await c.decision('api.test', null), { verdict: 'allow', method: 'POST', 'dial.address': ADDR.api });
  });

  t.test('a denied write: the body and Proxy-Status carry the code', async (t) => {
    const before = c.world.publicSite.requests.length;
    const plain = await curl('-X', 'POST', '-d', 'secret=1', 'http://public.test/');
    show(t, 'curl -X POST -d secret=1 http://public.test/', plain);
    t.equal(plain.code, 0, 'curl does not fail on a 403 unless asked to');
    t.match(plain.stdout, /^Sluice blocked this request by egress policy; do not retry around it: EGR_DENY_WRITE: /);
    const withFail = await curl('--fail-with-body', '-X', 'POST', '-d', 'secret=1', 'http://public.test/');
    show(t, 'curl --fail-with-body -X POST ...', withFail);
    t.equal(withFail.code, 22);
    t.match(withFail.stdout, /EGR_DENY_WRITE/);
    t.match(withFail.stderr, /curl: \(22\) The requested URL returned error: 403/);
    const headers = await curl('-i', '-X', 'POST', '-d', 'secret=1', 'http://public.test/');
    t.match(headers.stdout, /^HTTP\/1\.1 403 Forbidden\r\n/);
    t.match(headers.stdout, /\r\nProxy-Status: sluice; error=http_request_denied; details="EGR_DENY_WRITE"\r\n/);
    t.equal(c.world.publicSite.requests.length, before, 'the site never saw the write');
    t.match(await c.decision('public.test', 'EGR_DENY_WRITE'), { verdict: 'deny', method: 'POST' });
  });

  t.test('the metadata address is denied in every spelling, and never connected to', async (t) => {
    const literal = await curl('http://169.254.169.254/latest/meta-data/');
    show(t, 'curl http://169.254.169.254/latest/meta-data/', literal);
    t.match(literal.stdout, /EGR_DENY_IP_LITERAL/);
    const hex = await curl('-i', 'http://0xa9fea9fe/latest/meta-data/');
    t.match(hex.stdout, /^HTTP\/1\.1 403 [\s\S]*details="EGR_DENY_IP_LITERAL"/);
    const named = await curl('-i', 'http://meta.test/latest/meta-data/');
    show(t, 'curl -i http://meta.test/latest/meta-data/', named);
    t.match(named.stdout, /details="EGR_DENY_ADDRESS_LINK_LOCAL"[\s\S]*EGR_DENY_ADDRESS_LINK_LOCAL/);
    t.equal(c.world.metadata.connections, 0);
  });

  t.test('a denied tunnel: curl shows the 403, and -v shows the code', async (t) => {
    const plain = await curl('https://public.test/');
    show(t, 'curl https://public.test/', plain);
    t.equal(plain.code, 56);
    t.match(plain.stderr, /CONNECT tunnel failed, response 403/);
    const verbose = await curl('-v', 'https://forge.test/');
    show(t, 'curl -v https://forge.test/', verbose);
    t.match(verbose.stderr, /< Proxy-Status: sluice; error=http_request_denied; details="EGR_DENY_TUNNEL"/);
    t.match(verbose.stderr, /CONNECT tunnel failed, response 403/);
    t.equal(c.world.forge.connections, 0);
  });

  t.test('the integration is not a tunnel target: writes go via http://', async (t) => {
    const r = await curl('-v', '-X', 'POST', '-d', '{}', 'https://api.test/v1/items');
    t.equal(r.code, 56);
    t.match(r.stderr, /details="EGR_DENY_TUNNEL"/);
  });

  t.test('nothing bypasses Sluice', async (t) => {
    const before = c.world.publicSite.connections;
    const direct = await curl('--noproxy', '*', 'http://public.test/');
    show(t, "curl --noproxy '*' http://public.test/", direct);
    t.equal(direct.code, 6, 'no DNS answers in the workload');
    const byAddress = await curl('--noproxy', '*', `http://${ADDR.public}/`);
    t.equal(byAddress.code, 7, "a stand-in's address is the workload's own loopback");
    const metadata = await curl('--noproxy', '*', '--max-time', '5', 'http://169.254.169.254/');
    t.not(metadata.code, 0, 'the metadata address is refused by the rules (the host would forward it)');
    const listed = await c.run('curl', ['-sS', 'http://public.test/'], {
      env: { ...env, no_proxy: 'public.test', NO_PROXY: 'public.test' },
    });
    t.equal(listed.code, 6, 'a NO_PROXY entry is not a way around Sluice, only a way to fail');
    t.equal(c.world.publicSite.connections, before);
    t.equal(c.world.metadata.connections, 0);
  });

  t.test('trap: curl reads http_proxy only in lower case', async (t) => {
    const upperOnly = Object.fromEntries(
      Object.entries(env).filter(([k]) => k !== 'http_proxy' && k !== 'https_proxy'),
    );
    const r = await c.run('curl', ['-sS', 'http://public.test/'], { env: upperOnly });
    show(t, 'curl with only HTTP_PROXY set', r);
    t.equal(r.code, 6, 'HTTP_PROXY is ignored (httpoxy), so curl went direct and could not resolve');
    const https = await c.run('curl', ['-sS', 'https://registry.test/-/ping'], { env: upperOnly });
    t.equal(https.code, 0, 'HTTPS_PROXY is read in either case');
  });

  t.test('curl --socks5-hostname through the SOCKS5 listener', async (t) => {
    const socks = ['--socks5-hostname', c.socksAddress, '--proxy-user', `agent:${PASSWORD}`];
    const ok = await curl(...socks, 'https://registry.test/-/ping');
    t.equal(ok.code, 0, ok.output);
    t.match(JSON.parse(ok.stdout), { ok: true, registry: 'registry.test' });
    const denied = await curl(...socks, 'https://forge.test/');
    show(t, 'curl --socks5-hostname ... https://forge.test/', denied);
    t.equal(denied.code, 97);
    t.match(
      denied.stderr,
      /Can't complete SOCKS5 connection to forge\.test\. \(2\)/,
      'REP 0x02: connection not allowed by ruleset',
    );
    t.match(await c.decision('forge.test', 'EGR_DENY_TUNNEL', 'socks5'), { verdict: 'deny' });
    t.equal(c.world.forge.connections, 0);
    const local = await curl('-x', `socks5://agent:${PASSWORD}@${c.socksAddress}`, 'https://registry.test/-/ping');
    show(t, 'curl -x socks5://agent:…@10.99.0.1:1080 https://registry.test/-/ping', local);
    t.equal(local.code, 97);
    t.match(
      local.stderr,
      /Could not resolve host: registry\.test/,
      'socks5:// (not socks5h://) resolves in the workload, where nothing answers',
    );
  });
}
