// The RFC 9110/9112 checks llhttp leaves to Sluice (proxy/edge/http-validate.ts), on request heads as llhttp
// hands them over: never throws, answers null or a denial from the codes table, and agrees with a reference
// reading of each MUST (one Host, Host required in 1.1, no Transfer-Encoding in 1.0, no content on CONNECT,
// Max-Forwards decremented and capped). A head the reference refuses is never passed (fail closed).
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import fc from 'fast-check';
import { MAX_FORWARDS_CAP, connectRefusal, requestRefusal, requestVia } from '../../../proxy/edge/http-validate.js';
import { assertDeny, type FuzzTarget } from '../target.js';

const names = fc.constantFrom(
  'Host',
  'host',
  'HOST',
  'Transfer-Encoding',
  'transfer-encoding',
  'Content-Length',
  'Max-Forwards',
  'max-forwards',
  'Via',
  'X-Other',
  'Hos',
  'Hostt',
);
const values = fc.oneof(
  fc.constantFrom(
    '',
    'a.test',
    'a.test:80',
    '[::1]:443',
    '[v1.x]',
    'a b',
    'a@b',
    'a/b',
    'a,b',
    'chunked',
    'gzip, chunked',
    'chunked;q=1',
    ' 0 ',
    '0',
    '7',
    '300',
    '18446744073709551616',
    'x',
    'HTTP/1.1 h (c, d)',
    '1.0 x',
    '%41.test',
    '%4',
  ),
  fc.string({ maxLength: 20 }),
  fc.string({ unit: fc.constantFrom(...'ab.:[]@%0123456789 ,;'.split('')), maxLength: 20 }),
);
const head = fc.record({
  method: fc.constantFrom('GET', 'POST', 'TRACE', 'OPTIONS', 'CONNECT', 'PUT'),
  minor: fc.constantFrom(0, 1),
  lines: fc.array(fc.tuple(names, values), { maxLength: 6 }),
});

function fakeRequest(h: { method: string; minor: number; lines: [string, string][] }): IncomingMessage {
  const rawHeaders = h.lines.flat();
  const headers: Record<string, string> = {};
  for (const [n, v] of h.lines) headers[n.toLowerCase()] ??= v;
  return {
    method: h.method,
    httpVersionMajor: 1,
    httpVersionMinor: h.minor,
    rawHeaders,
    headers,
  } as unknown as IncomingMessage;
}

const linesNamed = (lines: [string, string][], lower: string) =>
  lines.filter(([n]) => n.toLowerCase() === lower).map(([, v]) => v);

export const httpValidateTargets: FuzzTarget[] = [
  {
    name: 'http-validate',
    weight: 10,
    sliceRuns: 2000,
    property: () =>
      fc.property(head, (h) => {
        const req = fakeRequest(h);
        const before = [...req.rawHeaders];
        const r = h.method === 'CONNECT' ? connectRefusal(req) : requestRefusal(req);
        const hosts = linesNamed(h.lines, 'host');
        const te = linesNamed(h.lines, 'transfer-encoding');
        const cl = linesNamed(h.lines, 'content-length');
        const mustRefuse =
          hosts.length > 1 ||
          (hosts.length === 0 && h.minor === 1) ||
          (h.method === 'CONNECT' ? te.length > 0 || cl.some((v) => v.trim() !== '0') : te.length > 0 && h.minor === 0);
        if (r !== null) {
          assertDeny(r, ['EGR_BAD_REQUEST', 'EGR_UNSUPPORTED']);
          return;
        }
        assert.ok(!mustRefuse, 'a head the RFC refuses was passed');
        // RFC 3986 reg-name allows sub-delims (`,` `;` …) but never whitespace, userinfo, a path, query or fragment.
        if (hosts.length === 1) assert.doesNotMatch(hosts[0]!, /[\s@/?#]/, 'Host value with a delimiter was passed');
        // Max-Forwards on TRACE/OPTIONS: decremented in place and capped.
        const mf = linesNamed(h.lines, 'max-forwards');
        if ((h.method === 'TRACE' || h.method === 'OPTIONS') && mf.length === 1) {
          const n = Number(mf[0]!.trim());
          const at = req.rawHeaders.findIndex((v, i) => i % 2 === 0 && v.toLowerCase() === 'max-forwards') + 1;
          assert.ok(n >= 1);
          assert.equal(req.rawHeaders[at], String(Math.min(n - 1, MAX_FORWARDS_CAP)));
        } else {
          assert.deepEqual(req.rawHeaders, before, 'headers changed without Max-Forwards');
        }
      }),
  },
  {
    name: 'http-via',
    weight: 2,
    sliceRuns: 500,
    property: () =>
      fc.property(
        fc.array(fc.tuple(fc.constantFrom('Via', 'via', 'X'), fc.string({ maxLength: 40 })), { maxLength: 4 }),
        fc.constantFrom('1.0', '1.1'),
        (lines, v) => {
          const out = requestVia(lines.flat(), v);
          assert.ok(out.endsWith(`${v} sluice`));
          // Each member the client sent is re-written with a pseudonym: no received-by of theirs survives.
          // And the protocol slot carries a protocol, never a lone token of theirs (a host name from inside).
          for (const m of out.split(', ').slice(0, -1))
            assert.match(m, /^(?:[A-Za-z][A-Za-z0-9+.-]*\/)?[0-9][0-9.]* hidden$/);
        },
      ),
  },
];
