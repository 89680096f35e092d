// decide(), row by row in its evaluation order (see the numbered comment on it), and the interactions
// between the rows: report mode, global deny over every allow, literals and exceptions, disguised writes.
import t from 'tap';
import { validateConfig } from '../../settings/config.js';
import { isDeny } from '../../firewall/codes.js';
import { parseAbsoluteTarget, parseAuthority } from '../../firewall/normalise.js';
import { type EgressRequest, compilePolicy, decide, rightsFor } from '../../firewall/policy.js';

const r = validateConfig({
  registries: ['registry.npmjs.org', '*.pythonhosted.org'],
  integrations: {
    github: { hosts: ['api.github.com', 'uploads.github.com'], tunnel: true },
    slack: { hosts: ['slack.com', '*.slack.com'], methods: ['GET', 'POST'], tunnel: false },
    dav: {
      hosts: ['webdav.example'],
      methods: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'PROPFIND', 'OPTIONS'],
    },
    pinned: { hosts: ['93.184.216.34'] },
  },
  identities: {
    agent: { password: 'x', integrations: ['github', 'slack'], reads: 'public' },
    reader: { password: 'x' },
    sealed: { password: 'x', integrations: ['github'], reads: 'none' },
    dav: { password: 'x', integrations: ['dav'], reads: 'none' },
    auditor: { password: 'x', reads: 'none', mode: 'report' },
    pinned: { password: 'x', integrations: ['pinned'], reads: 'none' },
  },
  globalDeny: { hosts: ['*.pastebin.com', 'evil.example', 'api.github.com.evil.example'], cidrs: ['8.8.4.0/24'] },
  addressGuard: {
    allow: [
      { cidr: '10.20.0.0/16', hosts: ['artifactory.corp', '10.20.0.5'] },
      { cidr: '93.184.216.0/24', hosts: ['93.184.216.34'] },
    ],
  },
});
if (!r.ok) throw new Error(JSON.stringify(r.issues));
const policy = compilePolicy(r.config);
const reportPolicy = compilePolicy({ ...r.config, mode: 'report' });

interface Opts {
  body?: boolean;
  upgrade?: boolean;
  override?: string;
}
function http(method: string, url: string, o: Opts = {}): EgressRequest {
  const p = parseAbsoluteTarget(url);
  if (isDeny(p)) throw new Error(url);
  return {
    kind: 'http',
    scheme: p.scheme,
    method,
    target: p.target,
    hasBody: !!o.body,
    upgrade: !!o.upgrade,
    methodOverride: o.override ?? null,
  };
}
function tunnel(authority: string): EgressRequest {
  const p = parseAuthority(authority);
  if (isDeny(p)) throw new Error(authority);
  return { kind: 'tunnel', target: p.target };
}

type Expect = string; // a code, or `allow <rule> <tls|clear>:<port>`
const rows: [step: string, who: string, req: EgressRequest, expect: Expect, kill?: boolean][] = [
  // 1. kill switch beats everything, report mode included
  ['1 kill switch', 'agent', http('GET', 'http://example.com/'), 'EGR_DENY_KILL_SWITCH', true],
  ['1 kill switch over registry tunnel', 'agent', tunnel('registry.npmjs.org:443'), 'EGR_DENY_KILL_SWITCH', true],
  ['1 kill switch over report identity', 'auditor', http('GET', 'http://example.com/'), 'EGR_DENY_KILL_SWITCH', true],
  // 2. global deny beats every allow
  ['2 global deny wildcard', 'agent', http('GET', 'http://paste.pastebin.com/'), 'EGR_DENY_GLOBAL'],
  [
    '2 global deny apex is not a wildcard match',
    'agent',
    http('GET', 'http://pastebin.com/'),
    'allow identities.agent.reads clear:80',
  ],
  ['2 global deny exact', 'agent', http('GET', 'http://evil.example/'), 'EGR_DENY_GLOBAL'],
  ['2 global deny over integration', 'agent', http('POST', 'http://api.github.com.evil.example/'), 'EGR_DENY_GLOBAL'],
  ['2 global deny cidr over literal exception', 'agent', http('GET', 'http://8.8.4.4/'), 'EGR_DENY_GLOBAL'],
  ['2 global deny over tunnel', 'agent', tunnel('x.pastebin.com:443'), 'EGR_DENY_GLOBAL'],
  // 3. IP literals
  ['3 literal read', 'agent', http('GET', 'http://93.184.216.35/'), 'EGR_DENY_IP_LITERAL'],
  ['3 literal metadata', 'agent', http('GET', 'http://169.254.169.254/latest/meta-data/'), 'EGR_DENY_IP_LITERAL'],
  ['3 literal hex spelling', 'agent', http('GET', 'http://0xa9fea9fe/'), 'EGR_DENY_IP_LITERAL'],
  ['3 literal v6', 'agent', http('GET', 'http://[2001:4860:4860::8888]/'), 'EGR_DENY_IP_LITERAL'],
  [
    '3 literal covered by exception',
    'agent',
    http('GET', 'http://10.20.0.5/'),
    'allow identities.agent.reads clear:80',
  ],
  ['3 literal in exception cidr but not listed', 'agent', http('GET', 'http://10.20.0.6/'), 'EGR_DENY_IP_LITERAL'],
  ['3 literal tunnel', 'agent', tunnel('10.20.0.5:443'), 'EGR_DENY_TUNNEL'],
  [
    '3 covered literal as integration host',
    'pinned',
    http('POST', 'http://93.184.216.34/'),
    'allow integrations.pinned tls:443',
  ],
  // 4. reads
  ['4 read public', 'agent', http('GET', 'http://example.com/'), 'allow identities.agent.reads clear:80'],
  ['4 head public', 'reader', http('HEAD', 'http://example.com/'), 'allow identities.reader.reads clear:80'],
  ['4 read https', 'reader', http('GET', 'https://example.com/'), 'allow identities.reader.reads tls:443'],
  ['4 read high port', 'reader', http('GET', 'http://example.com:8080/'), 'allow identities.reader.reads clear:8080'],
  ['4 read low port', 'reader', http('GET', 'http://example.com:22/'), 'EGR_DENY_PORT'],
  ['4 read smtp port', 'reader', http('GET', 'http://example.com:25/'), 'EGR_DENY_PORT'],
  ['4 reads none', 'sealed', http('GET', 'http://example.com/'), 'EGR_DENY_READ'],
  [
    '4 reads none, integration read',
    'sealed',
    http('GET', 'http://api.github.com/user'),
    'allow integrations.github tls:443',
  ],
  [
    '4 reads none, integration read over https',
    'sealed',
    http('GET', 'https://api.github.com/user'),
    'allow integrations.github tls:443',
  ],
  // 4. writes in disguise
  ['4 GET with body', 'agent', http('GET', 'http://example.com/', { body: true }), 'EGR_DENY_DISGUISED_WRITE'],
  ['4 HEAD with body', 'agent', http('HEAD', 'http://example.com/', { body: true }), 'EGR_DENY_DISGUISED_WRITE'],
  ['4 GET with Upgrade', 'agent', http('GET', 'http://example.com/ws', { upgrade: true }), 'EGR_DENY_DISGUISED_WRITE'],
  [
    '4 GET with override',
    'agent',
    http('GET', 'http://example.com/', { override: 'DELETE' }),
    'EGR_DENY_DISGUISED_WRITE',
  ],
  [
    '4 GET with empty override',
    'agent',
    http('GET', 'http://example.com/', { override: '' }),
    'EGR_DENY_DISGUISED_WRITE',
  ],
  [
    '4 disguised to integration',
    'agent',
    http('GET', 'http://api.github.com/', { body: true }),
    'allow integrations.github tls:443',
  ],
  [
    '4 websocket to integration',
    'agent',
    http('GET', 'http://api.github.com/ws', { upgrade: true }),
    'allow integrations.github tls:443',
  ],
  [
    '4 override to a method the integration lacks',
    'agent',
    http('GET', 'http://slack.com/', { override: 'DELETE' }),
    'EGR_DENY_METHOD',
  ],
  [
    '4 override on POST to a method the integration lacks',
    'agent',
    http('POST', 'http://slack.com/', { override: 'DELETE' }),
    'EGR_DENY_METHOD',
  ],
  [
    '4 override allowed',
    'agent',
    http('GET', 'http://slack.com/', { override: 'POST' }),
    'allow integrations.slack tls:443',
  ],
  // 4. writes
  ['4 write to non-integration', 'agent', http('POST', 'http://example.com/'), 'EGR_DENY_WRITE'],
  ['4 write with no integrations', 'reader', http('PUT', 'http://api.github.com/'), 'EGR_DENY_WRITE'],
  ['4 write to integration not granted', 'sealed', http('POST', 'http://slack.com/api'), 'EGR_DENY_WRITE'],
  [
    '4 write to integration upgraded to TLS',
    'agent',
    http('POST', 'http://api.github.com/repos'),
    'allow integrations.github tls:443',
  ],
  [
    '4 write explicit :80 still TLS 443',
    'agent',
    http('DELETE', 'http://api.github.com:80/x'),
    'allow integrations.github tls:443',
  ],
  ['4 write over https', 'agent', http('PATCH', 'https://uploads.github.com/x'), 'allow integrations.github tls:443'],
  ['4 write to odd port', 'agent', http('POST', 'http://api.github.com:8080/'), 'EGR_DENY_PORT'],
  ['4 write to odd https port', 'agent', http('POST', 'https://api.github.com:8443/'), 'EGR_DENY_PORT'],
  [
    '4 write wildcard integration',
    'agent',
    http('POST', 'http://hooks.slack.com/x'),
    'allow integrations.slack tls:443',
  ],
  ['4 method not listed', 'agent', http('PUT', 'http://slack.com/x'), 'EGR_DENY_METHOD'],
  ['4 delete not listed', 'agent', http('DELETE', 'http://slack.com/x'), 'EGR_DENY_METHOD'],
  // 4. other methods
  ['4 OPTIONS default-methods integration', 'agent', http('OPTIONS', 'http://api.github.com/'), 'EGR_DENY_METHOD'],
  ['4 TRACE anywhere', 'agent', http('TRACE', 'http://example.com/'), 'EGR_DENY_METHOD'],
  ['4 custom method listed', 'dav', http('PROPFIND', 'http://webdav.example/'), 'allow integrations.dav tls:443'],
  ['4 OPTIONS listed', 'dav', http('OPTIONS', 'http://webdav.example/'), 'allow integrations.dav tls:443'],
  ['4 custom method elsewhere', 'dav', http('PROPFIND', 'http://example.com/'), 'EGR_DENY_METHOD'],
  // 5. tunnels
  ['5 registry', 'reader', tunnel('registry.npmjs.org:443'), 'allow registries clear:443'],
  ['5 registry wildcard', 'sealed', tunnel('files.pythonhosted.org:443'), 'allow registries clear:443'],
  ['5 registry port', 'reader', tunnel('registry.npmjs.org:80'), 'EGR_DENY_PORT'],
  ['5 registry ssh', 'reader', tunnel('registry.npmjs.org:22'), 'EGR_DENY_PORT'],
  ['5 not a registry', 'agent', tunnel('example.com:443'), 'EGR_DENY_TUNNEL'],
  ['5 integration tunnel: true', 'agent', tunnel('api.github.com:443'), 'allow integrations.github clear:443'],
  ['5 integration tunnel: false', 'agent', tunnel('slack.com:443'), 'EGR_DENY_TUNNEL'],
  ['5 integration not granted', 'reader', tunnel('api.github.com:443'), 'EGR_DENY_TUNNEL'],
  ['5 integration tunnel odd port', 'agent', tunnel('api.github.com:22'), 'EGR_DENY_PORT'],
  // report mode, per identity: steps 3–5 become would-deny allows; the kill switch and globalDeny (both halves)
  // still enforce, as the address guard does
  ['report read', 'auditor', http('GET', 'http://example.com/'), 'allow mode.report clear:80 would EGR_DENY_READ'],
  ['report write', 'auditor', http('POST', 'http://example.com/'), 'allow mode.report tls:443 would EGR_DENY_WRITE'],
  ['report tunnel', 'auditor', tunnel('example.com:443'), 'allow mode.report clear:443 would EGR_DENY_TUNNEL'],
  ['report global host', 'auditor', http('GET', 'http://evil.example/'), 'EGR_DENY_GLOBAL'],
  ['report global wildcard', 'auditor', http('GET', 'http://paste.pastebin.com/'), 'EGR_DENY_GLOBAL'],
  ['report global tunnel', 'auditor', tunnel('x.pastebin.com:443'), 'EGR_DENY_GLOBAL'],
  ['report global cidr literal', 'auditor', http('GET', 'http://8.8.4.4/'), 'EGR_DENY_GLOBAL'],
  ['report global cidr mapped literal', 'auditor', http('GET', 'http://[::ffff:8.8.4.4]/'), 'EGR_DENY_GLOBAL'],
  [
    'report literal',
    'auditor',
    http('GET', 'http://169.254.169.254/'),
    'allow mode.report clear:80 would EGR_DENY_IP_LITERAL',
  ],
];

const render = (d: ReturnType<typeof decide>): string =>
  isDeny(d)
    ? d.code
    : `allow ${d.rule} ${d.tls ? 'tls' : 'clear'}:${d.port}${d.wouldDeny ? ` would ${d.wouldDeny.code}` : ''}`;

t.test('decide() rows', async (t) => {
  for (const [step, who, req, expect, kill] of rows) {
    const rights = rightsFor(policy, who)!;
    t.equal(render(decide(policy, { killSwitch: !!kill }, rights, req)), expect, `${step} (${who})`);
  }
});

t.test('global report mode: would-deny allows, kill switch and globalDeny still win', async (t) => {
  const agent = rightsFor(reportPolicy, 'agent')!;
  t.equal(
    render(decide(reportPolicy, { killSwitch: false }, agent, http('GET', 'http://evil.example/'))),
    'EGR_DENY_GLOBAL',
  );
  t.equal(
    render(decide(reportPolicy, { killSwitch: false }, agent, http('POST', 'http://api.github.com.evil.example/'))),
    'EGR_DENY_GLOBAL',
  );
  t.equal(
    render(decide(reportPolicy, { killSwitch: false }, agent, http('GET', 'http://8.8.4.4/'))),
    'EGR_DENY_GLOBAL',
  );
  t.equal(
    render(decide(reportPolicy, { killSwitch: false }, agent, http('POST', 'http://example.com/'))),
    'allow mode.report tls:443 would EGR_DENY_WRITE',
  );
  t.equal(
    render(decide(reportPolicy, { killSwitch: false }, agent, http('GET', 'http://example.com/'))),
    'allow identities.agent.reads clear:80',
  );
  t.equal(
    render(decide(reportPolicy, { killSwitch: true }, agent, http('GET', 'http://example.com/'))),
    'EGR_DENY_KILL_SWITCH',
  );
});

t.test('an identity in enforce mode overrides a global report mode', async (t) => {
  const p = compilePolicy({
    ...r.config,
    mode: 'report',
    identities: { ...r.config.identities, strict: { ...r.config.identities.reader!, mode: 'enforce' } },
  });
  t.equal(
    render(decide(p, { killSwitch: false }, rightsFor(p, 'strict')!, http('POST', 'http://example.com/'))),
    'EGR_DENY_WRITE',
  );
});

t.test('rights narrowed to no integrations lose integration writes', async (t) => {
  const agent = { ...rightsFor(policy, 'agent')!, integrations: new Set<string>() };
  t.equal(
    render(decide(policy, { killSwitch: false }, agent, http('POST', 'http://api.github.com/'))),
    'EGR_DENY_WRITE',
  );
  t.equal(render(decide(policy, { killSwitch: false }, agent, tunnel('api.github.com:443'))), 'EGR_DENY_TUNNEL');
});

t.test('decide() is pure: same input, same output, nothing mutated', async (t) => {
  const rights = rightsFor(policy, 'agent')!;
  const req = http('POST', 'http://api.github.com/');
  const snapshot = JSON.stringify(req);
  const a = decide(policy, { killSwitch: false }, rights, req);
  const b = decide(policy, { killSwitch: false }, rights, req);
  t.same(a, b);
  t.equal(JSON.stringify(req), snapshot);
  t.ok(Object.isFrozen(policy.config));
});

t.test('rightsFor: compiled once per policy, never from Object.prototype', async (t) => {
  t.equal(rightsFor(policy, 'agent'), rightsFor(policy, 'agent'), 'the same rights for the same policy');
  const reloaded = compilePolicy(r.config);
  t.not(rightsFor(reloaded, 'agent'), rightsFor(policy, 'agent'), 'a reload compiles new rights');
  t.ok(Object.isFrozen(rightsFor(policy, 'agent')));
  for (const name of ['constructor', '__proto__', 'toString', 'hasOwnProperty'])
    t.equal(rightsFor(policy, name), null, name);
});
