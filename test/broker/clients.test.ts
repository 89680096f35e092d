// Real clients with nothing but a handle in their environment (the README's run lifecycle): curl, Python
// requests, Node (undici's fetch) and a git push with the handle as the Basic password. The integration sees
// the real token; what comes back to the client holds the handle.
import { spawn, execFileSync } from 'node:child_process';
import { createServer as createHttpsServer } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { issueHandle } from '../../proxy/broker/handle.js';
import { deriveBrokerKeys } from '../../proxy/broker/keys.js';
import { sealSecret } from '../../proxy/broker/sealed.js';
import { isolate } from '../helpers/netns.js';
import { startSluice } from '../helpers/harness.js';
import { CREDENTIAL, RUN, TOKEN_KEY, buildBrokerWorld } from './world.js';
import { issueToken } from '../../proxy/auth/run-token.js';
import { REPO } from '../helpers/repo.js';

const GIT_SECRET = 'ghp_GitCanaryPushToken0123456789abcdEF';

function run(
  cmd: string,
  args: string[],
  env: Record<string, string>,
  cwd = REPO,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: env.HOME ?? '/tmp', ...env },
      cwd,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

const has = (cmd: string, args: string[]) => {
  try {
    execFileSync(cmd, args, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};

if (isolate(t, import.meta.url)) {
  const w = await buildBrokerWorld(t);
  const { canary } = w;

  // git: a second credential (Basic, the secret as the password) for a smart-HTTP server on git.test that
  // accepts a push only with the real token.
  const keys = deriveBrokerKeys(Buffer.from(canary.keyMaterial));
  const gitSealed = join(w.dir, 'git-token.sealed');
  writeFileSync(gitSealed, sealSecret(keys.seal, 'git-token', Buffer.from(GIT_SECRET)), { mode: 0o600 });
  const gitHandle = issueHandle(keys.handle, {
    run: RUN,
    identity: 'agent',
    credential: 'git-token',
    expS: Math.floor(Date.now() / 1000) + 3600,
  });
  const bare = join(w.dir, 'repo.git');
  execFileSync('git', ['init', '-q', '--bare', bare]);
  execFileSync('git', ['-C', bare, 'config', 'http.receivepack', 'true']);
  const gitAuth: string[] = [];
  const gitServer = createHttpsServer(
    { key: w.pki.keyPem, cert: w.pki.certPem },
    (req: IncomingMessage, res: ServerResponse) => {
      gitAuth.push(String(req.headers.authorization ?? ''));
      if (req.headers.authorization !== `Basic ${Buffer.from(`x-access-token:${GIT_SECRET}`).toString('base64')}`) {
        res.writeHead(401, { 'www-authenticate': 'Basic realm="git"' });
        return void res.end('auth required');
      }
      const url = new URL(req.url ?? '/', 'https://git.test');
      const cgi = spawn('git', ['http-backend'], {
        env: {
          PATH: process.env.PATH ?? '',
          GIT_PROJECT_ROOT: w.dir,
          GIT_HTTP_EXPORT_ALL: '1',
          REMOTE_USER: 'x-access-token',
          PATH_INFO: url.pathname,
          QUERY_STRING: url.search.slice(1),
          REQUEST_METHOD: req.method ?? 'GET',
          CONTENT_TYPE: String(req.headers['content-type'] ?? ''),
          HTTP_CONTENT_ENCODING: String(req.headers['content-encoding'] ?? ''),
          ...(req.headers['content-length'] ? { CONTENT_LENGTH: req.headers['content-length'] } : {}),
        },
        stdio: ['pipe', 'pipe', 'ignore'],
      });
      req.pipe(cgi.stdin);
      let head = Buffer.alloc(0);
      let done = false;
      cgi.stdout.on('data', (c: Buffer) => {
        if (done) return void res.write(c);
        head = Buffer.concat([head, c]);
        const end = head.indexOf('\r\n\r\n');
        if (end === -1) return;
        done = true;
        let status = 200;
        const headers: Record<string, string> = {};
        for (const line of head.subarray(0, end).toString('latin1').split('\r\n')) {
          const i = line.indexOf(':');
          const k = line.slice(0, i).trim();
          if (k.toLowerCase() === 'status') status = Number.parseInt(line.slice(i + 1), 10);
          else headers[k] = line.slice(i + 1).trim();
        }
        res.writeHead(status, headers);
        res.write(head.subarray(end + 4));
      });
      cgi.on('close', () => (done ? res.end() : (res.writeHead(500), res.end())));
    },
  );
  await new Promise<void>((r) => gitServer.listen(443, '127.0.0.6', r));
  t.teardown(
    () =>
      new Promise<void>((r) => {
        gitServer.closeAllConnections();
        gitServer.close(() => r());
      }),
  );
  w.dns.set('git.test', { a: ['127.0.0.6'] });

  const base = w.config();
  const h = await startSluice(t, {
    ...base,
    integrations: { ...(base.integrations as object), git: { hosts: ['git.test'] } },
    identities: { agent: { password: 'agent-password-123', integrations: ['api', 'other', 'git'] } },
    credentials: {
      ...(base.credentials as object),
      'git-token': {
        integration: 'git',
        inject: { type: 'basic', username: 'x-access-token' },
        source: { sealedFile: gitSealed },
      },
    },
  });
  const token = issueToken(Buffer.from(TOKEN_KEY), {
    sub: 'agent',
    ttlS: 600,
    nowS: Math.floor(Date.now() / 1000),
    run: RUN,
  });
  const proxy = `http://agent:${token}@127.0.0.1:${h.port}`;
  // All a workload gets: the proxy and a handle where its SDK looks for a token.
  const env = { HTTP_PROXY: proxy, http_proxy: proxy, API_TOKEN: canary.handle, HOME: w.dir };
  const upstreamSawSecret = () => w.api.requests.at(-1)?.headers.authorization === `Bearer ${canary.secret}`;
  const checkEcho = (t: Test, out: string) => {
    t.ok(upstreamSawSecret(), 'the integration saw the real token');
    t.ok(out.includes(canary.handle), 'the echo returned the handle');
    t.same(canary.leaks(out, ['handle', 'handleBody']), [], 'and no form of the secret');
  };

  t.test('curl -H "Authorization: Bearer $API_TOKEN"', { skip: !has('curl', ['--version']) }, async (t) => {
    const r = await run('sh', ['-c', 'curl -sS -H "Authorization: Bearer $API_TOKEN" http://api.test/echo'], env);
    t.equal(r.code, 0, r.stderr);
    checkEcho(t, r.stdout);
  });

  t.test(
    'Python requests with the token from the environment',
    { skip: !has('python3', ['-c', 'import requests']) },
    async (t) => {
      const script =
        "import os, requests\nr = requests.get('http://api.test/echo', headers={'Authorization': 'Bearer ' + os.environ['API_TOKEN']})\nprint(r.status_code)\nprint(r.text)";
      const r = await run('python3', ['-c', script], env);
      t.equal(r.code, 0, r.stderr);
      t.match(r.stdout, /^200\n/);
      checkEcho(t, r.stdout);
    },
  );

  t.test("Node: undici's fetch through EnvHttpProxyAgent (absolute-form for http://)", async (t) => {
    const script =
      "const u = await import('undici'); const agent = new u.EnvHttpProxyAgent({ proxyTunnel: false });" +
      " const r = await u.fetch('http://api.test/echo', { method: 'POST', body: JSON.stringify({ q: 'hi' }), headers: { authorization: `Bearer ${process.env.API_TOKEN}`, 'content-type': 'application/json' }, dispatcher: agent });" +
      ' console.log(r.status); console.log(await r.text());';
    const r = await run(process.execPath, ['--input-type=module', '-e', script], env);
    t.equal(r.code, 0, r.stderr);
    t.match(r.stdout, /^200\n/);
    checkEcho(t, r.stdout);
  });

  t.test(
    'git push over http:// with the handle as the Basic password',
    { skip: !has('git', ['--version']) },
    async (t) => {
      const work = join(w.dir, 'work');
      mkdirSync(work);
      const g = (...args: string[]) =>
        run('git', args, { ...env, GIT_TERMINAL_PROMPT: '0', GIT_CONFIG_NOSYSTEM: '1' }, work);
      await g('init', '-q');
      writeFileSync(join(work, 'README'), 'pushed through Sluice\n');
      await g('add', 'README');
      await g('-c', 'user.name=t', '-c', 'user.email=t@example.invalid', 'commit', '-qm', 'first');
      const r = await g('push', `http://x-access-token:${gitHandle}@git.test/repo.git`, 'HEAD:refs/heads/main');
      t.equal(r.code, 0, r.stderr);
      t.equal(
        execFileSync('git', ['-C', bare, 'log', '--format=%s', 'main']).toString().trim(),
        'first',
        'the push landed',
      );
      t.ok(
        gitAuth.some((a) => a === `Basic ${Buffer.from(`x-access-token:${GIT_SECRET}`).toString('base64')}`),
        'the server saw the real token',
      );
      t.notOk(
        gitAuth.some((a) => a.includes(Buffer.from(gitHandle).toString('base64').slice(0, 20))),
        'never the handle',
      );
      t.notOk((r.stdout + r.stderr).includes(GIT_SECRET));
    },
  );

  t.test('nothing leaked into the logs', async (t) => {
    t.same(canary.leaks(h.logText()), []);
    t.notOk(h.logText().includes(GIT_SECRET) || h.logText().includes(gitHandle));
  });
}
