// Where the structured log (the audit log above all) goes: stdout, buffered. A line per request would be a
// syscall per request, so lines are batched: written once 4 KiB have gathered, or every second when quiet,
// and flushed synchronously on the way out.
//
// With workers, several processes write the same stdout. A pipe keeps a write whole only up to PIPE_BUF
// (4096 bytes on Linux); a larger write may be split and interleaved with another process's, which would
// corrupt both lines. A regular file shared by forked processes keeps each write whole. So in shared mode
// every write is at most PIPE_BUF bytes and made of whole lines, and a single line longer than that (none of
// the audit record's fields is unbounded, but free-text log fields are) is shortened to fit and marked
// `truncated`, never split.
import { hostname } from 'node:os';
import { type Logger, pino } from 'pino';
import { REDACTED, REDACT_PATHS } from './redact.js';

/** Linux's PIPE_BUF: the largest write a pipe never interleaves with other writers'. */
export const PIPE_BUF = 4096;

/** What pino writes to, with the flushes the process calls on its way out. */
export interface LogDestination {
  write(line: string): void;
  flush(cb?: (err?: Error) => void): void;
  flushSync(): void;
}

const FLUSH_MS = 1000;
/** A field of an over-long line longer than this is replaced by a note of its size. */
const FIELD_BUDGET = 256;

const byteLength = (s: string) => Buffer.byteLength(s, 'utf8');

/** An over-long JSON log line cut down to `max` bytes: the longest fields are replaced by their size. Still
 * one JSON object on one line, so that the log stays parseable. */
export function fitLine(line: string, max = PIPE_BUF): string {
  const body = line.endsWith('\n') ? line.slice(0, -1) : line;
  let record: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(body);
    record =
      parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)
        ? (parsed as Record<string, unknown>)
        : { msg: String(parsed) };
  } catch {
    record = { msg: 'log.unparseable_line' };
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(record)) {
    const json = JSON.stringify(v) ?? '';
    out[k] = json.length > FIELD_BUDGET ? `[${byteLength(json)} bytes truncated]` : v;
  }
  out.truncated = true;
  let text = JSON.stringify(out);
  // Many fields each under the budget can still add up: keep only the fields every log line has.
  if (byteLength(text) + 1 > max) {
    const keep = ['level', 'time', 'pid', 'hostname', 'msg'];
    text = JSON.stringify(
      Object.fromEntries([...keep.filter((k) => k in out).map((k) => [k, out[k]]), ['truncated', true]]),
    );
  }
  if (byteLength(text) + 1 > max) text = JSON.stringify({ msg: 'log.line_too_long', truncated: true });
  return text + '\n';
}

/**
 * `shared`: other processes write the same stdout (workers); keep every write whole (see the module comment).
 */
export function createLogDestination(opts: { shared: boolean; fd?: number }): LogDestination {
  const fd = opts.fd ?? 1;
  const boom = opts.shared
    ? pino.destination({
        dest: fd,
        sync: false,
        minLength: PIPE_BUF - 1024,
        maxWrite: PIPE_BUF,
        periodicFlush: FLUSH_MS,
      })
    : pino.destination({ dest: fd, sync: false, minLength: PIPE_BUF, periodicFlush: FLUSH_MS });
  // A UTF-16 unit is at most 3 bytes of UTF-8: shorter strings need no byte count.
  const limit = Math.floor(PIPE_BUF / 3);
  return {
    write: opts.shared
      ? (line) => {
          boom.write(line.length > limit && byteLength(line) > PIPE_BUF ? fitLine(line) : line);
        }
      : (line) => {
          boom.write(line);
        },
    flush: (cb) => boom.flush(cb),
    flushSync() {
      try {
        boom.flushSync();
      } catch {
        // Nothing buffered yet (the fd is opened asynchronously), or stdout is gone: nothing more to do.
      }
    },
  };
}

/** The process's logger: pino with the redaction paths (CONTRACT §7) over a destination. */
export function createLogger(level: string, destination: LogDestination): Logger {
  return pino({ level, redact: { paths: [...REDACT_PATHS], censor: REDACTED } }, destination);
}

/** What the audit record is written through: the three levels it uses, with pino's call shape. */
export interface AuditLogger {
  info(line: Record<string, unknown>, msg: string): void;
  warn(line: Record<string, unknown>, msg: string): void;
  error(line: Record<string, unknown>, msg: string): void;
}

/** pino's numeric levels (a line at or above the configured level is written). */
const LEVELS: Readonly<Record<string, number>> = {
  trace: 10,
  debug: 20,
  info: 30,
  warn: 40,
  error: 50,
  fatal: 60,
  silent: Infinity,
};

/**
 * The audit log's writer: the same destination, level and line shape as pino's
 * (`{"level":30,"time":…,"pid":…,"hostname":…,<fields>,"msg":"egress.decision"}`), without going through pino.
 * The canonical record is flat — a fixed set of fields (audit.ts FIELD), every value a primitive, none of
 * them a redact path (a test holds that) and its free text already scrubbed — so one `JSON.stringify` writes
 * exactly what pino would. pino's generic per-key serialisation (and, before it, @pinojs/redact's clone of
 * every record) cost more than the rest of the record's life on every request (bench/RESULTS.md). Every
 * other line goes through the redacting pino logger.
 */
export function createAuditLogger(level: string, destination: LogDestination): AuditLogger {
  const threshold = LEVELS[level] ?? LEVELS.info!;
  const bindings = `,"pid":${process.pid},"hostname":${JSON.stringify(hostname())},`;
  const at = (n: number) =>
    n < threshold
      ? () => undefined
      : (line: Record<string, unknown>, msg: string) => {
          const body = JSON.stringify(line);
          const fields = body.length > 2 ? `${body.slice(1, -1)},` : '';
          destination.write(`{"level":${n},"time":${Date.now()}${bindings}${fields}"msg":${JSON.stringify(msg)}}\n`);
        };
  return { info: at(30), warn: at(40), error: at(50) };
}
