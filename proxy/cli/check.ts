// `sluice check FILE`: every problem with its path and a hint — the config itself, then every file it refers
// to (exists, readable, parses, long enough, permissions) and the rules `serve` would refuse to start with —
// all reported at once; exit 1 when there is any error.
import { parseArgs } from 'node:util';
import { type ConfigIssue, formatIssue, validateConfig } from '../../settings/config.js';
import { loadConfigFile } from '../runtime/config-file.js';
import { startIssues } from '../runtime/production.js';
import { fileIssues } from '../runtime/secret-files.js';
import { fail, out } from './output.js';

export function check(argv: string[]) {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { production: { type: 'boolean' }, 'skip-files': { type: 'boolean' } },
  });
  if (positionals.length !== 1) fail('usage: sluice check FILE [--production] [--skip-files]');
  const file = positionals[0]!;
  const r = loadConfigFile(file);
  const production = values.production === true || process.env.SLUICE_ENV === 'production';
  if (!r.ok) {
    // Every problem at once: the files are checked too when the keys naming them are valid on their own.
    const issues = [...r.issues, ...(values['skip-files'] === true ? [] : filesOfInvalid(r.raw, production))];
    for (const i of issues) out(formatIssue(i));
    out(`${file}: ${issues.filter((i) => i.severity === 'error').length} problem(s)`);
    process.exit(1);
  }
  const more = startIssues(r.config, {
    production,
    generatedIdentity: Object.keys(r.config.identities).length === 0,
    files: values['skip-files'] !== true,
  });
  const issues = [...r.warnings, ...more];
  for (const i of issues) out(formatIssue(i));
  const errors = issues.filter((i) => i.severity === 'error').length;
  if (errors) {
    out(`${file}: ${errors} problem(s)${production ? ' (production rules applied)' : ''}`);
    process.exit(1);
  }
  out(`${file}: ok${production ? ' (production rules applied)' : ''}`);
}

const FILE_KEYS = ['listen', 'tokens', 'admin', 'upstream', 'killSwitch'] as const;

/** The file problems of a config that failed validation, from the keys that name files (when those validate). */
function filesOfInvalid(raw: unknown, production: boolean): ConfigIssue[] {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) return [];
  const sub = Object.fromEntries(
    FILE_KEYS.filter((k) => k in raw).map((k) => [k, (raw as Record<string, unknown>)[k]]),
  );
  const v = validateConfig(sub);
  return v.ok ? fileIssues(v.config, { production }) : [];
}
