// git over smart HTTP through Sluice: a clone from a git host listed in `registries` tunnels through
// CONNECT; a clone from any other host is refused before anything connects. git (libcurl) reads
// https_proxy/HTTPS_PROXY and GIT_SSL_CAINFO; it hides the proxy's response unless GIT_TRACE_CURL is set.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { buildGitRepo, PKG } from './lib/artifacts.js';
import { CA_VARIABLE, isolateClients, requireTool, show, startClients } from './lib/clients.js';

if (isolateClients(t, import.meta.url) && requireTool(t, 'git', 'git', ['--version'])) {
  const repo = buildGitRepo();
  const c = await startClients(t, { git: repo });
  const home = c.scratch();
  const env = c.env(home, {
    [CA_VARIABLE.git]: c.world.pki.caFile,
    GIT_TERMINAL_PROMPT: '0',
    GIT_CONFIG_NOSYSTEM: '1',
  });
  const git = (...args: string[]) => c.run('git', args, { env, cwd: home });

  t.test('git clone over https from the registry-listed git host', async (t) => {
    const r = await git('clone', `https://git.test/${repo.name}`, 'cloned');
    t.equal(r.code, 0, r.output);
    t.equal(readFileSync(join(home, 'cloned', 'README'), 'utf8'), `${PKG.marker}\n`);
    const head = await c.run('git', ['-C', join(home, 'cloned'), 'rev-parse', 'HEAD'], { env });
    t.equal(head.stdout.trim(), repo.head, 'the commit the stand-in served');
    t.ok(
      c.world.git.requests.some((q) => q.method === 'POST' && q.url.endsWith('/git-upload-pack')),
      'smart HTTP, not dumb',
    );
    t.match(await c.decision('git.test', null), { verdict: 'allow', method: 'CONNECT', rule: 'registries' });
  });

  t.test('a clone from a host that is not a registry is refused', async (t) => {
    const r = await git('clone', `https://forge.test/${repo.name}`, 'denied');
    show(t, 'git clone https://forge.test/tiny.git', r);
    t.equal(r.code, 128);
    t.match(
      r.stderr,
      /fatal: unable to access 'https:\/\/forge\.test\/tiny\.git\/': CONNECT tunnel failed, response 403/,
    );
    t.notMatch(r.stderr, /EGR_/, 'git does not show the proxy response');
    const traced = await c.run('git', ['clone', `https://forge.test/${repo.name}`, 'denied-traced'], {
      env: { ...env, GIT_TRACE_CURL: '1', GIT_TRACE_CURL_NO_DATA: '1' },
      cwd: home,
    });
    show(t, 'GIT_TRACE_CURL=1 git clone https://forge.test/tiny.git', traced);
    t.match(
      traced.stderr,
      /<= Recv header: Proxy-Status: sluice; error=http_request_denied; details="EGR_DENY_TUNNEL"/,
    );
    t.notMatch(
      traced.stderr,
      /Proxy-Authorization: Basic [A-Za-z0-9+/=]{8}/,
      'git redacts the proxy credential in its trace',
    );
    t.equal(c.world.forge.connections, 0);
    t.match(await c.decision('forge.test', 'EGR_DENY_TUNNEL'), { verdict: 'deny', method: 'CONNECT' });
  });

  t.test('GIT_HTTP_PROXY_AUTHMETHOD=basic sends the credential up front, saving a 407 per connection', async (t) => {
    const challenges = () => c.sluice.decisions().filter((d) => d.code === 'EGR_AUTH_REQUIRED').length;
    const before = challenges();
    const lazy = await git('ls-remote', `https://git.test/${repo.name}`);
    t.equal(lazy.code, 0, lazy.output);
    t.ok(challenges() > before, 'by default git (libcurl with CURLAUTH_ANY) first asks without credentials');
    const middle = challenges();
    const eager = await c.run('git', ['ls-remote', `https://git.test/${repo.name}`], {
      env: { ...env, GIT_HTTP_PROXY_AUTHMETHOD: 'basic' },
      cwd: home,
    });
    t.equal(eager.code, 0, eager.output);
    t.equal(challenges(), middle, 'no 407 this time');
  });

  t.test('trap: a clone over http:// is a write (git-upload-pack is a POST)', async (t) => {
    const r = await git('clone', `http://git.test/${repo.name}`, 'plain');
    show(t, 'git clone http://git.test/tiny.git', r);
    t.equal(r.code, 128);
    t.match(await c.decision('git.test', 'EGR_DENY_WRITE'), { verdict: 'deny', method: 'POST' });
  });
}
