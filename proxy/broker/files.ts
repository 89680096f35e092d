// The broker's file I/O, kept apart so everything else takes injected readers: tests drive them, and the
// runtime and the CLI pass these.
import {
  appendFileSync,
  closeSync,
  fsyncSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { appendFile, readFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';

// No file the broker reads is large: a key, a sealed secret, a revocation list.
const MAX_FILE_BYTES = 16 * 1024 * 1024;

/** A file's bytes, or null when it cannot be read (or is absurdly large). */
export function readFileOrNull(path: string): Buffer | null {
  try {
    const st = statSync(path);
    if (!st.isFile() || st.size > MAX_FILE_BYTES) return null;
    return readFileSync(path);
  } catch {
    return null;
  }
}

/** Permission bits of a file, or null. */
export function modeOrNull(path: string): number | null {
  try {
    return statSync(path).mode & 0o7777;
  } catch {
    return null;
  }
}

/** Async read for pollers: a hung volume stalls only the poll, never the event loop. Throws errno errors. */
export const readFileAsync = (path: string): Promise<Buffer> => readFile(path);

// A revocation line is one write(2) with O_APPEND, so concurrent appenders (replicas, the CLI) interleave
// whole lines; the list is not secret (run ids and times), hence 0644 so every replica's user can read it.
export const appendLine = (path: string, line: string): Promise<void> => appendFile(path, line, { mode: 0o644 });
export const appendLineSync = (path: string, line: string): void => appendFileSync(path, line, { mode: 0o644 });

/** Replaces `path` atomically with `data` (a temporary file in the same directory, fsync, rename), created
 * with `mode` so the content is never readable more widely, even for an instant. */
export function writeFileAtomic(path: string, data: string | Buffer, mode: number): void {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const fd = openSync(tmp, 'wx', mode);
  try {
    writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    unlinkSync(tmp);
    throw err;
  }
  closeSync(fd);
  renameSync(tmp, path);
}
