// `npm run bundle`: the compiled CLI (dist/, from `npm run build`) and every package it imports in one CommonJS
// file, dist/sluice.cjs, run as `node dist/sluice.cjs serve …`. One file read and compiled instead of ~300
// module resolutions and reads: a shorter time to ready for a sidecar. esbuild comes with tsx (a devDependency);
// nothing is added to Sluice's dependencies. Modules loaded on first use stay so: esbuild wraps each bundled
// module in a function that runs on its first require, including the ones loaded with createRequire below.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(repo, 'dist');
const entry = join(dist, 'proxy/cli.js');
if (!existsSync(entry)) {
  process.stderr.write('bundle: dist/proxy/cli.js is missing; run `npm run build` first\n');
  process.exit(1);
}

// createRequire(import.meta.url)(literal) → require(literal), so that esbuild sees, bundles and keeps lazy what
// the dialer (undici's Agent), the certificate module (@peculiar/x509) and the config validator (its precompiled
// CommonJS file, ajv) load that way.
const createRequireToRequire = {
  name: 'create-require',
  setup(b) {
    b.onLoad({ filter: /[/\\]dist[/\\].*\.js$/ }, async (a) => {
      const source = await readFile(a.path, 'utf8');
      if (!source.includes('createRequire(import.meta.url)')) return undefined;
      return {
        contents: source
          .replace(/const require = createRequire\(import\.meta\.url\);/g, '')
          .replace(/createRequire\(import\.meta\.url\)/g, 'require'),
        loader: 'js',
      };
    });
  },
};

await build({
  entryPoints: [entry],
  outfile: join(dist, 'sluice.cjs'),
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  // The version lookup walks up from its own file to package.json: from dist/sluice.cjs that is the repository's.
  banner: { js: 'var __sluice_import_meta_url = require("node:url").pathToFileURL(__filename).href;' },
  define: { 'import.meta.url': '__sluice_import_meta_url' },
  plugins: [createRequireToRequire],
  logLevel: 'warning',
});
process.stderr.write('bundle: wrote dist/sluice.cjs\n');
