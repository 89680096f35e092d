// decide() for TLS inspection: an inspected tunnel is allowed where a request inside could be; registries are
// read by every identity over TLS (GET, HEAD, git fetch) and never written; a git fetch is a read over https only.
import t from 'tap';
import { validateConfig } from '../../settings/config.js';
import { isDeny } from '../../firewall/codes.js';
import { parseAbsoluteTarget, parseAuthority } from '../../firewall/normalise.js';
import {
  type EgressRequest,
  GIT_FETCH_MAX_BODY_BYTES,
  compilePolicy,
  decide,
  gitFetchOf,
  rightsFor,
} from '../../firewall/policy.js';
import { hostMatches } from '../../firewall/host-match.js';

const r = validateConfig({
  registries: ['registry.npmjs.org'],
  integrations: {
    github: { hosts: ['api.github.com'], tunnel: true },
    slack: { hosts: ['slack.com'], methods: ['GET', 'POST'] },
  },
  identities: {
    agent: { password: 'x', integrations: ['github', 'slack'], reads: 'public' },
    sealed: { password: 'x', integrations: ['slack'], reads: 'none' },
    auditor: { password: 'x', reads: 'none', mode: 'report' },
  },
  globalDeny: { hosts: ['evil.example'] },
  inspection: { caCertFile: '/nonexistent/ca.crt', caKeyFile: '/nonexistent/ca.key', opaque: ['api.github.com'] },
});
if (!r.ok) throw new Error(JSON.stringify(r.issues));
const policy = compilePolicy(r.config);

function inspected(authority: string): EgressRequest {
  const p = parseAuthority(authority);
  if (isDeny(p)) throw new Error(authority);
  return { kind: 'tunnel', target: p.target, inspect: true };
}
function http(method: string, url: string, o: { body?: boolean; gitFetch?: boolean } = {}): EgressRequest {
  const p = parseAbsoluteTarget(url);
  if (isDeny(p)) throw new Error(url);
  return {
    kind: 'http',
    scheme: p.scheme,
    method,
    target: p.target,
    hasBody: !!o.body,
    upgrade: false,
    methodOverride: null,
    gitFetch: !!o.gitFetch,
  };
}
const verdict = (who: string, req: EgressRequest) => {
  const d = decide(policy, { killSwitch: false }, rightsFor(policy, who)!, req);
  return isDeny(d) ? d.code : `allow ${d.rule} ${d.tls ? 'tls' : 'clear'}:${d.port}`;
};

t.test('inspected tunnels', async (t) => {
  const rows: [string, EgressRequest, string][] = [
    ['agent', inspected('example.com:443'), 'allow identities.agent.reads tls:443'],
    ['agent', inspected('example.com:8443'), 'allow identities.agent.reads tls:8443'],
    ['agent', inspected('example.com:22'), 'EGR_DENY_PORT'],
    ['agent', inspected('slack.com:443'), 'allow integrations.slack tls:443'],
    ['sealed', inspected('slack.com:443'), 'allow integrations.slack tls:443'],
    ['sealed', inspected('registry.npmjs.org:443'), 'allow registries tls:443'],
    ['sealed', inspected('registry.npmjs.org:8443'), 'EGR_DENY_PORT'],
    ['sealed', inspected('example.com:443'), 'EGR_DENY_READ'],
    ['agent', inspected('evil.example:443'), 'EGR_DENY_GLOBAL'],
    ['agent', inspected('localhost:443'), 'EGR_DENY_ADDRESS_LOOPBACK'],
    ['auditor', inspected('example.com:443'), 'allow mode.report tls:443'],
  ];
  for (const [who, req, want] of rows) t.equal(verdict(who, req), want, `${who} ${req.target.host}:${req.target.port}`);
});

t.test('registries: read by all over TLS, never written', async (t) => {
  t.equal(verdict('sealed', http('GET', 'https://registry.npmjs.org/pkg')), 'allow registries tls:443');
  t.equal(verdict('sealed', http('HEAD', 'https://registry.npmjs.org/pkg')), 'allow registries tls:443');
  t.equal(verdict('sealed', http('GET', 'http://registry.npmjs.org/pkg')), 'EGR_DENY_READ', 'not in cleartext');
  t.equal(
    verdict('agent', http('PUT', 'https://registry.npmjs.org/pkg', { body: true })),
    'EGR_DENY_WRITE',
    'npm publish',
  );
  t.equal(verdict('sealed', http('POST', 'https://registry.npmjs.org/pkg', { body: true })), 'EGR_DENY_WRITE');
  t.equal(verdict('sealed', http('GET', 'https://registry.npmjs.org/pkg', { body: true })), 'EGR_DENY_DISGUISED_WRITE');
});

t.test('git fetch (upload-pack) is a read over https; push (receive-pack) a write', async (t) => {
  t.ok(gitFetchOf('POST', '/o/r.git/git-upload-pack', 'application/x-git-upload-pack-request', '200'));
  t.ok(gitFetchOf('POST', '/o/r.git/git-upload-pack?x=1', ' Application/X-Git-Upload-Pack-Request ', '1000'));
  t.ok(
    gitFetchOf(
      'POST',
      '/o/r.git/git-upload-pack',
      'application/x-git-upload-pack-request',
      String(GIT_FETCH_MAX_BODY_BYTES),
    ),
  );
  t.notOk(gitFetchOf('POST', '/o/r.git/git-receive-pack', 'application/x-git-receive-pack-request', '200'));
  t.notOk(gitFetchOf('POST', '/o/r.git/git-upload-pack', 'application/octet-stream', '200'));
  t.notOk(gitFetchOf('PUT', '/o/r.git/git-upload-pack', 'application/x-git-upload-pack-request', '200'));
  // The body is bounded like a head: chunked (no Content-Length) or larger is an upload, judged as the write it is.
  t.notOk(
    gitFetchOf('POST', '/o/r.git/git-upload-pack', 'application/x-git-upload-pack-request', undefined),
    'chunked',
  );
  t.notOk(
    gitFetchOf(
      'POST',
      '/o/r.git/git-upload-pack',
      'application/x-git-upload-pack-request',
      String(GIT_FETCH_MAX_BODY_BYTES + 1),
    ),
    'over the bound',
  );
  t.notOk(
    gitFetchOf('POST', '/o/r.git/git-upload-pack', 'application/x-git-upload-pack-request', '1e3'),
    'not a plain length',
  );
  const fetch = (url: string) => http('POST', url, { body: true, gitFetch: true });
  t.equal(verdict('agent', fetch('https://git.example/r.git/git-upload-pack')), 'allow identities.agent.reads tls:443');
  t.equal(verdict('sealed', fetch('https://registry.npmjs.org/r.git/git-upload-pack')), 'allow registries tls:443');
  t.equal(verdict('sealed', fetch('https://git.example/r.git/git-upload-pack')), 'EGR_DENY_READ');
  t.equal(
    verdict('agent', fetch('http://git.example/r.git/git-upload-pack')),
    'EGR_DENY_WRITE',
    'over http:// it stays a write',
  );
  t.equal(
    verdict('agent', http('POST', 'https://git.example/r.git/git-receive-pack', { body: true })),
    'EGR_DENY_WRITE',
  );
});

t.test('inspection.opaque compiles into the policy', async (t) => {
  t.ok(hostMatches(policy.opaqueHosts, 'api.github.com'));
  t.notOk(hostMatches(policy.opaqueHosts, 'slack.com'));
});

t.test('integrationInspected: what the credential broker asks', async (t) => {
  const { integrationInspected } = await import('../../proxy/inspection/problems.js');
  t.notOk(integrationInspected(r.config, 'github'), 'api.github.com is opaque');
  t.ok(integrationInspected(r.config, 'slack'));
  t.notOk(integrationInspected(r.config, 'nope'));
  t.notOk(integrationInspected({ ...r.config, inspection: null }, 'slack'), 'inspection off');
  const wild = validateConfig({
    integrations: { w: { hosts: ['*.w.example'], tunnel: true } },
    inspection: { caCertFile: '/x', caKeyFile: '/y', opaque: ['*.w.example'] },
  });
  if (!wild.ok) throw new Error('bad config');
  t.notOk(integrationInspected(wild.config, 'w'), 'a wildcard kept opaque');
});
