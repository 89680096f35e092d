// The config schema's validator comes precompiled in dist/ (scripts/precompile-validators.mjs) and is compiled
// at start otherwise (firewall/config-validator.ts). Both must exist as documented and agree on every config,
// down to the defaults they fill in.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { Ajv } from 'ajv';
import t from 'tap';
import { parse } from 'yaml';
import { AJV_OPTIONS, type SchemaValidator, schemaStamp } from '../../firewall/config-validator.js';
import { CONFIG_SCHEMA } from '../../settings/config.js';
import { REPO, repoPath } from '../helpers/repo.js';

const DIST = repoPath('dist/firewall/config-validator.js');
const DIST_SCHEMA = repoPath('dist/settings/config.js');

t.test('from the sources the schema is compiled at start', async (t) => {
  // npm test runs this file compiled in dist/, beside the precompiled validator: load the sources through tsx.
  const source = pathToFileURL(repoPath('firewall/config-validator.ts')).href;
  const schema = pathToFileURL(repoPath('settings/config.ts')).href;
  const code = `const m = await import(${JSON.stringify(source)}); const s = await import(${JSON.stringify(schema)}); console.log(m.loadConfigValidator(s.CONFIG_SCHEMA).source);`;
  const r = spawnSync(process.execPath, ['--import=tsx', '--input-type=module', '-e', code], {
    cwd: REPO,
    encoding: 'utf8',
  });
  t.equal(r.stdout.trim(), 'compiled', r.stderr);
});

t.test('the build ships a precompiled validator that is used, and agrees with a compiled one', async (t) => {
  if (!existsSync(DIST)) throw new Error('dist/ is missing: run `npm run build` (npm test does)');
  const built = (await import(DIST)) as typeof import('../../firewall/config-validator.js');
  const builtSchema = ((await import(DIST_SCHEMA)) as typeof import('../../settings/config.js')).CONFIG_SCHEMA;
  const loaded = built.loadConfigValidator(builtSchema);
  t.equal(loaded.source, 'precompiled', 'npm run build wrote a validator for this very schema');
  t.equal(built.schemaStamp(builtSchema), schemaStamp(CONFIG_SCHEMA), 'stamped with the schema in the sources');
  const compiled = new Ajv({ ...AJV_OPTIONS }).compile(CONFIG_SCHEMA) as SchemaValidator;

  const base = parse(readFileSync(repoPath('compose/sluice.yaml'), 'utf8')) as Record<string, unknown>;
  const corpus: unknown[] = [base, {}, null, [], 'x', 1, { mode: 'report' }, { mode: 'nope' }, { unknownKey: 1 }];
  // Every top-level key of the schema with values of each JSON type: what a typo or a wrong type looks like.
  const wrong: unknown[] = [null, true, 0, -1, 1.5, 'x', '', [], ['x'], {}, { x: 1 }];
  for (const key of Object.keys((CONFIG_SCHEMA as { properties: Record<string, unknown> }).properties)) {
    for (const v of wrong) corpus.push({ ...base, [key]: v });
  }
  // And one level down, under each object the base config sets.
  for (const [key, value] of Object.entries(base)) {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) continue;
    for (const inner of Object.keys(value))
      for (const v of wrong) corpus.push({ ...base, [key]: { ...value, [inner]: v } });
  }
  const summary = (v: SchemaValidator, data: unknown) => {
    const copy = structuredClone(data);
    const ok = v(copy);
    const errors = (v.errors ?? []).map((e) => `${e.instancePath} ${e.keyword} ${JSON.stringify(e.params)}`);
    return { ok, errors, withDefaults: copy };
  };
  let disagreements = 0;
  let invalid = 0;
  for (const data of corpus) {
    const a = summary(loaded.validate, data);
    const b = summary(compiled, data);
    if (!a.ok) invalid++;
    if (JSON.stringify(a) !== JSON.stringify(b)) {
      disagreements++;
      t.same(a, b, `same verdict and errors for ${JSON.stringify(data).slice(0, 120)}`);
    }
  }
  t.equal(disagreements, 0, `${corpus.length} configs, the same answer from both`);
  t.ok(invalid > corpus.length / 2 && invalid < corpus.length, 'the corpus holds both valid and invalid configs');
});
