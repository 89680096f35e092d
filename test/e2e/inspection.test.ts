// Real clients through TLS inspection, behind the docker-mode rules, each with only the documented variables
// (the proxy pair and the tool's trust variable naming `sluice ca bundle`'s output): npm install from an
// inspected registry, npm publish refused, pip download, git clone from a registry-listed git host with its
// push refused, and curl reading a public HTTPS host that an opaque-tunnel policy used to refuse.
import { chmodSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { FIELD } from '../../proxy/ops/audit.js';
import { waitFor } from '../helpers/harness.js';
import { inspectionCaFiles } from '../inspection/wire-helpers.js';
import { PKG, buildGitRepo, buildWheel, packNpm } from './lib/artifacts.js';
import { CA_VARIABLE, PYTHON, isolateClients, show, startClients } from './lib/clients.js';
import { spawnSync } from 'node:child_process';

const have = (cmd: string, args: string[]) => spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;

if (isolateClients(t, import.meta.url)) {
  const tarball = packNpm();
  const wheel = have(PYTHON, ['-m', 'pip', '--version']) ? buildWheel(PYTHON) : null;
  const repo = buildGitRepo();
  const ca = await inspectionCaFiles();
  // The workload runs as another user: it reads the bundle (the key stays 0600, Sluice's).
  chmodSync(ca.dir, 0o755);
  chmodSync(ca.bundleFile, 0o644);
  chmodSync(ca.certFile, 0o644);
  const c = await startClients(
    t,
    { npm: tarball, ...(wheel ? { wheel } : {}), git: repo },
    {
      inspection: { caCertFile: ca.certFile, caKeyFile: ca.keyFile },
    },
  );
  const inner = (host: string, method: string) =>
    waitFor(() =>
      c.sluice
        .decisions()
        .find((d) => d[FIELD.inspected] === true && d[FIELD.targetHost] === host && d.method === method),
    );

  t.test('curl reads a public HTTPS host through inspection', async (t) => {
    const home = c.scratch();
    const r = await c.run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', 'https://forge.test/'], {
      env: c.env(home, { [CA_VARIABLE.curl]: ca.bundleFile }),
      cwd: home,
    });
    t.equal(r.code, 0, r.output);
    t.equal(r.stdout, '200');
    t.match(await inner('forge.test', 'GET'), { verdict: 'allow', rule: 'identities.agent.reads' });
  });

  t.test(
    'npm install from the inspected registry; npm publish refused',
    { skip: !have('npm', ['--version']) && 'needs npm' },
    async (t) => {
      const dir = c.scratch();
      writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'workload', version: '0.0.0', private: true }));
      const env = c.env(dir, { [CA_VARIABLE.npm]: ca.bundleFile, npm_config_cache: join(dir, '.npm') });
      const install = await c.run(
        'npm',
        ['install', '--no-audit', '--no-fund', '--registry', 'https://registry.test/', PKG.name],
        { env, cwd: dir },
      );
      t.equal(install.code, 0, install.output);
      t.equal(
        JSON.parse(readFileSync(join(dir, 'node_modules', PKG.name, 'package.json'), 'utf8')).version,
        PKG.version,
      );
      t.match(await inner('registry.test', 'GET'), { verdict: 'allow' });
      // A version the registry does not have, so that npm gets as far as the upload.
      const pkg = join(dir, 'to-publish');
      mkdirSync(pkg);
      writeFileSync(join(pkg, 'package.json'), JSON.stringify({ name: PKG.name, version: '9.9.9' }));
      writeFileSync(join(pkg, 'index.js'), 'module.exports = "exfiltrated";\n');
      const publish = await c.run(
        'npm',
        [
          'publish',
          '--registry',
          'https://registry.test/',
          '--//registry.test/:_authToken=attacker-token',
          '--fetch-retries',
          '0',
        ],
        { env, cwd: pkg },
      );
      show(t, 'npm publish (through inspection)', publish);
      t.not(publish.code, 0);
      t.match(publish.stderr, /403/);
      t.match(await inner('registry.test', 'PUT'), { verdict: 'deny', code: 'EGR_DENY_WRITE' });
    },
  );

  t.test('pip download from the inspected index', { skip: !wheel && 'needs python3-pip' }, async (t) => {
    const home = c.scratch();
    const env = c.env(home, { [CA_VARIABLE.pip]: ca.bundleFile });
    const r = await c.run(
      PYTHON,
      [
        '-m',
        'pip',
        'download',
        '--no-deps',
        '--disable-pip-version-check',
        '--no-cache-dir',
        '--index-url',
        'https://pypi.test/simple/',
        '-d',
        join(home, 'ok'),
        PKG.name,
      ],
      { env, cwd: home },
    );
    t.equal(r.code, 0, r.output);
    t.same(readdirSync(join(home, 'ok')), [wheel!.filename]);
    t.match(await inner('pypi.test', 'GET'), { verdict: 'allow' });
  });

  t.test(
    'git clone from a registry-listed git host; push refused',
    { skip: !have('git', ['--version']) && 'needs git' },
    async (t) => {
      const home = c.scratch();
      const env = c.env(home, { [CA_VARIABLE.git]: ca.bundleFile, GIT_TERMINAL_PROMPT: '0', GIT_CONFIG_NOSYSTEM: '1' });
      const clone = await c.run('git', ['clone', `https://git.test/${repo.name}`, 'cloned'], { env, cwd: home });
      t.equal(clone.code, 0, clone.output);
      t.equal(readFileSync(join(home, 'cloned', 'README'), 'utf8'), `${PKG.marker}\n`);
      t.match(await inner('git.test', 'POST'), {
        verdict: 'allow',
        [FIELD.targetPath]: `/${repo.name}/git-upload-pack`,
      });
      // The stand-in would accept a push: what stops it is Sluice.
      spawnSync('git', ['-C', join(repo.root, repo.name), 'config', 'http.receivepack', 'true']);
      const cloned = join(home, 'cloned');
      writeFileSync(join(cloned, 'NEW'), 'x\n');
      const git = (...args: string[]) =>
        c.run('git', ['-c', 'user.name=t', '-c', 'user.email=t@t', ...args], { env, cwd: cloned });
      await git('add', '.');
      await git('commit', '-qm', 'exfil');
      const push = await git('push', 'origin', 'HEAD');
      show(t, 'git push (through inspection)', push);
      t.not(push.code, 0);
      t.ok(
        c.sluice.decisions().some((d) => d[FIELD.targetHost] === 'git.test' && d.code === 'EGR_DENY_WRITE'),
        'receive-pack → EGR_DENY_WRITE',
      );
    },
  );
}
