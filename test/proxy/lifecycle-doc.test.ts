// docs/ARCHITECTURE.md "Request lifecycle" draws the stage lists of proxy/pipeline/stages.ts: the same stages in
// the same order, each with the codes it declares, and every code one of the codes table.
import { readFileSync } from 'node:fs';
import t from 'tap';
import { CODES } from '../../firewall/codes.js';
import { HTTP_STAGES, TUNNEL_STAGES, UPGRADE_STAGES } from '../../proxy/pipeline/stages.js';
import { repoPath } from '../helpers/repo.js';

const doc = readFileSync(repoPath('docs/ARCHITECTURE.md'), 'utf8');
const section = doc.slice(doc.indexOf('\n## Request lifecycle\n'));
const lifecycle = section.slice(0, section.indexOf('\n## ', 1));

/** The diagram under the heading naming `list`: each `└─▶ stage` line with the codes up to the next one. */
function diagram(list: string): { stage: string; codes: string[] }[] {
  const at = lifecycle.indexOf(`(\`${list}\`)`);
  if (at < 0) return [];
  const from = lifecycle.indexOf('```text\n', at);
  const block = lifecycle.slice(from, lifecycle.indexOf('\n```', from + 1));
  const stages: { stage: string; codes: string[] }[] = [];
  for (const line of block.split('\n')) {
    const m = /└─▶ (\S+)/.exec(line);
    if (m) stages.push({ stage: m[1]!, codes: [] });
    for (const code of line.match(/\bEGR_[A-Z_]+/g) ?? []) stages.at(-1)?.codes.push(code);
  }
  return stages;
}

t.ok(lifecycle.length > 100, 'the section is there');

for (const [name, list] of [
  ['HTTP_STAGES', HTTP_STAGES],
  ['UPGRADE_STAGES', UPGRADE_STAGES],
  ['TUNNEL_STAGES', TUNNEL_STAGES],
] as const) {
  t.test(name, async (t) => {
    const drawn = diagram(name);
    t.same(
      drawn.map((s) => s.stage),
      list.map((s) => s.name),
      'the diagram lists the stages in order',
    );
    for (const [i, s] of list.entries()) {
      const codes = drawn[i]?.codes ?? [];
      t.same([...new Set(codes)].sort(), [...new Set(s.codes)].sort(), `${s.name}: the codes it declares`);
      for (const code of codes) t.ok(code in CODES, `${code} is in the codes table`);
    }
  });
}
