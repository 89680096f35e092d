// A log destination (and the product's logger on it) whose lines the test can read back.
import type { Logger } from 'pino';
import { type LogDestination, createLogger } from '../../proxy/log-destination.js';

export function captureLogs(): { logs: Record<string, unknown>[]; logger: Logger; destination: LogDestination } {
  const logs: Record<string, unknown>[] = [];
  const destination: LogDestination = {
    write(s) {
      for (const line of s.split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>);
    },
    flush: (cb) => cb?.(),
    flushSync: () => undefined,
  };
  return { logs, logger: createLogger('debug', destination), destination };
}
