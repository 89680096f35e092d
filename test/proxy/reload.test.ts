// The reloader against a real file: what the watch applies, and what it must never apply. A non-atomic save
// (truncate, then write) is seen half-way by a poll; a prefix of a valid config can itself be valid and drop
// globalDeny entries or identities, so a half-written file must never be swapped in, and the content in force
// must be remembered from the read that was validated, not from a later read of the file.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import t, { type Test } from 'tap';
import type { SluiceConfig } from '../../settings/config.js';
import { loadConfigFile } from '../../proxy/runtime/config-file.js';
import { createMetrics } from '../../proxy/ops/metrics.js';
import { createReloader } from '../../proxy/runtime/reload.js';
import { eventually, waitFor } from '../helpers/harness.js';
import { saturateThreadPool } from '../helpers/thread-pool.js';

const dir = mkdtempSync(join(tmpdir(), 'sluice-reload-'));
const HEAD = 'identities:\n  agent: { password: agent-password-1 }\n';
const full = (deny: string[]) => `${HEAD}globalDeny: { hosts: ${JSON.stringify(deny)} }\n`;
const denied = (c: SluiceConfig) => c.globalDeny.hosts.join(',');

function setup(t: Test, name: string, text: string, load = loadConfigFile) {
  const path = join(dir, name);
  writeFileSync(path, text);
  const first = loadConfigFile(path);
  if (!first.ok) throw new Error('test config is invalid');
  let config = first.config;
  const swapped: SluiceConfig[] = [];
  const metrics = createMetrics({ version: 'test', tunnels: () => 0, defaultMetrics: false });
  const reloader = createReloader({
    path,
    load,
    digest: first.digest,
    prepare: (c) => c,
    current: () => config,
    swap: (c) => {
      config = c;
      swapped.push(c);
    },
    metrics,
    logger: pino({ level: 'silent' }),
  });
  t.teardown(() => reloader.close());
  return { path, reloader, swapped, metrics, current: () => config };
}

t.test('the watch applies a settled change, and remembers the bytes it validated', async (t) => {
  // The write lands right after the reload read the file: the reload applied the older bytes, so the watch
  // must still see the newer ones as a change (hashing the file after the swap would record them as applied).
  let raced = false;
  const s = setup(t, 'race.yaml', full(['a.test']), (path) => {
    const r = loadConfigFile(path);
    if (!raced) {
      raced = true;
      writeFileSync(path, full(['c.test']));
    }
    return r;
  });
  writeFileSync(s.path, full(['b.test']));
  t.match(await s.reloader.reload('sighup'), { ok: true });
  t.equal(denied(s.current()), 'b.test', 'the signalled reload applied what it read');
  s.reloader.watch(10, 20);
  t.ok(
    await eventually(() => denied(s.current()) === 'c.test'),
    'the write that landed after the read is applied by the watch',
  );
});

t.test('a half-written file is never swapped in', async (t) => {
  const s = setup(t, 'partial.yaml', full(['keep.test']));
  s.reloader.watch(5, 150);
  await new Promise((r) => setTimeout(r, 50)); // the poller's first stat is asynchronous: let it take the old file
  // The prefix is a valid config on its own (no globalDeny at all): applying it would open what the
  // operator denied. The rest of the save follows well within the settle time.
  writeFileSync(s.path, HEAD);
  await new Promise((r) => setTimeout(r, 30));
  writeFileSync(s.path, full(['keep.test', 'new.test']));
  await waitFor(() => s.swapped.length > 0);
  await new Promise((r) => setTimeout(r, 200));
  t.same(s.swapped.map(denied), ['keep.test,new.test'], 'only the finished file was applied');
});

t.test('an empty file (a save caught after its truncate) keeps the last good config', async (t) => {
  const s = setup(t, 'empty.yaml', full(['keep.test']));
  writeFileSync(s.path, '');
  const r = await s.reloader.reload('admin');
  t.match(r, { ok: false, issues: [/no settings/] });
  t.equal(denied(s.current()), 'keep.test');
  t.equal(s.swapped.length, 0);
});

t.test('the watch tries an invalid file once, not on every poll', async (t) => {
  let loads = 0;
  const s = setup(t, 'invalid.yaml', full(['keep.test']), (path) => {
    loads++;
    return loadConfigFile(path);
  });
  s.reloader.watch(5, 5);
  writeFileSync(s.path, `${full(['keep.test'])}registries: ["bad.*"]\n`);
  await waitFor(() => loads > 0);
  await new Promise((r) => setTimeout(r, 150));
  t.equal(loads, 1);
  t.match(await s.metrics.registry.metrics(), /sluice_policy_reloads_total\{result="error"\} 1/);
  writeFileSync(s.path, full(['fixed.test']));
  t.ok(await eventually(() => denied(s.current()) === 'fixed.test'), 'the fix is applied');
});

t.test('the watch applies a return to earlier content after a signalled reload', async (t) => {
  // A (in force) → B applied by SIGHUP before any poll saw it → the file goes back to A. The watch must judge
  // against what is in force (B), not against what it last saw itself (A).
  const s = setup(t, 'back.yaml', full(['a.test']));
  s.reloader.watch(10, 10);
  await new Promise((r) => setTimeout(r, 50));
  writeFileSync(s.path, full(['b.test']));
  t.match(await s.reloader.reload('sighup'), { ok: true });
  t.equal(denied(s.current()), 'b.test');
  writeFileSync(s.path, full(['a.test']));
  t.ok(await eventually(() => denied(s.current()) === 'a.test'), 'the file content in force again');
});

t.test('a save right after the watch starts is applied', async (t) => {
  // fs.watchFile took its first stat asynchronously: a save that landed before it became its baseline and
  // was never seen as a change.
  for (let i = 0; i < 5; i++) {
    const s = setup(t, `early-${i}.yaml`, full(['a.test']));
    s.reloader.watch(5, 5);
    writeFileSync(s.path, full([`b${i}.test`]));
    await waitFor(() => denied(s.current()) === `b${i}.test`);
    s.reloader.close();
  }
  t.pass('every early save was applied');
});

t.test('a reload that throws is a failed reload, not a crash, and the last good config stays', async (t) => {
  let fail = false;
  const s = setup(t, 'throws.yaml', full(['keep.test']), (path) => {
    if (fail) throw new Error('boom');
    return loadConfigFile(path);
  });
  fail = true;
  writeFileSync(s.path, full(['other.test']));
  t.match(await s.reloader.reload('sighup'), { ok: false, issues: [/internal error: boom/] });
  t.equal(denied(s.current()), 'keep.test');
  t.match(await s.metrics.registry.metrics(), /sluice_policy_reloads_total\{result="error"\} 1/);
  s.reloader.watch(5, 5); // the watch's own reload must not end the process with an unhandled rejection
  await new Promise((r) => setTimeout(r, 100));
  t.equal(denied(s.current()), 'keep.test');
});

t.test("the watch does not wait for libuv's thread pool (which a flood of scrypt checks fills)", async (t) => {
  const s = setup(t, 'busy-pool.yaml', full(['before.test']));
  const events: string[] = [];
  const pool = saturateThreadPool(dir);
  void pool.probe.then(() => events.push('pool free'));
  s.reloader.watch(5, 5);
  writeFileSync(s.path, full(['after.test']));
  await waitFor(() => denied(s.current()) === 'after.test' && events.push('applied'), 3000).catch(() => undefined);
  events.push('released');
  await pool.release();
  await pool.probe;
  await waitFor(() => denied(s.current()) === 'after.test');
  t.same(events, ['applied', 'released', 'pool free'], 'the change was applied while every pool thread was busy');
});
