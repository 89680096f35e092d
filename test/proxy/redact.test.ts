import t from 'tap';
import { pathForLog, scrubText } from '../../proxy/ops/redact.js';

t.test('the scrubber removes common token shapes from free text', async (t) => {
  const rows: [string, RegExp][] = [
    ['jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.SflKxwRJSMeKKF2QT4fwpM', /eyJhbGci/],
    ['token ghp_abcdefghijklmnopqrstuvwxyz0123456789', /ghp_abc/],
    ['github_pat_11ABCDEFG0123456789_abcdefghijklmnop', /github_pat_11/],
    ['key sk-proj-abcdefghijklmnopqrstuvwx', /sk-proj/],
    ['aws AKIAIOSFODNN7EXAMPLE here', /AKIAIOSFODNN7EXAMPLE/],
    ['slack xoxb-1234567890-abcdefghij', /xoxb-1234/],
    ['Authorization: Bearer abcdef0123456789', /abcdef0123456789/],
    ['basic dXNlcjpwYXNzd29yZA==', /dXNlcjpwYXNzd29yZA/],
    ['http://user:hunter2@example.com/x', /hunter2/],
    ['run sluice.v1.eyJzdWIiOiJ.AbCdEf', /sluice\.v1\.eyJ/],
  ];
  for (const [text, secret] of rows) {
    const out = scrubText(text);
    t.notMatch(out, secret, text);
    t.match(out, /\[redacted\]/);
  }
  t.equal(scrubText('ECONNREFUSED 10.0.0.1:443'), 'ECONNREFUSED 10.0.0.1:443', 'ordinary text untouched');
});

t.test('paths keep query keys only', async (t) => {
  t.equal(pathForLog('/search?q=secret&page=2'), '/search?q=&page=');
  t.equal(pathForLog('/a/b'), '/a/b');
  t.equal(pathForLog('/x?token'), '/x?token=');
  t.notMatch(pathForLog('/hook/ghp_abcdefghijklmnopqrstuvwxyz0123456789'), /ghp_/);
  t.ok(pathForLog('/' + 'a'.repeat(1000)).length < 300, 'capped');
});

t.test('the audit record never needs path redaction (it is logged without pino redact: log-destination.ts)', async (t) => {
  const { FIELD, createAudit } = await import('../../proxy/ops/audit.js');
  const { REDACT_PATHS } = await import('../../proxy/ops/redact.js');
  // A path applies to a key it names at the top, or (with `*.`) to any top-level key holding an object.
  const heads = new Set(REDACT_PATHS.map((p) => p.split(/[.[]/)[0]));
  t.ok(heads.has('*'), 'some paths are wildcards: the record must hold no objects at all');
  for (const name of Object.values(FIELD)) t.notOk(heads.has(name), `${name} is not redacted by path`);
  const lines: Record<string, unknown>[] = [];
  const logger = { info: (o: Record<string, unknown>) => lines.push(o), warn: (o: Record<string, unknown>) => lines.push(o), error: (o: Record<string, unknown>) => lines.push(o) };
  const audit = createAudit({ logger: logger as never, nowMs: () => 0 });
  const r = audit.begin('http', '127.0.0.1:1');
  Object.assign(r, { identity: 'agent', method: 'GET', targetHost: 'example.com', targetPort: 80, targetPath: '/a?b=c', detail: 'x' });
  audit.end(r);
  audit.denied(r, { code: 'EGR_DENY_WRITE', rule: 'r', detail: 'd' } as never);
  audit.end(r);
  t.equal(lines.length, 2);
  for (const line of lines) {
    t.same(Object.keys(line).sort(), Object.values(FIELD).sort(), 'exactly the FIELD names');
    for (const [k, v] of Object.entries(line)) t.ok(v === null || typeof v !== 'object', `${k} holds a primitive`);
  }
});
