// What the stand-in registries and git host serve, built at test time from nothing (never downloaded):
// an npm tarball made by `npm pack`, a wheel made with Python's zipfile, a bare git repository with one commit.
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

export const PKG = { name: 'sluice-e2e-pkg', version: '1.0.0', marker: 'hello from the stand-in registry' } as const;

/** The environment for building artifacts: no proxy, no user config, nothing from the test process. */
export function bareEnv(home: string): Record<string, string> {
  return {
    PATH: `${dirname(process.execPath)}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
    HOME: home,
    LANG: 'C.UTF-8',
  };
}

export interface NpmTarball {
  readonly filename: string;
  readonly bytes: Buffer;
  /** Subresource Integrity, as npm lockfiles record it. */
  readonly integrity: string;
  readonly shasum: string;
}

export function packNpm(): NpmTarball {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-e2e-npm-'));
  const src = join(dir, 'src');
  mkdirSync(src);
  writeFileSync(
    join(src, 'package.json'),
    JSON.stringify({ name: PKG.name, version: PKG.version, main: 'index.js', license: 'MIT' }),
  );
  writeFileSync(join(src, 'index.js'), `module.exports = ${JSON.stringify(PKG.marker)};\n`);
  const out = execFileSync('npm', ['pack', '--json', '--pack-destination', dir], {
    cwd: src,
    env: bareEnv(dir),
    encoding: 'utf8',
  });
  const [meta] = JSON.parse(out) as [{ filename: string }];
  const bytes = readFileSync(join(dir, meta.filename));
  return {
    filename: meta.filename,
    bytes,
    integrity: `sha512-${createHash('sha512').update(bytes).digest('base64')}`,
    shasum: createHash('sha1').update(bytes).digest('hex'),
  };
}

export interface Wheel {
  readonly filename: string;
  readonly bytes: Buffer;
  readonly sha256: string;
}

// A minimal, valid pure-Python wheel (PEP 427): package, METADATA, WHEEL and a RECORD with real hashes.
const WHEEL_SCRIPT = `
import base64, hashlib, sys, zipfile
name, version, marker, out = sys.argv[1:5]
mod = name.replace('-', '_')
di = f'{mod}-{version}.dist-info'
files = {
  f'{mod}/__init__.py': f'MARKER = {marker!r}\\n',
  f'{di}/METADATA': f'Metadata-Version: 2.1\\nName: {name}\\nVersion: {version}\\n',
  f'{di}/WHEEL': 'Wheel-Version: 1.0\\nGenerator: sluice-e2e\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n',
}
def h(data):
  return 'sha256=' + base64.urlsafe_b64encode(hashlib.sha256(data.encode()).digest()).rstrip(b'=').decode()
record = ''.join(f'{p},{h(c)},{len(c.encode())}\\n' for p, c in files.items()) + f'{di}/RECORD,,\\n'
with zipfile.ZipFile(out, 'w', zipfile.ZIP_DEFLATED) as z:
  for p, c in files.items():
    z.writestr(p, c)
  z.writestr(f'{di}/RECORD', record)
`;

export function buildWheel(python: string): Wheel {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-e2e-whl-'));
  const filename = `${PKG.name.replace(/-/g, '_')}-${PKG.version}-py3-none-any.whl`;
  execFileSync(python, ['-c', WHEEL_SCRIPT, PKG.name, PKG.version, PKG.marker, join(dir, filename)], {
    env: bareEnv(dir),
  });
  const bytes = readFileSync(join(dir, filename));
  return { filename, bytes, sha256: createHash('sha256').update(bytes).digest('hex') };
}

export interface GitRepo {
  /** Directory holding `<name>.git`, for GIT_PROJECT_ROOT. */
  readonly root: string;
  readonly name: string;
  readonly head: string;
}

export function buildGitRepo(): GitRepo {
  const root = mkdtempSync(join(tmpdir(), 'sluice-e2e-git-'));
  const env = {
    ...bareEnv(root),
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_AUTHOR_NAME: 'e2e',
    GIT_AUTHOR_EMAIL: 'e2e@example.invalid',
    GIT_COMMITTER_NAME: 'e2e',
    GIT_COMMITTER_EMAIL: 'e2e@example.invalid',
  };
  const git = (cwd: string, ...args: string[]) =>
    execFileSync('git', args, { cwd, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  const work = join(root, 'work');
  mkdirSync(work);
  git(work, 'init', '-q', '-b', 'main');
  writeFileSync(join(work, 'README'), `${PKG.marker}\n`);
  git(work, 'add', 'README');
  git(work, 'commit', '-q', '-m', 'one commit');
  git(root, 'clone', '-q', '--bare', work, 'tiny.git');
  return { root, name: 'tiny.git', head: git(work, 'rev-parse', 'HEAD') };
}
