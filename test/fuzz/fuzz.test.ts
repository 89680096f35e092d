// The seeded slice of `npm run fuzz` that runs in `npm test`: every target, a fixed seed, a few hundred to a few
// thousand inputs each (the full run is ≥ 1,000,000 inputs; see test/README.md). A failure names the shrunk
// counterexample and the seed: `FUZZ_SEED=<seed> FUZZ_TARGET=<name> npm run fuzz` replays it.
import t from 'tap';
import fc from 'fast-check';
import { runTargets, shareRuns } from './runner.js';
import type { FuzzTarget } from './target.js';
import { TARGETS } from './targets.js';

const SEED = Number(process.env.FUZZ_SEED ?? 20261205);

for (const target of TARGETS) {
  t.test(`${target.name} (seed ${SEED}, ${target.sliceRuns} runs)`, async (t) => {
    const property = await target.property();
    try {
      const details = await fc.check(property, { seed: SEED, numRuns: target.sliceRuns });
      if (details.failed) {
        t.fail(
          `${target.name}: ${fc.defaultReportMessage(details)}\n${String((details.errorInstance as Error | undefined)?.message ?? details.errorInstance)}`,
        );
      } else {
        t.equal(details.numRuns, target.sliceRuns, 'every run passed');
      }
    } finally {
      await target.close?.();
    }
  });
}

t.test(
  'the runner: exactly the runs asked for, and a failure reports the shrunk counterexample and the seed',
  async (t) => {
    t.equal(
      shareRuns(TARGETS, 1_000_000).reduce((a, n) => a + n, 0),
      1_000_000,
    );
    t.equal(
      shareRuns(TARGETS, 7).reduce((a, n) => a + n, 0),
      7,
    );
    // A deliberately false property: no integer above 1000 — fast-check must shrink it to exactly 1001.
    const broken: FuzzTarget = {
      name: 'self-test',
      weight: 1,
      sliceRuns: 1,
      property: () =>
        fc.property(fc.integer(), (n) => {
          if (n > 1000) throw new Error(`found ${n}`);
        }),
    };
    const lines: string[] = [];
    const outcome = await runTargets([broken], 42, 10_000, (l) => lines.push(l));
    const out = lines.join('\n');
    t.same(outcome.failed, ['self-test']);
    t.match(
      out,
      /FAIL self-test after \d+ runs \(seed 42; replay: FUZZ_SEED=42 FUZZ_RUNS=10000 FUZZ_TARGET=self-test npm run fuzz\)/,
    );
    t.match(out, /Counterexample: \[1001\]/);
    t.match(out, /found 1001/);
    t.match(out, /seed: 42, path: "/);
  },
);
