// An LRU cache bounded in entries without preallocating them. lru-cache's `max` allocates its whole index up
// front (key and value lists, links, TTL and size arrays: ~50 bytes an entry, 2.6 MB for 50,000) in every
// process, used or not. Without `max` its lists grow with use; the entry bound is kept here instead: a new key
// on a full cache first evicts the least recently used entry, as `max` would. `maxSize` (bytes) still applies.
import { LRUCache } from 'lru-cache';

export class CountBoundedLru<K extends {}, V extends {}> extends LRUCache<K, V> {
  readonly maxEntries: number;

  constructor(maxEntries: number, opts: Omit<LRUCache.Options<K, V, unknown>, 'max'>) {
    super(opts as LRUCache.Options<K, V, unknown>);
    this.maxEntries = maxEntries;
  }

  override set(k: K, v: V | undefined, setOptions?: LRUCache.SetOptions<K, V, unknown>): this {
    if (this.size >= this.maxEntries && !this.has(k)) this.pop();
    return super.set(k, v, setOptions);
  }
}
