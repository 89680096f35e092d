// The runner behind `npm run fuzz` (run.ts): `total` inputs shared by weight over the targets, one seed for all.
// A failure reports the target, fast-check's shrunk counterexample with its replay path, the assertion, the
// seed and the command that replays it.
import fc from 'fast-check';
import type { FuzzTarget } from './target.js';

export interface RunOutcome {
  readonly inputs: number;
  readonly failed: readonly string[];
}

/** Runs per target by weight, rounded down, the remainder one each to the first targets: exactly `total`. */
export function shareRuns(targets: readonly FuzzTarget[], total: number): number[] {
  const weights = targets.reduce((a, t) => a + t.weight, 0);
  const share = targets.map((t) => Math.floor((total * t.weight) / weights));
  for (let i = 0, left = total - share.reduce((a, n) => a + n, 0); left > 0; i = (i + 1) % share.length, left--)
    share[i]!++;
  return share;
}

export async function runTargets(
  targets: readonly FuzzTarget[],
  seed: number,
  total: number,
  log: (line: string) => void,
): Promise<RunOutcome> {
  const share = shareRuns(targets, total);
  log(
    `fuzz: seed ${seed}, ${total} runs over ${targets.length} targets (reproduce: FUZZ_SEED=${seed} FUZZ_RUNS=${total} npm run fuzz)`,
  );
  let inputs = 0;
  const failed: string[] = [];
  for (const [i, t] of targets.entries()) {
    const numRuns = share[i]!;
    if (numRuns === 0) continue;
    const started = process.hrtime.bigint();
    let details: fc.RunDetails<unknown>;
    try {
      details = await fc.check(await t.property(), { seed, numRuns });
    } catch (err) {
      // A throw outside the predicate (in a generator) is a bug of the harness, not a counterexample.
      log(`FAIL ${t.name}: the harness threw (seed ${seed})\n${String((err as Error)?.stack ?? err)}`);
      failed.push(t.name);
      continue;
    } finally {
      await t.close?.();
    }
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    inputs += details.numRuns;
    if (details.failed) {
      failed.push(t.name);
      log(
        `FAIL ${t.name} after ${details.numRuns} runs (seed ${seed}; replay: FUZZ_SEED=${seed} FUZZ_RUNS=${total} FUZZ_TARGET=${t.name} npm run fuzz)`,
      );
      log(fc.defaultReportMessage(details));
      // The assertion that failed on the shrunk counterexample (defaultReportMessage names only the value).
      log(String((details.errorInstance as Error | undefined)?.stack ?? details.errorInstance));
    } else {
      log(`ok   ${t.name}: ${details.numRuns} runs in ${(ms / 1000).toFixed(1)} s${t.stats ? ` (${t.stats()})` : ''}`);
    }
  }
  log(`fuzz: ${inputs} inputs, ${failed.length} failing targets, seed ${seed}`);
  return { inputs, failed };
}
