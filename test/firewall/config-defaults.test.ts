// The defaults live in the schemas (firewall/config-schema.ts, settings/schema.ts) and nowhere else: validation
// fills them in on a copy of the input, and the README documents the same values.
import { readFileSync } from 'node:fs';
import t from 'tap';
import { DEFAULT_REGISTRIES, POLICY_SCHEMA } from '../../firewall/config-schema.js';
import { validatePolicy } from '../../firewall/config.js';
import { CONFIG_SCHEMA, validateConfig } from '../../settings/config.js';
import { SETTINGS_SCHEMA } from '../../settings/schema.js';
import { validateSettings } from '../../settings/settings.js';
import { repoPath } from '../helpers/repo.js';

const README = readFileSync(repoPath('README.md'), 'utf8');
const S = SETTINGS_SCHEMA.properties;

t.test('an empty config comes out with every default of the schema', async (t) => {
  const r = validateConfig({});
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  const c = r.config;
  t.equal(c.mode, POLICY_SCHEMA.properties.mode.default);
  t.same(c.registries, DEFAULT_REGISTRIES);
  t.same(c.listen.http?.text, S.listen.default.http);
  t.same(c.listen.socks5?.text, S.listen.default.socks5);
  t.same(c.listen.admin?.text, S.listen.default.admin);
  t.equal(c.listen.dns, null, 'the DNS guard is off unless set');
  for (const [key, schema] of Object.entries(S.limits.properties))
    if ('default' in schema) t.equal(c.limits[key as keyof typeof c.limits], schema.default, `limits.${key}`);
  for (const [key, schema] of Object.entries(S.dns.properties))
    if ('default' in schema) t.equal(c.dns[key as keyof typeof c.dns], schema.default, `dns.${key}`);
  for (const [key, schema] of Object.entries(S.upstream.properties))
    if ('default' in schema) t.equal(c.upstream[key as keyof typeof c.upstream], schema.default, `upstream.${key}`);
  t.equal(c.workers, S.workers.default);
  t.equal(c.log.level, S.log.properties.level.default);
  t.same(c.log.redactPaths, []);
  // The defaults that depend on another setting stay in code: no rate limit, a burst of one, reads open on loopback.
  t.equal(c.limits.requestsPerSecond, null);
  t.equal(c.limits.burst, 1);
  t.equal(c.admin.protectReads, false);
  t.same(c.globalDeny, { hosts: [], cidrs: [] });
  t.same(c.addressGuard, { allow: [], deny: [] });
  t.same(c.integrations, {});
  t.same(c.identities, {});
  t.same(c.credentials, {});
  t.equal(c.tokens, null);
  t.equal(c.inspection, null);
  t.equal(c.secrets, null);
  t.equal(c.containment.probe, null);
  t.ok(Object.isFrozen(c.limits), 'frozen all the way down');
});

t.test('defaults inside sections that are written', async (t) => {
  const r = validateConfig({
    integrations: { gh: { hosts: ['api.github.com'] } },
    identities: { a: { password: 'development-only', integrations: ['gh'] } },
    tokens: { keyFile: '/k' },
    containment: { probe: { target: '203.0.113.10:443' } },
    inspection: { caCertFile: '/ca.crt', caKeyFile: '/ca.key' },
    limits: { requestsPerSecond: 2.5 },
    listen: { http: '127.0.0.1:3128' },
  });
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  const c = r.config;
  t.same(c.integrations.gh, { hosts: ['api.github.com'], methods: null, tunnel: false, upgrade: [] });
  t.same(c.identities.a, {
    passwordHash: null,
    password: 'development-only',
    integrations: ['gh'],
    reads: 'public',
    mode: null,
  });
  t.same(c.tokens, { keyFile: '/k', maxTtlS: 24 * 3600 });
  const p = S.containment.properties.probe.properties;
  t.same(c.containment.probe, {
    host: '203.0.113.10',
    port: 443,
    intervalS: p.intervalS.default,
    timeoutMs: p.timeoutMs.default,
    uid: p.uid.default,
    gid: p.gid.default,
  });
  t.same(c.inspection, {
    caCertFile: '/ca.crt',
    caKeyFile: '/ca.key',
    leafValiditySeconds: 86400,
    leafCacheSize: 1024,
    opaque: [],
  });
  t.equal(c.limits.burst, 3, 'one second of requestsPerSecond, rounded up');
  t.equal(c.listen.socks5, null, 'a written listen section replaces the default one');
});

t.test("the caller's object is not changed", async (t) => {
  const input = { limits: { drainMs: 5 }, integrations: { gh: { hosts: ['API.github.com'] } }, listen: {} };
  const before = structuredClone(input);
  validateConfig(input);
  validatePolicy({ integrations: input.integrations });
  validateSettings({ limits: input.limits });
  t.same(input, before);
  t.notOk(Object.isFrozen(input.limits));
});

t.test('policy and settings split the file between them, each validated alone too', async (t) => {
  const policyKeys = Object.keys(POLICY_SCHEMA.properties);
  const settingsKeys = Object.keys(SETTINGS_SCHEMA.properties);
  t.same(
    policyKeys.filter((k) => settingsKeys.includes(k)),
    [],
    'no key in both',
  );
  t.same(Object.keys(CONFIG_SCHEMA.properties).sort(), [...policyKeys, ...settingsKeys].sort(), 'the file is both');
  const p = validatePolicy({ mode: 'report' });
  t.ok(p.ok && p.config.mode === 'report' && !('listen' in p.config));
  const s = validateSettings({ workers: 2 });
  t.ok(s.ok && s.config.workers === 2 && !('mode' in s.config));
  const wrong = validatePolicy({ listen: {} });
  t.ok(!wrong.ok && wrong.issues.some((i) => i.path === '/listen'), 'a setting is not policy');
});

t.test('the defaults the README documents are the schema defaults', async (t) => {
  // The Limits table: | `name` | default | … |
  const table = README.slice(README.indexOf('| `limits.` | default |'));
  const rows = new Map<string, string>();
  for (const m of table.matchAll(/^\| ((?:`\w+`(?:, )?)+) \| (\w+) \|/gm))
    for (const name of m[1]!.matchAll(/`(\w+)`/g)) rows.set(name[1]!, m[2]!);
  for (const [key, schema] of Object.entries(S.limits.properties)) {
    if ('default' in schema) t.equal(rows.get(key), String(schema.default), `limits.${key}`);
    else t.equal(rows.get(key), 'off', `limits.${key} has no default`);
  }
  // Listeners: the example's listen line is the default section, and the headings say the same.
  const listen = /^listen: \{ http: (\S+), socks5: (\S+), admin: (\S+) \}/m.exec(README);
  t.same(listen?.slice(1), [S.listen.default.http, S.listen.default.socks5, S.listen.default.admin]);
  t.match(README, `\`listen.socks5\` (default \`${S.listen.default.socks5}\`)`);
  t.match(README, `### Admin listener (\`listen.admin\`, default ${S.listen.default.admin})`);
  t.match(README, `The default is ${S.workers.default}.`);
  const probe = S.containment.properties.probe.properties;
  t.match(README, `(default ${probe.uid.default}, never Sluice's own)`);
  t.equal(probe.gid.default, probe.uid.default);
  // The example block states the defaults it repeats.
  const example = README.slice(README.indexOf('```yaml\nmode: enforce'));
  const num = (re: RegExp) => Number(re.exec(example)?.[1]);
  t.equal(num(/timeoutMs: (\d+), minTtlS/), S.dns.properties.timeoutMs.default);
  t.equal(num(/minTtlS: (\d+)/), S.dns.properties.minTtlS.default);
  t.equal(num(/maxTtlS: (\d+)/), S.dns.properties.maxTtlS.default);
  t.equal(num(/connectTimeoutMs: (\d+)/), S.upstream.properties.connectTimeoutMs.default);
  t.equal(num(/tunnelHelloTimeoutMs: (\d+)/), S.upstream.properties.tunnelHelloTimeoutMs.default);
  t.equal(num(/intervalS: (\d+)/), probe.intervalS.default);
  t.equal(num(/leafCacheSize: (\d+)/), POLICY_SCHEMA.properties.inspection.properties.leafCacheSize.default);
  t.match(example, `leafValidity: ${POLICY_SCHEMA.properties.inspection.properties.leafValidity.default}`);
  t.match(example, `maxTtl: ${POLICY_SCHEMA.properties.tokens.properties.maxTtl.default}`);
  t.match(example, `level: ${S.log.properties.level.default}`);
});

t.test('the types follow the schema (checked by tsc)', async (t) => {
  const r = validateConfig({});
  if (!r.ok) throw new Error('the empty config is valid');
  const drainMs: number = r.config.limits.drainMs;
  const level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent' = r.config.log.level;
  const workers: number | 'auto' = r.config.workers;
  const reads: 'public' | 'none' | undefined = r.config.identities.x?.reads;
  // @ts-expect-error a number setting is not a string
  const wrong: string = r.config.limits.maxConnections;
  // @ts-expect-error no key the schema does not have
  void r.config.limits.noSuchLimit;
  t.ok([drainMs, level, workers, reads, wrong].length === 5);
});
