// `sluice secret seal|check` and `sluice handle issue|revoke|prune`, run as real processes.
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { deriveBrokerKeys } from '../../proxy/broker/keys.js';
import { openHandle } from '../../proxy/broker/handle.js';
import { openSealed } from '../../proxy/broker/sealed.js';
import { parseRevocations, revocationLine } from '../../proxy/broker/revocations.js';
import { brokerCanary } from '../helpers/canary.js';
import { cliArgv } from '../helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'sluice-broker-cli-'));
const path = (name: string) => join(dir, name);
const canary = brokerCanary({ credential: 'github-api', run: 'job-1' });
writeFileSync(path('broker.key'), `${canary.keyMaterial}\n`, { mode: 0o600 });
const keys = deriveBrokerKeys(Buffer.from(canary.keyMaterial));

const config = (name: string, extra = '') => {
  const p = path(name);
  writeFileSync(
    p,
    `
integrations:
  github: { hosts: [api.github.com, github.com] }
identities:
  agent: { password: not-a-secret-1, integrations: [github] }
  other: { password: not-a-secret-2 }
secrets:
  keyFile: ${path('broker.key')}
  handles: { maxTtl: 2h, revocationFile: ${path('revoked.jsonl')} }
credentials:
  github-api:
    integration: github
    inject: { type: header, name: Authorization, template: "Bearer {secret}" }
    source: { sealedFile: ${path('github-api.sealed')} }
  github-git:
    integration: github
    inject: { type: basic, username: x-access-token }
    source: { file: ${path('github-git.token')} }
${extra}`,
  );
  return p;
};
const CONFIG = config('sluice.yaml');
const all: string[] = [];
const run = (args: string[], input?: string, env: Record<string, string> = {}) => {
  const r = spawnSync(process.execPath, [...cliArgv(), ...args], {
    input,
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, ...env },
  });
  all.push(`${args.join(' ')}\n${r.stdout}\n${r.stderr}`);
  return { code: r.status, out: r.stdout, err: r.stderr };
};

t.test('secret seal: stdin in, a blob out (stdout or a 0600 file), never the secret', async (t) => {
  const out = run(['secret', 'seal', '--config', CONFIG, '--credential', 'github-api'], `${canary.secret}\n`);
  t.equal(out.code, 0, out.err);
  const blob = out.out.trim();
  t.match(blob, /^sluice-sealed\.v1\./);
  t.same(openSealed(keys.seal, 'github-api', blob), { ok: true, secret: Buffer.from(canary.secret) });
  t.notOk(openSealed(keys.seal, 'github-git', blob).ok, 'bound to its credential');
  const file = run(
    ['secret', 'seal', '--config', CONFIG, '--credential', 'github-api', '--out', path('github-api.sealed')],
    canary.secret,
  );
  t.equal(file.code, 0, file.err);
  t.equal(file.out, '', 'nothing on stdout with --out');
  t.equal(statSync(path('github-api.sealed')).mode & 0o777, 0o600);
  t.ok(openSealed(keys.seal, 'github-api', readFileSync(path('github-api.sealed'), 'utf8')).ok);
  t.match(run(['secret', 'seal', '--config', CONFIG, '--credential', 'gitlab'], canary.secret), {
    code: 2,
    err: /unknown credential "gitlab".*github-api, github-git/,
  });
  t.match(run(['secret', 'seal', '--config', CONFIG, '--credential', 'github-api'], 'short\n'), {
    code: 2,
    err: /at least 12/,
  });
  t.match(run(['secret', 'seal', '--config', CONFIG, '--credential', 'github-api'], 'has a\ttab in the middle of it'), {
    code: 2,
    err: /printable/,
  });
  t.match(run(['secret', 'seal', '--config', CONFIG]), { code: 2, err: /usage: sluice secret seal/ });
  writeFileSync(path('weak.key'), 'changeme-changeme-changeme-changeme');
  const weak = config('weak.yaml');
  writeFileSync(weak, readFileSync(weak, 'utf8').replace(path('broker.key'), path('weak.key')));
  t.match(run(['secret', 'seal', '--config', weak, '--credential', 'github-api'], canary.secret), {
    code: 2,
    err: /placeholder/,
  });
});

t.test('secret check: every credential decrypts or reads; exit 1 otherwise', async (t) => {
  writeFileSync(path('github-git.token'), 'ghp_CanaryGitToken0123456789abcdefABCD\n', { mode: 0o600 });
  const ok = run(['secret', 'check', '--config', CONFIG]);
  t.equal(ok.code, 0, ok.out + ok.err);
  t.match(ok.out, /credential github-api: ok\ncredential github-git: ok\n.*every credential ok/);
  chmodSync(path('github-git.token'), 0o644);
  const dev = run(['secret', 'check', '--config', CONFIG]);
  t.equal(dev.code, 0, 'a world-readable secret file is a warning in development');
  t.match(dev.out, /warning: \/credentials\/github-git\/source: .*readable by every user/);
  t.match(
    run(['secret', 'check', '--config', CONFIG], undefined, { SLUICE_ENV: 'production' }),
    { code: 1, out: /credential github-git: FAILED/ },
    'and an error in production',
  );
  chmodSync(path('github-git.token'), 0o600);
  const moved = config('moved.yaml');
  writeFileSync(
    moved,
    readFileSync(moved, 'utf8').replace(
      `file: ${path('github-git.token')}`,
      `sealedFile: ${path('github-api.sealed')}`,
    ),
  );
  const bad = run(['secret', 'check', '--config', moved]);
  t.equal(bad.code, 1);
  t.match(bad.out, /error: \/credentials\/github-git\/source: .* does not decrypt for credential "github-git"/);
  t.match(bad.out, /credential github-api: ok\ncredential github-git: FAILED/);
});

t.test('handle issue: a handle on stdout, bound to run, identity, credential and TTL', async (t) => {
  const before = Math.floor(Date.now() / 1000);
  const r = run([
    'handle',
    'issue',
    '--config',
    CONFIG,
    '--run',
    'job-1',
    '--identity',
    'agent',
    '--credential',
    'github-api',
    '--ttl',
    '30m',
  ]);
  const after = Math.floor(Date.now() / 1000);
  t.equal(r.code, 0, r.err);
  const handle = r.out.trim();
  t.match(handle, /^sluice_h1_[A-Za-z0-9_-]+$/);
  t.equal(r.out.split('\n').length, 2, 'stdout is the handle alone');
  const opened = openHandle(keys.handle, handle);
  t.match(opened, { ok: true, claims: { run: 'job-1', identity: 'agent', credential: 'github-api' } });
  if (opened.ok)
    t.ok(opened.claims.expS >= before + 1800 && opened.claims.expS <= after + 1800, 'expires 30 minutes after issue');
  t.match(r.err, /handle [0-9a-f]{12} for credential github-api/);
  t.notMatch(r.err, /sluice_h1_/, 'stderr names the handle by id only');
  const fails: [string[], RegExp][] = [
    [
      ['--run', 'job-1', '--identity', 'agent', '--credential', 'github-api', '--ttl', '3h'],
      /exceeds secrets.handles.maxTtl/,
    ],
    [['--run', 'job-1', '--identity', 'agent', '--credential', 'nope', '--ttl', '1m'], /unknown credential/],
    [
      ['--run', 'job-1', '--identity', 'other', '--credential', 'github-api', '--ttl', '1m'],
      /not granted integration "github"/,
    ],
    [['--run', 'job 1', '--identity', 'agent', '--credential', 'github-api', '--ttl', '1m'], /not a run id/],
    [['--run', 'job-1', '--identity', 'agent', '--credential', 'github-api', '--ttl', 'soon'], /not a duration/],
    [['--run', 'job-1'], /usage: sluice handle issue/],
  ];
  for (const [args, err] of fails)
    t.match(run(['handle', 'issue', '--config', CONFIG, ...args]), { code: 2, err }, args.join(' '));
});

t.test('handle revoke and prune: the list every replica polls', async (t) => {
  const r = run(['handle', 'revoke', '--config', CONFIG, '--run', 'job-1']);
  t.equal(r.code, 0, r.err);
  t.match(r.out, /run job-1 revoked/);
  const list = parseRevocations(readFileSync(path('revoked.jsonl')), Math.floor(Date.now() / 1000));
  t.ok(
    list.ok && (list.entries.get('job-1') ?? 0) > Date.now() / 1000 + 2 * 3600,
    'kept past every handle the run could hold',
  );
  t.match(
    run([
      'handle',
      'issue',
      '--config',
      CONFIG,
      '--run',
      'job-1',
      '--identity',
      'agent',
      '--credential',
      'github-api',
      '--ttl',
      '1m',
    ]),
    { code: 2, err: /has been revoked/ },
    'a revoked run gets no new handle',
  );
  t.equal(run(['handle', 'revoke', '--config', CONFIG, '--run', 'job-2']).code, 0);
  writeFileSync(path('revoked.jsonl'), readFileSync(path('revoked.jsonl'), 'utf8') + revocationLine('long-gone', 1000));
  const pruned = run(['handle', 'prune', '--config', CONFIG]);
  t.equal(pruned.code, 0, pruned.err);
  t.match(pruned.out, /2 revocation\(s\) in force/);
  t.notMatch(readFileSync(path('revoked.jsonl'), 'utf8'), /long-gone/);
  writeFileSync(path('revoked.jsonl'), 'garbage\n');
  t.match(
    run([
      'handle',
      'issue',
      '--config',
      CONFIG,
      '--run',
      'job-3',
      '--identity',
      'agent',
      '--credential',
      'github-api',
      '--ttl',
      '1m',
    ]),
    { code: 2, err: /revocation list cannot be read/ },
    'an unreadable list: no handle is issued',
  );
  t.match(run(['handle', 'prune', '--config', CONFIG]), { code: 2, err: /line 1 is not JSON/ });
  const noList = config('nolist.yaml');
  writeFileSync(noList, readFileSync(noList, 'utf8').replace(/, revocationFile: [^ }]+/, ''));
  t.match(run(['handle', 'revoke', '--config', noList, '--run', 'job-1']), {
    code: 2,
    err: /revocationFile is not set/,
  });
  t.ok(existsSync(path('revoked.jsonl')));
  t.match(run(['handle']), { code: 2, err: /usage: sluice handle issue/ });
});

t.test('check, help and the canary: no command printed a secret, a key or a sealed blob', async (t) => {
  t.match(run(['check', CONFIG]), { code: 0, out: /ok/ });
  t.match(run(['help']).out, /secret seal --config FILE --credential NAME/);
  const text = all.join('\n');
  const leaks = canary.leaks(text.replace(/^sluice-sealed\.v1\.\S+$/m, ''), ['handle']);
  t.same(leaks, [], 'no canary form in any output (the one blob printed by `secret seal` aside)');
  t.notMatch(text, /ghp_CanaryGitToken/, 'nor the mounted secret');
});
