// `npm run fuzz`: every target in targets.ts, FUZZ_RUNS inputs in total (default 1,000,000) shared by weight,
// from one seed (FUZZ_SEED, else random; printed first). A failure prints fast-check's shrunk counterexample,
// the seed and the replay path, and the exit status is 1. FUZZ_TARGET=<name>[,<name>] runs only those.
import fc from 'fast-check';
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
const weights = targets.reduce((a, t) => a + t.weight, 0);

console.log(`fuzz: seed ${seed}, ${total} runs over ${targets.length} targets (reproduce: FUZZ_SEED=${seed} FUZZ_RUNS=${total} npm run fuzz)`);
let runs = 0;
let failed = 0;
for (const t of targets) {
  const numRuns = Math.max(1, Math.round((total * t.weight) / weights));
  const started = process.hrtime.bigint();
  const property = await t.property();
  let details: fc.RunDetails<unknown>;
  try {
    details = await fc.check(property, { seed, numRuns });
  } catch (err) {
    // A throw outside the predicate (in a generator) is a bug of the harness, not a counterexample.
    console.log(`FAIL ${t.name}: the harness threw (seed ${seed})\n${String((err as Error)?.stack ?? err)}`);
    failed++;
    await t.close?.();
    continue;
  }
  await t.close?.();
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  runs += details.numRuns;
  if (details.failed) {
    failed++;
    console.log(`FAIL ${t.name} after ${details.numRuns} runs (seed ${seed}; FUZZ_SEED=${seed} FUZZ_RUNS=${total} FUZZ_TARGET=${t.name} npm run fuzz)`);
    console.log(fc.defaultReportMessage(details));
    // The assertion that failed on the shrunk counterexample (defaultReportMessage names only the value).
    console.log(String((details.errorInstance as Error | undefined)?.stack ?? details.errorInstance));
  } else {
    console.log(`ok   ${t.name}: ${details.numRuns} runs in ${(ms / 1000).toFixed(1)} s${t.stats ? ` (${t.stats()})` : ''}`);
  }
}
console.log(`fuzz: ${runs} inputs, ${failed} failing targets, seed ${seed}`);
process.exit(failed ? 1 : 0);
