// The clock lru-cache measures TTLs on, from an injected `nowMs` (tests drive time; CONTRACT: inject the clock).
// lru-cache treats a start time of 0 as "this entry has no TTL", so an injected clock that starts at 0 (as
// tests' do) would make every entry stored at that instant immortal; the offset keeps every reading positive.
// `ttlResolution: 0` makes it read this clock on every check instead of caching a reading for a millisecond
// (which also arms a timer per reading).
import type { Perf } from 'lru-cache';

export const lruClock = (nowMs: () => number): { perf: Perf; ttlResolution: 0 } => ({
  perf: { now: () => nowMs() + 1 },
  ttlResolution: 0,
});
