// Rewrites the README's codes table from the compiled codes table (`npm run docs:codes`).
import { readFileSync, writeFileSync } from 'node:fs';
import { renderCodesMarkdown } from '../dist/firewall/codes.js';

const path = new URL('../README.md', import.meta.url);
const readme = readFileSync(path, 'utf8');
const start = '<!-- codes:start -->';
const end = '<!-- codes:end -->';
const a = readme.indexOf(start);
const b = readme.indexOf(end);
if (a === -1 || b < a) throw new Error('README is missing the codes markers');
writeFileSync(path, `${readme.slice(0, a + start.length)}\n${renderCodesMarkdown()}\n${readme.slice(b)}`);
