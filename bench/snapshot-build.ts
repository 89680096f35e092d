// Builds the V8 startup snapshot for the start-up experiment (see snapshot-entry.ts): bundles the compiled
// snapshot entry and all it imports into one CommonJS script with esbuild, then runs
// `node --snapshot-blob BLOB --build-snapshot BUNDLE`. esbuild is not a dependency of Sluice: the bench uses the
// one in $BENCH_ESBUILD (a directory holding node_modules/esbuild) or node_modules, and reports why not otherwise.
// The product is not changed; the bundle rewrites one line of it (dialer.js loads undici's Agent through
// createRequire(import.meta.url), which a bundle cannot follow) into a plain require that esbuild bundles.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureDir } from './env.js';

const distDir = fileURLToPath(new URL('..', import.meta.url));
const repo = join(distDir, '..');

interface EsbuildApi {
  build(opts: Record<string, unknown>): Promise<unknown>;
}

function findEsbuild(): EsbuildApi | null {
  for (const base of [process.env.BENCH_ESBUILD, repo].filter((x): x is string => !!x)) {
    const pkg = join(base, 'node_modules/esbuild/package.json');
    if (existsSync(pkg)) return createRequire(pkg)('esbuild') as EsbuildApi;
  }
  return null;
}

/** Returns the snapshot blob's path, or why it could not be built. */
export async function buildSnapshot(workdir: string): Promise<{ blob: string } | { notBuilt: string }> {
  const esbuild = findEsbuild();
  if (!esbuild)
    return {
      notBuilt:
        'needs a bundler: set BENCH_ESBUILD to a directory with node_modules/esbuild (Sluice is ESM; a Node 20–24 startup snapshot holds one CommonJS script, user-land modules bundled in)',
    };
  const dir = ensureDir(join(workdir, 'snapshot'));
  const bundle = join(dir, 'sluice-bundle.cjs');
  const blob = join(dir, 'sluice.blob');
  try {
    await esbuild.build({
      entryPoints: [join(distDir, 'bench/snapshot-entry.js')],
      bundle: true,
      platform: 'node',
      format: 'cjs',
      target: 'node20',
      outfile: bundle,
      logLevel: 'error',
      nodePaths: [join(repo, 'node_modules')],
      plugins: [
        {
          name: 'dialer-require',
          setup(build: {
            onLoad(o: { filter: RegExp }, cb: (a: { path: string }) => { contents: string; loader: string }): void;
          }) {
            // Every createRequire(import.meta.url)(literal) (dialer, x509, config validator) as scripts/bundle.mjs.
            build.onLoad({ filter: /[/\\]dist[/\\](proxy|firewall)[/\\].*\.js$/ }, (a) => ({
              contents: readFileSync(a.path, 'utf8')
                .replace(/const require = createRequire\(import\.meta\.url\);/g, '')
                .replace(/createRequire\(import\.meta\.url\)/g, 'require'),
              loader: 'js',
            }));
          },
        },
      ],
    });
    execFileSync(process.execPath, ['--snapshot-blob', blob, '--build-snapshot', bundle], {
      cwd: dir,
      stdio: ['ignore', 'ignore', 'pipe'],
      timeout: 120_000,
    });
    return { blob };
  } catch (e) {
    const lines = String((e as { stderr?: Buffer }).stderr ?? (e as Error).message)
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean);
    const error = lines.find((l) => /Error\b/.test(l)) ?? lines[0] ?? 'unknown error';
    const at = lines.find((l) => l.startsWith('at ') && l.includes('node:')) ?? '';
    return { notBuilt: `node --build-snapshot ${process.version} failed: ${error}${at ? ` (${at})` : ''}` };
  }
}
