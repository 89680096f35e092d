// The primary process (config `workers` > 1): the primary's process model of the control plane
// (control-plane.ts validates every config, owns the secrets, the kill switch, reloads and the signals; the CLI
// did the start-up checks). It owns the admin listener and runs N workers (node:cluster) that serve the proxy
// listeners on shared ports. It tells the workers every change — kill switch, config swap, drain — and the
// admin API answers only once every worker has acknowledged it. It is never in the data path.
//
// Fail closed: a worker is told the current config and kill switch before it listens; one that dies is
// replaced (with backoff) and the replacement gets the state of that moment; one that does not acknowledge a
// change, or cannot apply it, is killed and replaced rather than left serving the old state.
import cluster, { type Worker } from 'node:cluster';
import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';
import AggregatorRegistry from 'prom-client/lib/cluster.js';
import type { SluiceConfig } from '../../settings/config.js';
import { type MetricsSource, createAdminListener } from '../ops/admin.js';
import { limitsPerWorker } from '../auth/admission.js';
import { createLogDestination, createLogger } from '../ops/log-destination.js';
import { createMetrics, mergeDeniedHosts } from '../ops/metrics.js';
import { type ConfigSource, type ControlPlane, type ProcessModel, createControlPlane } from './control-plane.js';
import type { BoundListeners } from './sluice.js';
import { type FromWorker, type HandedCa, type ToWorker, encodeKey, isProtocolMessage } from './worker-protocol.js';
import type { Broker } from '../broker/broker.js';
import { RUN_ID } from '../broker/handle.js';
import { revocationUntilS } from '../broker/revocations.js';
import { type HandleAdmin } from '../ops/admin.js';

/** CPUs the container may use: cgroup v2 `cpu.max` (or v1's CFS quota), rounded up; null when unlimited. */
export function cgroupCpuLimit(read: (path: string) => string = (p) => readFileSync(p, 'utf8')): number | null {
  const tryRead = (p: string) => {
    try {
      return read(p).trim();
    } catch {
      return null;
    }
  };
  const v2 = tryRead('/sys/fs/cgroup/cpu.max');
  if (v2) {
    const [quota, period] = v2.split(/\s+/);
    if (quota === 'max' || !quota || !period) return null;
    return Math.max(1, Math.ceil(Number(quota) / Number(period))) || null;
  }
  const quota = Number(tryRead('/sys/fs/cgroup/cpu/cpu.cfs_quota_us'));
  const period = Number(tryRead('/sys/fs/cgroup/cpu/cpu.cfs_period_us'));
  return quota > 0 && period > 0 ? Math.max(1, Math.ceil(quota / period)) : null;
}

/** `workers: auto` is one worker per CPU this process may run on, bounded by the container's CPU limit. */
export function resolveWorkers(
  setting: number | 'auto',
  cpus = availableParallelism(),
  limit: number | null = cgroupCpuLimit(),
): number {
  if (setting !== 'auto') return setting;
  return Math.max(1, Math.min(cpus, limit ?? cpus));
}

/** The config a worker runs: its share of the limits, and no kill-switch file (the primary watches it). */
export function configForWorker(config: SluiceConfig, workers: number): SluiceConfig {
  return { ...config, limits: limitsPerWorker(config.limits, workers), killSwitch: { file: null } };
}

export interface PrimaryOptions {
  /** The config file, and what every reloaded config is prepared and held to. */
  readonly source: ConfigSource;
  /** The config as started (already checked, development identity added). */
  readonly config: SluiceConfig;
  readonly workers: number;
  readonly generatedIdentity: boolean;
  readonly version: string;
  /** Prints where Sluice listens (once every worker listens). */
  readonly announce: (bound: BoundListeners) => void;
  /** Start-up failure: prints and exits. */
  readonly fail: (message: string) => never;
  /** Development mode's ephemeral inspection CA, handed to every worker (worker-protocol.ts). */
  readonly inspectionCa?: HandedCa | null;
}

interface Slot {
  readonly index: number;
  worker: Worker | null;
  /** The worker has been sent its init: later changes go to it as messages (before, init carries them). */
  initialised: boolean;
  ready: boolean;
  bound: BoundListeners | null;
  startedMs: number;
  /** Deaths in a row without a worker that lived long; sets the backoff. */
  failures: number;
  restart: NodeJS.Timeout | null;
}

const ACK_TIMEOUT_MS = 5000;
const METRICS_TIMEOUT_MS = 2000;
const BACKOFF_FIRST_MS = 250;
const BACKOFF_MAX_MS = 30_000;
/** A worker that lived this long resets the backoff. */
const HEALTHY_MS = 60_000;

export async function runPrimary(opts: PrimaryOptions): Promise<void> {
  const n = opts.workers;
  const nowMs = () => performance.now();
  const destination = createLogDestination({ shared: true });
  const logger = createLogger(opts.config.log.level, destination);
  const metrics = createMetrics({ version: opts.version, tunnels: () => 0 });
  let booted = false;
  let stopping = false;
  let seqNo = 0;
  /** Pending acknowledgements and metrics replies, by `${worker.id}:${seq}`. */
  const waiting = new Map<string, (reply: FromWorker | null) => void>();

  const slots: Slot[] = Array.from({ length: n }, (_, index) => ({
    index,
    worker: null,
    initialised: false,
    ready: false,
    bound: null,
    startedMs: 0,
    failures: 0,
    restart: null,
  }));
  const live = () => slots.filter((s) => s.worker && s.initialised && s.worker.isConnected() && !s.worker.isDead());

  // Measured on the benchmark (bench/RESULTS.md): see docs/ARCHITECTURE.md "Workers". The environment
  // variable Node itself reads still overrides it.
  if (!process.env.NODE_CLUSTER_SCHED_POLICY) cluster.schedulingPolicy = cluster.SCHED_NONE;

  let announceBoot: (() => void) | null = null;
  let failBoot: ((message: string) => void) | null = null;
  const booting = new Promise<void>((resolve, reject) => {
    announceBoot = resolve;
    failBoot = (m) => reject(new Error(m));
  });

  function fork(slot: Slot): void {
    slot.restart = null;
    if (stopping) return;
    const worker = cluster.fork();
    slot.worker = worker;
    slot.initialised = false;
    slot.ready = false;
    slot.startedMs = nowMs();
    worker.on('message', (m: unknown) => {
      if (isProtocolMessage(m)) onMessage(slot, worker, m as FromWorker);
    });
    // An IPC error (the worker died mid-send) is followed by its exit, which is handled below.
    worker.on('error', () => undefined);
    worker.on('exit', (code, signal) => onExit(slot, worker, code, signal));
  }

  function onMessage(slot: Slot, worker: Worker, m: FromWorker): void {
    switch (m.type) {
      case 'sluice.hello': {
        if (stopping) return void worker.process.kill('SIGKILL'); // it never served: nothing to drain
        // The state of this moment; every later change follows it on the same ordered channel.
        const init: ToWorker = {
          type: 'sluice.init',
          config: configForWorker(control.config(), n),
          tokenKey: encodeKey(control.tokenKey()),
          killSwitch: control.killSwitch(),
          generatedIdentity: opts.generatedIdentity,
          version: opts.version,
          inspectionCa: opts.inspectionCa ?? null,
        };
        worker.send(init);
        slot.initialised = true;
        return;
      }
      case 'sluice.ready':
        slot.ready = true;
        slot.bound = m.bound;
        if (!booted && slots.every((s) => s.ready)) {
          booted = true;
          announceBoot?.();
        } else if (booted) {
          logger.info({ worker: slot.index, workerPid: worker.process.pid }, 'worker.ready');
        }
        return;
      case 'sluice.fatal':
        if (!booted) failBoot?.(`worker ${slot.index}: ${m.message}`);
        else logger.error({ worker: slot.index, workerPid: worker.process.pid, err: m.message }, 'worker.failed');
        return;
      case 'sluice.ack':
      case 'sluice.metrics':
        waiting.get(`${worker.id}:${m.seq}`)?.(m);
        return;
    }
  }

  function onExit(slot: Slot, worker: Worker, code: number | null, signal: string | null): void {
    if (slot.worker !== worker) return;
    slot.worker = null;
    slot.initialised = false;
    slot.ready = false;
    // A worker that is gone serves nothing: it does not hold up a change (its replacement starts with it).
    for (const [key, settle] of waiting) if (key.startsWith(`${worker.id}:`)) settle(null);
    if (stopping) {
      if (slots.every((s) => !s.worker)) allExited?.();
      return;
    }
    if (!booted) {
      failBoot?.(`worker ${slot.index} exited (${signal ?? `code ${code}`}) before it listened`);
      return;
    }
    if (nowMs() - slot.startedMs >= HEALTHY_MS) slot.failures = 0;
    const delayMs = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** slot.failures);
    slot.failures++;
    logger.error(
      { worker: slot.index, workerPid: worker.process.pid, code, signal, restartInMs: delayMs },
      'worker.exit: replacing it',
    );
    slot.restart = setTimeout(() => fork(slot), delayMs);
  }

  /** Sends `message` (numbered `seq`) to one worker and resolves with its answer, or null when the worker is
   * gone or silent for `timeoutMs`. */
  function ask(worker: Worker, seq: number, message: ToWorker, timeoutMs: number): Promise<FromWorker | null> {
    return new Promise((resolve) => {
      const key = `${worker.id}:${seq}`;
      const settle = (reply: FromWorker | null) => {
        clearTimeout(timer);
        waiting.delete(key);
        resolve(reply);
      };
      const timer = setTimeout(() => settle(null), timeoutMs);
      waiting.set(key, settle);
      try {
        worker.send(message);
      } catch {
        settle(null); // the channel is closed: the worker is exiting
      }
    });
  }

  /** Sends a change to every live worker and waits for each to acknowledge it. One that refuses or stays
   * silent is killed — never left serving the old state — and its replacement starts with the state of that
   * moment. Returns what went wrong, one line per worker. */
  async function broadcast(make: (seq: number) => ToWorker): Promise<string[]> {
    const seq = ++seqNo;
    const message = make(seq);
    const answers = live().map(async (slot) => {
      const worker = slot.worker!;
      const reply = await ask(worker, seq, message, ACK_TIMEOUT_MS);
      if (reply?.type === 'sluice.ack' && reply.error === null) return null;
      // Exited meanwhile: its replacement gets the current state, nothing to do.
      if (worker.isDead() || !worker.isConnected()) return null;
      const error = reply?.type === 'sluice.ack' ? reply.error : `no answer in ${ACK_TIMEOUT_MS} ms`;
      logger.error({ worker: slot.index, workerPid: worker.process.pid, err: error }, 'worker.refused: replacing it');
      worker.process.kill('SIGKILL');
      return `worker ${slot.index}: ${error} (replaced)`;
    });
    return (await Promise.all(answers)).filter((x): x is string => x !== null);
  }

  // The control plane decides; the workers serve. A change is in force once every live worker has it.
  const model: ProcessModel = {
    async apply(change) {
      // From here the new config is the one in force: a worker that does not take it is replaced by one that
      // starts with it. So the reload succeeded; saying it failed would claim the old config still holds.
      const failed = await broadcast((seq) => ({
        type: 'sluice.swap',
        seq,
        config: configForWorker(change.config, n),
        tokenKey: encodeKey(change.tokenKey),
      }));
      if (failed.length) logger.warn({ workers: failed }, 'config.reload: some workers were replaced to apply it');
    },
    // An earlier change still in flight is applied before this one: each worker handles messages in order.
    killSwitch: async (engaged) => void (await broadcast((seq) => ({ type: 'sluice.kill-switch', seq, engaged }))),
    // The key file is watched here for every worker: they are sent the key, never read the file.
    tokenKey: (key) => void broadcast((seq) => ({ type: 'sluice.token-key', seq, tokenKey: encodeKey(key) })),
    drain: drainWorkers,
    async stop() {
      admin?.close();
      admin?.closeAllConnections();
    },
    force() {
      for (const s of slots) s.worker?.process.kill('SIGKILL');
    },
    flushLogs: () => destination.flushSync(),
  };
  let control: ControlPlane;
  try {
    // Everything a worker would refuse at start is refused here, once, before any worker is forked. The
    // primary's broker serves the admin API (issue, revoke); each worker builds its own for its traffic.
    control = createControlPlane({
      config: opts.config,
      logger,
      metrics,
      model,
      generatedIdentity: opts.generatedIdentity,
      production: process.env.SLUICE_ENV === 'production',
      source: opts.source,
    });
    control.checkStart();
  } catch (err) {
    opts.fail((err as Error).message);
  }

  /** /metrics: the primary's own series (reloads, kill switch, its process) and every worker's, merged by
   * prom-client's aggregator (counters and tunnels summed); the denied-hosts top lists are merged into one first
   * (mergeDeniedHosts). A worker that does not answer in time is left out of that scrape rather than failing it. */
  const aggregated: MetricsSource = {
    contentType: metrics.registry.contentType,
    async metrics() {
      const seq = ++seqNo;
      const parts = await Promise.all(
        live().map(async (slot) => {
          const reply = await ask(slot.worker!, seq, { type: 'sluice.metrics', seq }, METRICS_TIMEOUT_MS);
          return reply?.type === 'sluice.metrics' ? reply.metrics : [];
        }),
      );
      const own = await metrics.registry.getMetricsAsJSON();
      return AggregatorRegistry.aggregate(mergeDeniedHosts([own, ...parts]) as (typeof own)[]).metrics();
    },
  };

  /** Revoking through the primary: every worker has the run revoked before the answer; then the list. */
  const handleAdmin = (b: Broker): HandleAdmin => ({
    issue: (r) => b.issueHandle(r),
    async revoke(run) {
      if (RUN_ID.test(run)) {
        const untilS = revocationUntilS(control.config(), Math.floor(Date.now() / 1000));
        await broadcast((seq) => ({ type: 'sluice.revoke', seq, run, untilS }));
      }
      return b.revokeRun(run);
    },
  });

  const at = opts.config.listen.admin;
  const admin: Server | null = at
    ? createAdminListener({
        ...control.admin,
        metrics: aggregated,
        logger,
        ready: () => booted && !stopping && slots.every((s) => s.ready),
        handles: () => {
          const broker = control.broker();
          return broker ? handleAdmin(broker) : null;
        },
      })
    : null;
  let adminBound: AddressInfo | null = null;
  if (admin && at) {
    adminBound = await new Promise<AddressInfo>((resolve) => {
      admin.once('error', (err) => opts.fail(`admin listener ${at.text}: ${err.message}`));
      admin.listen({ host: at.host, port: at.port }, () => resolve(admin.address() as AddressInfo));
    });
  }

  let allExited: (() => void) | null = null;
  /** The first signal: every worker drains and exits; one that does not (it is stuck) is killed after drainMs. */
  async function drainWorkers(drainMs: number): Promise<void> {
    stopping = true;
    for (const s of slots) if (s.restart) clearTimeout(s.restart);
    const exited = new Promise<void>((resolve) => {
      allExited = resolve;
      if (slots.every((s) => !s.worker)) resolve();
    });
    for (const s of slots) {
      if (!s.worker) continue;
      if (!s.initialised) {
        s.worker.process.kill('SIGKILL'); // it never served: nothing to drain
        continue;
      }
      try {
        s.worker.send({ type: 'sluice.drain', drainMs } satisfies ToWorker);
      } catch {
        // Exiting already.
      }
    }
    const overdue = setTimeout(() => {
      for (const s of slots) s.worker?.process.kill('SIGKILL');
    }, drainMs + 5000);
    await exited;
    clearTimeout(overdue);
  }
  control.handleSignals();
  await control.follow();
  for (const slot of slots) fork(slot);
  try {
    await booting;
  } catch (err) {
    stopping = true;
    for (const s of slots) s.worker?.process.kill('SIGKILL');
    opts.fail((err as Error).message);
  }
  control.watchSource();
  const first = slots[0]!.bound ?? {};
  // Before the listening lines: whoever waits for those (a supervisor, a test) then knows the workers too.
  process.stderr.write(
    `Sluice runs ${n} workers (pids ${slots.map((s) => s.worker?.process.pid).join(', ')}); signal the primary, pid ${process.pid}.\n`,
  );
  opts.announce({ ...first, ...(adminBound ? { admin: adminBound } : {}) });
  logger.info({ workers: n, pids: slots.map((s) => s.worker?.process.pid) }, 'workers.ready');
}
