// The lint rules are only worth something if they catch what they claim to: each fixture under fixtures/ is a
// way around the choke point (or a promise nobody handles) that the regex test before them missed, linted with
// the repository's own eslint.config.js as if it sat at the same path in the tree.
import { join } from 'node:path';
import { ESLint } from 'eslint';
import t from 'tap';
import { repoPath } from '../helpers/repo.js';

const fixtures = repoPath('test/lint/fixtures');

// Every fixture and the one rule it must trip, with the line: a rule that fires somewhere else proves nothing.
const MUST_FAIL: Record<string, readonly (readonly [string, number])[]> = {
  'proxy/edge/bare-net.ts': [['no-restricted-imports', 2]],
  'proxy/edge/node-tls.ts': [['no-restricted-imports', 2]],
  'proxy/edge/named-connect.ts': [['no-restricted-imports', 2]],
  'proxy/edge/http2.ts': [['no-restricted-imports', 1]],
  'proxy/edge/deep-undici.ts': [['no-restricted-imports', 3]],
  'proxy/edge/child-process.ts': [['no-restricted-imports', 1]],
  'proxy/edge/create-require.ts': [['no-restricted-imports', 1]],
  'proxy/edge/dynamic-import.ts': [
    ['no-restricted-syntax', 3],
    ['no-restricted-syntax', 4],
    ['no-restricted-syntax', 5],
  ],
  'proxy/edge/fetch-global.ts': [['no-restricted-globals', 1]],
  'proxy/edge/bindings.ts': [
    ['no-restricted-properties', 2],
    ['no-restricted-properties', 2],
  ],
  'proxy/edge/floating-promise.ts': [['@typescript-eslint/no-floating-promises', 7]],
  'proxy/edge/misused-promise.ts': [['@typescript-eslint/no-misused-promises', 3]],
  'proxy/edge/forged-plan.ts': [
    ['no-restricted-syntax', 6],
    ['no-restricted-syntax', 6],
  ],
  'proxy/edge/bare-error.ts': [
    ['no-restricted-syntax', 3],
    ['no-restricted-syntax', 4],
  ],
  'firewall/io.ts': [
    ['no-restricted-imports', 2],
    ['no-restricted-imports', 3],
    ['no-restricted-properties', 5],
  ],
};
// Types, pure helpers, constants and handled promises; and the dialer, which may hold the sockets.
const MUST_PASS = ['proxy/edge/clean.ts', 'proxy/egress/dialer.ts'];

t.test('the lint rules report every way around the boundaries, and nothing in clean code', async (t) => {
  // The config's `files` globs are relative to cwd when the config is named explicitly: the fixture tree
  // stands in for the repository's.
  const eslint = new ESLint({ cwd: fixtures, overrideConfigFile: repoPath('eslint.config.js') });
  const results = await eslint.lintFiles(['.']);
  const found = new Map(results.map((r) => [r.filePath.slice(fixtures.length + 1), r.messages]));
  t.same([...found.keys()].sort(), [...Object.keys(MUST_FAIL), ...MUST_PASS].sort(), 'every fixture is listed below');
  for (const [file, expected] of Object.entries(MUST_FAIL)) {
    const messages = found.get(file) ?? [];
    t.same(
      messages.filter((m) => m.fatal),
      [],
      `${file} parses (and is type-aware)`,
    );
    t.same(
      messages.map((m) => [m.ruleId, m.line]),
      expected,
      file,
    );
  }
  for (const file of MUST_PASS) t.same(found.get(file), [], `${file} passes`);
});
