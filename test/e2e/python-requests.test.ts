// Python requests through Sluice: it reads the proxy variables (either case) through urllib and
// REQUESTS_CA_BUNDLE (which replaces the CA bundle). A denied plain-HTTP request is an ordinary 403 response
// with Sluice's code in the body and Proxy-Status; a denied tunnel is a ProxyError that names only the status.
import t from 'tap';
import { CA_VARIABLE, isolateClients, PYTHON, requireTool, show, startClients } from './lib/clients.js';
import { PUBLIC_BODY } from './lib/stand-ins.js';
import { repoPath } from '../helpers/repo.js';

const SCRIPT = repoPath('test/e2e/fixtures/requests-client.py');

if (
  isolateClients(t, import.meta.url) &&
  requireTool(t, 'Python requests (python3-requests)', PYTHON, ['-c', 'import requests'])
) {
  const c = await startClients(t);
  const home = c.scratch();
  const env = c.env(home, { [CA_VARIABLE.requests]: c.world.pki.caFile });
  const request = (...args: string[]) => c.run(PYTHON, [SCRIPT, ...args], { env });
  const json = (stdout: string) => JSON.parse(stdout) as { status: number; proxyStatus: string | null; body: string };

  t.test('a read over http://', async (t) => {
    const r = await request('GET', 'http://public.test/');
    t.equal(r.code, 0, r.output);
    t.match(json(r.stdout), { status: 200, body: `${PUBLIC_BODY}\n` });
  });

  t.test('a registry over https:// through CONNECT', async (t) => {
    const r = await request('GET', 'https://pypi.test/-/ping');
    t.equal(r.code, 0, r.output);
    t.match(JSON.parse(json(r.stdout).body), { ok: true, registry: 'pypi.test' });
    t.match(await c.decision('pypi.test', null), { verdict: 'allow', method: 'CONNECT' });
  });

  t.test('a write to the integration via http://', async (t) => {
    const r = await request('POST', 'http://api.test/v1/items', '{"title":"from requests"}');
    t.equal(r.code, 0, r.output);
    t.match(json(r.stdout), { status: 201 });
    t.match(JSON.parse(json(r.stdout).body), { method: 'POST', received: '{"title":"from requests"}' });
  });

  t.test('a denied write is a 403 response carrying the code', async (t) => {
    const r = await request('POST', 'http://public.test/', 'secret=1');
    show(t, 'requests.post("http://public.test/", data="secret=1")', r);
    t.equal(r.code, 4);
    const got = json(r.stdout);
    t.equal(got.status, 403);
    t.equal(got.proxyStatus, 'sluice; error=http_request_denied; details="EGR_DENY_WRITE"');
    t.match(got.body, /^Sluice blocked this request by egress policy; do not retry around it: EGR_DENY_WRITE: /);
    t.match(
      r.stderr,
      /HTTPError: 403 Client Error: Forbidden for url: http:\/\/public\.test\//,
      'raise_for_status() does not show the body',
    );
  });

  t.test('the metadata address', async (t) => {
    const r = await request('GET', 'http://169.254.169.254/latest/meta-data/');
    t.equal(json(r.stdout).proxyStatus, 'sluice; error=http_request_denied; details="EGR_DENY_IP_LITERAL"');
    t.equal(c.world.metadata.connections, 0);
  });

  t.test('a denied tunnel is a ProxyError naming the status only', async (t) => {
    const r = await request('GET', 'https://forge.test/');
    show(t, 'requests.get("https://forge.test/")', r);
    t.equal(r.code, 3);
    t.match(
      r.stderr,
      /ProxyError: .*Caused by ProxyError\('Cannot connect to proxy\.', OSError\('Tunnel connection failed: 403 Forbidden'\)\)/,
    );
    t.equal(c.world.forge.connections, 0);
    t.match(await c.decision('forge.test', 'EGR_DENY_TUNNEL'), { verdict: 'deny' });
  });
}
