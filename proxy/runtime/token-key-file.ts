// The run-token key file (`tokens.keyFile`), watched like the config file: polled (Secret mounts, symlink swaps and
// in-place writes alike), and a change is applied only once two reads settleMs apart agree, so a write caught half
// way is never taken for a key. A changed key applies at once — tokens signed with the old one stop working and
// the flows they opened are closed, which is what rotating the key is for. A file made unreadable or too short
// keeps the last good key; the caller logs and counts it like a failed reload, once per content.
import { readFileSync } from 'node:fs';

export interface TokenKeyWatch {
  /** Watches `path` (null: none); `key` is the key in force, as read at start or by the last reload. */
  follow(path: string | null, key: Buffer | null): void;
  close(): void;
}

export interface TokenKeyWatchDeps {
  /** Checks a key file's content (already trimmed); returns the problem, or null when it is a usable key. */
  readonly check: (key: Buffer) => string | null;
  readonly apply: (key: Buffer) => void;
  readonly refuse: (problem: string) => void;
  readonly intervalMs?: number;
  readonly settleMs?: number;
}

/** What a read found: the trimmed content (as readSecretFile trims it), or the reason it could not be read. */
function readKey(path: string): { key: Buffer } | { problem: string } {
  try {
    // Synchronous, like the config and kill-switch watches: an asynchronous read queues on libuv's thread pool
    // behind scrypt, and a login flood would delay a key rotation by tens of seconds (docs/ARCHITECTURE.md).
    return { key: Buffer.from(readFileSync(path, 'utf8').trim(), 'utf8') };
  } catch (err) {
    return { problem: `tokens.keyFile ${path} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})` };
  }
}

const same = (a: { key: Buffer } | { problem: string }, b: { key: Buffer } | { problem: string }): boolean =>
  'key' in a ? 'key' in b && a.key.equals(b.key) : 'problem' in b && a.problem === b.problem;

export function createTokenKeyWatch(deps: TokenKeyWatchDeps): TokenKeyWatch {
  const intervalMs = deps.intervalMs ?? 1000;
  const settleMs = deps.settleMs ?? 100;
  let path: string | null = null;
  let current: Buffer | null = null;
  /** The content last refused: not refused (logged, counted) again on every poll. */
  let refused: { key: Buffer } | { problem: string } | null = null;
  let timer: NodeJS.Timeout | null = null;
  let busy = false;

  const poll = async (watched: string): Promise<void> => {
    const first = readKey(watched);
    if ('key' in first && current && first.key.equals(current)) {
      refused = null;
      return;
    }
    if (refused && same(first, refused)) return;
    await new Promise((r) => setTimeout(r, settleMs).unref());
    const second = readKey(watched);
    // Still changing (or followed elsewhere meanwhile): the next poll will see where it settles.
    if (!same(first, second) || watched !== path) return;
    const problem = 'key' in second ? deps.check(second.key) : second.problem;
    if (problem !== null) {
      refused = second;
      deps.refuse(problem);
      return;
    }
    refused = null;
    current = (second as { key: Buffer }).key;
    deps.apply(current);
  };

  const stop = () => {
    if (timer) clearInterval(timer);
    timer = null;
  };

  return {
    follow(next, key) {
      current = key;
      refused = null;
      if (next === path && timer) return;
      stop();
      path = next;
      if (!next) return;
      timer = setInterval(() => {
        if (busy || !path) return;
        busy = true;
        void poll(path)
          .catch((err: unknown) => deps.refuse(`internal error: ${(err as Error).message}`))
          .finally(() => {
            busy = false;
          });
      }, intervalMs);
      timer.unref();
    },
    close() {
      stop();
      path = null;
    },
  };
}
