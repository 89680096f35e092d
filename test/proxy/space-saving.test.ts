// The space-saving sketch behind sluice_denied_hosts_top: heavy hitters are found, counts only overestimate
// (by at most their error, at most W/capacity), the size never grows past its capacity however many distinct
// keys arrive, and the rolling windows forget what was tried long ago.
import t from 'tap';
import { createRollingTop, createSpaceSaving, mergeTopLists } from '../../proxy/ops/space-saving.js';

// A small deterministic generator, so that a failure replays.
function lcg(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x / 2 ** 32;
  };
}

t.test('heavy hitters in a stream of unique noise are found, with bounded error', async (t) => {
  const s = createSpaceSaving(50);
  const rand = lcg(17);
  const truth = new Map<string, number>();
  const heavy = ['metadata', 'pastebin.com', 'evil.example', 'exfil.example'];
  let noise = 0;
  for (let i = 0; i < 20_000; i++) {
    // 20% of the stream is four hosts (5% each); the rest is a scan of names never seen twice.
    const key = rand() < 0.2 ? heavy[Math.floor(rand() * heavy.length)]! : `n${noise++}.scan.example`;
    truth.set(key, (truth.get(key) ?? 0) + 1);
    s.offer(key);
  }
  t.equal(s.size, 50, 'never more counters than its capacity');
  t.equal(s.total, 20_000);
  const top = s.top(4);
  t.same(top.map((h) => h.key).sort(), [...heavy].sort(), 'the four heavy hosts are the top four');
  for (const h of s.top()) {
    const real = truth.get(h.key)!;
    t.ok(h.count >= real, `${h.key}: never underestimates`);
    t.ok(h.count - h.error <= real, `${h.key}: count minus error is a lower bound`);
    t.ok(h.error <= s.total / s.capacity, `${h.key}: error at most W/capacity`);
  }
});

t.test('every key above W/capacity holds a counter (the guarantee)', async (t) => {
  const s = createSpaceSaving(10);
  const rand = lcg(5);
  for (let i = 0; i < 1000; i++) s.offer(i % 7 === 0 ? 'frequent' : `k${Math.floor(rand() * 1e6)}`);
  t.ok(
    s.top().some((h) => h.key === 'frequent'),
    'a key seen 143 times of 1000 (> 100) is kept',
  );
});

t.test('bounded size under a flood of distinct keys', async (t) => {
  const s = createSpaceSaving(20);
  for (let i = 0; i < 100_000; i++) s.offer(`h${i}`);
  t.equal(s.size, 20);
  t.equal(s.top(50).length, 20, 'top never returns more than it holds');
  t.equal(s.top(5).length, 5);
  t.throws(() => createSpaceSaving(0), { code: 'SLUICE_ERR_INVALID_ARGUMENT' });
});

t.test('exact while under capacity; weights; stable order', async (t) => {
  const s = createSpaceSaving(5);
  s.offer('a', 3);
  s.offer('b');
  s.offer('b');
  s.offer('c', 2);
  t.same(s.top(), [
    { key: 'a', count: 3, error: 0 },
    { key: 'b', count: 2, error: 0 },
    { key: 'c', count: 2, error: 0 },
  ]);
});

t.test('merging top lists adds counts per key and keeps the n largest', async (t) => {
  const merged = mergeTopLists(
    [
      [
        { key: 'x', count: 5, error: 0 },
        { key: 'y', count: 3, error: 1 },
      ],
      [
        { key: 'y', count: 4, error: 0 },
        { key: 'z', count: 1, error: 0 },
      ],
    ],
    2,
  );
  t.same(merged, [
    { key: 'y', count: 7, error: 1 },
    { key: 'x', count: 5, error: 0 },
  ]);
});

t.test('rolling windows: the current and the previous window, nothing older', async (t) => {
  let now = 0;
  const r = createRollingTop({ capacity: 10, windowMs: 1000, nowMs: () => now });
  r.offer('old');
  r.offer('old');
  now = 1500;
  r.offer('new');
  t.same(
    r.top(10).map((h) => [h.key, h.count]),
    [
      ['old', 2],
      ['new', 1],
    ],
    'the previous window still counts',
  );
  now = 2100;
  t.same(
    r.top(10).map((h) => [h.key, h.count]),
    [['new', 1]],
    'two windows on, the old host is gone',
  );
  now = 10_000;
  t.same(r.top(10), [], 'after a long quiet nothing is left');
});
