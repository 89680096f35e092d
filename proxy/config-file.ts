// Reading sluice.yaml: the I/O half of config validation. YAML errors come back as config issues with a
// line and column, so `sluice check` reports them like every other problem.
import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import { type ConfigIssue, type ConfigResult, validateConfig } from '../firewall/config.js';

const MAX_CONFIG_BYTES = 8 * 1024 * 1024;

export function parseConfigText(text: string): ConfigResult {
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: true, strict: true });
  const problems: ConfigIssue[] = doc.errors.map((e) => ({
    severity: 'error' as const,
    path: e.linePos?.[0] ? `line ${e.linePos[0].line}, column ${e.linePos[0].col}` : '/',
    message: e.message.split('\n')[0]!,
    hint: e.code === 'DUPLICATE_KEY' ? 'each key may appear once' : 'check the indentation and quoting on that line',
  }));
  if (problems.length) return { ok: false, issues: problems };
  return validateConfig(doc.toJS({ maxAliasCount: 100 }));
}

export function loadConfigFile(path: string): ConfigResult {
  let text: string;
  try {
    const buf = readFileSync(path);
    if (buf.length > MAX_CONFIG_BYTES) {
      return { ok: false, issues: [{ severity: 'error', path: '/', message: `${path} is larger than ${MAX_CONFIG_BYTES} bytes` }] };
    }
    text = buf.toString('utf8');
  } catch (err) {
    return { ok: false, issues: [{ severity: 'error', path: '/', message: `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}` }] };
  }
  return parseConfigText(text);
}
