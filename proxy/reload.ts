// Hot reload: SIGHUP, the admin API and a change of the config file all land here. The new file is validated
// completely, then swapped in atomically; an invalid one keeps the last good config, logs why and counts
// sluice_policy_reloads_total{result="error"}. Settings that shape listeners or the dialer need a restart and
// are reported as such rather than half-applied.
import { createHash } from 'node:crypto';
import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import type { Logger } from 'pino';
import { type ConfigResult, type SluiceConfig, formatIssue } from '../firewall/config.js';
import type { ReloadOutcome } from './admin.js';
import type { Metrics } from './metrics.js';

export interface ReloaderDeps {
  /** null: running on the embedded default; there is nothing to reload. */
  readonly path: string | null;
  readonly load: (path: string) => ConfigResult;
  /** Applied to every freshly loaded config before the swap (development identity injection). */
  readonly prepare: (config: SluiceConfig) => SluiceConfig;
  readonly current: () => SluiceConfig;
  /** Swaps the config in; throws (or rejects) when a referenced file (token key) is unusable. */
  readonly swap: (config: SluiceConfig) => void | Promise<void>;
  readonly metrics: Metrics;
  readonly logger: Logger;
}

export interface Reloader {
  reload(trigger: 'sighup' | 'admin' | 'file'): Promise<ReloadOutcome>;
  /** Watches the config file and reloads when its content changes. */
  watch(intervalMs?: number): void;
  close(): void;
}

const RESTART_KEYS = ['listen', 'dns', 'upstream', 'workers'] as const;
const RESTART_LIMITS = ['headersTimeoutMs', 'idleTimeoutMs', 'maxHeaderBytes'] as const;

/** Settings whose change only takes effect after a restart. */
export function restartRequired(before: SluiceConfig, after: SluiceConfig): string[] {
  const out: string[] = [];
  for (const k of RESTART_KEYS) if (JSON.stringify(before[k]) !== JSON.stringify(after[k])) out.push(k);
  for (const k of RESTART_LIMITS) if (before.limits[k] !== after.limits[k]) out.push(`limits.${k}`);
  return out;
}

const hashFile = (path: string): string | null => {
  try {
    return createHash('sha256').update(readFileSync(path)).digest('hex');
  } catch {
    return null;
  }
};

export function createReloader(deps: ReloaderDeps): Reloader {
  let lastHash = deps.path ? hashFile(deps.path) : null;
  let running: Promise<ReloadOutcome> | null = null;

  async function reloadOnce(trigger: string): Promise<ReloadOutcome> {
    if (!deps.path) return { ok: true, issues: ['no config file: running on the embedded default'], restartRequired: [] };
    // A change seen by the file watch while a signalled reload of the same file was being applied: done already.
    if (trigger === 'file' && hashFile(deps.path) === lastHash) return { ok: true, issues: [], restartRequired: [] };
    const result = deps.load(deps.path);
    if (!result.ok) {
      const issues = result.issues.map(formatIssue);
      deps.metrics.reload('error');
      deps.logger.error({ trigger, issues }, 'config.reload_failed: keeping the last good config');
      return { ok: false, issues, restartRequired: [] };
    }
    const next = deps.prepare(result.config);
    const restart = restartRequired(deps.current(), next);
    try {
      await deps.swap(next);
    } catch (err) {
      deps.metrics.reload('error');
      const issue = `cannot apply: ${(err as Error).message}`;
      deps.logger.error({ trigger, issues: [issue] }, 'config.reload_failed: keeping the last good config');
      return { ok: false, issues: [issue], restartRequired: [] };
    }
    lastHash = hashFile(deps.path);
    deps.metrics.reload('success');
    const warnings = result.warnings.map(formatIssue);
    if (restart.length) deps.logger.warn({ trigger, restartRequired: restart }, 'config.reloaded: some changes need a restart');
    else deps.logger.info({ trigger, warnings }, 'config.reloaded');
    return { ok: true, issues: warnings, restartRequired: restart };
  }

  return {
    reload(trigger) {
      // Reloads never overlap: a second trigger during one waits for it, then runs (it may see a newer file).
      const next = (running ?? Promise.resolve(null)).then(() => reloadOnce(trigger));
      running = next.finally(() => {
        if (running === next) running = null;
      });
      return next;
    },
    watch(intervalMs = 1000) {
      const path = deps.path;
      if (!path) return;
      // Polling stat follows symlink swaps (Kubernetes ConfigMaps) and editor renames alike.
      watchFile(path, { interval: intervalMs, persistent: false }, () => {
        const h = hashFile(path);
        if (h !== null && h !== lastHash) void this.reload('file');
      });
    },
    close() {
      if (deps.path) unwatchFile(deps.path);
    },
  };
}
