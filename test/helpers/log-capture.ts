// A log destination (and the product's logger on it) whose lines the test can read back: parsed, and as the
// raw text written (for secret scans).
import type { Logger } from 'pino';
import { type LogDestination, createLogger } from '../../proxy/ops/log-destination.js';

export interface CapturedLogs {
  readonly logs: Record<string, unknown>[];
  readonly text: () => string;
  readonly logger: Logger;
  readonly destination: LogDestination;
}

export function captureLogs(): CapturedLogs {
  const logs: Record<string, unknown>[] = [];
  const written: string[] = [];
  const destination: LogDestination = {
    write(s) {
      written.push(s);
      for (const line of s.split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>);
    },
    flush: (cb) => cb?.(),
    flushSync: () => undefined,
  };
  return { logs, text: () => written.join(''), logger: createLogger('debug', destination), destination };
}
