// scrypt password hashes in the form `scrypt$N$r$p$salt$hash` (base64). scrypt is deliberately slow, so a
// verified credential is cached by the identity store rather than re-hashed on every request, and the checks
// that do run are queued with bounds (createVerifyQueue): scrypt runs on libuv's small thread pool, and a
// flood of wrong passwords once queued 200 checks there, ahead of every other login and file read.
import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { type Deny, deny } from '../../firewall/codes.js';

const N = 1 << 15;
const R = 8;
const P = 1;
const KEY_LEN = 32;
// N * r * 128 bytes plus headroom; Node's default maxmem (32 MiB) is exactly too small for N=2^15, r=8.
const maxmemFor = (n: number, r: number) => 128 * n * r * 2;

function derive(password: string, salt: Buffer, n: number, r: number, p: number, len: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(password, salt, len, { N: n, r, p, maxmem: maxmemFor(n, r) }, (err, key) =>
      err ? reject(err) : resolve(key),
    );
  });
}

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await derive(password, salt, N, R, P, KEY_LEN);
  return `scrypt$${N}$${R}$${P}$${salt.toString('base64')}$${key.toString('base64')}`;
}

/** Constant-time check; false (never a throw) for a malformed hash. Work factors are capped so that a
 * hostile config cannot make one check take minutes. */
export async function verifyPassword(password: string, encoded: string): Promise<boolean> {
  const parts = encoded.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const [n, r, p] = [Number(parts[1]), Number(parts[2]), Number(parts[3])];
  if (!Number.isInteger(n) || n < 2 || n > 1 << 20 || (n & (n - 1)) !== 0) return false;
  if (!Number.isInteger(r) || r < 1 || r > 32 || !Number.isInteger(p) || p < 1 || p > 16) return false;
  const salt = Buffer.from(parts[4]!, 'base64');
  const expected = Buffer.from(parts[5]!, 'base64');
  if (salt.length < 8 || expected.length < 16 || expected.length > 128) return false;
  try {
    const key = await derive(password, salt, n, r, p, expected.length);
    return timingSafeEqual(key, expected);
  } catch {
    return false;
  }
}

/** The work factors of a well-formed hash (null otherwise): what an unknown user's dummy check must match. */
export function workFactors(encoded: string): { n: number; r: number; p: number; keyLen: number } | null {
  const parts = encoded.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return null;
  const keyLen = Buffer.from(parts[5]!, 'base64').length;
  const [n, r, p] = [Number(parts[1]), Number(parts[2]), Number(parts[3])];
  return Number.isInteger(n) && Number.isInteger(r) && Number.isInteger(p) ? { n, r, p, keyLen } : null;
}

export interface VerifyLimits {
  /** scrypt runs at once. libuv's pool has 4 threads (UV_THREADPOOL_SIZE) shared with fs and crypto: taking
   * half leaves the rest for everything else, whatever a flood of logins does. */
  readonly running: number;
  /** Verifications waiting or running, all sources together. */
  readonly total: number;
  /** Verifications waiting or running for one source address. */
  readonly perSource: number;
}

export const VERIFY_LIMITS: VerifyLimits = { running: 2, total: 16, perSource: 4 };

export interface VerifyQueue {
  /** Verifies when a slot is free; a 429 at once when the queue or the source is full. */
  verify(source: string, password: string, encoded: string): Promise<boolean> | Deny;
}

/** Bounds scrypt work: at most `running` at once, `total` admitted, `perSource` per address. A free slot goes to
 * the waiting address with the fewest checks running (the first to arrive among equals), so one flooding
 * address cannot make another's first login wait behind its queue: the other address is next. */
export function createVerifyQueue(
  limits: VerifyLimits = VERIFY_LIMITS,
  run: (password: string, encoded: string) => Promise<boolean> = verifyPassword,
): VerifyQueue {
  const waiting = new Map<string, (() => void)[]>();
  const admitted = new Map<string, number>();
  const runningFor = new Map<string, number>();
  let running = 0;
  let total = 0;

  const pump = () => {
    while (running < limits.running && waiting.size > 0) {
      let pick: string | null = null;
      let fewest = Infinity;
      for (const source of waiting.keys()) {
        const n = runningFor.get(source) ?? 0;
        if (n < fewest) [pick, fewest] = [source, n];
      }
      const queue = waiting.get(pick!)!;
      const start = queue.shift()!;
      if (queue.length === 0) waiting.delete(pick!);
      running++;
      runningFor.set(pick!, fewest + 1);
      start();
    }
  };

  const drop = (m: Map<string, number>, key: string) => {
    const left = (m.get(key) ?? 1) - 1;
    if (left > 0) m.set(key, left);
    else m.delete(key);
  };

  return {
    verify(source, password, encoded) {
      if (total >= limits.total)
        return {
          ...deny('EGR_LIMIT_RATE', 'identity.verifications', 'too many password checks in progress'),
          retryAfterS: 1,
        };
      const mine = admitted.get(source) ?? 0;
      if (mine >= limits.perSource)
        return {
          ...deny(
            'EGR_LIMIT_RATE',
            'identity.verificationsPerAddress',
            'too many password checks in progress for this address',
          ),
          retryAfterS: 1,
        };
      total++;
      admitted.set(source, mine + 1);
      return new Promise<boolean>((resolve) => {
        const start = () => {
          void run(password, encoded)
            .catch(() => false)
            .then((ok) => {
              running--;
              total--;
              drop(runningFor, source);
              drop(admitted, source);
              resolve(ok);
              pump();
            });
        };
        const queue = waiting.get(source);
        if (queue) queue.push(start);
        else waiting.set(source, [start]);
        pump();
      });
    },
  };
}
