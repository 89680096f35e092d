// SLUICE_ENV=production turns missing or default security components into start-up errors (CONTRACT §8).
// Each problem says how to fix it. Files are read through an injected reader so tests need no real secrets.
import type { ListenAddress, SluiceConfig } from '../../firewall/config.js';
import { MIN_KEY_BYTES } from '../auth/run-token.js';

export const MIN_ADMIN_TOKEN_BYTES = 24;

export type ReadSecret = (path: string) => Buffer | null;

const isLoopback = (l: ListenAddress) => l.host === '::1' || l.host.startsWith('127.');

/** Problems that must stop any start, production or not: they would expose Sluice beyond loopback. */
export function exposureProblems(config: SluiceConfig, readSecret: ReadSecret, generatedIdentity: boolean): string[] {
  const out: string[] = [];
  const admin = config.listen.admin;
  if (admin && !isLoopback(admin)) {
    const token = config.admin.tokenFile ? readSecret(config.admin.tokenFile) : null;
    if (!token || token.length < MIN_ADMIN_TOKEN_BYTES) {
      out.push(`listen.admin ${admin.text} is beyond loopback without an admin token (hint: set admin.tokenFile to a file of at least ${MIN_ADMIN_TOKEN_BYTES} bytes, or listen on 127.0.0.1)`);
    }
  }
  if (generatedIdentity) {
    for (const [name, l] of [['http', config.listen.http], ['socks5', config.listen.socks5]] as const) {
      if (l && !isLoopback(l)) out.push(`listen.${name} ${l.text} is beyond loopback with only a generated development credential (hint: configure identities)`);
    }
  }
  return out;
}

export function productionProblems(config: SluiceConfig, readSecret: ReadSecret): string[] {
  const out: string[] = [];
  const ids = Object.entries(config.identities);
  if (ids.length === 0) out.push('no identities are configured (hint: add identities with passwordHash from `sluice hash-password`)');
  for (const [name, id] of ids) {
    if (id.password !== null) out.push(`identities.${name} has a plaintext password (hint: replace it with passwordHash from \`sluice hash-password\`)`);
  }
  if (!config.tokens) {
    out.push('tokens.keyFile is not set (hint: tokens: { keyFile: /run/secrets/sluice-token-key }, at least 32 random bytes)');
  } else {
    const key = readSecret(config.tokens.keyFile);
    if (!key) out.push(`tokens.keyFile ${config.tokens.keyFile} cannot be read`);
    else if (key.length < MIN_KEY_BYTES) out.push(`tokens.keyFile holds ${key.length} bytes; at least ${MIN_KEY_BYTES} are required (hint: head -c 48 /dev/urandom | base64 > key)`);
  }
  if (config.listen.admin) {
    const token = config.admin.tokenFile ? readSecret(config.admin.tokenFile) : null;
    if (!config.admin.tokenFile) out.push('the admin API has no token (hint: admin: { tokenFile: /run/secrets/sluice-admin-token })');
    else if (!token) out.push(`admin.tokenFile ${config.admin.tokenFile} cannot be read`);
    else if (token.length < MIN_ADMIN_TOKEN_BYTES) out.push(`admin.tokenFile holds ${token.length} bytes; at least ${MIN_ADMIN_TOKEN_BYTES} are required`);
  }
  return out;
}
