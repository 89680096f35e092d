// The control plane: the one owner of what a running Sluice is configured with — the config, its compiled
// policy, the secrets it names (run-token key, admin token, broker material), the kill switch and its two
// sources — and of every way that changes: a reload (config file, SIGHUP, admin API) is prepared (read and
// checked completely, nothing changed) and then applied, or refused with ConfigRefusal and the last good
// config kept. It also owns shutdown: the first signal drains, the second forces.
//
// What "applied" means depends on the process model: the single process closes the flows the change no longer
// allows (sluice.ts); the primary sends the change to every worker and waits for each (primary.ts). A worker
// runs a follower control plane: no files of its own to watch, every change pushed in by its primary.
import { networkInterfaces } from 'node:os';
import type { Logger } from 'pino';
import type { ListenAddress } from '../../firewall/config.js';
import { type SluiceConfig, formatIssue } from '../../settings/config.js';
import { type Policy, compilePolicy } from '../../firewall/policy.js';
import type { Broker } from '../broker/broker.js';
import type { RevocationWatcher } from '../broker/revocations.js';
import { MIN_KEY_BYTES } from '../auth/run-token.js';
import type { AdminDeps, ReloadOutcome } from '../ops/admin.js';
import type { Metrics } from '../ops/metrics.js';
import { createBrokerRuntime } from './broker-runtime.js';
import { loadConfigFile } from './config-file.js';
import { refuseErrors } from './config-refusal.js';
import { createKillSwitchFile } from './kill-switch-file.js';
import { exposureProblems, productionProblems } from './production.js';
import { type Reloader, createReloader } from './reload.js';
import { readAdminToken, readSecretFile, readTokenKey } from './secret-files.js';
import { createTokenKeyWatch } from './token-key-file.js';

export type KillSwitchSource = 'api' | 'file';

/** A change prepared and checked: every file it names was read, its broker built. Nothing is in force yet. */
export interface Change {
  readonly previous: SluiceConfig;
  /** The new config, with the listeners in force kept (a listener change needs a restart). */
  readonly config: SluiceConfig;
  readonly policy: Policy;
  readonly tokenKey: Buffer | null;
  /** The run-token key differs from the one in force: tokens signed with the old one stop working. */
  readonly keyChanged: boolean;
  readonly adminToken: Buffer | null;
  readonly broker: Broker | null;
}

/** What a process does with the control plane's decisions, where traffic is served. The control plane's own
 * state is already the new one when these are called. */
export interface ProcessModel {
  /** A change is in force: close what it no longer allows (single process), or hand it to every worker. */
  apply(change: Change): void | Promise<void>;
  /** Called on every change of the switch, and on every API call (which also waits for it to be in force). */
  killSwitch(engaged: boolean): void | Promise<void>;
  /** A new run-token key (the key file changed, the config did not). Returns fields for the log line. */
  tokenKey(key: Buffer | null): Record<string, unknown> | void;
  /** First signal: stop accepting, let what is in flight finish for up to drainMs. */
  drain(drainMs: number): Promise<void>;
  stop(): Promise<void>;
  /** Second signal: no more waiting (the process exits right after). */
  force(): void;
  flushLogs(): void;
}

/** Where reloads come from (the CLI's config file). */
export interface ConfigSource {
  /** null: the embedded default, nothing to reload. */
  readonly path: string | null;
  /** Digest of the bytes the running config was loaded from (LoadedConfig.digest). */
  readonly digest: string;
  /** Applied to every reloaded config before it is checked (development identity). */
  readonly prepare: (config: SluiceConfig) => SluiceConfig;
  /** SLUICE_ENV=production: a reloaded config is held to the production rules, as a start is. */
  readonly production: boolean;
}

export interface ControlPlaneDeps {
  readonly config: SluiceConfig;
  readonly logger: Logger;
  readonly metrics: Pick<Metrics, 'reload' | 'setKillSwitch'>;
  readonly model: ProcessModel;
  /** The only identity is a generated development credential (then nothing may listen beyond loopback). */
  readonly generatedIdentity: boolean;
  /** SLUICE_ENV=production rules for the credential broker. */
  readonly production: boolean;
  /** Milliseconds since the epoch, for the broker (handles, revocations). */
  readonly wallClockMs?: () => number;
  /** The run-token key as the primary read it: a follower, which neither reads nor watches the key file. */
  readonly tokenKey?: Buffer | null;
  readonly source?: ConfigSource | null;
  /** What POST /v1/reload runs instead of the source's reloader (tests). */
  readonly reload?: () => Promise<ReloadOutcome>;
  /** process.exit, injected by tests of shutdown. */
  readonly exit?: (code: number) => void;
}

export interface ControlPlane {
  readonly config: () => SluiceConfig;
  readonly policy: () => Policy;
  readonly tokenKey: () => Buffer | null;
  readonly adminToken: () => Buffer | null;
  /** The credential broker of the current config; null when no credential is configured. */
  readonly broker: () => Broker | null;
  readonly revocations: RevocationWatcher;
  /** Engaged while any source (admin API, kill-switch file) engages it. */
  readonly killSwitch: () => boolean;
  setKillSwitch(engaged: boolean, source?: KillSwitchSource): void | Promise<void>;
  /** Reads and checks `next` (its files, its broker, exposure, production rules) without changing anything;
   * throws ConfigRefusal (or the file's own error) when it must not be put in force. `tokenKey`: the key as the
   * primary read it (workers); else the key file is read. */
  prepare(next: SluiceConfig, tokenKey?: Buffer | null): Change;
  /** Puts a prepared change in force, here and then through the process model. */
  apply(change: Change): void | Promise<void>;
  /** prepare, then apply: a worker's swap, a test's, the reloader's. */
  change(next: SluiceConfig, tokenKey?: Buffer | null): void | Promise<void>;
  /** A new run-token key (a worker is sent it; a leader reads it from the key file it watches). */
  setTokenKey(key: Buffer | null): void;
  reload(trigger: 'sighup' | 'admin'): Promise<ReloadOutcome>;
  /** The admin API's share: its token, the kill switch, reload. */
  readonly admin: Pick<AdminDeps, 'token' | 'protectReads' | 'killSwitch' | 'setKillSwitch' | 'reload'>;
  /** Throws ConfigRefusal when the config would expose Sluice beyond loopback (every start checks it). */
  checkStart(): void;
  /** Follows the kill-switch file, the token key file (leaders) and the revocation list. */
  follow(): Promise<void>;
  /** Watches the config file, when there is one. */
  watchSource(): void;
  /** SIGINT and SIGTERM shut down (the second one forces), SIGHUP reloads. */
  handleSignals(): void;
  shutdown(): Promise<void>;
  readonly stopping: () => boolean;
  close(): void;
}

/** The proxy's own addresses: a request there would loop into Sluice or reach its admin API. A wildcard
 * listener answers on every local address, loopback included. */
export function selfAddresses(listens: readonly (ListenAddress | null)[]): string[] {
  const out = new Set<string>();
  for (const l of listens) {
    if (!l) continue;
    if (l.host === '0.0.0.0' || l.host === '::') {
      out.add('127.0.0.0/8');
      out.add('::1/128');
      for (const list of Object.values(networkInterfaces()))
        for (const i of list ?? []) out.add(i.address.split('%')[0]!);
    } else {
      out.add(l.host);
    }
  }
  return [...out];
}

/** The policy `serve` enforces for a config: the proxy's own addresses (every listener) included. `explain`
 * builds its policy here too, so that it decides as serve does. */
export function compileServingPolicy(config: SluiceConfig): Policy {
  const { http, socks5, admin, dns } = config.listen;
  return compilePolicy(config, selfAddresses([http, socks5, admin, dns]));
}

/** Why a token key file's (trimmed) content is not a usable key, or null. */
export const tokenKeyProblem = (key: Buffer): string | null =>
  key.length < MIN_KEY_BYTES
    ? `tokens.keyFile must hold at least ${MIN_KEY_BYTES} bytes of key (found ${key.length})`
    : null;

const sameKey = (a: Buffer | null, b: Buffer | null): boolean => (a === null || b === null ? a === b : a.equals(b));

const NOT_WIRED: ReloadOutcome = { ok: false, issues: ['reload is not wired in this process'], restartRequired: [] };

export function createControlPlane(deps: ControlPlaneDeps): ControlPlane {
  const { logger, metrics, model } = deps;
  const source = deps.source ?? null;
  const exit = deps.exit ?? ((code: number) => process.exit(code));
  const follower = deps.tokenKey !== undefined;
  let config = deps.config;
  // Everything a start needs is read here, once: an unusable file or broker refuses the start (it throws).
  let policy = compileServingPolicy(config);
  let tokenKey = follower ? deps.tokenKey! : readTokenKey(config);
  let adminToken = readAdminToken(config);
  // The broker is built with the config: one that cannot load its key or secrets never starts, and a reload
  // that cannot build one is refused before anything is swapped (the last good broker stays).
  const brokers = createBrokerRuntime(
    { nowMs: deps.wallClockMs ?? Date.now, production: deps.production, logger },
    config,
  );
  let broker = brokers.build(config);
  const killSources = new Set<KillSwitchSource>();
  let killSwitch = false;
  let stopping = false;

  function setKillSwitch(engaged: boolean, from: KillSwitchSource = 'api'): void | Promise<void> {
    if (engaged) killSources.add(from);
    else killSources.delete(from);
    const was = killSwitch;
    killSwitch = killSources.size > 0;
    metrics.setKillSwitch(killSwitch);
    if (was !== killSwitch) logger.warn({ engaged: killSwitch, source: from }, 'kill_switch');
    // The file reports only changes of its own; the API always waits until the switch is in force everywhere.
    if (from === 'file' && was === killSwitch) return;
    return model.killSwitch(killSwitch);
  }

  function setTokenKey(key: Buffer | null): void {
    if (sameKey(key, tokenKey)) return;
    tokenKey = key;
    logger.warn(model.tokenKey(key) ?? {}, 'tokens.key_changed: tokens signed with the old key no longer work');
  }

  const killFile = createKillSwitchFile((engaged) => void setKillSwitch(engaged, 'file'));
  const keyWatch = createTokenKeyWatch({
    check: tokenKeyProblem,
    apply: (key) => {
      metrics.reload('success');
      setTokenKey(key);
    },
    refuse: (problem) => {
      metrics.reload('error');
      const issue = formatIssue({ severity: 'error', path: '/tokens/keyFile', message: problem });
      logger.error({ issues: [issue] }, 'tokens.key_reload_failed: keeping the last good key');
    },
  });
  const followFiles = () => {
    killFile.follow(config.killSwitch.file);
    if (!follower) keyWatch.follow(config.tokens?.keyFile ?? null, tokenKey);
  };

  function prepare(next: SluiceConfig, key?: Buffer | null): Change {
    const kept: SluiceConfig = { ...next, listen: config.listen };
    // Against the listeners that are open: a change that would expose them (the admin token removed while the
    // admin API listens beyond loopback) is refused like any invalid config, and the last good one stays.
    refuseErrors([
      ...exposureProblems(kept, readSecretFile, deps.generatedIdentity),
      ...(source?.production ? productionProblems(kept) : []),
    ]);
    const nextPolicy = compileServingPolicy(kept);
    const nextKey = key !== undefined ? key : readTokenKey(kept);
    const nextAdmin = readAdminToken(kept);
    const nextBroker = brokers.build(kept);
    return {
      previous: config,
      config: kept,
      policy: nextPolicy,
      tokenKey: nextKey,
      keyChanged: !sameKey(nextKey, tokenKey),
      adminToken: nextAdmin,
      broker: nextBroker,
    };
  }

  function apply(change: Change): void | Promise<void> {
    config = change.config;
    policy = change.policy;
    broker = change.broker;
    void brokers.follow(config);
    tokenKey = change.tokenKey;
    adminToken = change.adminToken;
    followFiles();
    return model.apply(change);
  }

  const change = (next: SluiceConfig, key?: Buffer | null) => apply(prepare(next, key));

  const reloader: Reloader | null = source
    ? createReloader({
        path: source.path,
        load: loadConfigFile,
        digest: source.digest,
        prepare: source.prepare,
        current: () => config,
        swap: (c) => change(c),
        metrics,
        logger,
      })
    : null;
  const reload = (trigger: 'sighup' | 'admin'): Promise<ReloadOutcome> =>
    deps.reload && trigger === 'admin'
      ? deps.reload()
      : reloader
        ? reloader.reload(trigger)
        : Promise.resolve(NOT_WIRED);

  function close(): void {
    reloader?.close();
    killFile.close();
    keyWatch.close();
    brokers.close();
  }

  async function shutdown(): Promise<void> {
    if (stopping) {
      logger.warn('shutdown.forced');
      model.force();
      model.flushLogs();
      return exit(143);
    }
    stopping = true;
    const drainMs = config.limits.drainMs;
    logger.info({ drainMs }, 'shutdown.draining');
    await model.drain(drainMs);
    close();
    await model.stop();
    logger.info('shutdown.complete');
    model.flushLogs();
    exit(0);
  }

  return {
    config: () => config,
    policy: () => policy,
    tokenKey: () => tokenKey,
    adminToken: () => adminToken,
    broker: () => broker,
    revocations: brokers.revocations,
    killSwitch: () => killSwitch,
    setKillSwitch,
    prepare,
    apply,
    change,
    setTokenKey,
    reload,
    admin: {
      token: () => adminToken,
      protectReads: () => config.admin.protectReads,
      killSwitch: () => killSwitch,
      setKillSwitch: (engaged) => setKillSwitch(engaged, 'api'),
      reload: () => reload('admin'),
    },
    checkStart() {
      refuseErrors(exposureProblems(config, readSecretFile, deps.generatedIdentity));
    },
    async follow() {
      followFiles();
      await brokers.follow(config);
    },
    watchSource: () => reloader?.watch(),
    handleSignals() {
      process.on('SIGINT', () => void shutdown());
      process.on('SIGTERM', () => void shutdown());
      process.on('SIGHUP', () => void reload('sighup'));
    },
    shutdown,
    stopping: () => stopping,
    close,
  };
}
