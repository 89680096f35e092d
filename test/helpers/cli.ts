// Tests run the command line from the compiled dist/ (`npm test` builds first): a TypeScript-loader start per spawned
// process costs seconds on a loaded machine, and dist/ is what operators run.
import { existsSync } from 'node:fs';
import { repoPath } from './repo.js';

export const CLI_JS = repoPath('dist/proxy/cli.js');

/** argv prefix for spawning `sluice`. */
export function cliArgv(): string[] {
  if (!existsSync(CLI_JS)) throw new Error('dist/proxy/cli.js is missing: run `npm run build` (npm test does)');
  return [CLI_JS];
}
