// `npm run fuzz`: every target in targets.ts, FUZZ_RUNS inputs in total (default 1,000,000) shared by weight,
// from one seed (FUZZ_SEED, else random; printed first). FUZZ_TARGET=<name>[,<name>] runs only those (with all
// the runs). Exit status 1 when any target fails; runner.ts prints the shrunk counterexample and the seed.
import { runTargets } from './runner.js';
import { TARGETS } from './targets.js';

const env = process.env;
const seed = env.FUZZ_SEED ? Number(env.FUZZ_SEED) : (Date.now() ^ (Math.random() * 0x7fffffff)) | 0;
const total = env.FUZZ_RUNS ? Number(env.FUZZ_RUNS) : 1_000_000;
if (!Number.isInteger(seed) || !Number.isInteger(total) || total < 1) {
  console.error('FUZZ_SEED must be an integer and FUZZ_RUNS a positive integer');
  process.exit(2);
}
const only = env.FUZZ_TARGET ? new Set(env.FUZZ_TARGET.split(',')) : null;
const targets = TARGETS.filter((t) => !only || only.has(t.name));
if (targets.length === 0) {
  console.error(`no target named ${env.FUZZ_TARGET}; targets: ${TARGETS.map((t) => t.name).join(', ')}`);
  process.exit(2);
}
const outcome = await runTargets(targets, seed, total, (line) => console.log(line));
process.exit(outcome.failed.length ? 1 : 0);
