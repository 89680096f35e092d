// The sluice command line, run as a real process.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { verifyToken } from '../proxy/auth/run-token.js';
import { cliArgv } from './helpers/cli.js';
import { startFakeDns } from './helpers/fake-dns.js';
import { codeOf, viaProxy } from './helpers/harness.js';
import { repoPath } from './helpers/repo.js';

const run = (args: string[], input?: string) => {
  const r = spawnSync(process.execPath, [...cliArgv(), ...args], { input, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
};
const dir = mkdtempSync(join(tmpdir(), 'sluice-cli-'));
const file = (name: string, text: string) => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};
const keyFile = file('token.key', 'z'.repeat(48));
const good = file(
  'good.yaml',
  `
integrations:
  github: { hosts: [api.github.com], tunnel: true }
  slack: { hosts: [slack.com], methods: [GET, POST] }
identities:
  agent: { password: not-a-secret-1, integrations: [github, slack] }
tokens: { keyFile: ${keyFile} }
`,
);

t.test('check', async (t) => {
  const ok = run(['check', good]);
  t.equal(ok.code, 0);
  t.match(ok.out, /good\.yaml: ok/);
  t.match(ok.out, /warning: \/identities\/agent\/password/);
  const bad = run([
    'check',
    file(
      'bad.yaml',
      'registries: ["example.*"]\nintegratons: {}\nidentities:\n  a: { integrations: [nope], passwordHash: x }\n',
    ),
  ]);
  t.equal(bad.code, 1);
  t.match(bad.out, /error: \/registries\/0: .*\(hint: wildcards are a leading "\*\." only/);
  t.match(bad.out, /error: \/integratons: unknown key "integratons" \(hint: did you mean "integrations"\?\)/);
  t.match(bad.out, /error: \/identities\/a\/integrations\/0: unknown integration "nope"/);
  t.match(bad.out, /bad\.yaml: \d+ problem\(s\)/);
  t.equal(run(['check', join(dir, 'missing.yaml')]).code, 1);
  t.equal(run(['check']).code, 2);
});

t.test('check and serve verify every file the config refers to, and report every problem at once', async (t) => {
  const cfg = file(
    'files.yaml',
    [
      'listen: { http: "127.0.0.1:0", socks5: null, admin: "127.0.0.1:0" }',
      'identities: { agent: { password: not-a-secret-1 } }',
      `tokens: { keyFile: ${join(dir, 'nope-key')} }`,
      `admin: { tokenFile: ${join(dir, 'nope-admin')} }`,
      `upstream: { caFile: ${file('not-pem.pem', 'hello')} }`,
      `killSwitch: { file: ${join(dir, 'nope-dir', 'kill')} }`,
      '',
    ].join('\n'),
  );
  const expected = [
    /error: \/tokens\/keyFile: \S+nope-key: no such file \(hint: create it: head -c 48 \/dev\/urandom/,
    /error: \/admin\/tokenFile: \S+nope-admin: no such file \(hint: create it/,
    /error: \/upstream\/caFile: \S+not-pem\.pem: holds no PEM certificate \(hint: /,
    /error: \/killSwitch\/file: \S+nope-dir: no such directory, so the kill-switch file could never be created \(hint: mkdir -p/,
  ];
  const c = run(['check', cfg]);
  t.equal(c.code, 1, 'check fails');
  for (const re of expected) t.match(c.out, re);
  t.match(c.out, /files\.yaml: 4 problem\(s\)/);
  const s = run(['serve', '--config', cfg]);
  t.equal(s.code, 2, 'serve refuses to start');
  for (const re of expected) t.match(s.err, re, 'serve reports it the same way');
  t.notMatch(s.err, /ENOENT|^\s+at /m, 'never a bare ENOENT or a stack');
  t.match(s.err, /4 problem\(s\); nothing was started/);
  t.equal(run(['check', '--skip-files', cfg]).code, 0, '--skip-files: the config alone');
});

t.test('check --production applies the production rules', async (t) => {
  const r = run(['check', '--production', good]);
  t.equal(r.code, 1);
  t.match(r.out, /error: \/identities\/agent\/password: a plaintext password \(hint: /);
  t.match(r.out, /error: \/admin\/tokenFile: the admin API has no token/);
  t.match(r.out, /\(production rules applied\)/);
});

t.test('hash-password', async (t) => {
  const r = run(['hash-password'], 'a long enough password\n');
  t.equal(r.code, 0);
  t.match(r.out.trim(), /^scrypt\$32768\$8\$1\$/);
  t.notMatch(r.out + r.err, /a long enough password/);
  const short = run(['hash-password'], 'elevenchars\n');
  t.equal(short.code, 2);
  t.match(short.err, /at least 12 characters/);
  t.match(
    readFileSync(repoPath('README.md'), 'utf8'),
    /`sluice hash-password` reads a password of \*\*at least 12 characters\*\*/,
    'the README says so too',
  );
  t.equal(run(['hash-password'], 'twelve chars\n').code, 0, '12 is enough');
});

t.test('token issue', async (t) => {
  const r = run([
    'token',
    'issue',
    '--config',
    good,
    '--identity',
    'agent',
    '--ttl',
    '30m',
    '--integrations',
    'github',
  ]);
  t.equal(r.code, 0, r.err);
  const check = verifyToken(Buffer.from('z'.repeat(48)), r.out.trim(), Math.floor(Date.now() / 1000));
  t.match(check, { ok: true, claims: { sub: 'agent', int: ['github'] } });
  if (check.ok) t.ok(check.claims.exp - check.claims.iat === 1800);
  t.equal(
    run(['token', 'issue', '--config', good, '--identity', 'agent', '--ttl', '30m', '--integrations', 'stripe']).code,
    2,
    'cannot widen',
  );
  t.equal(run(['token', 'issue', '--config', good, '--identity', 'ghost', '--ttl', '30m']).code, 2);
  t.equal(run(['token', 'issue', '--config', good, '--identity', 'agent', '--ttl', 'soon']).code, 2);
  t.equal(run(['token', 'issue', '--config', good, '--identity', 'agent', '--ttl', '30d']).code, 2, 'over maxTtl');
});

t.test('explain', async (t) => {
  const read = run(['explain', '--config', good, '--as', 'agent', 'GET', 'http://example.com/']);
  t.equal(read.code, 0);
  t.match(read.out, /verdict: allow\nrule: identities\.agent\.reads/);
  const write = run(['explain', '--config', good, '--as', 'agent', 'POST', 'http://example.com/']);
  t.equal(write.code, 1);
  t.match(write.out, /verdict: deny\ncode: EGR_DENY_WRITE\nrule: integrations/);
  const gh = run(['explain', '--config', good, '--as', 'agent', 'POST', 'http://api.github.com/repos']);
  t.match(gh.out, /transport: TLS \(originated by Sluice\) to port 443/);
  const disguised = run([
    'explain',
    '--config',
    good,
    '--as',
    'agent',
    'GET',
    'http://example.com/',
    '-H',
    'X-HTTP-Method-Override: DELETE',
  ]);
  t.match(disguised.out, /EGR_DENY_DISGUISED_WRITE/);
  const tunnel = run(['explain', '--as', 'dev', 'CONNECT', 'registry.npmjs.org:443']);
  t.equal(tunnel.code, 0, 'the embedded default allows registry tunnels');
  t.match(tunnel.out, /rule: registries/);
  const meta = run(['explain', '--as', 'dev', 'GET', 'http://169.254.169.254/latest/meta-data/']);
  t.equal(meta.code, 1);
  t.match(meta.out, /EGR_DENY_IP_LITERAL/);
  t.equal(run(['explain', '--config', good, '--as', 'nobody', 'GET', 'http://example.com/']).code, 2);

  // --resolve: names and their classes, from a fake DNS server (data only; nothing connects).
  const dns = await startFakeDns();
  t.teardown(() => dns.close());
  dns.set('mixed.example', { a: ['93.184.216.34', '10.1.2.3'] });
  const cfg = file('dns.yaml', `dns: { servers: ["${dns.server}"] }\n`);
  const resolved = spawn(process.execPath, [
    ...cliArgv(),
    'explain',
    '--config',
    cfg,
    '--as',
    'dev',
    'GET',
    'http://mixed.example/',
    '--resolve',
  ]);
  let out = '';
  resolved.stdout.on('data', (c) => (out += c));
  const code = await new Promise((r) => resolved.on('close', r));
  t.equal(code, 1);
  t.match(out, /93\.184\.216\.34 {2}public \(unicast\) {2}ok/);
  t.match(out, /10\.1\.2\.3 {2}private \(rfc1918\) {2}DENIED EGR_DENY_ADDRESS_PRIVATE/);
  t.match(out, /final: deny/);
  const denied = run([
    'explain',
    '--config',
    cfg,
    '--as',
    'dev',
    'POST',
    'http://never-resolved.example/',
    '--resolve',
  ]);
  t.match(denied.out, /not resolved/);
  t.equal(dns.asked('never-resolved.example'), 0);

  // As serve decides: the proxy's own addresses are refused (EGR_DENY_ADDRESS_SELF) even where an exception
  // opens loopback, and the config comes from SLUICE_CONFIG when --config is not given, as for serve.
  dns.set('self.example', { a: ['127.0.0.1'] });
  dns.set('localhost', { a: ['93.184.216.34'] });
  const selfCfg = file(
    'self.yaml',
    `listen: { http: "127.0.0.1:3128", socks5: null, admin: null }
dns: { servers: ["${dns.server}"] }
addressGuard: { allow: [{ cidr: 127.0.0.0/8, hosts: [self.example] }] }
`,
  );
  const explainAsync = (args: string[], env: NodeJS.ProcessEnv = process.env) =>
    new Promise<{ code: number | null; out: string }>((resolve) => {
      const child = spawn(process.execPath, [...cliArgv(), 'explain', ...args], { env });
      let out = '';
      child.stdout.on('data', (c) => (out += c));
      child.on('close', (code) => resolve({ code, out }));
    });
  const self = await explainAsync(['--as', 'dev', 'GET', 'http://self.example:8080/', '--resolve'], {
    ...process.env,
    SLUICE_CONFIG: selfCfg,
  });
  t.equal(self.code, 1, self.out);
  t.match(self.out, /127\.0\.0\.1 {2}loopback \(loopback\) {2}DENIED EGR_DENY_ADDRESS_SELF/);
  t.match(self.out, /code: EGR_DENY_ADDRESS_SELF\nfinal: deny/);
  const local = await explainAsync(['--config', selfCfg, '--as', 'dev', 'GET', 'http://LOCALHOST./', '--resolve']);
  t.equal(local.code, 1);
  t.match(local.out, /code: EGR_DENY_ADDRESS_LOOPBACK\nrule: specialUse\.localhost/);
  t.equal(dns.asked('localhost'), 0, 'a special-use name is never resolved, by explain either');
});

t.test('serve on the embedded default prints a ready HTTPS_PROXY line once', async (t) => {
  const cfg = file('dev.yaml', 'listen: { http: "127.0.0.1:0", socks5: null, admin: null }\n');
  const child: ChildProcess = spawn(process.execPath, [...cliArgv(), 'serve', '--config', cfg], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(() => child.kill('SIGKILL'));
  let err = '';
  let logs = '';
  child.stdout!.on('data', (c) => (logs += c));
  const line = await new Promise<string>((resolve) => {
    child.stderr!.on('data', (c) => {
      err += c;
      const m = /^HTTPS_PROXY=(http:\/\/dev:[^@\s]+@127\.0\.0\.1:\d+)$/m.exec(err);
      if (m) resolve(m[1]!);
    });
  });
  const url = new URL(line);
  const auth = `Basic ${Buffer.from(`${url.username}:${url.password}`).toString('base64')}`;
  const port = Number(url.port);
  // A loopback literal: this test runs outside the lo-only namespace, so it names nothing beyond lo.
  const literal = await viaProxy(port, { url: 'http://127.0.0.9:9/', auth });
  t.equal(codeOf(literal), 'EGR_DENY_IP_LITERAL', 'the generated credential works');
  const noAuth = await viaProxy(port, { url: 'http://example.com/', auth: null });
  t.equal(noAuth.status, 407);
  t.equal(err.match(/HTTPS_PROXY=/g)?.length, 1, 'printed once');
  t.notMatch(logs, new RegExp(url.password), 'never in the structured log');
  child.kill('SIGTERM');
  const code = await new Promise((r) => child.on('exit', r));
  t.equal(code, 0, 'SIGTERM exits 0');
});
