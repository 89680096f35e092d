// Node's fetch through Sluice. Node before 24.0 (22.21 on the 22 line) ignores the proxy variables in its
// built-in fetch, NODE_USE_ENV_PROXY=1 included; undici 7's EnvHttpProxyAgent reads them on any Node.
// NODE_EXTRA_CA_CERTS adds the test CA to Node's bundled list.
import t from 'tap';
import { CA_VARIABLE, isolateClients, show, startClients } from './lib/clients.js';
import { PUBLIC_BODY } from './lib/stand-ins.js';
import { repoPath } from '../helpers/repo.js';

const SCRIPT = repoPath('test/e2e/fixtures/node-fetch-client.mjs');

/** NODE_USE_ENV_PROXY=1 reaches the built-in fetch from Node 24.0 and 22.21. */
function builtinFetchReadsProxyEnv(version = process.versions.node): boolean {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  return major >= 24 || (major === 22 && minor >= 21);
}

if (isolateClients(t, import.meta.url)) {
  const c = await startClients(t);
  const home = c.scratch();
  const env = c.env(home, { [CA_VARIABLE.node]: c.world.pki.caFile, NODE_USE_ENV_PROXY: '1' });
  const fetch = (mode: string, method: string, url: string, body?: string) =>
    c.run(process.execPath, [SCRIPT, mode, method, url, ...(body === undefined ? [] : [body])], { env });
  const json = (stdout: string) => JSON.parse(stdout) as { status: number; proxyStatus: string | null; body: string };

  t.test(`the built-in fetch with NODE_USE_ENV_PROXY=1 on Node ${process.versions.node}`, async (t) => {
    const before = c.sluice.decisions().length;
    const r = await fetch('global', 'GET', 'https://registry.test/-/ping');
    show(t, `Node ${process.versions.node} built-in fetch('https://registry.test/-/ping')`, r);
    if (builtinFetchReadsProxyEnv()) {
      t.equal(r.code, 0, r.output);
      t.match(JSON.parse(json(r.stdout).body), { ok: true });
    } else {
      t.equal(r.code, 3, 'the proxy variables were ignored: fetch went direct');
      t.match(
        r.stderr,
        /TypeError: fetch failed\n {2}cause: Error: getaddrinfo (ENOTFOUND|EAI_AGAIN) registry\.test/,
        'a name the workload cannot resolve',
      );
      t.equal(c.sluice.decisions().length, before, 'Sluice never saw it');
    }
  });

  for (const mode of ['undici-no-tunnel', 'global-dispatcher'] as const) {
    t.test(`undici's EnvHttpProxyAgent({ proxyTunnel: false }) (${mode})`, async (t) => {
      const read = await fetch(mode, 'GET', 'http://public.test/');
      t.equal(read.code, 0, read.output);
      t.match(json(read.stdout), { status: 200, body: `${PUBLIC_BODY}\n` });
      const registry = await fetch(mode, 'GET', 'https://registry.test/-/ping');
      t.equal(registry.code, 0, registry.output);
      t.match(JSON.parse(json(registry.stdout).body), { ok: true, registry: 'registry.test' });
      const write = await fetch(mode, 'POST', 'http://api.test/v1/items', '{"title":"from fetch"}');
      t.equal(write.code, 0, write.output);
      t.match(json(write.stdout), { status: 201 });
    });
  }

  t.test('a denied write is a 403 Response carrying the code', async (t) => {
    const r = await fetch('undici-no-tunnel', 'POST', 'http://public.test/', 'secret=1');
    show(t, "fetch('http://public.test/', { method: 'POST' })", r);
    t.equal(r.code, 0, 'fetch resolves: a 403 is a response');
    const got = json(r.stdout);
    t.equal(got.status, 403);
    t.equal(got.proxyStatus, 'sluice; error=http_request_denied; details="EGR_DENY_WRITE"');
    t.match(got.body, /^Sluice blocked this request by egress policy; do not retry around it: EGR_DENY_WRITE: /);
  });

  t.test('the metadata address', async (t) => {
    const r = await fetch('undici-no-tunnel', 'GET', 'http://169.254.169.254/latest/meta-data/');
    t.equal(json(r.stdout).proxyStatus, 'sluice; error=http_request_denied; details="EGR_DENY_IP_LITERAL"');
    t.equal(c.world.metadata.connections, 0);
  });

  t.test('a denied tunnel rejects with the status only', async (t) => {
    const r = await fetch('undici-no-tunnel', 'GET', 'https://forge.test/');
    show(t, "fetch('https://forge.test/')", r);
    t.equal(r.code, 3);
    t.match(
      r.stderr,
      /TypeError: fetch failed\n[\s\S]*cause: AbortError: Proxy response \(403\) !== 200 when HTTP Tunneling/,
    );
    t.equal(c.world.forge.connections, 0);
    t.match(await c.decision('forge.test', 'EGR_DENY_TUNNEL'), { verdict: 'deny' });
  });

  t.test("trap: EnvHttpProxyAgent's default tunnels http:// too, and Sluice refuses the tunnel", async (t) => {
    const r = await fetch('undici', 'GET', 'http://public.test/');
    show(t, "fetch('http://public.test/') with new EnvHttpProxyAgent()", r);
    t.equal(r.code, 3);
    t.match(r.stderr, /Proxy response \(403\) !== 200 when HTTP Tunneling/);
    t.match(await c.decision('public.test', 'EGR_DENY_TUNNEL'), {
      verdict: 'deny',
      method: 'CONNECT',
      'target.port': 80,
    });
  });
}
