// CONTRACT §10: a test that sends anything toward a non-loopback address runs inside a network namespace that
// holds only `lo`, so that a bug can never put a packet on a real network. `isolate()` re-runs the calling
// test file under `unshare -n` (lo brought up) and reports its TAP as a subtest; inside, it returns true.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Test } from 'tap';

const INSIDE = 'SLUICE_TEST_LO_ONLY';

export function insideLoOnlyNamespace(): boolean {
  return process.env[INSIDE] === '1';
}

let canUnshare: boolean | null = null;
export function unshareAvailable(): boolean {
  if (canUnshare === null) {
    const r = spawnSync('unshare', ['-n', '--', 'true'], { stdio: 'ignore' });
    canUnshare = r.status === 0;
  }
  return canUnshare;
}

/** Returns true when the caller should run its tests (we are inside the lo-only namespace). */
export function isolate(t: Test, moduleUrl: string): boolean {
  if (insideLoOnlyNamespace()) return true;
  if (!unshareAvailable()) {
    // CI runs as root with util-linux installed: a missing namespace there is a broken runner, and a skip would
    // turn every network test green without running it.
    if (process.env.CI) {
      t.fail('cannot create a network namespace under CI (need root and `unshare` from util-linux)');
      return false;
    }
    t.comment('LOUD: cannot create a network namespace (need root or user namespaces); isolated tests SKIPPED');
    t.pass('isolated network tests', { skip: 'needs `unshare -n` (root)' });
    return false;
  }
  const file = fileURLToPath(moduleUrl);
  const script = 'ip link set lo up && exec "$0" "$@"';
  t.spawn(
    'unshare',
    ['-n', '--', 'sh', '-c', script, process.execPath, ...process.execArgv, file],
    {
      env: { ...process.env, [INSIDE]: '1' },
    },
    'in a namespace holding only lo',
  );
  return false;
}
