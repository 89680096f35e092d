// Revocation: the list format, and the watcher driven by an injected reader and clock.
import t from 'tap';
import {
  createRevocationWatcher,
  parseRevocations,
  renderRevocations,
  revocationLine,
  revocationUntilS,
} from '../../proxy/broker/revocations.js';
import { revokeRunFor } from '../../proxy/broker/issue.js';
import { brokerConfig } from './fixtures.js';

const enoent = () => Object.assign(new Error('no'), { code: 'ENOENT' });
const eacces = () => Object.assign(new Error('no'), { code: 'EACCES' });

t.test('the list format', async (t) => {
  t.equal(revocationLine('job-1', 100), '{"run":"job-1","until":100}\n');
  t.throws(() => revocationLine('bad run', 1), { code: 'SLUICE_ERR_INVALID_ARGUMENT' });
  const text = `${revocationLine('a', 100)}\n# a comment\n${revocationLine('b', 50)}${revocationLine('a', 200)}{"run":"c","unt`;
  const r = parseRevocations(Buffer.from(text), 60);
  t.ok(r.ok);
  if (r.ok)
    t.same(
      [...r.entries],
      [['a', 200]],
      'expired entries dropped, the latest until kept, a partial last line left for later',
    );
  t.match(parseRevocations(Buffer.from('{"run":"a","until":100}\nnot json\n'), 0), {
    ok: false,
    message: /line 2 is not JSON/,
  });
  t.match(parseRevocations(Buffer.from('{"run":"a b","until":100}\n'), 0), { ok: false });
  t.match(parseRevocations(Buffer.from('{"run":"a","until":"100"}\n'), 0), { ok: false });
  t.match(parseRevocations(Buffer.from('[]\n'), 0), { ok: false });
  t.equal(
    renderRevocations(
      new Map([
        ['a', 5],
        ['b', 6],
      ]),
    ),
    '{"run":"a","until":5}\n{"run":"b","until":6}\n',
  );
  const config = brokerConfig();
  t.equal(revocationUntilS(config, 1000), 1000 + 8 * 3600 + 3600, 'until: now + maxTtl + the margin');
});

function world(initial: Buffer | Error) {
  let content: Buffer | Error = initial;
  let now = 1_800_000_000_000;
  const health: [boolean, string | null][] = [];
  const w = createRevocationWatcher({
    read: async () => {
      if (content instanceof Error) throw content;
      return content;
    },
    nowMs: () => now,
    intervalMs: 1000,
    staleAfterMs: 10_000,
    onHealth: (ok, m) => health.push([ok, m]),
  });
  return {
    w,
    health,
    set: (c: Buffer | Error) => (content = c),
    advance: (ms: number) => (now += ms),
    nowS: () => Math.floor(now / 1000),
  };
}

t.test('the watcher: absent, revoked, expired entries, and fail-closed when unreadable', async (t) => {
  const x = world(enoent());
  t.equal(x.w.status('r1', x.nowS()), 'active', 'before follow: no file watched, nothing revoked');
  await x.w.follow('/lists/revoked.jsonl');
  t.equal(x.w.status('r1', x.nowS()), 'active', 'no file yet: nothing revoked');
  t.equal(x.w.problem, null);
  x.set(Buffer.from(revocationLine('r1', x.nowS() + 60)));
  t.equal(x.w.status('r1', x.nowS()), 'active', 'not seen before the next poll');
  await x.w.poll();
  t.equal(x.w.status('r1', x.nowS()), 'revoked', 'seen at the next poll');
  t.equal(x.w.status('r2', x.nowS()), 'active');
  x.advance(61_000);
  t.equal(x.w.status('r1', x.nowS()), 'active', 'an entry past its until means nothing');
  await x.w.poll();

  x.set(Buffer.from(revocationLine('r3', x.nowS() + 600)));
  await x.w.poll();
  x.set(eacces());
  await x.w.poll();
  t.match(x.w.problem, /cannot be read \(EACCES\)/);
  t.equal(x.w.status('r3', x.nowS()), 'revoked', 'the last good list still holds');
  t.equal(x.w.status('r4', x.nowS()), 'active', 'a short failure is covered by the last good list');
  x.advance(10_000);
  t.equal(x.w.status('r4', x.nowS()), 'unknown', 'past staleAfterMs: no handle is honoured');
  x.set(Buffer.from('garbage\n'));
  await x.w.poll();
  t.equal(x.w.status('r4', x.nowS()), 'unknown', 'a corrupt list is no better');
  x.set(Buffer.from(revocationLine('r3', x.nowS() + 600)));
  await x.w.poll();
  t.equal(x.w.status('r4', x.nowS()), 'active', 'recovered');
  t.same(
    x.health.map((h) => h[0]),
    [false, true, false, true],
    'health reported on each change',
  );
  x.w.close();
});

t.test('the watcher: unknown until the first read, local revocations, switching files', async (t) => {
  const x = world(eacces());
  await x.w.follow('/lists/a');
  t.equal(x.w.status('r1', x.nowS()), 'unknown', 'never read: refuse');
  x.set(Buffer.from(''));
  await x.w.poll();
  t.equal(x.w.status('r1', x.nowS()), 'active');
  x.w.revokeLocal('r1', x.nowS() + 5);
  t.equal(x.w.status('r1', x.nowS()), 'revoked', 'a local revocation is in force at once');
  x.advance(6000);
  t.equal(x.w.status('r1', x.nowS()), 'active', 'and ends at its until');
  x.set(Buffer.from(revocationLine('r9', x.nowS() + 100)));
  await x.w.follow('/lists/b');
  t.equal(x.w.status('r9', x.nowS()), 'revoked', 'follow reads the new file at once');
  await x.w.follow(null);
  t.equal(x.w.status('r9', x.nowS()), 'active', 'no file: only local revocations');
  x.w.close();
});

t.test('revokeRunFor: local at once, then one appended line', async (t) => {
  const config = brokerConfig();
  const lines: [string, string][] = [];
  const local: [string, number][] = [];
  const r = await revokeRunFor(config, 'job-7', {
    nowS: 1000,
    append: async (p, l) => void lines.push([p, l]),
    revokeLocal: (run, u) => void local.push([run, u]),
  });
  t.same(r, { ok: true, run: 'job-7', untilS: 1000 + 8 * 3600 + 3600, shared: true });
  t.same(lines, [['/lists/revoked.jsonl', revocationLine('job-7', 1000 + 8 * 3600 + 3600)]]);
  t.same(local, [['job-7', 1000 + 8 * 3600 + 3600]]);
  const failed = await revokeRunFor(config, 'job-8', {
    nowS: 1000,
    append: async () => {
      throw eacces();
    },
    revokeLocal: () => undefined,
  });
  t.match(failed, { ok: false, status: 500, error: /EACCES.*this replica has revoked the run, others have not/ });
  t.match(
    await revokeRunFor(config, '../etc', { nowS: 1, append: async () => undefined, revokeLocal: () => undefined }),
    { ok: false, status: 400 },
  );
  const noFile = brokerConfig({ secrets: { keyFile: '/k', handles: { maxTtl: '1h' } } });
  t.match(
    await revokeRunFor(noFile, 'job-9', {
      nowS: 1,
      append: async () => void t.fail('no file to append to'),
      revokeLocal: () => undefined,
    }),
    { ok: true, shared: false },
  );
});
