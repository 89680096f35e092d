// killSwitch.file: engaged while the file exists, whenever it appears or goes.
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { createKillSwitchFile } from '../../proxy/runtime/kill-switch-file.js';
import { waitFor } from '../helpers/harness.js';

const dir = mkdtempSync(join(tmpdir(), 'sluice-kill-'));

t.test('a file created right after follow() engages the switch', async (t) => {
  // fs.watchFile took its first stat asynchronously: a file created before that stat became its baseline, no
  // change was ever reported, and the switch stayed off while the file existed.
  for (let i = 0; i < 5; i++) {
    const path = join(dir, `early-${i}`);
    const seen: boolean[] = [];
    const k = createKillSwitchFile((on) => seen.push(on), 5);
    k.follow(path);
    writeFileSync(path, '');
    await waitFor(() => seen.at(-1) === true);
    rmSync(path);
    await waitFor(() => seen.at(-1) === false);
    t.same(seen, [false, true, false], 'each change reported once');
    k.close();
  }
});

t.test('following another path reports the new file at once, and null disengages', async (t) => {
  const a = join(dir, 'a');
  const b = join(dir, 'b');
  writeFileSync(b, '');
  const seen: boolean[] = [];
  const k = createKillSwitchFile((on) => seen.push(on), 5);
  t.teardown(() => k.close());
  k.follow(a);
  k.follow(b);
  t.same(seen, [false, true]);
  k.follow(null);
  t.same(seen, [false, true, false]);
  await new Promise((r) => setTimeout(r, 30));
  t.same(seen, [false, true, false], 'the old path is no longer polled');
});

t.test('a path that cannot be checked counts as engaged (fail closed)', async (t) => {
  // A symlink loop stands in for EIO/EACCES (the tests run as root, so permissions cannot make stat fail).
  const loop = join(dir, 'loop');
  symlinkSync(loop, loop);
  const seen: boolean[] = [];
  const k = createKillSwitchFile((on) => seen.push(on), 5);
  t.teardown(() => k.close());
  k.follow(loop);
  t.same(seen, [true], 'at follow()');
  rmSync(loop);
  await waitFor(() => seen.at(-1) === false);
  symlinkSync(loop, loop);
  await waitFor(() => seen.at(-1) === true);
  t.same(seen, [true, false, true], 'and on every poll');
});
