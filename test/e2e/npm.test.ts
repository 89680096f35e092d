// npm install from a registry stub through a CONNECT tunnel, with the machine's own npm. npm takes its
// proxy from HTTPS_PROXY/https_proxy (its `https-proxy` default) and its CA from NPM_CONFIG_CAFILE.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { PKG, packNpm } from './lib/artifacts.js';
import { CA_VARIABLE, isolateClients, requireTool, show, startClients } from './lib/clients.js';

if (isolateClients(t, import.meta.url) && requireTool(t, 'npm', 'npm', ['--version'])) {
  const tarball = packNpm();
  const c = await startClients(t, { npm: tarball });

  /** A fresh project with its own HOME and cache, so that nothing comes from a cache or a user .npmrc. */
  const project = () => {
    const dir = c.scratch();
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'workload', version: '0.0.0', private: true }));
    return dir;
  };
  const npm = (dir: string, extra: Record<string, string>, ...args: string[]) =>
    c.run('npm', ['install', '--no-audit', '--no-fund', ...args], {
      env: c.env(dir, { npm_config_cache: join(dir, '.npm'), ...extra }),
      cwd: dir,
    });

  t.test('npm install from the registry stub', async (t) => {
    const dir = project();
    const r = await npm(
      dir,
      { [CA_VARIABLE.npm]: c.world.pki.caFile },
      '--registry',
      'https://registry.test/',
      PKG.name,
    );
    t.equal(r.code, 0, r.output);
    t.equal(JSON.parse(readFileSync(join(dir, 'node_modules', PKG.name, 'package.json'), 'utf8')).version, PKG.version);
    const lock = JSON.parse(readFileSync(join(dir, 'package-lock.json'), 'utf8'));
    t.match(lock.packages[`node_modules/${PKG.name}`], {
      resolved: `https://registry.test/${PKG.name}/-/${tarball.filename}`,
      integrity: tarball.integrity,
    });
    t.match(await c.decision('registry.test', null), { verdict: 'allow', method: 'CONNECT', rule: 'registries' });
  });

  t.test('NODE_EXTRA_CA_CERTS works for npm too, unless a cafile is configured', async (t) => {
    const dir = project();
    // A `cafile` in any npmrc (Debian-style images put one in the global npmrc) replaces Node's CA list, and
    // NODE_EXTRA_CA_CERTS then has nothing to add to; this case points the global npmrc at nothing.
    const env = { NODE_EXTRA_CA_CERTS: c.world.pki.caFile, npm_config_globalconfig: join(dir, 'no-global-npmrc') };
    const r = await npm(dir, env, '--fetch-retries', '0', '--registry', 'https://registry.test/', PKG.name);
    t.equal(r.code, 0, r.output);
  });

  t.test('a registry on a host that is not a registry', async (t) => {
    const dir = project();
    const r = await npm(dir, { [CA_VARIABLE.npm]: c.world.pki.caFile }, '--registry', 'https://forge.test/', PKG.name);
    show(t, 'npm install --registry https://forge.test/ sluice-e2e-pkg', r);
    t.not(r.code, 0);
    t.match(r.stderr, /npm error 403 403 Forbidden - GET https:\/\/forge\.test\/sluice-e2e-pkg/);
    t.notMatch(r.output, /EGR_/, 'npm does not show the proxy response');
    t.equal(c.world.forge.connections, 0);
    t.match(await c.decision('forge.test', 'EGR_DENY_TUNNEL'), { verdict: 'deny', method: 'CONNECT' });
  });
}
