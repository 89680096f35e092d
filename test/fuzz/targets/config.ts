// The config loader (firewall/config.ts, proxy/runtime/config-file.ts): any YAML text or JSON value, and a
// valid config with random parts replaced, gives either a frozen config that compiles into a policy or a
// non-empty list of issues with paths — never a throw. Fail closed: a loaded config that still lists a
// globally denied host denies it to every identity, in every mode.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { validateConfig } from '../../../settings/config.js';
import { compilePolicy, decide, rightsFor } from '../../../firewall/policy.js';
import { parseConfigText } from '../../../proxy/runtime/config-file.js';
import { stringify } from 'yaml';
import type { FuzzTarget } from '../target.js';

const BASE = {
  mode: 'enforce',
  registries: ['registry.test', '*.pkg.test'],
  integrations: {
    api: { hosts: ['api.test'], methods: ['GET', 'POST'] },
    gh: { hosts: ['gh.test', '*.gh.test'], tunnel: true },
  },
  identities: {
    agent: { password: 'agent-password-123', integrations: ['api', 'gh'] },
    sealed: { password: 'agent-password-123', reads: 'none', mode: 'report' },
  },
  globalDeny: { hosts: ['blocked.test'], cidrs: ['10.0.0.0/8'] },
  addressGuard: { allow: [{ cidr: '127.0.0.0/8', hosts: ['*.test'] }] },
  limits: { maxHeaderBytes: 8192 },
  log: { level: 'info' },
};

type Json = unknown;
const leafValue = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }),
  fc.constantFrom(
    '*',
    '*.test',
    'blocked.test',
    '0.0.0.0/0',
    '::/0',
    '127.0.0.1:0',
    '10s',
    '-1',
    'report',
    'enforce',
    'none',
    'public',
    '',
    '\u0000',
    '__proto__',
  ),
  fc.constantFrom(null, true, 0, -1, 1e308, 65536, [], {}),
);

/** Paths of every node of a JSON value. */
function paths(v: Json, at: string[] = []): string[][] {
  const out = [at];
  if (v && typeof v === 'object') for (const [k, c] of Object.entries(v)) out.push(...paths(c, [...at, k]));
  return out;
}

function mutate(base: Json, edits: { pick: number; value: Json; del: boolean; key: string | null }[]): Json {
  const root = structuredClone(base) as Record<string, Json>;
  for (const e of edits) {
    const all = paths(root).filter((p) => p.length > 0);
    const path = all[e.pick % all.length]!;
    let parent = root as Record<string, Json>;
    for (const k of path.slice(0, -1)) parent = parent[k] as Record<string, Json>;
    const last = path[path.length - 1]!;
    if (e.key !== null && parent[last] && typeof parent[last] === 'object' && !Array.isArray(parent[last])) {
      Object.defineProperty(parent[last], e.key, {
        value: structuredClone(e.value),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    } else if (e.del) delete parent[last];
    else parent[last] = structuredClone(e.value);
  }
  return root;
}

const edit = fc.record({
  pick: fc.nat(),
  value: leafValue,
  del: fc.boolean(),
  key: fc.option(
    fc.constantFrom(
      'hosts',
      'tunnel',
      'mode',
      'integrations',
      'password',
      'passwordHash',
      'unknown',
      '__proto__',
      'constructor',
      'cidrs',
      'upgrade',
      'methods',
    ),
    { freq: 3 },
  ),
});

const configInput = fc.oneof(
  { weight: 6, arbitrary: fc.array(edit, { minLength: 1, maxLength: 4 }).map((e) => mutate(BASE, e)) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 4 }) },
  { weight: 1, arbitrary: fc.anything({ maxDepth: 3 }) },
);

function checkResult(r: ReturnType<typeof validateConfig>): void {
  if (!r.ok) {
    assert.ok(r.issues.length > 0, 'refused without an issue');
    for (const i of r.issues) {
      assert.ok(i.severity === 'error' || i.severity === 'warning');
      assert.equal(typeof i.path, 'string');
      assert.equal(typeof i.message, 'string');
    }
    assert.ok(
      r.issues.some((i) => i.severity === 'error'),
      'refused with warnings only',
    );
    return;
  }
  assert.ok(Object.isFrozen(r.config), 'config not frozen');
  const policy = compilePolicy(r.config);
  if (!r.config.globalDeny.hosts.includes('blocked.test')) return;
  for (const id of [...Object.keys(r.config.identities), 'nobody']) {
    const rights = rightsFor(policy, id) ?? {
      identity: id,
      integrations: new Set(Object.keys(r.config.integrations)),
      reads: 'public' as const,
      mode: 'report' as const,
    };
    const target = { host: 'blocked.test', kind: 'name' as const, port: 443 };
    for (const req of [
      { kind: 'tunnel' as const, target },
      {
        kind: 'http' as const,
        scheme: 'https' as const,
        method: 'GET',
        target,
        hasBody: false,
        upgrade: false,
        methodOverride: null,
      },
    ]) {
      const d = decide(policy, { killSwitch: false }, rights, req);
      assert.equal(d.verdict, 'deny', `globally denied host allowed for ${id}`);
    }
  }
}

export const configTargets: FuzzTarget[] = [
  {
    name: 'config-validate',
    weight: 3,
    sliceRuns: 300,
    property: () => fc.property(configInput, (input) => checkResult(validateConfig(input))),
  },
  {
    name: 'config-yaml',
    weight: 1,
    sliceRuns: 150,
    property: () =>
      fc.property(
        fc.oneof(
          fc.string({ maxLength: 200 }),
          // YAML aliases can make a value that contains itself, or a billion laughs.
          fc.constantFrom(
            'integrations: &x\n  a: *x\n',
            'registries: &r\n  - *r\n',
            'identities:\n  a: &a\n    integrations: [*a]\n',
            'a: &a [x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n',
            'mode: enforce\nmode: report\n',
            '{}',
            '',
            '# only a comment\n',
            '!!binary aGVsbG8=\n',
            'registries: !!set {a.test: null}\n',
          ),
          fc.array(edit, { minLength: 1, maxLength: 3 }).map((e) => stringify(mutate(BASE, e))),
          fc.tuple(fc.nat(), fc.string({ maxLength: 8 })).map(([at, s]) => {
            const text = stringify(BASE);
            const i = at % text.length;
            return text.slice(0, i) + s + text.slice(i + s.length);
          }),
        ),
        (text) => {
          const r = parseConfigText(text);
          assert.equal(typeof r.ok, 'boolean');
          checkResult(r);
        },
      ),
  },
];
