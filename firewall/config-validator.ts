// The config schemas' validators. ajv turns a schema into JavaScript; doing that on every start was the largest
// single cost of `sluice serve`'s time to ready (ajv's own load plus the compile, ~150 ms on the 2-core bench
// machine; bench/RESULTS.md). So `npm run build` also compiles it once, with ajv's standalone code, into
// dist/firewall/config-validator.cjs, stamped with the digest of the schema it was made from. A process uses
// that file only when its stamp matches the schema it carries; otherwise (the TypeScript sources under test, a
// stale or missing file) it compiles at start as before. The same schema and the same options either way, so
// the two can never disagree about a config. Only the whole file's schema (settings/config.ts) is precompiled:
// it is the one every start needs; the policy and settings schemas alone compile when first used.
//
// `useDefaults`: a validator fills in the schema's defaults, so it must be given a copy (structuredClone) of
// what the caller passed, never the caller's object.
import { createRequire } from 'node:module';
import type { ErrorObject } from 'ajv';

/** One set of options for both paths (scripts/precompile-validators.mjs uses it too). */
export const AJV_OPTIONS = Object.freeze({
  allErrors: true,
  strict: true,
  allowUnionTypes: true,
  verbose: true,
  useDefaults: true,
});

export interface SchemaValidator {
  (data: unknown): boolean;
  errors?: ErrorObject[] | null;
}

/** FNV-1a (64-bit) over the schema's JSON: identifies the schema a precompiled validator was made from. */
export function schemaStamp(schema: unknown): string {
  const text = JSON.stringify(schema);
  let h = 0xcbf29ce484222325n;
  for (let i = 0; i < text.length; i++) h = BigInt.asUintN(64, (h ^ BigInt(text.charCodeAt(i))) * 0x100000001b3n);
  return h.toString(16).padStart(16, '0');
}

/** Written by scripts/precompile-validators.mjs next to the compiled config-validator.js. */
export const PRECOMPILED_FILE = 'config-validator.cjs';

/** How the validator in use was obtained (a test and `--trace` startup figures read it). */
export type ValidatorSource = 'precompiled' | 'compiled';

const loaded = new WeakMap<object, { validate: SchemaValidator; source: ValidatorSource }>();

/** The validator of `schema`: the precompiled one when its stamp matches, else compiled now (once per schema). */
export function loadConfigValidator(schema: object): { validate: SchemaValidator; source: ValidatorSource } {
  const known = loaded.get(schema);
  if (known) return known;
  const require = createRequire(import.meta.url);
  let found: { validate: SchemaValidator; source: ValidatorSource } | undefined;
  try {
    const mod = require('./config-validator.cjs') as { validate?: SchemaValidator; stamp?: string };
    if (typeof mod.validate === 'function' && mod.stamp === schemaStamp(schema))
      found = { validate: mod.validate, source: 'precompiled' };
  } catch {
    // No precompiled file next to this module: compile below.
  }
  if (!found) {
    const { Ajv } = require('ajv') as typeof import('ajv');
    found = { validate: new Ajv({ ...AJV_OPTIONS }).compile(schema), source: 'compiled' };
  }
  loaded.set(schema, found);
  return found;
}
