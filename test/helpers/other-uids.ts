// Tests that run processes as other UIDs (Sluice as 10001, workloads, the probe child) need every directory
// above the checkout to be traversable by them: they load dist/ and node_modules/ from it (and under tap,
// its process-info hook is injected into every child). A checkout under a 0700 directory (`mktemp -d`,
// /root) fails in ways that look like product bugs; say what is wrong instead.
import { statSync } from 'node:fs';
import { dirname } from 'node:path';
import { REPO } from './repo.js';

/** The first directory from `/` down to the checkout that other users cannot traverse, or null. */
export function untraversableAncestor(path = REPO): string | null {
  const chain: string[] = [];
  for (let dir = path; ; dir = dirname(dir)) {
    chain.unshift(dir);
    if (dir === dirname(dir)) break;
  }
  return chain.find((dir) => (statSync(dir).mode & 0o001) === 0) ?? null;
}

/** Why tests cannot run processes as other UIDs from this checkout, or null when they can. */
export function otherUidsBlocked(): string | null {
  const dir = untraversableAncestor();
  return dir
    ? `${dir} is not traversable by other users (chmod o+x ${dir}; .ci/run does it): processes run as other UIDs cannot load ${REPO}`
    : null;
}
