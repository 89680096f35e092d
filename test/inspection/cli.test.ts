// `sluice ca init`, `sluice ca bundle` and development mode's ephemeral CA, run as real processes.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rootCertificates } from 'node:tls';
import t from 'tap';
import { SYSTEM_BUNDLE_PATHS } from '../../proxy/inspection/bundle.js';
import { checkCaMaterial } from '../../proxy/inspection/ca.js';
import { cliArgv } from '../helpers/cli.js';
import { opensslCa } from './helpers.js';

const run = (args: string[]) => {
  const r = spawnSync(process.execPath, [...cliArgv(), ...args], { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
};
const dir = mkdtempSync(join(tmpdir(), 'sluice-ca-cli-'));
const pemCount = (s: string) => s.match(/-----BEGIN CERTIFICATE-----/g)?.length ?? 0;
const lastPem = (s: string) => s.slice(s.lastIndexOf('-----BEGIN CERTIFICATE-----')).trim();

t.test('ca init writes ca.crt (0644) and ca.key (0600) and never overwrites', async (t) => {
  const out = join(dir, 'made', 'here');
  const r = run(['ca', 'init', '--out', out]);
  t.equal(r.code, 0, r.err);
  const crt = join(out, 'ca.crt');
  const key = join(out, 'ca.key');
  t.same(r.out.trim().split('\n'), [crt, key]);
  t.equal(statSync(crt).mode & 0o777, 0o644);
  t.equal(statSync(key).mode & 0o777, 0o600);
  const checked = checkCaMaterial(readFileSync(crt, 'utf8'), readFileSync(key, 'utf8'), Date.now() + 60_000);
  t.same(checked.problems, [], 'Sluice accepts what it made');
  t.match(r.err, /inspection: \{ caCertFile: .*ca\.crt, caKeyFile: .*ca\.key \}/);
  t.match(r.err, /^ {2}NODE_EXTRA_CA_CERTS=/m);
  t.notMatch(r.out + r.err, /PRIVATE KEY/, 'the key is never printed');
  const before = readFileSync(key, 'utf8');
  const again = run(['ca', 'init', '--out', out]);
  t.equal(again.code, 2);
  t.match(again.err, /exists; refusing to overwrite a CA/);
  t.equal(readFileSync(key, 'utf8'), before, 'the key is untouched');
  const days = run(['ca', 'init', '--out', join(dir, 'short'), '--days', '10']);
  t.equal(days.code, 0);
  const cert = new X509Certificate(readFileSync(join(dir, 'short', 'ca.crt')));
  t.ok(Date.parse(cert.validTo) - Date.now() < 11 * 86_400_000);
  t.equal(run(['ca', 'init', '--out', join(dir, 'x'), '--days', '0']).code, 2);
  t.equal(run(['ca', 'init']).code, 2);
  t.equal(run(['ca']).code, 2);
});

t.test('ca bundle prints the roots, then the CA', async (t) => {
  const out = join(dir, 'bundle-ca');
  t.equal(run(['ca', 'init', '--out', out]).code, 0);
  const crt = join(out, 'ca.crt');
  const caPem = new X509Certificate(readFileSync(crt)).toString().trim();
  const node = run(['ca', 'bundle', '--ca-cert', crt]);
  t.equal(node.code, 0, node.err);
  t.equal(pemCount(node.out), rootCertificates.length + 1, "Node's roots and the CA");
  t.equal(lastPem(node.out), caPem, 'the CA comes last');
  t.notMatch(
    node.out.replace(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n/g, ''),
    /\S/,
    'PEM only, nothing between blocks',
  );

  const cfg = join(dir, 'sluice.yaml');
  writeFileSync(cfg, `inspection: { caCertFile: ${crt}, caKeyFile: ${join(out, 'ca.key')} }\n`);
  const viaConfig = run(['ca', 'bundle', '--config', cfg]);
  t.equal(viaConfig.code, 0, viaConfig.err);
  t.equal(viaConfig.out, node.out, '--config reads inspection.caCertFile');

  const other = opensslCa('ec256');
  const rootsFile = join(dir, 'roots.pem');
  writeFileSync(rootsFile, `# a comment\n${other.certPem}\n${caPem}\n`);
  const file = run(['ca', 'bundle', '--ca-cert', crt, '--roots', rootsFile]);
  t.equal(file.code, 0, file.err);
  t.equal(pemCount(file.out), 2, 'the named roots, the CA once');
  t.equal(lastPem(file.out), caPem);

  const system = SYSTEM_BUNDLE_PATHS.find((p) => existsSync(p));
  const sys = run(['ca', 'bundle', '--ca-cert', crt, '--roots', 'system']);
  if (system) {
    t.equal(sys.code, 0, sys.err);
    t.equal(lastPem(sys.out), caPem);
    t.ok(pemCount(sys.out) > 1, `roots from ${system}`);
  } else {
    t.equal(sys.code, 2);
  }
});

t.test('ca bundle refuses what it cannot vouch for', async (t) => {
  const notCa = opensslCa('ec256', { notCa: true });
  const noInspection = join(dir, 'plain.yaml');
  writeFileSync(noInspection, 'registries: [pypi.org]\n');
  const rows: [string, string[], RegExp][] = [
    ['neither source', ['ca', 'bundle'], /usage: sluice ca/],
    ['both sources', ['ca', 'bundle', '--ca-cert', notCa.certFile, '--config', noInspection], /usage: sluice ca/],
    ['not a CA', ['ca', 'bundle', '--ca-cert', notCa.certFile], /is not a CA certificate/],
    ['no such file', ['ca', 'bundle', '--ca-cert', join(dir, 'nope.crt')], /cannot be read/],
    [
      'a key, not a certificate',
      ['ca', 'bundle', '--ca-cert', notCa.keyFile],
      /exactly one PEM certificate \(found 0\)/,
    ],
    ['no inspection section', ['ca', 'bundle', '--config', noInspection], /has no inspection section/],
    [
      'unreadable roots',
      ['ca', 'bundle', '--ca-cert', opensslCa('ec256').certFile, '--roots', join(dir, 'none.pem')],
      /--roots .*cannot be read/,
    ],
  ];
  for (const [name, args, message] of rows) {
    const r = run(args);
    t.equal(r.code, 2, name);
    t.match(r.err, message, name);
    t.equal(r.out, '', `${name}: nothing on stdout`);
  }
});

t.test('help lists the ca commands', async (t) => {
  const r = run(['help']);
  t.match(r.out, /ca init --out DIR/);
  t.match(r.out, /ca bundle \(--config FILE \| --ca-cert FILE\)/);
});

t.test('development mode makes an ephemeral CA and says how to trust it, once', async (t) => {
  const cfg = join(dir, 'dev.yaml');
  writeFileSync(cfg, 'listen: { http: "127.0.0.1:0", socks5: null, admin: null }\n');
  const child: ChildProcess = spawn(process.execPath, [...cliArgv(), 'serve', '--config', cfg], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(() => child.kill('SIGKILL'));
  let err = '';
  let logs = '';
  child.stdout!.on('data', (c) => (logs += c));
  await new Promise<void>((resolve) => {
    child.stderr!.on('data', (c) => {
      err += c;
      if (/^NODE_EXTRA_CA_CERTS=/m.test(err)) resolve();
    });
  });
  const certFile = /^TLS inspection CA for this run only \(ephemeral, key in memory\): (\S+)$/m.exec(err)?.[1];
  t.ok(certFile, err);
  const caDir = join(certFile!, '..');
  t.equal(statSync(caDir).mode & 0o777, 0o700);
  t.ok(new X509Certificate(readFileSync(certFile!)).ca);
  const bundle = /^SSL_CERT_FILE=(\S+)$/m.exec(err)?.[1];
  t.equal(bundle, join(caDir, 'bundle.pem'));
  for (const v of ['REQUESTS_CA_BUNDLE', 'PIP_CERT', 'CURL_CA_BUNDLE', 'GIT_SSL_CAINFO', 'NPM_CONFIG_CAFILE'])
    t.match(err, new RegExp(`^${v}=${bundle}$`, 'm'));
  t.match(err, new RegExp(`^NODE_EXTRA_CA_CERTS=${certFile}$`, 'm'));
  t.ok(err.indexOf('HTTPS_PROXY=') < err.indexOf('SSL_CERT_FILE='), 'next to the HTTPS_PROXY lines');
  t.equal(err.match(/SSL_CERT_FILE=/g)?.length, 1, 'printed once');
  t.notMatch(logs, /SSL_CERT_FILE|BEGIN/, 'not in the structured log');
  child.kill('SIGTERM');
  t.equal(await new Promise((r) => child.on('exit', r)), 0);
  t.notOk(existsSync(caDir), 'removed on exit');
});

t.test('a configured inspection section: no ephemeral CA', async (t) => {
  const op = opensslCa('ec256');
  const cfg = join(dir, 'with-inspection.yaml');
  writeFileSync(
    cfg,
    `listen: { http: "127.0.0.1:0", socks5: null, admin: null }\ninspection: { caCertFile: ${op.certFile}, caKeyFile: ${op.keyFile} }\n`,
  );
  const child: ChildProcess = spawn(process.execPath, [...cliArgv(), 'serve', '--config', cfg], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(() => child.kill('SIGKILL'));
  let err = '';
  await new Promise<void>((resolve) => {
    child.stderr!.on('data', (c) => {
      err += c;
      if (/^HTTPS_PROXY=/m.test(err)) resolve();
    });
  });
  child.kill('SIGTERM');
  await new Promise((r) => child.on('exit', r));
  t.notMatch(err, /ephemeral|SSL_CERT_FILE/);
});
