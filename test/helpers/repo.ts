import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

// Tests may run from their .ts source (tsx) or compiled under dist/; both must find the same repository files,
// so paths are taken from the repository root (the nearest folder holding package.json), never from import.meta.url.
function findRepo(start: string): string {
  let dir = start;
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'proxy'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error(`no repository root above ${start}`);
    dir = up;
  }
}

export const REPO = findRepo(dirname(fileURLToPath(import.meta.url)));

/** An absolute path to a file of the repository (its source tree, not dist/). */
export function repoPath(...parts: string[]): string {
  return resolve(REPO, ...parts);
}
