// What a fuzz target is: a named fast-check property and its share of the runs. The runner (`npm run fuzz`,
// run.ts) and the seeded slice inside `npm test` (fuzz.test.ts) both run the same list (targets.ts).
import assert from 'node:assert/strict';
import type fc from 'fast-check';
import { ALL_CODES, type Code, type Deny, isDeny } from '../../firewall/codes.js';

export interface FuzzTarget {
  /** kebab-case, stable: `FUZZ_TARGET=<name>` runs only this one. */
  readonly name: string;
  /** Share of the total runs (the runner scales these to FUZZ_RUNS). Slow targets get small weights. */
  readonly weight: number;
  /** Runs in the seeded slice inside `npm test`. */
  readonly sliceRuns: number;
  readonly property: () => fc.IRawProperty<unknown, boolean> | Promise<fc.IRawProperty<unknown, boolean>>;
  /** A line on what the runs reached (printed by the runner), so a target that silently tests nothing shows. */
  readonly stats?: () => string;
  /** Closes what `property()` opened (listeners). */
  readonly close?: () => Promise<void>;
}

const KNOWN: ReadonlySet<string> = new Set(ALL_CODES);

/** A denial as the codes table defines it: verdict, a known code (one of `codes` when given), a rule name. */
export function assertDeny(value: unknown, codes?: readonly Code[]): asserts value is Deny {
  assert.ok(isDeny(value), `not a Deny: ${JSON.stringify(value)}`);
  assert.ok(KNOWN.has(value.code), `unknown code ${value.code}`);
  if (codes) assert.ok(codes.includes(value.code), `code ${value.code} not one of ${codes.join(', ')}`);
  assert.equal(typeof value.rule, 'string');
}
