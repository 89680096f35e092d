// Occupies every thread of libuv's pool, as a flood of scrypt checks does, so a test can show that something
// does not wait for the pool. Each thread is held in open(2) of a FIFO that has no writer; opening the FIFO
// read-write from the event loop (which never blocks on Linux) releases them all.
import { execFileSync } from 'node:child_process';
import { closeSync, constants, openSync } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { join } from 'node:path';

export interface SaturatedPool {
  /** Settles only when a pool thread is free again: proof that the pool really was saturated. */
  readonly probe: Promise<void>;
  release(): Promise<void>;
}

export function saturateThreadPool(dir: string, name = 'pool-fifo'): SaturatedPool {
  const fifo = join(dir, `${name}-${process.pid}-${Math.random().toString(36).slice(2)}`);
  execFileSync('mkfifo', [fifo]);
  const size = Number(process.env.UV_THREADPOOL_SIZE) || 4;
  const held = Array.from({ length: size }, () => open(fifo, 'r'));
  const probe = stat(dir).then(() => undefined);
  return {
    probe,
    async release() {
      const writer = openSync(fifo, constants.O_RDWR | constants.O_NONBLOCK);
      for (const h of await Promise.all(held)) await h.close();
      closeSync(writer);
    },
  };
}
