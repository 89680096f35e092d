// A pino logger whose lines the test can read back.
import { Writable } from 'node:stream';
import { type Logger, pino } from 'pino';

export function captureLogs(): { logs: Record<string, unknown>[]; logger: Logger } {
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _e, cb) {
      for (const line of chunk.toString().split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  return { logs, logger: pino({ level: 'debug' }, sink) };
}
