import { existsSync, readFileSync } from 'node:fs';

/** The package version, from package.json above this file (src and dist sit at different depths). */
export function packageVersion(): string {
  for (let url = new URL('./', import.meta.url); url.pathname !== '/'; url = new URL('../', url)) {
    const candidate = new URL('package.json', url);
    if (existsSync(candidate))
      return (JSON.parse(readFileSync(candidate, 'utf8')) as { version?: string }).version ?? 'unknown';
  }
  return 'unknown';
}
