// Host patterns are exact names or a leading `*.` (subdomains only, never the apex), already normalised by
// the config validator. Lookups walk the labels of the host, so cost grows with the name, not the policy.

export interface HostIndex<T> {
  readonly exact: ReadonlyMap<string, readonly T[]>;
  readonly wildcard: ReadonlyMap<string, readonly T[]>;
  readonly size: number;
}

export function compileHostIndex<T>(entries: Iterable<readonly [pattern: string, value: T]>): HostIndex<T> {
  const exact = new Map<string, T[]>();
  const wildcard = new Map<string, T[]>();
  let size = 0;
  for (const [pattern, value] of entries) {
    const [map, key] = pattern.startsWith('*.') ? [wildcard, pattern.slice(2)] : [exact, pattern];
    const list = map.get(key);
    if (list) {
      if (!list.includes(value)) list.push(value);
    } else {
      map.set(key, [value]);
    }
    size++;
  }
  return { exact, wildcard, size };
}

const NONE: readonly never[] = Object.freeze([]);

/** Every value whose pattern matches `host`; exact matches first, then wildcards from the closest suffix. */
export function lookupHost<T>(index: HostIndex<T>, host: string): readonly T[] {
  const hit = index.exact.get(host);
  if (index.wildcard.size === 0) return hit ?? NONE;
  // A copy only when a wildcard adds to the exact hits; the common answer is an existing array.
  let found: T[] | null = null;
  let dot = host.indexOf('.');
  while (dot !== -1) {
    const w = index.wildcard.get(host.slice(dot + 1));
    if (w) (found ??= hit ? [...hit] : []).push(...w);
    dot = host.indexOf('.', dot + 1);
  }
  return found ?? hit ?? NONE;
}

export function hostMatches(index: HostIndex<unknown>, host: string): boolean {
  if (index.exact.has(host)) return true;
  if (index.wildcard.size === 0) return false;
  let dot = host.indexOf('.');
  while (dot !== -1) {
    if (index.wildcard.has(host.slice(dot + 1))) return true;
    dot = host.indexOf('.', dot + 1);
  }
  return false;
}

export const hostSet = (patterns: Iterable<string>): HostIndex<true> =>
  compileHostIndex([...patterns].map((p) => [p, true] as const));
