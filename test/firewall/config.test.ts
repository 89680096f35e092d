import t from 'tap';
import { DEFAULT_REGISTRIES, normalisePattern } from '../../firewall/config.js';
import { type ConfigIssue, validateConfig } from '../../settings/config.js';
import { parseConfigText } from '../../proxy/runtime/config-file.js';

const issues = (raw: unknown): ConfigIssue[] => {
  const r = validateConfig(raw);
  return r.ok ? [...r.warnings] : [...r.issues];
};
const find = (list: ConfigIssue[], path: string) => list.find((i) => i.path === path);

t.test('the embedded default', async (t) => {
  const r = validateConfig({});
  if (!r.ok) throw new Error('default must be valid');
  const c = r.config;
  t.equal(c.mode, 'enforce');
  t.same(
    [c.listen.http?.text, c.listen.socks5?.text, c.listen.admin?.text],
    ['127.0.0.1:3128', '127.0.0.1:1080', '127.0.0.1:9090'],
  );
  t.same(c.integrations, {});
  t.same(c.identities, {});
  for (const r of [
    'registry.npmjs.org',
    'pypi.org',
    'files.pythonhosted.org',
    'crates.io',
    'static.crates.io',
    'proxy.golang.org',
    'sum.golang.org',
    'rubygems.org',
    'repo1.maven.org',
    'deb.debian.org',
  ]) {
    t.ok(c.registries.includes(r), `default registries include ${r}`);
  }
  t.same(c.registries, DEFAULT_REGISTRIES);
  t.ok(Object.isFrozen(c) && Object.isFrozen(c.registries) && Object.isFrozen(c.listen), 'frozen');
});

t.test('unknown keys get a did-you-mean hint', async (t) => {
  const i = issues({ integration: {} });
  t.equal(find(i, '/integration')?.hint, 'did you mean "integrations"?');
  const j = issues({ integrations: { gh: { hosts: ['a.com'], tunel: true } } });
  t.equal(find(j, '/integrations/gh/tunel')?.hint, 'did you mean "tunnel"?');
});

t.test('host patterns: exact or a leading *. only, with a fix hint', async (t) => {
  const i = issues({ registries: ['example.*', '*example.com', 'a.*.com', '*.Example.COM.', 'ok.com'] });
  t.match(find(i, '/registries/0')?.hint, /use "\*\./);
  t.equal(find(i, '/registries/1')?.hint, 'wildcards are a leading "*." only: use "*.example.com"');
  t.ok(find(i, '/registries/2'));
  t.notOk(find(i, '/registries/3'), 'case and trailing dot are normalised, not errors');
  t.notOk(find(i, '/registries/4'));
  t.same(normalisePattern('*.Example.COM.'), { pattern: '*.example.com' });
  t.same(normalisePattern('bücher.de'), { pattern: 'xn--bcher-kva.de' });
  t.match(normalisePattern('*.1.2.3.4'), { message: /wildcard on an IP/ });
});

t.test('tunnel: true with restricted methods is rejected', async (t) => {
  const i = issues({ integrations: { slack: { hosts: ['slack.com'], methods: ['GET', 'POST'], tunnel: true } } });
  const e = find(i, '/integrations/slack/tunnel');
  t.equal(e?.severity, 'error');
  t.match(e?.hint, /tunnel: false/);
  t.ok(
    validateConfig({ integrations: { gh: { hosts: ['api.github.com'], tunnel: true } } }).ok,
    'default methods + tunnel is fine',
  );
});

t.test('CIDRs are read as the guard reads them: IPv4-mapped is IPv4, other embedded forms get a hint', async (t) => {
  const r = validateConfig({
    globalDeny: { cidrs: ['::ffff:8.8.4.0/120', '::/0', '64:ff9b::8.8.8.8/128'] },
    addressGuard: {
      deny: ['::ffff:8.8.8.8/128', '::9.9.9.9/128', '2002:808:808::/48', '2001:db8::/32', '::ffff:0:0/95'],
    },
  });
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  const w = [...r.warnings];
  t.notOk(find(w, '/globalDeny/cidrs/0'), 'a mapped prefix is accepted as the IPv4 prefix it spells');
  t.notOk(find(w, '/addressGuard/deny/0'));
  t.notOk(find(w, '/addressGuard/deny/3'));
  t.match(find(w, '/globalDeny/cidrs/1'), {
    severity: 'warning',
    message: /IPv6 destinations only/,
    hint: /0\.0\.0\.0\/0/,
  });
  t.match(find(w, '/addressGuard/deny/4'), { severity: 'warning', message: /IPv6 destinations only/ });
  t.match(find(w, '/globalDeny/cidrs/2'), { severity: 'warning', message: /nat64/, hint: /"8\.8\.8\.8\/32"/ });
  t.match(find(w, '/addressGuard/deny/1'), {
    severity: 'warning',
    message: /ipv4-compatible/,
    hint: /"9\.9\.9\.9\/32"/,
  });
  t.match(find(w, '/addressGuard/deny/2'), { severity: 'warning', message: /6to4/ });
  t.equal(r.config.addressGuard.deny[0], '::ffff:8.8.8.8/128', 'the config keeps what the operator wrote');

  const i = issues({
    addressGuard: {
      allow: [
        { cidr: '::ffff:169.254.0.0/112', hosts: ['x.corp'] },
        { cidr: '::ffff:10.20.0.0/112', hosts: ['y.corp'] },
        { cidr: '64:ff9b::a14:0/112', hosts: ['z.corp'] },
        { cidr: '::ffff:0:0/96', hosts: ['w.corp'] },
        { cidr: '::a14:0/112', hosts: ['v.corp'] },
      ],
    },
  });
  t.match(
    find(i, '/addressGuard/allow/0/cidr'),
    { severity: 'error', message: /link-local/ },
    'mapped link-local is link-local',
  );
  t.notOk(
    i.some((x) => x.path.startsWith('/addressGuard/allow/1')),
    'a mapped private exception is an IPv4 exception',
  );
  t.match(find(i, '/addressGuard/allow/2/cidr'), {
    severity: 'error',
    message: /nat64 space, which no exception can open/,
    hint: /"10\.20\.0\.0\/16"/,
  });
  t.match(
    i.filter((x) => x.path === '/addressGuard/allow/3/cidr'),
    [
      { severity: 'error', message: /link-local/ },
      { severity: 'warning', message: /broad/ },
    ],
    '::ffff:0:0/96 is all of IPv4',
  );
  t.match(find(i, '/addressGuard/allow/4/cidr'), { severity: 'error', message: /ipv4-compatible/ });
});

t.test('names Sluice never resolves (special-use) are flagged where they could never apply', async (t) => {
  const r = validateConfig({
    registries: ['*.localhost', 'registry.npmjs.org'],
    integrations: {
      a: { hosts: ['x.onion', 'svc.corp.local', 'printer.local', '*.corp.local', 'registry.test', 'www.example'] },
    },
    globalDeny: { hosts: ['*.onion', 'localhost'] },
    addressGuard: { allow: [{ cidr: '10.0.0.0/8', hosts: ['*.corp.local', 'localhost'] }] },
  });
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  const w = [...r.warnings];
  t.match(find(w, '/registries/0'), { severity: 'warning', message: /special-use name \(\.localhost\)/ });
  t.notOk(find(w, '/registries/1'));
  t.match(find(w, '/integrations/a/hosts/0'), { message: /\.onion/ });
  t.notOk(find(w, '/integrations/a/hosts/1'), 'a local-use name bound to an exception is reachable');
  t.match(find(w, '/integrations/a/hosts/2'), { message: /\.local/, hint: /addressGuard\.allow/ });
  t.notOk(find(w, '/integrations/a/hosts/3'));
  t.notOk(find(w, '/integrations/a/hosts/4'), '.test is an ordinary name');
  t.notOk(find(w, '/integrations/a/hosts/5'), '.example is an ordinary name');
  t.notOk(
    w.some((x) => x.path.startsWith('/globalDeny')),
    'denying them is redundant, not wrong',
  );
  t.match(find(w, '/addressGuard/allow/0/hosts/1'), { message: /\.localhost/ });
  t.notOk(find(w, '/addressGuard/allow/0/hosts/0'));
});

t.test('references, credentials, CIDRs, listeners, DNS', async (t) => {
  const i = issues({
    integrations: { github: { hosts: ['api.github.com'] } },
    identities: {
      agent: { passwordHash: 'nope', integrations: ['githb'] },
      bare: {},
      both: { password: 'x', passwordHash: 'scrypt$1$1$1$aaaaaaaaaaaa$aaaaaaaaaaaaaaaaaaaaaaaa' },
    },
    globalDeny: { cidrs: ['10.0.0.0/33', '1.2.3.0/24'] },
    addressGuard: {
      allow: [
        { cidr: '169.254.0.0/15', hosts: ['x.corp'] },
        { cidr: '10.0.0.0/4', hosts: ['y.corp'] },
      ],
      deny: ['nope'],
    },
    listen: { http: 'localhost:3128', socks5: '127.0.0.1:3128' },
    dns: { servers: ['1.1.1.1', 'dns.google'], minTtlS: 10, maxTtlS: 5 },
    mode: 'audit',
  });
  t.match(find(i, '/identities/agent/passwordHash'), { severity: 'error', hint: /hash-password/ });
  t.match(find(i, '/identities/agent/integrations/0'), { hint: 'did you mean "github"?' });
  t.match(find(i, '/identities/bare'), { message: 'no credential' });
  t.match(find(i, '/identities/both'), { message: /both/ });
  t.ok(find(i, '/globalDeny/cidrs/0'));
  t.notOk(find(i, '/globalDeny/cidrs/1'));
  t.match(find(i, '/addressGuard/allow/0/cidr'), { severity: 'error', message: /link-local/ });
  t.match(find(i, '/addressGuard/allow/1/cidr'), { severity: 'warning', message: /broad/ });
  t.ok(find(i, '/addressGuard/deny/0'));
  t.match(find(i, '/listen/http'), { hint: /127\.0\.0\.1:3128/ });
  t.ok(find(i, '/dns/servers/1'));
  t.ok(find(i, '/dns/minTtlS'));
  t.match(find(i, '/mode'), { hint: /"enforce", "report"/ });
  t.ok(i.filter((x) => x.severity === 'error').length >= 11, 'every problem is reported, not only the first');
});

t.test('workers: a count or "auto", one issue with a hint otherwise', async (t) => {
  const ok = (w: unknown) => {
    const r = validateConfig(w === undefined ? {} : { workers: w });
    return r.ok ? r.config.workers : null;
  };
  t.equal(ok(undefined), 1, 'default: one process');
  t.equal(ok(4), 4);
  t.equal(ok('auto'), 'auto');
  for (const bad of [0, -1, 2.5, 'two', null, 1000, true]) {
    const i = issues({ workers: bad });
    t.equal(i.length, 1, `${JSON.stringify(bad)}: one issue`);
    t.match(i[0], { path: '/workers', severity: 'error', hint: /"auto"/ });
  }
});

t.test('names inherited from Object.prototype are not integrations', async (t) => {
  const i = issues({ identities: { a: { password: 'x', integrations: ['constructor', 'toString'] } } });
  t.ok(find(i, '/identities/a/integrations/0') && find(i, '/identities/a/integrations/1'));
});

t.test('plaintext passwords are a warning (production refuses them at start-up)', async (t) => {
  const r = validateConfig({ identities: { a: { password: 'x' } } });
  t.ok(r.ok);
  if (r.ok) t.match(r.warnings[0], { path: '/identities/a/password', severity: 'warning' });
});

t.test('YAML errors are config issues with a position', async (t) => {
  const dup = parseConfigText('mode: enforce\nmode: report\n');
  t.notOk(dup.ok);
  if (!dup.ok) t.match(dup.issues[0], { path: /line 2/, hint: /once/ });
  const bad = parseConfigText('registries: [a.com\n');
  t.notOk(bad.ok);
  const list = parseConfigText('- a\n- b\n');
  t.notOk(list.ok);
  const ok = parseConfigText('registries: [a.com]\nintegrations:\n  gh: { hosts: [api.github.com], tunnel: true }\n');
  t.ok(ok.ok);
});

t.test(
  'a file with no settings is refused: it reads like a save caught between its truncate and its write',
  async (t) => {
    for (const text of ['', '\n', '# only a comment\n', '---\n']) {
      const r = parseConfigText(text);
      t.notOk(r.ok, JSON.stringify(text));
      if (!r.ok) t.match(r.issues[0], { path: '/', hint: /embedded default/ });
    }
    t.ok(parseConfigText('{}\n').ok, 'an explicit empty mapping is the embedded default, on purpose');
  },
);

t.test('an alias bomb ("billion laughs") is an issue, not an exception', async (t) => {
  let text = 'a: &a [x, x, x, x, x, x, x, x, x, x]\n';
  for (let i = 0, prev = 'a'; i < 12; prev = `l${i}`, i++)
    text += `l${i}: &l${i} [${Array(6).fill(`*${prev}`).join(', ')}]\n`;
  const r = parseConfigText(text);
  t.notOk(r.ok);
  if (!r.ok) t.match(r.issues[0], { path: '/', hint: /aliases/ });
});
