// `npm test`, before tap: every check that does not need the tests to run, as two lanes at once (the machine has
// 2 cores and ESLint's type-aware rules are as slow as tsc):
//   A: tsc -p tsconfig.test.json (type-checks all, emits the build and dist/test) → the precompiled validators
//      (what `npm run build` adds after tsc) → prettier --check
//   B: eslint
// Each lane's output is printed whole when it ends; the exit status is 1 when either failed.
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const bin = (name) => `${root}node_modules/.bin/${name}`;

// A test renamed or deleted in test/ must not keep running from an old dist/test.
rmSync(`${root}dist/test`, { recursive: true, force: true });

function step(label, cmd, args) {
  return new Promise((done) => {
    const started = Date.now();
    const child = spawn(cmd, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('error', (e) => done({ label, ok: false, out: `${out}${e.message}\n`, ms: Date.now() - started }));
    child.on('close', (code, signal) =>
      done({ label, ok: code === 0, out: signal ? `${out}killed by ${signal}\n` : out, ms: Date.now() - started }),
    );
  });
}

async function lane(name, steps) {
  const results = [];
  for (const [label, cmd, args] of steps) {
    const r = await step(label, cmd, args);
    results.push(r);
    if (!r.ok) break;
  }
  const ok = results.every((r) => r.ok) && results.length === steps.length;
  let text = '';
  for (const r of results) {
    text += `test-prepare ${name}: ${r.label} ${r.ok ? 'ok' : 'FAILED'} (${(r.ms / 1000).toFixed(1)} s)\n`;
    if (!r.ok || r.out.trim()) text += r.out.endsWith('\n') || !r.out ? r.out : `${r.out}\n`;
  }
  process.stdout.write(text);
  return ok;
}

const started = Date.now();
const [a, b] = await Promise.all([
  lane('A', [
    ['tsc -p tsconfig.test.json', bin('tsc'), ['-p', 'tsconfig.test.json']],
    ['precompile validators', process.execPath, ['scripts/precompile-validators.mjs']],
    ['prettier --check .', bin('prettier'), ['--check', '--log-level=warn', '.']],
  ]),
  lane('B', [['eslint .', bin('eslint'), ['.']]]),
]);
const took = ((Date.now() - started) / 1000).toFixed(1);
if (!a || !b) {
  process.stdout.write(`test-prepare: FAILED after ${took} s; the tests did not run\n`);
  process.exit(1);
}
process.stdout.write(`test-prepare: ok in ${took} s\n`);
