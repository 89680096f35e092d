// CONTRACT §3: only the dialer opens outbound sockets, and `firewall/` is pure. A choke point is only worth
// something if a test keeps it one. The files that hold a socket of their own (eslint.config.js `HOLDERS`) are
// each held to what they do with it below.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ESLint } from 'eslint';
import t from 'tap';
import { REPO } from '../helpers/repo.js';

const root = `${REPO}/`;

// The rules themselves live in eslint.config.js (import boundaries: which file may import which socket API) and
// test/lint/boundaries.test.ts shows they catch the ways around them. Here: the tree keeps them. Untyped and
// limited to the boundary rules, so this costs a parse, not a type check (`npm run lint` runs everything).
const BOUNDARY_RULES = new Set([
  'no-restricted-imports',
  'no-restricted-syntax',
  'no-restricted-globals',
  'no-restricted-properties',
]);

t.test('only the dialer (and its resolver) opens outbound connections, and firewall/ is pure', async (t) => {
  const eslint = new ESLint({
    cwd: root,
    ruleFilter: ({ ruleId }) => BOUNDARY_RULES.has(ruleId),
    overrideConfig: { languageOptions: { parserOptions: { projectService: false } } },
  });
  const results = await eslint.lintFiles(['proxy', 'firewall', 'iptables']);
  t.ok(results.length > 10);
  for (const r of results) {
    t.same(
      r.messages.map((m) => `${m.line}: ${m.ruleId ?? 'fatal'}: ${m.message}`),
      [],
      r.filePath.slice(root.length),
    );
  }
});

t.test('the DNS guard only listens and only ever replies to the querier', async (t) => {
  const text = readFileSync(join(root, 'proxy/ops/dns-guard.ts'), 'utf8').replace(/^\s*(\/\/|\*).*$/gm, '');
  const sends = text.match(/\.send\([^)]*\)/g) ?? [];
  t.same(
    sends,
    ['.send(reply, rinfo.port, rinfo.address)'],
    'one send: the reply, to the address and port the query came from',
  );
  t.notMatch(text, /\.connect\(|setServers|\blookup\(|Resolver/, 'never connects and never resolves');
  t.match(text, /\.bind\(addr\.port, addr\.host/, 'binds the configured listen.dns address');
});

t.test('the containment probe connects only from a child running as another UID, and sends nothing', async (t) => {
  const text = readFileSync(join(root, 'proxy/ops/containment-probe.ts'), 'utf8');
  t.match(
    text,
    /spawn\(process\.execPath, \['-e', CHILD[^\]]*\], \{\s*uid: spec\.uid,\s*gid: spec\.gid,\s*env: \{\}/,
    'spawned with uid, gid and an empty environment',
  );
  const child = /const CHILD = `([^`]*)`/.exec(text)?.[1] ?? '';
  t.match(child, /require\('node:net'\)\.connect\(/);
  t.notMatch(child, /\bs\.(write|end)\(/, 'the probe socket never carries a byte');
});

t.test('the injector only serves HTTPS; it never makes a request', async (t) => {
  const text = readFileSync(join(root, 'proxy/webhook/server.ts'), 'utf8').replace(/^\s*(\/\/|\*).*$/gm, '');
  t.match(text, /import \{ type Server, createServer \} from 'node:https'/, 'only the server half of node:https');
  t.notMatch(text, /\b(request|get|Agent)\b\s*\(|\.connect\(/, 'no request, no agent, no connect');
});
