// GNU wget, unchanged, through Sluice. wget reads only the lower-case proxy variables and has no CA
// variable of its own: WGETRC names a wgetrc that sets ca_certificate.
import t from 'tap';
import { isolateClients, requireTool, show, startClients, wgetrcFor } from './lib/clients.js';
import { PUBLIC_BODY } from './lib/stand-ins.js';

if (isolateClients(t, import.meta.url) && requireTool(t, 'wget', 'wget', ['--version'])) {
  const c = await startClients(t);
  const home = c.scratch();
  const env = c.env(home, { WGETRC: wgetrcFor(home, c.world.pki.caFile) });
  const wget = (...args: string[]) => c.run('wget', ['-nv', '-O', '-', ...args], { env });

  t.test('a read over http://', async (t) => {
    const r = await wget('http://public.test/');
    t.equal(r.code, 0, r.output);
    t.equal(r.stdout, `${PUBLIC_BODY}\n`);
  });

  t.test('a registry over https:// through CONNECT', async (t) => {
    const r = await wget('https://registry.test/-/ping');
    t.equal(r.code, 0, r.output);
    t.match(JSON.parse(r.stdout), { ok: true, registry: 'registry.test' });
    t.match(await c.decision('registry.test', null), { verdict: 'allow', method: 'CONNECT' });
  });

  t.test('a write to the integration via http://', async (t) => {
    const r = await wget(
      '--header=content-type: application/json',
      '--post-data={"title":"from wget"}',
      'http://api.test/v1/items',
    );
    t.equal(r.code, 0, r.output);
    t.match(JSON.parse(r.stdout), { ok: true, method: 'POST', received: '{"title":"from wget"}' });
  });

  t.test('a denied write: -S and --content-on-error show the code', async (t) => {
    const plain = await c.run('wget', ['-O', '-', '--post-data=secret=1', 'http://public.test/'], { env });
    show(t, 'wget -O - --post-data=secret=1 http://public.test/', plain);
    t.equal(plain.code, 8, 'wget exits 8: the server issued an error response');
    t.match(plain.stderr, /ERROR 403: Forbidden\./);
    const full = await c.run(
      'wget',
      ['-S', '--content-on-error', '-O', '-', '--post-data=secret=1', 'http://public.test/'],
      { env },
    );
    show(t, 'wget -S --content-on-error -O - --post-data=secret=1 http://public.test/', full);
    t.match(full.stderr, /Proxy-Status: sluice; error=http_request_denied; details="EGR_DENY_WRITE"/);
    t.match(full.stdout, /^Sluice blocked this request by egress policy; do not retry around it: EGR_DENY_WRITE: /);
    t.equal(c.world.publicSite.requests.filter((r) => r.method === 'POST').length, 0);
  });

  t.test('the metadata address', async (t) => {
    const r = await c.run('wget', ['-S', '-O', '-', 'http://169.254.169.254/latest/meta-data/'], { env });
    show(t, 'wget -S -O - http://169.254.169.254/latest/meta-data/', r);
    t.equal(r.code, 8);
    t.match(r.stderr, /details="EGR_DENY_IP_LITERAL"[\s\S]*ERROR 403: Forbidden\./);
    t.equal(c.world.metadata.connections, 0);
  });

  t.test('a denied tunnel', async (t) => {
    const r = await c.run('wget', ['-S', '-O', '-', 'https://forge.test/'], { env });
    show(t, 'wget -S -O - https://forge.test/', r);
    t.not(r.code, 0);
    t.match(r.stderr, /Proxy tunneling failed: Forbidden/);
    t.equal(c.world.forge.connections, 0);
    t.match(await c.decision('forge.test', 'EGR_DENY_TUNNEL'), { verdict: 'deny', method: 'CONNECT' });
  });

  t.test('trap: wget ignores the upper-case variables', async (t) => {
    const upperOnly = Object.fromEntries(Object.entries(env).filter(([k]) => !/^(http|https|no)_proxy$/.test(k)));
    const r = await c.run('wget', ['-nv', '-O', '-', 'https://registry.test/-/ping'], { env: upperOnly });
    show(t, 'wget with only HTTPS_PROXY set', r);
    t.not(r.code, 0, 'it went direct, and there is no direct way out');
    t.match(r.stderr, /unable to resolve host address .registry\.test./);
  });
}
