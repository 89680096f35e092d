// Reading sluice.yaml: the I/O half of config validation. YAML errors come back as config issues with a
// line and column, so `sluice check` reports them like every other problem.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import { type ConfigIssue, type ConfigResult, validateConfig } from '../../settings/config.js';

const MAX_CONFIG_BYTES = 8 * 1024 * 1024;

/** A config file's validation, and the parsed YAML value when the YAML itself was well-formed (so that `sluice
 * check` can still look at the files an otherwise invalid config names). */
export type ParsedConfig = ConfigResult & { readonly raw?: unknown };

export function parseConfigText(text: string): ParsedConfig {
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: true, strict: true });
  const problems: ConfigIssue[] = doc.errors.map((e) => ({
    severity: 'error' as const,
    path: e.linePos?.[0] ? `line ${e.linePos[0].line}, column ${e.linePos[0].col}` : '/',
    message: e.message.split('\n')[0]!,
    hint: e.code === 'DUPLICATE_KEY' ? 'each key may appear once' : 'check the indentation and quoting on that line',
  }));
  if (problems.length) return { ok: false, issues: problems };
  // An empty file would validate as the embedded default, but a file caught between the truncate and the write
  // of a non-atomic save (`cat >`, `echo >`) reads exactly like it: refuse it rather than drop every setting.
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    // yaml throws (not reports) when aliases expand past maxAliasCount, a "billion laughs" document: an issue
    // like any other, never an exception that would crash a reload.
    return {
      ok: false,
      issues: [
        {
          severity: 'error',
          path: '/',
          message: (err as Error).message,
          hint: 'expand the aliases (&name / *name) by hand',
        },
      ],
    };
  }
  if (value === null || value === undefined) {
    return {
      ok: false,
      issues: [
        {
          severity: 'error',
          path: '/',
          message: 'the file holds no settings (it is empty or only comments)',
          hint: 'write at least one setting (`{}` is the embedded default); to run on the embedded default, start without a file',
        },
      ],
    };
  }
  return { ...validateConfig(value), raw: value };
}

/** A config file's validation and the SHA-256 of exactly the bytes validated ('' when it could not be read):
 * the reloader remembers that digest, not a second read of the file, which may already hold a newer write. */
export type LoadedConfig = ParsedConfig & { readonly digest: string };

export const digestBytes = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

export function loadConfigFile(path: string): LoadedConfig {
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch (err) {
    return {
      ok: false,
      digest: '',
      issues: [
        {
          severity: 'error',
          path: '/',
          message: `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
        },
      ],
    };
  }
  const digest = digestBytes(buf);
  if (buf.length > MAX_CONFIG_BYTES) {
    return {
      ok: false,
      digest,
      issues: [{ severity: 'error', path: '/', message: `${path} is larger than ${MAX_CONFIG_BYTES} bytes` }],
    };
  }
  return { ...parseConfigText(buf.toString('utf8')), digest };
}
