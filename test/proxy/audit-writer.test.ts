// The audit writer (log-destination.ts createAuditLogger) writes the canonical record without pino: its lines
// must be what pino would have written for the same record, level and message.
import t from 'tap';
import { pino } from 'pino';
import { type LogDestination, createAuditLogger } from '../../proxy/ops/log-destination.js';

function capture(): LogDestination & { lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    write: (l: string) => void lines.push(l),
    flush: (cb?: (err?: Error) => void) => cb?.(),
    flushSync: () => undefined,
  };
}

const record = {
  id: '0b4c5a3e-0000-4000-8000-000000000000',
  listener: 'http',
  'client.addr': '127.0.0.1:5000',
  identity: 'agent "quoted" \\ \u2028',
  run: null,
  'target.port': 443,
  'dns.ms': 0.125,
  verdict: 'deny',
};

t.test('each level writes one pino-shaped line', async (t) => {
  const ours = capture();
  const theirs = capture();
  const a = createAuditLogger('info', ours);
  const p = pino({ level: 'info' }, theirs);
  for (const level of ['info', 'warn', 'error'] as const) {
    a[level](record, 'egress.decision');
    p[level](record, 'egress.decision');
  }
  t.equal(ours.lines.length, 3);
  for (let i = 0; i < 3; i++) {
    t.ok(ours.lines[i]!.endsWith('\n') && !ours.lines[i]!.slice(0, -1).includes('\n'), 'one line');
    const mine = JSON.parse(ours.lines[i]!) as Record<string, unknown>;
    const pinos = JSON.parse(theirs.lines[i]!) as Record<string, unknown>;
    t.same(Object.keys(mine), Object.keys(pinos), 'the same fields in the same order');
    t.same({ ...mine, time: 0 }, { ...pinos, time: 0 }, 'the same values');
    t.type(mine.time, 'number');
  }
});

t.test('the level threshold holds', async (t) => {
  for (const [level, written] of [
    ['trace', 3],
    ['info', 3],
    ['warn', 2],
    ['error', 1],
    ['fatal', 0],
    ['silent', 0],
  ] as const) {
    const out = capture();
    const a = createAuditLogger(level, out);
    a.info(record, 'm');
    a.warn(record, 'm');
    a.error(record, 'm');
    t.equal(out.lines.length, written, `level ${level}`);
  }
});

t.test('an empty record still makes valid JSON', async (t) => {
  const out = capture();
  createAuditLogger('info', out).info({}, 'm');
  t.match(JSON.parse(out.lines[0]!), { level: 30, msg: 'm' });
});
