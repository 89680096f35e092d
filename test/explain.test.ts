// `sluice explain` decides as `serve` does (CONTRACT §2): one table of requests goes through explain (built
// from the running Sluice's own config, the way the command builds it) and through a live in-process Sluice,
// and the two must agree code by code. The rows cover the proxy's own addresses, special-use names (which no
// DNS server may be asked about), IPv4-mapped rules, report mode and globalDeny. Public addresses are put on
// `lo` of a namespace that holds only `lo` (CONTRACT §10), so "dialled" is real and still leaves nothing.
import { execFileSync } from 'node:child_process';
import t from 'tap';
import { CODES, type Code, isCode } from '../firewall/codes.js';
import { rightsFor } from '../firewall/policy.js';
import { explain, prepareExplain } from '../proxy/cli/explain.js';
import { type Canary, startHttpCanary } from './helpers/canary.js';
import { AGENT_AUTH, basic, codeOf, rawExchange, startSluice, viaProxy } from './helpers/harness.js';
import { isolate } from './helpers/netns.js';
import { PASSWORD, buildWorld, worldConfig } from './helpers/world.js';

const PUBLIC = '93.184.216.34';
/** Denied by `addressGuard.deny: ["::ffff:8.8.8.8/128"]`: the mapped spelling must still deny it. */
const MAPPED_DENIED = '8.8.8.8';

// Names a resolver must never be asked about, each answered (if asked) with a public address that works.
const NEVER_ASKED = [
  'localhost',
  'api.localhost',
  'printer.local',
  'metadata.google.internal',
  'x.onion',
  'example.invalid',
  'router.home.arpa',
  'blocked.test',
];

if (isolate(t, import.meta.url)) {
  const w = await buildWorld(t);
  for (const a of [PUBLIC, MAPPED_DENIED]) execFileSync('ip', ['addr', 'add', `${a}/32`, 'dev', 'lo']);
  const canaries: Canary[] = await Promise.all([startHttpCanary(PUBLIC, 80), startHttpCanary(MAPPED_DENIED, 80)]);
  const [publicReal, mappedDenied] = canaries as [Canary, Canary];
  t.teardown(() => Promise.all(canaries.map((c) => c.close())));

  for (const n of NEVER_ASKED) w.dns.set(n, { a: [PUBLIC] });
  w.dns.set('www.public.test', { a: [PUBLIC] });
  w.dns.set('google.test', { a: [MAPPED_DENIED] });
  w.dns.set('self.test', { a: ['127.0.0.1'] });
  w.dns.set('selfreg.test', { a: ['127.0.0.1'] });
  w.dns.set('empty.test', { a: [] });

  const h = await startSluice(
    t,
    worldConfig(w, {
      registries: ['registry.test', 'selfreg.test'],
      identities: {
        agent: { password: PASSWORD, integrations: ['api', 'gh'] },
        sealed: { password: PASSWORD, reads: 'none' },
        auditor: { password: PASSWORD, reads: 'none', mode: 'report' },
      },
      addressGuard: { allow: [{ cidr: '127.0.0.0/8', hosts: ['*.test'] }], deny: ['::ffff:8.8.8.8/128'] },
    }),
  );
  const port = w.publicHttp.port;

  type Row = [who: string, method: string, target: string, expected: Code | 'dialled'];
  const rows: Row[] = [
    ['agent', 'GET', 'http://www.public.test/a', 'dialled'],
    ['agent', 'GET', `http://public.test:${port}/b`, 'dialled'],
    ['agent', 'GET', `http://self.test:${h.port}/`, 'EGR_DENY_ADDRESS_SELF'],
    ['agent', 'CONNECT', 'selfreg.test:443', 'EGR_DENY_ADDRESS_SELF'],
    ['agent', 'GET', 'http://localhost/c', 'EGR_DENY_ADDRESS_LOOPBACK'],
    ['agent', 'GET', 'http://api.localhost/', 'EGR_DENY_ADDRESS_LOOPBACK'],
    ['agent', 'CONNECT', 'localhost:443', 'EGR_DENY_ADDRESS_LOOPBACK'],
    ['agent', 'GET', 'http://printer.local/', 'EGR_DENY_ADDRESS_PRIVATE'],
    ['agent', 'GET', 'http://metadata.google.internal/computeMetadata/v1/', 'EGR_DENY_ADDRESS_PRIVATE'],
    ['agent', 'GET', 'http://router.home.arpa/', 'EGR_DENY_ADDRESS_PRIVATE'],
    ['agent', 'GET', 'http://x.onion/', 'EGR_FAIL_DNS'],
    ['agent', 'GET', 'http://example.invalid/', 'EGR_FAIL_DNS'],
    ['agent', 'GET', 'http://google.test/', 'EGR_DENY_ADDRESS_RULE'],
    ['agent', 'GET', 'http://meta.test/', 'EGR_DENY_ADDRESS_LINK_LOCAL'],
    ['agent', 'GET', 'http://internal.test/', 'EGR_DENY_ADDRESS_PRIVATE'],
    ['agent', 'GET', 'http://nope.test/', 'EGR_FAIL_DNS'],
    ['agent', 'GET', 'http://empty.test/', 'EGR_FAIL_DNS'],
    ['agent', 'POST', 'http://www.public.test/', 'EGR_DENY_WRITE'],
    ['agent', 'GET', `http://127.0.0.2:${port}/`, 'EGR_DENY_IP_LITERAL'],
    ['agent', 'GET', `http://[::ffff:127.0.0.1]:${h.port}/`, 'EGR_DENY_IP_LITERAL'],
    ['agent', 'CONNECT', 'www.public.test:443', 'EGR_DENY_TUNNEL'],
    ['sealed', 'GET', 'http://www.public.test/', 'EGR_DENY_READ'],
    // report mode lifts steps 3–5 only: globalDeny and special-use names still hold, then the guard
    ['auditor', 'GET', 'http://www.public.test/d', 'dialled'],
    ['auditor', 'GET', `http://blocked.test:${port}/`, 'EGR_DENY_GLOBAL'],
    ['auditor', 'POST', 'http://localhost/', 'EGR_DENY_ADDRESS_LOOPBACK'],
    ['auditor', 'GET', `http://self.test:${h.port}/`, 'EGR_DENY_ADDRESS_SELF'],
    ['auditor', 'GET', 'http://google.test/', 'EGR_DENY_ADDRESS_RULE'],
  ];

  // serve's outcome: the code it refused with, or "dialled" when the decision let the request out (an answer
  // from the origin, or an upstream failure after dialling).
  const outcome = (code: string | undefined): Code | 'dialled' => {
    if (code === undefined || !isCode(code)) return 'dialled';
    return code.startsWith('EGR_FAIL_CONNECT') || code === 'EGR_FAIL_UPSTREAM' || code === 'EGR_UPSTREAM_TLS'
      ? 'dialled'
      : code;
  };
  async function viaServe(who: string, method: string, target: string): Promise<Code | 'dialled'> {
    const auth = who === 'agent' ? AGENT_AUTH : basic(who, PASSWORD);
    if (method !== 'CONNECT') return outcome(codeOf(await viaProxy(h.port, { method, url: target, auth })));
    const r = await rawExchange(
      h.port,
      `CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\nProxy-Authorization: ${auth}\r\n\r\n`,
      1500,
    );
    return outcome(/details="([A-Z_]+)"/.exec(r.text)?.[1]);
  }

  t.test('explain and serve agree, code by code', async (t) => {
    const config = h.sluice.state.config();
    const { policy, resolver } = prepareExplain(config, { resolve: true });
    for (const [who, method, target, expected] of rows) {
      const rights = rightsFor(policy, who);
      if (!rights) throw new Error(`no identity ${who}`);
      const e = await explain(policy, rights, { method, target, headers: {}, body: false }, resolver);
      const explained = e.code ?? 'dialled';
      const served = await viaServe(who, method, target);
      t.equal(explained, served, `${who} ${method} ${target}: explain ${explained}, serve ${served}`);
      t.equal(served, expected, `${who} ${method} ${target}`);
      t.equal(e.allowed, explained === 'dialled');
      if (explained !== 'dialled')
        t.ok(
          e.lines.some((l) => l.includes(explained)),
          'explain prints the code',
        );
      if (explained !== 'dialled') t.ok(CODES[explained], 'a code of the table');
    }
  });

  t.test(
    'special-use and globally denied names never reach a DNS server; denied addresses are never dialled',
    async (t) => {
      for (const n of NEVER_ASKED) t.equal(w.dns.asked(n), 0, `${n} was never asked`);
      t.equal(mappedDenied.connections, 0, 'the address denied by a mapped rule was never dialled');
      t.same(
        publicReal.requests.map((r) => r.url).sort(),
        ['/a', '/d'],
        'the public address was reached only by the rows that were allowed',
      );
    },
  );
}
