// The space-saving sketch (Metwally, Agrawal, El Abbadi: "Efficient Computation of Frequent and Top-k Elements
// in Data Streams", ICDT 2005): the heavy hitters of a stream in a fixed number of counters. The denied-hosts
// gauge uses it because the hosts are chosen by whoever sends the requests: a map keyed by host would grow
// without bound under a scan of random names, and so would a label per host.
//
// Guarantees, for a stream of total weight W into k counters: every key seen more than W/k times holds a
// counter; a counter's count overestimates its key's true count by at most its `error` (≤ W/k), never under.
import { SluiceError } from '../../firewall/errors.js';

export interface HeavyHitter {
  readonly key: string;
  /** An upper bound on the key's true weight. */
  readonly count: number;
  /** How much of `count` may belong to the keys this one evicted: the true weight is ≥ count - error. */
  readonly error: number;
}

export interface SpaceSaving {
  readonly capacity: number;
  /** Counters in use (≤ capacity). */
  readonly size: number;
  /** Total weight offered. */
  readonly total: number;
  offer(key: string, weight?: number): void;
  /** The `n` largest counters, largest first (ties: the smaller error first, then the key, so output is stable). */
  top(n?: number): HeavyHitter[];
}

const byWeight = (a: HeavyHitter, b: HeavyHitter): number =>
  b.count - a.count || a.error - b.error || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);

interface Counter {
  count: number;
  error: number;
}

export function createSpaceSaving(capacity: number): SpaceSaving {
  if (!Number.isInteger(capacity) || capacity < 1)
    throw new SluiceError(
      'SLUICE_ERR_INVALID_ARGUMENT',
      `space-saving capacity must be a positive integer, not ${capacity}`,
    );
  const counters = new Map<string, Counter>();
  let total = 0;
  return {
    capacity,
    get size() {
      return counters.size;
    },
    get total() {
      return total;
    },
    offer(key, weight = 1) {
      total += weight;
      const c = counters.get(key);
      if (c) {
        c.count += weight;
        return;
      }
      if (counters.size < capacity) {
        counters.set(key, { count: weight, error: 0 });
        return;
      }
      // Full: the new key takes over the smallest counter and inherits its count as error. A linear scan: the
      // capacity is small (tens), and it runs only for a key not already counted.
      let minKey = '';
      let min: Counter | null = null;
      for (const [k, v] of counters) {
        if (min === null || v.count < min.count) {
          min = v;
          minKey = k;
        }
      }
      counters.delete(minKey);
      counters.set(key, { count: min!.count + weight, error: min!.count });
    },
    top(n = capacity) {
      const all: HeavyHitter[] = [];
      for (const [key, c] of counters) all.push({ key, count: c.count, error: c.error });
      return all.sort(byWeight).slice(0, Math.max(0, n));
    },
  };
}

/**
 * Merges the top lists of several sketches (the workers' in the primary, or two windows): counts and errors add
 * up per key. A key missing from one list may still have been seen there, under that list's smallest count, so
 * the sum is the usual mergeable-summary approximation (Agarwal et al., "Mergeable Summaries", PODS 2012),
 * exact for keys every list holds.
 */
export function mergeTopLists(lists: readonly (readonly HeavyHitter[])[], n: number): HeavyHitter[] {
  const sum = new Map<string, { count: number; error: number }>();
  for (const list of lists) {
    for (const h of list) {
      const s = sum.get(h.key);
      if (s) {
        s.count += h.count;
        s.error += h.error;
      } else sum.set(h.key, { count: h.count, error: h.error });
    }
  }
  const all: HeavyHitter[] = [...sum].map(([key, s]) => ({ key, count: s.count, error: s.error }));
  return all.sort(byWeight).slice(0, Math.max(0, n));
}

export interface RollingTop {
  offer(key: string, weight?: number): void;
  /** The heaviest keys of the current window and the one before it (so the answer never drops to nothing at a
   * window boundary): what was tried in the last one to two windows, not since the process started. */
  top(n: number): HeavyHitter[];
}

/** Two space-saving sketches in turn, each covering `windowMs`: a host denied an hour ago leaves the list. */
export function createRollingTop(opts: {
  readonly capacity: number;
  readonly windowMs: number;
  readonly nowMs: () => number;
}): RollingTop {
  let current = createSpaceSaving(opts.capacity);
  let previous: SpaceSaving | null = null;
  let start = opts.nowMs();
  const rotate = () => {
    const now = opts.nowMs();
    const elapsed = now - start;
    if (elapsed < opts.windowMs) return;
    previous = elapsed < 2 * opts.windowMs ? current : null;
    current = createSpaceSaving(opts.capacity);
    start = now - (elapsed % opts.windowMs);
  };
  return {
    offer(key, weight) {
      rotate();
      current.offer(key, weight);
    },
    top(n) {
      rotate();
      return previous ? mergeTopLists([previous.top(), current.top()], n) : current.top(n);
    },
  };
}
