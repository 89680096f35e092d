// Every relative link in the Markdown the repository ships (README.md, docs/*.md, each folder's README) must
// resolve inside a clone: the file (or folder) exists and git tracks it, and an anchor names a heading of the
// target, slugged as GitHub does.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import t from 'tap';
import { REPO } from './helpers/repo.js';

const ROOT = REPO;
// What a clone holds: the files git tracks (a file present here but untracked or ignored would not be there).
// Null outside a git checkout (an unpacked tarball): existence is all that can be checked.
const git = spawnSync('git', ['ls-files', '-z'], { cwd: ROOT, encoding: 'utf8' });
const TRACKED = git.status === 0 ? new Set(git.stdout.split('\0').filter(Boolean)) : null;
const inClone = (rel: string) =>
  TRACKED === null ||
  rel === '' ||
  TRACKED.has(rel) ||
  [...TRACKED].some((f) => f.startsWith(rel.endsWith('/') ? rel : `${rel}/`));

const DOCS = [
  'README.md',
  ...readdirSync(join(ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`),
  ...['firewall', 'proxy', 'iptables', 'test', 'bench'].flatMap((d) =>
    readdirSync(join(ROOT, d))
      .filter((f) => f.endsWith('.md'))
      .map((f) => `${d}/${f}`),
  ),
];

/** GitHub's heading anchors: lower case, punctuation dropped (not `-` and `_`), spaces to `-`, duplicates -1, -2. */
export function headingSlugs(markdown: string): Set<string> {
  const slugs = new Set<string>();
  const seen = new Map<string, number>();
  let fenced = false;
  for (const line of markdown.split('\n')) {
    if (/^\s*(```|~~~)/.test(line)) fenced = !fenced;
    if (fenced) continue;
    const m = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!m) continue;
    const text = m[1]!
      .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1') // links keep their text
      .replace(/<[^>]+>/g, '')
      .toLowerCase();
    const base = text.replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    slugs.add(n === 0 ? base : `${base}-${n}`);
  }
  return slugs;
}

/** Inline links and images outside code: `[text](target)`. */
export function relativeLinks(markdown: string): { target: string; line: number }[] {
  const out: { target: string; line: number }[] = [];
  let fenced = false;
  markdown.split('\n').forEach((line, i) => {
    if (/^\s*(```|~~~)/.test(line)) fenced = !fenced;
    if (fenced) return;
    const text = line.replace(/`[^`]*`/g, '');
    for (const m of text.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
      const target = m[1]!;
      if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // http:, https:, mailto:
      out.push({ target, line: i + 1 });
    }
  });
  return out;
}

t.test('the slugger agrees with GitHub on the shapes these docs use', async (t) => {
  const slugs = headingSlugs(
    '# Sluice\n## Quick start (60 seconds)\n### `iptables/setup.sh apply | verify | remove`\n## Workers (`workers: N`)\n## Tests\n## Tests\n```\n# not a heading\n```\n',
  );
  t.same(
    [...slugs],
    [
      'sluice',
      'quick-start-60-seconds',
      'iptablessetupsh-apply--verify--remove',
      'workers-workers-n',
      'tests',
      'tests-1',
    ],
  );
});

for (const doc of DOCS) {
  t.test(`${doc}: every relative link resolves`, async (t) => {
    const text = readFileSync(join(ROOT, doc), 'utf8');
    const links = relativeLinks(text);
    for (const { target, line } of links) {
      const [path, anchor] = target.split('#') as [string, string | undefined];
      const file = path === '' ? join(ROOT, doc) : resolve(ROOT, dirname(doc), decodeURIComponent(path));
      const where = `${doc}:${line} → ${target}`;
      if (!file.startsWith(ROOT + '/') && file !== ROOT) {
        t.fail(`${where}: points outside the repository`);
        continue;
      }
      if (!existsSync(file)) {
        t.fail(`${where}: ${relative(ROOT, file)} does not exist`);
        continue;
      }
      if (!inClone(relative(ROOT, file))) {
        t.fail(`${where}: ${relative(ROOT, file)} is not tracked by git, so a clone does not have it`);
        continue;
      }
      if (anchor !== undefined) {
        if (!statSync(file).isFile() || !file.endsWith('.md')) {
          t.fail(`${where}: an anchor into something that is not a Markdown file`);
          continue;
        }
        t.ok(headingSlugs(readFileSync(file, 'utf8')).has(anchor), `${where}: heading exists`);
      } else {
        t.pass(where);
      }
    }
  });
}
