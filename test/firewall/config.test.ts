import t from 'tap';
import { DEFAULT_REGISTRIES, type ConfigIssue, normalisePattern, validateConfig } from '../../firewall/config.js';
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
  t.same([c.listen.http?.text, c.listen.socks5?.text, c.listen.admin?.text], ['127.0.0.1:3128', '127.0.0.1:1080', '127.0.0.1:9090']);
  t.same(c.integrations, {});
  t.same(c.identities, {});
  for (const r of ['registry.npmjs.org', 'pypi.org', 'files.pythonhosted.org', 'crates.io', 'static.crates.io', 'proxy.golang.org',
    'sum.golang.org', 'rubygems.org', 'repo1.maven.org', 'deb.debian.org']) {
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
  t.ok(validateConfig({ integrations: { gh: { hosts: ['api.github.com'], tunnel: true } } }).ok, 'default methods + tunnel is fine');
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
    addressGuard: { allow: [{ cidr: '169.254.0.0/15', hosts: ['x.corp'] }, { cidr: '10.0.0.0/4', hosts: ['y.corp'] }], deny: ['nope'] },
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

t.test('a file with no settings is refused: it reads like a save caught between its truncate and its write', async (t) => {
  for (const text of ['', '\n', '# only a comment\n', '---\n']) {
    const r = parseConfigText(text);
    t.notOk(r.ok, JSON.stringify(text));
    if (!r.ok) t.match(r.issues[0], { path: '/', hint: /embedded default/ });
  }
  t.ok(parseConfigText('{}\n').ok, 'an explicit empty mapping is the embedded default, on purpose');
});

t.test('an alias bomb ("billion laughs") is an issue, not an exception', async (t) => {
  let text = 'a: &a [x, x, x, x, x, x, x, x, x, x]\n';
  for (let i = 0, prev = 'a'; i < 12; prev = `l${i}`, i++) text += `l${i}: &l${i} [${Array(6).fill(`*${prev}`).join(', ')}]\n`;
  const r = parseConfigText(text);
  t.notOk(r.ok);
  if (!r.ok) t.match(r.issues[0], { path: '/', hint: /aliases/ });
});
