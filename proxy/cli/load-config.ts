// How commands read the config: a file (validated, with every issue printed) or the embedded default.
import { type SluiceConfig, formatIssue, validateConfig } from '../../settings/config.js';
import { type LoadedConfig, loadConfigFile } from '../runtime/config-file.js';
import { err, fail } from './output.js';

function loadOrDefault(path: string | undefined): LoadedConfig {
  return path ? loadConfigFile(path) : { ...validateConfig({}), digest: '' };
}

/** The config and the digest of the bytes it was read from (the reloader's starting point). */
export function requireLoaded(path: string | undefined): { config: SluiceConfig; digest: string } {
  const r = loadOrDefault(path);
  if (!r.ok) {
    for (const i of r.issues) err(formatIssue(i));
    fail(`${path ?? 'embedded default'}: invalid config`);
  }
  return { config: r.config, digest: r.digest };
}

export function requireConfig(path: string | undefined): SluiceConfig {
  return requireLoaded(path).config;
}
