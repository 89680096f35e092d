// SLUICE_ENV=production turns missing or default security components into start-up errors (CONTRACT §8), and
// some rules hold in every mode (nothing beyond loopback without authentication). Each problem is a
// ConfigIssue — the path in the config, a message, a hint — like every other config problem, so `sluice check`
// and `sluice serve` report them the same way.
import { isLoopbackListen } from '../../firewall/config.js';
import { type ConfigIssue, type SluiceConfig } from '../../settings/config.js';
import { type InspectFile, MIN_ADMIN_TOKEN_BYTES, fileIssues, inspectFile } from './secret-files.js';
import { type CaFileAccess, inspectionProblems } from '../inspection/problems.js';

/** The inspection CA files through the same injected file access as every other file check (modes after
 * following symlinks, as Secret mounts need); the runtime reads them through it too. */
export const caFiles = (inspect: InspectFile = inspectFile): CaFileAccess => ({
  read(path) {
    const f = inspect(path, true);
    return f.kind === 'file' ? f.bytes : null;
  },
  stat(path) {
    const f = inspect(path, false);
    return f.kind === 'file' ? { mode: f.mode } : null;
  },
});
import { credentialProblems } from '../broker/credential-problems.js';
import { modeOrNull, readFileOrNull } from '../broker/files.js';
import { inspectedIntegration } from './broker-runtime.js';

export { MIN_ADMIN_TOKEN_BYTES } from './secret-files.js';

export type ReadSecret = (path: string) => Buffer | null;

/** Problems that must stop any start, production or not: they would expose Sluice beyond loopback. */
export function exposureProblems(
  config: SluiceConfig,
  readSecret: ReadSecret,
  generatedIdentity: boolean,
): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  const admin = config.listen.admin;
  if (admin && !isLoopbackListen(admin)) {
    const token = config.admin.tokenFile ? readSecret(config.admin.tokenFile) : null;
    if (!token || token.length < MIN_ADMIN_TOKEN_BYTES) {
      out.push({
        severity: 'error',
        path: '/listen/admin',
        message: `${admin.text} is beyond loopback without an admin token`,
        hint: `set admin.tokenFile to a file of at least ${MIN_ADMIN_TOKEN_BYTES} bytes, or listen on 127.0.0.1`,
      });
    }
  }
  if (generatedIdentity) {
    for (const [name, l] of [
      ['http', config.listen.http],
      ['socks5', config.listen.socks5],
    ] as const) {
      if (l && !isLoopbackListen(l)) {
        out.push({
          severity: 'error',
          path: `/listen/${name}`,
          message: `${l.text} is beyond loopback with only a generated development credential`,
          hint: 'configure identities',
        });
      }
    }
  }
  return out;
}

/** What SLUICE_ENV=production refuses: the rules below, and every file problem (with production's stricter
 * lengths and permissions). Errors only; fileIssues' warnings are reported by the caller. */
export function productionProblems(config: SluiceConfig, inspect?: InspectFile, files = true): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  const ids = Object.entries(config.identities);
  if (ids.length === 0)
    out.push({
      severity: 'error',
      path: '/identities',
      message: 'no identities are configured',
      hint: 'add identities with passwordHash from `sluice hash-password`',
    });
  for (const [name, id] of ids) {
    if (id.password !== null) {
      out.push({
        severity: 'error',
        path: `/identities/${name}/password`,
        message: 'a plaintext password',
        hint: 'replace it with passwordHash from `sluice hash-password`',
      });
    }
  }
  if (!config.tokens) {
    out.push({
      severity: 'error',
      path: '/tokens/keyFile',
      message: 'tokens.keyFile is not set',
      hint: 'tokens: { keyFile: /run/secrets/sluice-token-key }, at least 32 random bytes',
    });
  }
  if (config.listen.admin && !config.admin.tokenFile) {
    out.push({
      severity: 'error',
      path: '/admin/tokenFile',
      message: 'the admin API has no token',
      hint: 'admin: { tokenFile: /run/secrets/sluice-admin-token }',
    });
  }
  if (files) {
    for (const issue of fileIssues(config, { production: true, ...(inspect ? { inspect } : {}) })) {
      if (issue.severity === 'error') out.push(issue);
    }
  }
  return out;
}

export interface StartCheck {
  readonly production: boolean;
  /** No identities are configured, so `serve` would generate a development credential. */
  readonly generatedIdentity: boolean;
  /** false: leave the files out (`sluice check --skip-files`, for a config whose files live elsewhere). */
  readonly files?: boolean;
  readonly inspect?: InspectFile;
}

/** Everything `sluice serve` would refuse to start with, and the warnings worth saying at start — what
 * `sluice check` reports after validation, and what `serve` checks before it opens anything. */
export function startIssues(config: SluiceConfig, opts: StartCheck): ConfigIssue[] {
  const inspect = opts.inspect ?? inspectFile;
  const out: ConfigIssue[] = [];
  if (opts.files !== false) {
    const files = fileIssues(config, { production: opts.production, inspect });
    out.push(...files);
    const read: ReadSecret = (p) => {
      const f = inspect(p, true);
      return f.kind === 'file' && f.bytes ? Buffer.from(f.bytes.toString('utf8').trim()) : null;
    };
    out.push(...exposureProblems(config, read, opts.generatedIdentity));
    // The inspection CA: unreadable, not a CA, a key group or others can read (an error in production), expired.
    out.push(...inspectionProblems(config, caFiles(inspect), { production: opts.production }));
    // The broker's key and every credential's secret are loaded as serve would load them (CONTRACT §11).
    out.push(
      ...credentialProblems(config, {
        readFile: readFileOrNull,
        modeOf: modeOrNull,
        production: opts.production,
        inspected: inspectedIntegration(config),
      }),
    );
  } else if (opts.generatedIdentity) {
    out.push(...exposureProblems({ ...config, listen: { ...config.listen, admin: null } }, () => null, true));
  }
  if (opts.production) {
    // fileIssues has run above (or was skipped on purpose): only the rules that are not about files.
    out.push(...productionProblems(config, undefined, false));
  }
  return out;
}
