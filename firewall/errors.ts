// Stable codes for what Sluice throws (undici's errors.js is the model). A deny is a value (codes.ts), never
// thrown; a throw is a refused boot, a caller outside a function's contract, or a broken invariant — and code
// that catches one (the reload path, the CLI, tests) tells them apart by `.code`, never by message text.

export const ERROR_CODES = Object.freeze({
  /** The configuration, or a file it names, cannot be used: the start is refused, a reload keeps the last good. */
  SLUICE_ERR_CONFIG: 'the configuration or a file it names cannot be used',
  /** A file changed under Sluice while it was being read (rotated, deleted): read it again, or keep the last good. */
  SLUICE_ERR_FILE_CHANGED: 'a file changed while it was being read',
  /** A caller passed a value outside the function's contract (a key too short, a malformed run id). */
  SLUICE_ERR_INVALID_ARGUMENT: 'an argument is outside the function contract',
  /** Something that validation should have made impossible happened: a bug, reported loudly. */
  SLUICE_ERR_INVARIANT: 'an internal invariant does not hold',
});

export type ErrorCode = keyof typeof ERROR_CODES;

export class SluiceError extends Error {
  override readonly name = 'SluiceError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export const isSluiceError = (e: unknown, code?: ErrorCode): e is SluiceError =>
  e instanceof SluiceError && (code === undefined || e.code === code);
