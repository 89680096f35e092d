// Hot reload: SIGHUP, the admin API and a change of the config file all land here. The new file is validated
// completely, then swapped in atomically; an invalid one keeps the last good config, logs why and counts
// sluice_policy_reloads_total{result="error"}. Settings that shape listeners or the dialer need a restart and
// are reported as such rather than half-applied.
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { type SluiceConfig, formatIssue } from '../../settings/config.js';
import type { ReloadOutcome } from '../ops/admin.js';
import { type LoadedConfig, digestBytes } from './config-file.js';
import type { Metrics } from '../ops/metrics.js';
import { isConfigRefusal } from './config-refusal.js';

export interface ReloaderDeps {
  /** null: running on the embedded default; there is nothing to reload. */
  readonly path: string | null;
  readonly load: (path: string) => LoadedConfig;
  /** Digest of the bytes the running config was loaded from (LoadedConfig.digest). */
  readonly digest: string;
  /** Applied to every freshly loaded config before the swap (development identity injection). */
  readonly prepare: (config: SluiceConfig) => SluiceConfig;
  readonly current: () => SluiceConfig;
  /** Swaps the config in; throws (or rejects) when it must not be put in force (ConfigRefusal) or a referenced
   * file (token key) is unusable. */
  readonly swap: (config: SluiceConfig) => void | Promise<void>;
  readonly metrics: Pick<Metrics, 'reload'>;
  readonly logger: Logger;
}

export interface Reloader {
  reload(trigger: 'sighup' | 'admin'): Promise<ReloadOutcome>;
  /** Watches the config file and reloads when its content changes and then holds still for settleMs. */
  watch(intervalMs?: number, settleMs?: number): void;
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

// Synchronous, on the event loop: an asynchronous read runs on libuv's 4-thread pool, shared with scrypt, and
// behind a flood of password checks a changed config waited as long as the kill-switch file did (tens of
// seconds). A config file is a few KiB read once a second; the reload itself (loadConfigFile) has always read
// it synchronously, so a volume that hangs stalled the loop there already.
const hashFile = (path: string): string | null => {
  try {
    return digestBytes(readFileSync(path));
  } catch {
    return null;
  }
};

/** How many times the watch re-reads a file that is still changing before leaving it to the next poll. */
const SETTLE_ATTEMPTS = 20;

export function createReloader(deps: ReloaderDeps): Reloader {
  // The digest of the bytes in force, taken from the very read that was validated: hashing the file again
  // after the swap could record a newer write that was never loaded, and the watch would then skip it.
  let lastHash = deps.digest;
  // The content the last reload refused: the watch does not retry it on every poll (a signal or the API does).
  let refused: string | null = null;
  let running: Promise<ReloadOutcome> | null = null;
  let timer: NodeJS.Timeout | null = null;

  /** settled: for the file watch, the digest that held still; any other content is left to the next poll. */
  async function reloadOnce(trigger: string, settled?: string): Promise<ReloadOutcome> {
    if (!deps.path)
      return { ok: true, issues: ['no config file: running on the embedded default'], restartRequired: [] };
    const result = deps.load(deps.path);
    // A change seen by the file watch while a signalled reload of the same file was being applied: done already.
    // Content other than what settled is a newer write, perhaps still under way: its own poll will come.
    if (trigger === 'file' && (result.digest === lastHash || result.digest !== settled)) {
      return { ok: true, issues: [], restartRequired: [] };
    }
    if (!result.ok) {
      refused = result.digest;
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
      refused = result.digest;
      deps.metrics.reload('error');
      // A refusal says where in the config the problem is, like a validation error; anything else is a file
      // that could not be used as it was being read.
      const issues = isConfigRefusal(err) ? err.issues.map(formatIssue) : [`cannot apply: ${(err as Error).message}`];
      deps.logger.error({ trigger, issues }, 'config.reload_failed: keeping the last good config');
      return { ok: false, issues, restartRequired: [] };
    }
    lastHash = result.digest;
    refused = null;
    deps.metrics.reload('success');
    const warnings = result.warnings.map(formatIssue);
    if (restart.length)
      deps.logger.warn({ trigger, restartRequired: restart }, 'config.reloaded: some changes need a restart');
    else deps.logger.info({ trigger, warnings }, 'config.reloaded');
    return { ok: true, issues: warnings, restartRequired: restart };
  }

  // Reloads never overlap: a second trigger during one waits for it, then runs (it may see a newer file).
  // A throw from reloadOnce is a bug in reading or preparing the file (the swap's own failure is handled there),
  // so the last good config still holds: report a failed reload rather than reject a promise that SIGHUP and
  // the watch drop, which would end the process as an unhandled rejection.
  function queue(trigger: string, settled?: string): Promise<ReloadOutcome> {
    const next = (running ?? Promise.resolve(null)).then(() =>
      reloadOnce(trigger, settled).catch((err: unknown): ReloadOutcome => {
        if (settled) refused = settled;
        deps.metrics.reload('error');
        const issue = `internal error: ${(err as Error).message}`;
        deps.logger.error({ trigger, issues: [issue] }, 'config.reload_failed: keeping the last good config');
        return { ok: false, issues: [issue], restartRequired: [] };
      }),
    );
    running = next.finally(() => {
      if (running === next) running = null;
    });
    return next;
  }

  return {
    reload: (trigger) => queue(trigger),
    watch(intervalMs = 1000, settleMs = 100) {
      const path = deps.path;
      if (!path) return;
      let active = false;
      // A save that is not an atomic rename (`cat > sluice.yaml`, many editors) is seen between its truncate
      // and its last write, and a prefix of a valid config can itself be valid yet drop globalDeny entries or
      // identities. So a change is applied only once two reads settleMs apart agree. Polls that fire while
      // this runs are covered by its own re-read at the end. What counts as a change is decided against the
      // reloader's own record (in force, last refused), which signalled reloads keep current too: a watch-local
      // memory went stale when a SIGHUP applied B and the file then went back to A, the content it remembered.
      const follow = async (): Promise<void> => {
        active = true;
        try {
          for (let i = 0; i < SETTLE_ATTEMPTS; i++) {
            const h = hashFile(path);
            if (h === null || h === lastHash || h === refused) return;
            await new Promise((r) => setTimeout(r, settleMs).unref());
            if (hashFile(path) !== h) continue;
            await queue('file', h);
          }
        } finally {
          active = false;
        }
      };
      // Each poll hashes the content and compares it with the reloader's record; fs.watchFile compares stats
      // with its own first stat, taken asynchronously, so a save that landed before it became the baseline and
      // was never applied. Reading the path follows ConfigMap symlink swaps, editor renames and in-place
      // writes alike; a config file is a few KiB, read once per interval.
      const tick = () => {
        if (!active) void follow();
      };
      timer = setInterval(tick, intervalMs);
      timer.unref();
      tick();
    },
    close() {
      if (timer) clearInterval(timer);
      timer = null;
    },
  };
}
