// The credential broker in a running process (single process, primary and every worker alike): the broker
// built for the current config, and the one revocation watcher that outlives reloads (a revocation made in
// this process must survive a config swap). Building is synchronous so that a reload can refuse a config
// whose broker cannot be built before anything is swapped: the last good broker stays.
import { integrationInspected } from '../inspection/problems.js';
import type { Logger } from 'pino';
import { type ConfigIssue, type SluiceConfig, formatIssue } from '../../settings/config.js';
import { type Broker, createBroker } from '../broker/broker.js';
import { credentialProblems } from '../broker/credential-problems.js';
import { appendLine, modeOrNull, readFileAsync, readFileOrNull } from '../broker/files.js';
import { loadBrokerMaterial } from '../broker/material.js';
import { type RevocationWatcher, createRevocationWatcher } from '../broker/revocations.js';
import { CREDENTIAL_DEFAULTS } from '../../firewall/credential-config.js';
import { ConfigRefusal } from './config-refusal.js';

export interface BrokerRuntimeDeps {
  readonly nowMs: () => number;
  readonly production: boolean;
  readonly logger: Logger;
  /** Injected by tests; default: the files themselves. */
  readonly readFile?: (path: string) => Buffer | null;
  readonly modeOf?: (path: string) => number | null;
  readonly readList?: (path: string) => Promise<Buffer>;
  readonly append?: (path: string, line: string) => Promise<void>;
  /** Poll interval of the revocation list (default: the first config's secrets.handles.pollMs). */
  readonly pollMs?: number;
}

export interface BrokerRuntime {
  /** A broker for `config` (null: no credential configured). Throws — nothing changes — when the config's
   * broker must not run: a key or credential that does not load, or (production) any credentialProblems error. */
  build(config: SluiceConfig): Broker | null;
  /** Watches the revocation list `config` names (the first read is awaited). */
  follow(config: SluiceConfig): Promise<void>;
  readonly revocations: RevocationWatcher;
  close(): void;
}

/** Whether TLS to an integration's hosts is inspected: inspection configured and none of its hosts opaque. */
export const inspectedIntegration =
  (config: SluiceConfig) =>
  (integration: string): boolean =>
    integrationInspected(config, integration);

// Handles are refused at once when the list was never read, after max(5 s, 10 polls) when it was (revocations.ts).
const UNREADABLE = 'broker.revocations_unreadable: handles are refused while it lasts';

export function createBrokerRuntime(deps: BrokerRuntimeDeps, first: SluiceConfig): BrokerRuntime {
  const readFile = deps.readFile ?? readFileOrNull;
  const modeOf = deps.modeOf ?? modeOrNull;
  let failing = false;
  const revocations = createRevocationWatcher({
    read: deps.readList ?? readFileAsync,
    nowMs: deps.nowMs,
    intervalMs: deps.pollMs ?? first.secrets?.handles.pollMs ?? CREDENTIAL_DEFAULTS.pollMs,
    // The watcher reports "not read yet" before every first read; only a real failure, and the recovery from
    // one, is worth a log line.
    onHealth: (ok, message) => {
      if (!ok && message?.endsWith('not read yet')) return;
      if (!ok) {
        failing = true;
        deps.logger.error({ problem: message }, UNREADABLE);
      } else if (failing) {
        failing = false;
        deps.logger.warn('broker.revocations_readable_again');
      }
    },
  });
  const refuse = (issues: readonly ConfigIssue[]): never => {
    throw new ConfigRefusal(issues);
  };

  return {
    revocations,
    build(config) {
      if (Object.keys(config.credentials).length === 0) return null;
      const problems = credentialProblems(config, {
        readFile,
        modeOf,
        production: deps.production,
        inspected: inspectedIntegration(config),
      });
      const errors = problems.filter((i) => i.severity === 'error');
      if (errors.length) refuse(errors);
      const loaded = loadBrokerMaterial(config, { readFile, modeOf, production: deps.production });
      if (!loaded.ok) refuse(loaded.issues);
      for (const w of problems) deps.logger.warn({ issue: formatIssue(w) }, 'broker.warning');
      const material = loaded.ok ? loaded.material : null;
      if (!material) return null;
      return createBroker({ config, material, revocations, nowMs: deps.nowMs, append: deps.append ?? appendLine });
    },
    async follow(config) {
      await revocations.follow(
        Object.keys(config.credentials).length ? (config.secrets?.handles.revocationFile ?? null) : null,
      );
      // A list unreadable from its first read never changes health (it was "not read yet" before): say so here.
      const problem = revocations.problem;
      if (problem !== null && !failing) {
        failing = true;
        deps.logger.error({ problem }, UNREADABLE);
      }
    },
    close: () => revocations.close(),
  };
}
