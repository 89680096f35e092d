// `npm run test:timing [-- N]`: the slowest test files of the last tap run, by wall time of each file's process
// (module loading included), from the records tap keeps in .tap/processinfo. The sum exceeds the run's wall time
// because files run in parallel (.taprc `jobs`).
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const dir = fileURLToPath(new URL('../.tap/processinfo/', import.meta.url));
const top = Number(process.argv[2] ?? 15);

let names;
try {
  names = readdirSync(dir).filter((n) => n.endsWith('.json'));
} catch {
  console.error('no .tap/processinfo: run the tests first (npm test, or npx tap)');
  process.exit(1);
}

// One record per file and run (tap clears the folder at the start of a run); the latest wins all the same.
const latest = new Map();
for (const name of names) {
  let p;
  try {
    p = JSON.parse(readFileSync(dir + name, 'utf8'));
  } catch {
    continue;
  }
  if (p.parent || !p.externalID || typeof p.runtime !== 'number') continue;
  const seen = latest.get(p.externalID);
  if (!seen || seen.date < p.date) latest.set(p.externalID, p);
}

const rows = [...latest.values()].sort((x, y) => y.runtime - x.runtime);
const total = rows.reduce((s, p) => s + p.runtime, 0) / 1000;
const width = Math.max(...rows.slice(0, top).map((p) => p.externalID.length), 4);
console.log(`${'file'.padEnd(width)}  seconds`);
for (const p of rows.slice(0, top)) console.log(`${p.externalID.padEnd(width)}  ${(p.runtime / 1000).toFixed(1)}`);
console.log(`${rows.length} files, ${total.toFixed(0)} s of process time in all`);
