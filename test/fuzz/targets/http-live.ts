// The HTTP edge as deployed: request heads, headers and chunked bodies written byte for byte to a live
// listener (createHttpListener → the real pipeline: identity, normalisation, decide()), with one stub: the
// dialer, which records what reached it and refuses (nothing ever leaves the process). Properties:
//   - no crash and no hang: every connection is answered and closed within a bound once the client ends;
//   - every answer is an HTTP/1.1 status line with a code from the codes table;
//   - fail closed: the dialer is reached only with valid credentials and only for a host the policy grants,
//     and for requests built from parts, only when decide() on a reference reading of the request (the
//     WHATWG URL parser's host, the method as sent) allows it too.
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { connect } from 'node:net';
import { Writable } from 'node:stream';
import fc from 'fast-check';
import pino from 'pino';
import { ALL_CODES, deny, isDeny } from '../../../firewall/codes.js';
import { validateConfig } from '../../../settings/config.js';
import { normaliseHost } from '../../../firewall/normalise.js';
import { type Policy, compilePolicy, decide, methodOverrideOf, rightsFor } from '../../../firewall/policy.js';
import { createHttpListener } from '../../../proxy/edge/http-listener.js';
import { createSocks5Listener } from '../../../proxy/edge/socks5-listener.js';
import type { Dialer } from '../../../proxy/egress/dialer.js';
import { AUDIT_MESSAGE, createAudit } from '../../../proxy/ops/audit.js';
import { createPipeline } from '../../../proxy/pipeline/pipeline.js';
import { createFlowRegistry } from '../../../proxy/runtime/flows.js';
import { createWarmIdentities } from '../../helpers/identities.js';
import type { FuzzTarget } from '../target.js';

export const PASSWORD = 'agent-password-123';
export const GRANTED = new Set(['allowed.test', 'tunnel.test']);
const basic = (s: string) => `Basic ${Buffer.from(s).toString('base64')}`;

function policyOf(): Policy {
  const r = validateConfig({
    listen: { http: '127.0.0.1:0', socks5: null, admin: null },
    registries: [],
    integrations: {
      api: { hosts: ['allowed.test'], methods: ['GET', 'HEAD', 'POST'] },
      t: { hosts: ['tunnel.test'], tunnel: true },
    },
    // reads: none — the grants are then exactly the integrations' hosts (public reads would allow GET anywhere).
    identities: { agent: { password: PASSWORD, integrations: ['api', 't'], reads: 'none' } },
    globalDeny: { hosts: ['blocked.allowed.test'] },
  });
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  return compilePolicy(r.config);
}

export interface Passed {
  readonly identity: unknown;
  readonly host: unknown;
  readonly port: unknown;
  readonly path: unknown;
}

export interface Live {
  readonly port: number;
  /** The SOCKS5 listener on the same pipeline. */
  readonly socksPort: number;
  readonly policy: Policy;
  /** Hosts the dialer was asked to prepare, and the audit records of requests that passed decide(), since the
   * last take(). */
  take(): { hosts: string[]; passed: Passed[] };
  close(): Promise<void>;
}

export async function startLive(): Promise<Live> {
  const policy = policyOf();
  const reached: string[] = [];
  const dialer = {
    async prepare(host: { host: string }) {
      reached.push(host.host);
      return deny('EGR_FAIL_DNS', 'fuzz.dialer', 'the fuzz dialer never resolves');
    },
    async connect() {
      return deny('EGR_FAIL_CONNECT_REFUSED', 'fuzz.dialer');
    },
    agent: undefined,
    refresh() {},
    async close() {},
  } as unknown as Dialer;
  const passed: Passed[] = [];
  const { identities } = await createWarmIdentities(policy, 'agent', PASSWORD);
  const sink = new Writable({ write: (_c, _e, cb) => cb() });
  // The audit record of a request the stub dialer refused is one that decide() allowed.
  const auditSink = new Writable({
    write: (c: Buffer, _e, cb) => {
      for (const line of c.toString().split('\n')) {
        if (!line) continue;
        const rec = JSON.parse(line) as Record<string, unknown>;
        if (rec.msg === AUDIT_MESSAGE && rec.code === 'EGR_FAIL_DNS')
          passed.push({
            identity: rec.identity,
            host: rec['target.host'],
            port: rec['target.port'],
            path: rec['target.path'],
          });
      }
      cb();
    },
  });
  const logger = pino({ level: 'silent' }, sink);
  const pipeline = createPipeline({
    policy: () => policy,
    state: () => ({ killSwitch: false }),
    identities,
    dialer,
    audit: createAudit({ logger: pino({ level: 'info' }, auditSink), nowMs: () => performance.now() }),
    flows: createFlowRegistry(),
    logger,
    timeouts: () => ({ tunnelHelloTimeoutMs: 1000, idleTimeoutMs: 5000 }),
  });
  const server = createHttpListener(pipeline, { headersTimeoutMs: 2000, idleTimeoutMs: 5000, maxHeaderBytes: 8192 });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const socks = createSocks5Listener(pipeline, { headersTimeoutMs: 2000, maxHeaderBytes: 8192 });
  await new Promise<void>((resolve) => socks.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    socksPort: (socks.address() as AddressInfo).port,
    policy,
    take: () => ({ hosts: reached.splice(0), passed: passed.splice(0) }),
    close: () =>
      Promise.all([
        new Promise<void>((resolve) => {
          server.closeAllConnections();
          server.close(() => resolve());
        }),
        new Promise<void>((resolve) => {
          socks.closeAllConnections();
          socks.close(() => resolve());
        }),
      ]).then(() => undefined),
  };
}

/** Writes the bytes, ends the client side and reads until the server closes; null on a hang. Node's server
 * closes a half-closed connection once no answer is in progress, so an answer that is still being worked out
 * when the FIN is read is lost (text ''); the pipeline still finishes and audits it, so the caller lets a few
 * turns of the event loop pass before reading the audit records of this input. */
export async function exchange(port: number, bytes: Buffer, limitMs: number): Promise<string | null> {
  const text = await new Promise<string | null>((resolve) => {
    const chunks: Buffer[] = [];
    const s = connect(port, '127.0.0.1');
    const timer = setTimeout(() => {
      s.destroy();
      resolve(null);
    }, limitMs);
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', () => {});
    s.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('latin1'));
    });
    s.end(bytes);
  });
  for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
  return text;
}

// Spellings of the granted hosts, and look-alikes that must not pass for them.
const GRANTED_SPELLINGS = [
  'allowed.test',
  'ALLOWED.Test.',
  'allowed.test:80',
  'allowed.test:443',
  'allowed.test:8080',
  'tunnel.test:443',
  'Tunnel.Test.:443',
  'allowed\uff0etest',
  'allowed.test.',
  'tunnel.test:80',
  'allowed.test:00080',
];
const LOOK_ALIKES = [
  'evil.test',
  'allowed.test@evil.test',
  'evil.test@allowed.test',
  'allowed.test.evil.test',
  'blocked.allowed.test',
  '127.0.0.1',
  '[::1]',
  'allowed%2etest',
  'allowed.test\\@evil.test',
  'allowed.test#@evil.test',
  'xn--allowed-.test',
  '0x7f.1',
  'allowed.test:0',
  'allowed.test:65536',
  'allowed..test',
  '',
  ':80',
  'allowed.test:80:80',
  'allowed.test%00.evil.test',
  'allowed.tes\u0442',
  'allowed.test\u3002evil.test',
  '[::ffff:127.0.0.1]:443',
];
const AUTH = {
  good: basic(`agent:${PASSWORD}`),
  wrong: basic('agent:wrong-password-1'),
  unknown: basic(`nobody:${PASSWORD}`),
  malformed: 'Basic !!!',
  bearer: 'Bearer x',
} as const;
type AuthKind = keyof typeof AUTH | 'none';

const chunkedBody = fc.oneof(
  fc.array(fc.string({ maxLength: 12 }), { maxLength: 3 }).map(
    (parts) =>
      parts
        .filter((p) => p)
        .map((p) => `${Buffer.byteLength(p).toString(16)}\r\n${p}\r\n`)
        .join('') + '0\r\n\r\n',
  ),
  fc.constantFrom(
    '0\r\n\r\n',
    '5;ext=1\r\nhello\r\n0\r\nTrailer: x\r\n\r\n',
    'ffffffffffffffffff\r\nx\r\n',
    '-1\r\n\r\n',
    '5\r\nhel\r\n0\r\n\r\n',
    '0\r\n\r\nGET http://evil.test/ HTTP/1.1\r\nHost: evil.test\r\n\r\n',
    '1\nx\n0\n\n',
    'z\r\n\r\n',
  ),
);

const request = fc.record({
  method: fc.oneof(
    fc.constantFrom('GET', 'POST', 'HEAD', 'CONNECT'),
    fc.constantFrom('DELETE', 'PUT', 'get', 'OPTIONS', 'TRACE', 'G\x00T', 'PATCH'),
  ),
  scheme: fc.constantFrom('http', 'https', 'HTTP', 'ftp'),
  host: fc.oneof(fc.constantFrom(...GRANTED_SPELLINGS), fc.constantFrom(...LOOK_ALIKES)),
  path: fc.constantFrom('/', '/a?b=c', '', '?q', '/#frag', '/%0d%0a', '/a b'),
  version: fc.constantFrom('HTTP/1.1', 'HTTP/1.1', 'HTTP/1.0', 'HTTP/2.0', 'HTTP/1.1x', ''),
  hostHeaders: fc.array(fc.constantFrom('allowed.test', 'evil.test', '', 'a b', 'allowed.test:80'), { maxLength: 2 }),
  auth: fc.constantFrom<AuthKind>('good', 'good', 'good', 'wrong', 'unknown', 'malformed', 'bearer', 'none'),
  override: fc.option(fc.constantFrom('DELETE', 'GET', 'PUT'), { freq: 4 }),
  extra: fc.array(
    fc.constantFrom(
      'Expect: 100-continue',
      'Expect: nothing',
      'Upgrade: websocket',
      'Connection: upgrade',
      'Connection: close',
      'Max-Forwards: 0',
      'Max-Forwards: x',
      'Via: 1.1 inner',
      'X-A: b',
      'Transfer-Encoding: gzip',
      'Content-Length: 1',
    ),
    { maxLength: 3 },
  ),
  body: fc.oneof(
    fc.constant({ kind: 'none' as const, text: '' }),
    chunkedBody.map((text) => ({ kind: 'chunked' as const, text })),
    fc.string({ maxLength: 20 }).map((text) => ({ kind: 'length' as const, text })),
  ),
  eol: fc.constantFrom('\r\n', '\r\n', '\r\n', '\n'),
  pipelined: fc.boolean(),
});
// Half the runs are well-formed apart from what is being varied (target, method, override, body), so that the
// decisions behind the parsers are reached often; the other half keep every variation.
const requestOrClean = fc.tuple(request, fc.boolean()).map(([r, clean]): Req =>
  clean
    ? {
        ...r,
        version: 'HTTP/1.1' as const,
        hostHeaders: ['allowed.test' as const],
        auth: 'good' as const,
        override: null,
        extra: [],
        eol: '\r\n' as const,
        body: r.method === 'CONNECT' ? { kind: 'none' as const, text: '' } : r.body,
      }
    : r,
);
type Req = typeof request extends fc.Arbitrary<infer T> ? T : never;

function render(r: Req): string {
  const target = r.method === 'CONNECT' ? r.host : `${r.scheme}://${r.host}${r.path}`;
  const lines = [`${r.method} ${target}${r.version ? ` ${r.version}` : ''}`];
  for (const h of r.hostHeaders) lines.push(`Host: ${h}`);
  if (r.auth !== 'none') lines.push(`Proxy-Authorization: ${AUTH[r.auth]}`);
  if (r.override) lines.push(`X-HTTP-Method-Override: ${r.override}`);
  lines.push(...r.extra);
  if (r.body.kind === 'chunked') lines.push('Transfer-Encoding: chunked');
  if (r.body.kind === 'length') lines.push(`Content-Length: ${Buffer.byteLength(r.body.text)}`);
  let out = lines.join(r.eol) + r.eol + r.eol + r.body.text;
  if (r.pipelined)
    out += `GET http://allowed.test/second HTTP/1.1\r\nHost: allowed.test\r\nProxy-Authorization: ${AUTH.good}\r\n\r\n`;
  return out;
}

/** Whether decide() allows the request as a WHATWG client means it, or null when the reference cannot read it. */
function referenceAllows(policy: Policy, r: Req): boolean | null {
  if (r.method === 'CONNECT') {
    // authority-form: the port is what follows the last colon; the host is read as a URL host.
    const m = /^(.*):(\d+)$/.exec(r.host);
    if (!m) return false;
    let hostname: string;
    try {
      hostname = new URL(`http://${m[1]}/`).hostname;
    } catch {
      return null;
    }
    const host = normaliseHost(hostname);
    if (isDeny(host)) return false;
    return (
      decide(policy, { killSwitch: false }, rightsFor(policy, 'agent')!, {
        kind: 'tunnel',
        target: { ...host, port: Number(m[2]) },
      }).verdict === 'allow'
    );
  }
  let u: URL;
  try {
    u = new URL(`${r.scheme}://${r.host}${r.path}`);
  } catch {
    return null;
  }
  const scheme = u.protocol === 'https:' ? 'https' : u.protocol === 'http:' ? 'http' : null;
  if (scheme === null) return false;
  const host = normaliseHost(u.hostname);
  if (isDeny(host)) return false;
  const headers: Record<string, string> = {};
  if (r.override) headers['x-http-method-override'] = r.override;
  const d = decide(policy, { killSwitch: false }, rightsFor(policy, 'agent')!, {
    kind: 'http',
    scheme,
    method: r.method,
    target: { ...host, port: Number(u.port || (scheme === 'https' ? 443 : 80)) },
    hasBody: r.body.kind !== 'none',
    upgrade: r.extra.some((e) => e.startsWith('Upgrade')),
    upgradeTo: null,
    methodOverride: methodOverrideOf(headers),
  });
  return d.verdict === 'allow';
}

const STATUS = /^HTTP\/1\.1 (\d{3}) /;
const CODE = new RegExp(`\\b(${ALL_CODES.join('|')})\\b`);

function checkAnswer(text: string): void {
  if (text === '') return; // closed without a word: resets and unanswerable garbage
  const m = STATUS.exec(text);
  assert.ok(m, `not an HTTP/1.1 answer: ${JSON.stringify(text.slice(0, 80))}`);
  const status = Number(m[1]);
  // 100 Continue may precede the final answer; every final answer here is a refusal with a code.
  if (status !== 100) assert.match(text, CODE, 'refusal without a code');
}

// A quarter of the inputs get one to three bytes overwritten with delimiters, controls or high bytes.
const mutation = fc.oneof(
  { weight: 3, arbitrary: fc.constant<[number, number][]>([]) },
  {
    weight: 1,
    arbitrary: fc.array(
      fc.tuple(fc.nat(), fc.constantFrom(0x00, 0x0a, 0x0d, 0x20, 0x3a, 0x40, 0x25, 0x2f, 0x7f, 0xff, 0x41)),
      { minLength: 1, maxLength: 3 },
    ),
  },
);

let live: Live | null = null;
const counts = { runs: 0, answered: 0, passedDecide: 0, checkedAgainstReference: 0 };

export const httpLiveTargets: FuzzTarget[] = [
  {
    name: 'http-live',
    weight: 4,
    sliceRuns: 150,
    property: async () => {
      live = await startLive();
      const l = live;
      return fc.asyncProperty(requestOrClean, mutation, async (r, flips) => {
        const bytes = Buffer.from(render(r), 'latin1');
        for (const [at, v] of flips) bytes[at % bytes.length] = v;
        l.take();
        const text = await exchange(l.port, bytes, 5000);
        assert.ok(text !== null, 'no answer and no close within 5 s (hang)');
        checkAnswer(text);
        counts.runs++;
        if (text !== '') counts.answered++;
        const { hosts, passed } = l.take();
        for (const host of hosts)
          assert.ok(GRANTED.has(host), `the dialer was asked for ${host}, which no grant names`);
        assert.equal(passed.length, hosts.length, 'the dialer was reached other than through decide()');
        for (const p of passed) {
          assert.equal(p.identity, 'agent');
          assert.ok(GRANTED.has(String(p.host)));
        }
        // The pipelined second request (path /second) is always allowed; the first is judged against references.
        const first = passed.filter((p) => p.path !== '/second');
        counts.passedDecide += passed.length;
        if (first.length > 0 && flips.length === 0) {
          counts.checkedAgainstReference++;
          assert.equal(first.length, 1);
          assert.equal(r.auth, 'good', 'reached the dialer without valid credentials');
          assert.notEqual(
            referenceAllows(l.policy, r),
            false,
            'allowed a request that decide() denies for what a WHATWG client means by it',
          );
        }
      });
    },
    stats: () =>
      `${counts.runs} connections, ${counts.answered} answered, ${counts.passedDecide} requests allowed by decide() (reached the dialer), ${counts.checkedAgainstReference} of them checked against the reference`,
    close: async () => {
      await live?.close();
      live = null;
    },
  },
];
