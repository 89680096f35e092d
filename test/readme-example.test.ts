// The README's Configuration example runs as written: `sluice check` names exactly its placeholder and the
// files it needs; the README's own commands make those files; then `check` passes and `serve` starts on it.
// Paths under /run are moved into a temporary folder and fixed ports become port 0, nothing else changes.
// In a namespace holding only lo: the example's containment probe targets a documentation address.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { cliArgv } from './helpers/cli.js';
import { isolate } from './helpers/netns.js';
import { repoPath } from './helpers/repo.js';

const README = readFileSync(repoPath('README.md'), 'utf8');

/** The fenced blocks of `lang` that follow `marker` in the README, in order. */
function blocksAfter(marker: string, lang: string, count: number): string[] {
  const from = README.indexOf(marker);
  if (from === -1) throw new Error(`README lost the marker "${marker}"`);
  const out: string[] = [];
  const re = new RegExp('```' + lang + '\\n([\\s\\S]*?)```', 'g');
  re.lastIndex = from;
  for (let m = re.exec(README); m && out.length < count; m = re.exec(README)) out.push(m[1]!);
  return out;
}

if (isolate(t, import.meta.url)) {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-readme-'));
  const relocate = (text: string) => text.replaceAll('/run/', `${dir}/run/`);
  const [commands] = blocksAfter('The example below runs as written', 'sh', 1);
  const [yaml] = blocksAfter('The example below runs as written', 'yaml', 1);
  const config = relocate(yaml!).replace(/127\.0\.0\.1:\d+/g, '127.0.0.1:0');
  const cfg = join(dir, 'sluice.yaml');
  const run = (args: string[], input?: string) => {
    const r = spawnSync(process.execPath, [...cliArgv(), ...args], { input, encoding: 'utf8', timeout: 60_000 });
    return { code: r.status, out: r.stdout, err: r.stderr };
  };

  t.test('as written, check names the placeholder and each missing file, with hints', async (t) => {
    writeFileSync(cfg, config);
    const r = run(['check', cfg]);
    t.equal(r.code, 1);
    const errors = r.out.split('\n').filter((l) => l.startsWith('error: '));
    t.same(
      errors.map((l) => l.split(':').slice(0, 2).join(':')),
      [
        'error: /identities/agent/passwordHash',
        'error: /tokens/keyFile',
        'error: /admin/tokenFile',
        'error: /killSwitch/file',
      ],
      r.out,
    );
    for (const l of errors) t.match(l, /\(hint: .+\)$/, 'each with a hint');
  });

  t.test("the README's commands make the files; with the hash pasted in, check passes and serve starts", async (t) => {
    // The commands as written (paths relocated), except that `npx sluice` is this build's CLI.
    const sh = relocate(commands!).replace(/npx sluice/g, `"${process.execPath}" "${cliArgv()[0]}"`);
    const made = spawnSync('sh', ['-ec', sh], {
      env: { ...process.env, AGENT_PASSWORD: 'correct horse battery staple' },
      encoding: 'utf8',
      timeout: 60_000,
    });
    t.equal(made.status, 0, made.stderr);
    const hash = made.stdout.trim().split('\n').at(-1)!;
    t.match(hash, /^scrypt\$/);
    writeFileSync(cfg, config.replace('<output of sluice hash-password>', hash));
    const ok = run(['check', cfg]);
    t.equal(ok.code, 0, ok.out);
    t.match(ok.out, /sluice\.yaml: ok/);

    const child: ChildProcess = spawn(process.execPath, [...cliArgv(), 'serve', '--config', cfg], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    t.teardown(() => child.kill('SIGKILL'));
    let err = '';
    child.stdout!.resume();
    await new Promise<void>((resolve, reject) => {
      child.stderr!.on('data', (c) => {
        err += c;
        if (/Sluice http listening on 127\.0\.0\.1:\d+/.test(err)) resolve();
      });
      child.on('exit', (code) => reject(new Error(`serve exited ${code}: ${err}`)));
    });
    t.match(err, /Sluice admin listening/);
    child.kill('SIGTERM');
    t.equal(await new Promise((r) => child.once('exit', r)), 0, 'and stops cleanly');
  });
}
