// The seeded slice of `npm run fuzz` that runs in `npm test`: every target, a fixed seed, a few hundred to a few
// thousand inputs each (the full run is ≥ 1,000,000 inputs; see test/README.md). A failure names the shrunk
// counterexample and the seed: `FUZZ_SEED=<seed> FUZZ_TARGET=<name> npm run fuzz` replays it.
import t from 'tap';
import fc from 'fast-check';
import { TARGETS } from './targets.js';

const SEED = Number(process.env.FUZZ_SEED ?? 20261205);

for (const target of TARGETS) {
  t.test(`${target.name} (seed ${SEED}, ${target.sliceRuns} runs)`, async (t) => {
    const property = await target.property();
    try {
      const details = await fc.check(property, { seed: SEED, numRuns: target.sliceRuns });
      if (details.failed) {
        t.fail(`${target.name}: ${fc.defaultReportMessage(details)}\n${String((details.errorInstance as Error | undefined)?.message ?? details.errorInstance)}`);
      } else {
        t.equal(details.numRuns, target.sliceRuns, 'every run passed');
      }
    } finally {
      await target.close?.();
    }
  });
}
