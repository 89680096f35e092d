// pip download from a PyPI simple index (PEP 503) through a CONNECT tunnel. pip goes through requests and
// urllib3: it reads the proxy variables in either case and PIP_CERT (which replaces the CA bundle).
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { buildWheel } from './lib/artifacts.js';
import { CA_VARIABLE, isolateClients, PYTHON, requireTool, show, startClients } from './lib/clients.js';

if (isolateClients(t, import.meta.url) && requireTool(t, 'pip (python3-pip)', PYTHON, ['-m', 'pip', '--version'])) {
  const wheel = buildWheel(PYTHON);
  const c = await startClients(t, { wheel });
  const home = c.scratch();
  const env = c.env(home, { [CA_VARIABLE.pip]: c.world.pki.caFile });
  const pip = (...args: string[]) =>
    c.run(PYTHON, ['-m', 'pip', 'download', '--no-deps', '--disable-pip-version-check', '--no-cache-dir', ...args], {
      env,
      cwd: home,
    });

  t.test('pip download from the index', async (t) => {
    const r = await pip('--index-url', 'https://pypi.test/simple/', '-d', join(home, 'ok'), 'sluice-e2e-pkg');
    t.equal(r.code, 0, r.output);
    t.same(readdirSync(join(home, 'ok')), [wheel.filename], 'the wheel, with the hash the index published');
    t.match(await c.decision('pypi.test', null), { verdict: 'allow', method: 'CONNECT', rule: 'registries' });
  });

  t.test('an index on a host that is not a registry', async (t) => {
    const r = await pip(
      '--retries',
      '1',
      '--index-url',
      'https://forge.test/simple/',
      '-d',
      join(home, 'denied'),
      'sluice-e2e-pkg',
    );
    show(t, 'pip download --retries 1 --index-url https://forge.test/simple/ sluice-e2e-pkg', r);
    t.equal(r.code, 1);
    t.match(
      r.stderr,
      /WARNING: Retrying .* after connection broken by 'ProxyError\('Cannot connect to proxy\.', OSError\('Tunnel connection failed: 403 Forbidden'\)\)'/,
    );
    t.match(r.output, /No matching distribution found for sluice-e2e-pkg/);
    t.equal(c.world.forge.connections, 0);
    t.match(await c.decision('forge.test', 'EGR_DENY_TUNNEL'), { verdict: 'deny', method: 'CONNECT' });
  });
}
