// `sluice check FILE`: every problem with its path and a hint; exit 1 when there is any.
import { parseArgs } from 'node:util';
import { formatIssue } from '../../firewall/config.js';
import { loadConfigFile } from '../runtime/config-file.js';
import { fail, out } from './output.js';

export function check(argv: string[]) {
  const { positionals } = parseArgs({ args: argv, allowPositionals: true });
  if (positionals.length !== 1) fail('usage: sluice check FILE');
  const r = loadConfigFile(positionals[0]!);
  if (!r.ok) {
    for (const i of r.issues) out(formatIssue(i));
    out(`${positionals[0]}: ${r.issues.filter((i) => i.severity === 'error').length} problem(s)`);
    process.exit(1);
  }
  for (const w of r.warnings) out(formatIssue(w));
  out(`${positionals[0]}: ok`);
}

