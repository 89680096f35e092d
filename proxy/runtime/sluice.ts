// Wiring: one validated config in, listening proxy out — the single-process model of the control plane
// (control-plane.ts owns the config, policy, secrets and kill switch; the pure core reads them through
// getters). Owns the open flows and every way a right ends: the kill switch, a reload or a new token key closes
// the open flows they no longer allow, and a sweep closes those whose run token expired. A worker runs one of
// these too, on a follower control plane its primary feeds.
import type { Server } from 'node:http';
import type { AddressInfo, Server as NetServer } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { deny } from '../../firewall/codes.js';
import type { ListenAddress } from '../../firewall/config.js';
import type { SluiceConfig } from '../../settings/config.js';
import type { Policy } from '../../firewall/policy.js';
import { type AdminDeps, type ReloadOutcome, createAdminListener } from '../ops/admin.js';
import { createAdmission } from '../auth/admission.js';
import { type Audit, type AuditObserver, createAudit } from '../ops/audit.js';
import { type ContainmentProbe, createContainmentProbe } from '../ops/containment-probe.js';
import { type Dialer, createDialer } from '../egress/dialer.js';
import { createDnsGuard } from '../ops/dns-guard.js';
import { createHttpListener } from '../edge/http-listener.js';
import { type LogDestination, createAuditLogger, createLogDestination, createLogger } from '../ops/log-destination.js';
import { type IdentityStore, createIdentityStore } from '../auth/identity.js';
import { type Pipeline, createPipeline } from '../pipeline/pipeline.js';
import { type NameResolver, createResolver } from '../egress/resolver.js';
import { type Metrics, createMetrics } from '../ops/metrics.js';
import { readCaFile } from './secret-files.js';
import { caFiles } from './production.js';
import { createSocks5Listener } from '../edge/socks5-listener.js';
import { FLOW_KINDS, FLOW_KIND_NAMES, type Flow, type FlowRegistry, createFlowRegistry, judgeAgain } from './flows.js';
import type { Broker } from '../broker/broker.js';
import {
  type ConfigSource,
  type ControlPlane,
  type KillSwitchSource,
  type ProcessModel,
  compileServingPolicy,
  createControlPlane,
} from './control-plane.js';
import { ConfigRefusal } from './config-refusal.js';
import { type InspectionCa } from '../inspection/ca.js';
import { createLeafIssuer } from '../inspection/leaves.js';
import { type CaFileAccess, loadInspectionCa } from '../inspection/problems.js';
import { createInspector } from '../inspection/session.js';
import type { InspectionRuntime } from '../inspection/tunnel.js';

export interface SluiceOptions {
  readonly config: SluiceConfig;
  /** Where the log goes instead of stdout (tests), at this level instead of the config's. The loggers are
   * built as in production either way: the audit logger's lack of path redaction is what tests see. */
  readonly logTo?: { readonly destination: LogDestination; readonly level?: string };
  /** Monotonic-ish milliseconds; injected by tests that drive time. */
  readonly nowMs?: () => number;
  /** Milliseconds since the epoch, for run tokens (their expiry closes the flows they opened); tests drive it. */
  readonly wallClockMs?: () => number;
  /** The run-token key as the primary read it (workers): the key file is then neither read nor watched here. */
  readonly tokenKey?: Buffer | null;
  readonly observers?: AuditObserver[];
  /** Reported in sluice_build_info. */
  readonly version?: string;
  /** Where reloads come from (the CLI's config file): SIGHUP, the file watch and the admin API reload it. */
  readonly source?: ConfigSource;
  /** What the admin API's POST /v1/reload runs instead of the source's reloader (tests). */
  readonly reload?: () => Promise<ReloadOutcome>;
  /** The only identity is a generated development credential (then nothing may listen beyond loopback). */
  readonly generatedIdentity?: boolean;
  /** Other processes write the same stdout (workers): every log write is kept whole (log-destination.ts). */
  readonly sharedStdout?: boolean;
  /** false: leave the admin listener to another process (the primary, with workers). */
  readonly serveAdmin?: boolean;
  /** TLS inspection's CA when it does not come from the config's files: development mode's ephemeral CA (a
   * worker gets it from its primary). Without it, a config with an `inspection` section has its CA read at start. */
  readonly inspectionCa?: InspectionCa | Promise<InspectionCa | null> | null;
  /** SLUICE_ENV=production rules for the credential broker (default: read from the environment). */
  readonly production?: boolean;
}

export type { KillSwitchSource } from './control-plane.js';

export interface RuntimeState {
  readonly policy: () => Policy;
  readonly config: () => SluiceConfig;
  /** Engaged while any source (admin API, kill-switch file) engages it. */
  readonly killSwitch: () => boolean;
  setKillSwitch(engaged: boolean, source?: KillSwitchSource): void;
  /** Swaps in a new, already validated config (listener changes need a restart and are ignored). Throws, and
   * keeps the old config, when a file it references (token key, admin token) is unusable. Open flows the new
   * config would deny are closed. `tokenKey`: the key as the primary read it (workers); else the file is read. */
  swap(config: SluiceConfig, tokenKey?: Buffer | null): void;
  /** A new run-token key (the key file changed): flows opened with tokens under the old key are closed. */
  setTokenKey(key: Buffer | null): void;
  /** Every open tunnel, upgrade and forwarded request. */
  readonly flows: FlowRegistry;
  /** The admin bearer token, or null when none is configured. */
  readonly adminToken: () => Buffer | null;
  /** The credential broker of the current config; null when no credential is configured. */
  readonly broker: () => Broker | null;
  /** A run revoked elsewhere in this replica (the primary's admin API): its handles end here at once. */
  revokeLocal(run: string, untilS: number): void;
}

export type ListenerName = 'http' | 'socks5' | 'admin' | 'dns';
export type BoundListeners = Partial<Record<ListenerName, AddressInfo>>;

export interface Sluice {
  readonly state: RuntimeState;
  /** Config, secrets, kill switch, reload and shutdown (control-plane.ts). */
  readonly control: ControlPlane;
  readonly metrics: Metrics;
  readonly pipeline: Pipeline;
  readonly dialer: Dialer;
  readonly resolver: NameResolver;
  readonly identities: IdentityStore;
  readonly audit: Audit;
  readonly logger: Logger;
  start(): Promise<BoundListeners>;
  /** Writes out buffered log lines synchronously (before process.exit). */
  flushLogs(): void;
  /** Ready for traffic: listeners up, config loaded, not draining. */
  ready(): boolean;
  /** Graceful shutdown: stop accepting, close tunnels, let in-flight requests finish for up to `drainMs`. */
  drain(drainMs: number): Promise<void>;
  stop(): Promise<void>;
}

// Defined with the control plane; re-exported for the modules that import them from here.
export { compileServingPolicy, selfAddresses, tokenKeyProblem } from './control-plane.js';
export { readAdminToken, readSecretFile, readTokenKey } from './secret-files.js';

/** Configured identities whose credential a new config changes (their open flows end with it). */
function changedCredentials(before: SluiceConfig, after: SluiceConfig): Set<string> {
  const out = new Set<string>();
  for (const [name, id] of Object.entries(before.identities)) {
    const next = Object.hasOwn(after.identities, name) ? after.identities[name] : undefined;
    if (next && (next.passwordHash !== id.passwordHash || next.password !== id.password)) out.add(name);
  }
  return out;
}

/** How often open flows are checked for an expired run token. */
const EXPIRY_SWEEP_MS = 1000;

/** The CA files as they are on disk. */
export const CA_FILES: CaFileAccess = caFiles();

export function createSluice(opts: SluiceOptions): Sluice {
  const generatedIdentity = opts.generatedIdentity ?? false;
  const nowMs = opts.nowMs ?? (() => performance.timeOrigin + performance.now());
  const wallClockMs = opts.wallClockMs ?? Date.now;
  const production = opts.production ?? process.env.SLUICE_ENV === 'production';
  // The audit log is written on every request: buffered, and flushed synchronously on the way out.
  const destination = opts.logTo?.destination ?? createLogDestination({ shared: opts.sharedStdout ?? false });
  const level = opts.logTo?.level ?? opts.config.log.level;
  const logger = createLogger(level, destination);
  const auditLogger = createAuditLogger(level, destination);
  /** Bumped with every new key: a flow opened with a run token remembers the generation it was checked under. */
  let tokenKeyGeneration = 0;
  const flows = createFlowRegistry();
  const shutdownDeny = deny('EGR_FAIL_UPSTREAM', 'shutdown', 'Sluice is shutting down');

  /** A run token checked under an older key: that key no longer grants anything. */
  const staleToken = (flow: Flow) =>
    flow.grant.principal.runId !== null && flow.grant.keyGeneration !== tokenKeyGeneration
      ? deny('EGR_AUTH_INVALID', 'tokens.keyFile', 'the run-token key changed')
      : null;

  // What a decision of the control plane means in this process: the rights it ends end here, at once.
  const model: ProcessModel = {
    apply(change) {
      if (change.keyChanged) tokenKeyGeneration++;
      // Pooled upstream connections were validated under the old policy; do not reuse them.
      dialer.refresh();
      // Rights end with their grant: every open flow is judged again, as the request that opened it would be now.
      const changed = changedCredentials(change.previous, change.config);
      const closed = flows.rejudge((flow) => staleToken(flow) ?? judgeAgain(change.policy, flow, changed));
      if (closed) logger.warn({ flows: closed }, 'config.reload: closed the open flows the new config denies');
      if (started) reloadInspection(change.config);
    },
    killSwitch(engaged) {
      if (engaged) flows.closeAll('kill-switch', deny('EGR_DENY_KILL_SWITCH', 'killSwitch'));
    },
    tokenKey() {
      tokenKeyGeneration++;
      return { flows: flows.rejudge(staleToken) };
    },
    drain: (drainMs) => sluice.drain(drainMs),
    stop: () => sluice.stop(),
    force: () => undefined,
    flushLogs: () => destination.flushSync(),
  };

  const flowCounts = () => Object.fromEntries(FLOW_KIND_NAMES.map((k) => [k, flows.count(k)]));
  const metrics = createMetrics({
    version: opts.version ?? 'dev',
    flows: flowCounts,
    opaqueKinds: FLOW_KIND_NAMES.filter((k) => FLOW_KINDS[k].opaque),
    destinations: () => control.policy(),
    nowMs,
  });
  const control = createControlPlane({
    config: opts.config,
    logger,
    metrics,
    model,
    generatedIdentity,
    production,
    wallClockMs,
    // A worker is handed the key by its primary, which alone reads and watches the file.
    ...(opts.tokenKey !== undefined ? { tokenKey: opts.tokenKey } : {}),
    source: opts.source ?? null,
    ...(opts.reload ? { reload: opts.reload } : {}),
  });
  const config = control.config;

  const state: RuntimeState = {
    policy: control.policy,
    config,
    killSwitch: control.killSwitch,
    setKillSwitch: (engaged, source = 'api') => void control.setKillSwitch(engaged, source),
    swap: (next, key) => void control.change(next, key),
    setTokenKey: control.setTokenKey,
    flows,
    adminToken: control.adminToken,
    broker: control.broker,
    revokeLocal: (run, untilS) => control.revocations.revokeLocal(run, untilS),
  };
  let expirySweep: NodeJS.Timeout | null = null;

  const resolver = createResolver({ ...opts.config.dns, nowMs, onLookup: metrics.dnsLookup });
  const extraCa = readCaFile(opts.config);
  const dialer = createDialer({
    resolver,
    policy: state.policy,
    connectTimeoutMs: opts.config.upstream.connectTimeoutMs,
    extraCa,
    nowMs,
    onConnect: metrics.upstreamConnect,
  });
  const admission = createAdmission({ limits: () => config().limits, nowMs });
  const identities = createIdentityStore({
    policy: state.policy,
    tokenKey: control.tokenKey,
    nowMs: wallClockMs,
    throttle: admission,
  });
  const audit = createAudit({
    logger: auditLogger,
    nowMs,
    observers: [metrics.observe, ...(opts.observers ?? [])],
    redactPaths: () => config().log.redactPaths,
  });
  // ── TLS inspection: the CA (from the config's files, or handed in), the leaf issuer and the session core ──
  let inspection: InspectionRuntime | null = null;
  /** The CA handed in (a worker imports its primary's while it starts), used when the config names no files. */
  let handedCa: InspectionCa | null = null;
  let inspectionKey = '';
  const settingsKey = (c: SluiceConfig) => JSON.stringify(c.inspection ?? null);
  const buildInspection = (ca: InspectionCa, c: SluiceConfig): InspectionRuntime => {
    const l = c.limits;
    return {
      issuer: createLeafIssuer({
        ca,
        observer: metrics.inspection,
        ...(c.inspection
          ? { validitySeconds: c.inspection.leafValiditySeconds, cacheSize: c.inspection.leafCacheSize }
          : {}),
      }),
      inspector: createInspector({
        limits: {
          handshakeTimeoutMs: c.upstream.tunnelHelloTimeoutMs,
          headersTimeoutMs: l.headersTimeoutMs,
          idleTimeoutMs: l.idleTimeoutMs,
          maxHeaderBytes: l.maxHeaderBytes,
        },
        observer: metrics.inspection,
      }),
    };
  };
  const useInspection = (ca: InspectionCa | null, c: SluiceConfig) => {
    // Sessions already open keep the inspector that serves them; new tunnels get the new one.
    const old = inspection;
    inspection = ca ? buildInspection(ca, c) : null;
    inspectionKey = settingsKey(c);
    if (old) setTimeout(() => old.inspector.close(), c.limits.idleTimeoutMs).unref();
  };
  /** Reads and checks the config's CA; throws with every problem when it is unusable (start refuses it). */
  async function loadCa(c: SluiceConfig): Promise<InspectionCa | null> {
    if (!c.inspection) return handedCa;
    const loaded = await loadInspectionCa(c.inspection, CA_FILES, { production });
    if (!loaded.ok) throw new ConfigRefusal(loaded.issues);
    return loaded.ca;
  }
  /** After a reload: the issuer is rebuilt when the inspection section changed (a new CA, validity or cache). */
  function reloadInspection(c: SluiceConfig): void {
    if (settingsKey(c) === inspectionKey) return;
    loadCa(c).then(
      (ca) => useInspection(ca, c),
      (err: unknown) =>
        logger.error(
          { err: String((err as Error)?.message ?? err) },
          'inspection.reload_failed: keeping the last good CA',
        ),
    );
  }
  // ── end TLS inspection ──

  const pipeline = createPipeline({
    policy: state.policy,
    state: () => ({ killSwitch: control.killSwitch() }),
    identities,
    dialer,
    audit,
    flows,
    tokenKeyGeneration: () => tokenKeyGeneration,
    broker: state.broker,
    logger,
    admission,
    timeouts: () => ({
      tunnelHelloTimeoutMs: config().upstream.tunnelHelloTimeoutMs,
      idleTimeoutMs: config().limits.idleTimeoutMs,
    }),
    inspection: () => inspection,
  });

  // Every listener Sluice opens, so that stop() closes each of them.
  const servers = new Map<ListenerName, NetServer>();
  let started = false;
  let draining = false;
  let stopped = false;

  const adminDeps: AdminDeps = {
    ...control.admin,
    metrics: metrics.registry,
    logger,
    ready: () => started && !draining,
    handles: () => {
      const broker = control.broker();
      return broker ? { issue: (r) => broker.issueHandle(r), revoke: (run) => broker.revokeRun(run) } : null;
    },
  };
  // What is not a net.Server (the DNS guard's UDP socket) closes through these.
  const closers: (() => Promise<void>)[] = [];
  let probe: ContainmentProbe | null = null;

  const listen = (name: ListenerName, server: NetServer, addr: ListenAddress) =>
    new Promise<AddressInfo>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: addr.host, port: addr.port, backlog: 1024 }, () => {
        server.removeListener('error', reject);
        servers.set(name, server);
        resolve(server.address() as AddressInfo);
      });
    });

  const sluice: Sluice = {
    state,
    control,
    pipeline,
    dialer,
    resolver,
    identities,
    audit,
    logger,
    metrics,
    async start() {
      const bound: BoundListeners = {};
      const c = config();
      const { listen: l } = c;
      control.checkStart();
      if (!inspection) {
        handedCa = (await opts.inspectionCa) ?? null;
        const ca = await loadCa(c);
        if (ca) useInspection(ca, c);
      }
      await control.follow();
      expirySweep ??= setInterval(() => flows.expire(wallClockMs()), EXPIRY_SWEEP_MS);
      expirySweep.unref();
      if (l.admin && opts.serveAdmin !== false)
        bound.admin = await listen('admin', createAdminListener(adminDeps), l.admin);
      if (l.http) bound.http = await listen('http', createHttpListener(pipeline, c.limits), l.http);
      if (l.socks5) bound.socks5 = await listen('socks5', createSocks5Listener(pipeline, c.limits), l.socks5);
      if (l.dns) {
        const guard = createDnsGuard({ logger, onQuery: metrics.dnsGuardQuery, nowMs });
        closers.push(() => guard.close());
        bound.dns = await guard.listen(l.dns);
      }
      const p = c.containment.probe;
      if (p && !probe) {
        const spec = { host: p.host, port: p.port, uid: p.uid, gid: p.gid, timeoutMs: p.timeoutMs };
        probe = createContainmentProbe({
          spec,
          intervalMs: p.intervalS * 1000,
          logger,
          setContainment: metrics.setContainment,
          ownUid: process.getuid?.(),
        });
        probe.start();
      }
      started = true;
      return bound;
    },
    ready: () => started && !draining,
    flushLogs() {
      destination.flushSync();
    },
    async drain(drainMs) {
      draining = true;
      for (const [name, server] of servers) {
        if (name === 'admin') continue; // stays up so /readyz can say "not ready" while draining
        server.close();
        (server as Partial<Server>).closeIdleConnections?.();
      }
      // Flows with no natural end (tunnels, upgrades) are closed now; forwarded requests get drainMs to finish,
      // and inspected sessions end once the requests inside them have.
      flows.closeAll('shutdown', shutdownDeny, (kind) => FLOW_KINDS[kind].drain === 'close');
      inspection?.inspector.drain();
      const until = nowMs() + drainMs;
      while (audit.inFlight > 0 && nowMs() < until) await new Promise((r) => setTimeout(r, 25));
      if (audit.inFlight > 0) logger.warn({ inFlight: audit.inFlight }, 'shutdown.drain_timeout: closing the rest');
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      control.close();
      if (expirySweep) clearInterval(expirySweep);
      expirySweep = null;
      const closing: Promise<unknown>[] = [];
      for (const server of servers.values()) {
        closing.push(new Promise((r) => server.close(r)));
        (server as Partial<Server>).closeAllConnections?.();
      }
      servers.clear();
      closing.push(...closers.splice(0).map((close) => close()));
      probe?.stop();
      probe = null;
      flows.closeAll('shutdown', shutdownDeny);
      inspection?.inspector.close();
      await Promise.all(closing);
      await dialer.close();
    },
  };
  return sluice;
}
