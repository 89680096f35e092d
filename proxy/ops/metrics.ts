// Prometheus metrics (CONTRACT §7). Labels are bounded: listener, verdict, code and destination come from fixed
// sets, identity and integration from the config (a run token counts as its identity) — never paths, addresses
// or run ids, and hosts only in sluice_denied_hosts_top, whose size a space-saving sketch caps.
// prom-client's modules one by one, not its index: the index also loads Summary, the Pushgateway (node:https) and,
// through collectDefaultMetrics' process CPU counters, @opentelemetry/api for exemplars Sluice never enables —
// tens of ms of start-up and ~10 MiB of RSS in every sidecar. prom-client-parts.d.ts types them.
/// <reference path="./prom-client-parts.d.ts" />
import Counter from 'prom-client/lib/counter.js';
import Gauge from 'prom-client/lib/gauge.js';
import Histogram from 'prom-client/lib/histogram.js';
import Registry from 'prom-client/lib/registry.js';
import eventLoopLag from 'prom-client/lib/metrics/eventLoopLag.js';
import gc from 'prom-client/lib/metrics/gc.js';
import heapSizeAndUsed from 'prom-client/lib/metrics/heapSizeAndUsed.js';
import heapSpacesSizeAndUsed from 'prom-client/lib/metrics/heapSpacesSizeAndUsed.js';
import osMemoryHeap from 'prom-client/lib/metrics/osMemoryHeap.js';
import processHandles from 'prom-client/lib/metrics/processHandles.js';
import processMaxFileDescriptors from 'prom-client/lib/metrics/processMaxFileDescriptors.js';
import processOpenFileDescriptors from 'prom-client/lib/metrics/processOpenFileDescriptors.js';
import processRequests from 'prom-client/lib/metrics/processRequests.js';
import processResources from 'prom-client/lib/metrics/processResources.js';
import processStartTime from 'prom-client/lib/metrics/processStartTime.js';
import version from 'prom-client/lib/metrics/version.js';
import { CODES, type Code } from '../../firewall/codes.js';
import { type DestinationLists, classifyDestination } from '../../firewall/destination-class.js';
import { compileHostIndex } from '../../firewall/host-match.js';
import type { AuditRecord } from './audit.js';
import { CLIENT_TLS_REASONS, INSPECTION_METRIC, type InspectionObserver } from '../inspection/observer.js';
import { scrubText } from './redact.js';
import { type HeavyHitter, createRollingTop, mergeTopLists } from './space-saving.js';

export const METRIC = Object.freeze({
  requests: 'sluice_requests_total',
  requestDuration: 'sluice_request_duration_seconds',
  dnsLookup: 'sluice_dns_lookup_seconds',
  upstreamConnect: 'sluice_upstream_connect_seconds',
  activeTunnels: 'sluice_active_tunnels',
  activeFlows: 'sluice_active_flows',
  bytes: 'sluice_bytes_total',
  policyReloads: 'sluice_policy_reloads_total',
  killSwitch: 'sluice_kill_switch_engaged',
  buildInfo: 'sluice_build_info',
  containmentOk: 'sluice_containment_ok',
  dnsGuardQueries: 'sluice_dns_guard_queries_total',
  // Denied egress by destination (issue 17): what was tried, with bounded labels, and the hosts most tried.
  deniedRequests: 'sluice_denied_requests_total',
  deniedHostsTop: 'sluice_denied_hosts_top',
  tunnelDuration: 'sluice_tunnel_duration_seconds',
  credentialInjections: 'sluice_credential_injections_total',
  credentialDenials: 'sluice_credential_denials_total',
  credentialScrubbed: 'sluice_credential_scrubbed_total',
} as const);

/** Why the broker refused a request: a fixed set (the label of sluice_credential_denials_total). */
const CREDENTIAL_DENIAL_REASON: Readonly<Record<string, string>> = Object.freeze({
  EGR_DENY_CREDENTIAL_SCOPE: 'scope',
  EGR_DENY_CREDENTIAL_EXPIRED: 'expired',
  EGR_DENY_CREDENTIAL_REVOKED: 'revoked',
  EGR_DENY_CREDENTIAL_FOREIGN: 'foreign',
});

/** Every metric name Sluice exports, default process metrics aside (dashboards and alerts are checked against it). */
export const METRIC_NAMES: readonly string[] = Object.freeze([
  ...Object.values(METRIC),
  ...Object.values(INSPECTION_METRIC),
]);

const NONE = 'none';

/** Hosts sluice_denied_hosts_top exports (per process, and after the primary merges its workers). */
export const TOP_HOSTS_N = 20;
/** Counters the sketch keeps: more than it exports, so that the exported ones are accurate (error ≤ W/capacity). */
export const TOP_HOSTS_CAPACITY = 50;
/** Each sketch covers this long; the gauge reads the current window and the previous one (10 to 20 minutes). */
export const TOP_HOSTS_WINDOW_MS = 10 * 60_000;

/** requests_total's verdict: the audit verdict, except that report mode's let-through denials say so. */
export type MetricVerdict = 'allow' | 'deny' | 'error' | 'would_deny';

export interface Metrics {
  readonly registry: Registry;
  /** Audit observer: counts one finished request. */
  observe(record: Readonly<AuditRecord>): void;
  dnsLookup(ms: number): void;
  upstreamConnect(ms: number): void;
  reload(result: 'success' | 'error'): void;
  setKillSwitch(engaged: boolean): void;
  setContainment(ok: boolean | null): void;
  dnsGuardQuery(): void;
  /** TLS inspection's counters (proxy/inspection/observer.ts names them). */
  readonly inspection: InspectionObserver;
}

export interface MetricsOptions {
  readonly version: string;
  /** Open flows by kind (proxy/runtime/flows.ts: a fixed table, so the label is bounded), and whether a kind
   * is an opaque channel (sluice_active_tunnels counts those, as it always has: tunnels and upgrades). */
  readonly flows?: () => Readonly<Record<string, number>>;
  readonly opaqueKinds?: readonly string[];
  /** Without `flows`: the figure for sluice_active_tunnels (a process that carries no flows reports 0). */
  readonly tunnels?: () => number;
  readonly defaultMetrics?: boolean;
  /** The current policy's registries and integrations, for the destination label (a reload applies at once). */
  readonly destinations?: () => DestinationLists;
  /** For the denied-hosts windows. */
  readonly nowMs?: () => number;
  readonly topHosts?: { readonly n?: number; readonly capacity?: number; readonly windowMs?: number };
}

const NO_LISTS: DestinationLists = Object.freeze({
  registries: compileHostIndex<true>([]),
  integrationHosts: compileHostIndex<{ readonly name: string }>([]),
});

// The sketch key of a denied host: its three labels joined by a character no normalised host or label holds.
const SEP = ' ';
const topKey = (verdict: string, destination: string, host: string) => `${verdict}${SEP}${destination}${SEP}${host}`;
function topLabels(key: string): { verdict: string; destination: string; host: string } {
  const a = key.indexOf(SEP);
  const b = key.indexOf(SEP, a + 1);
  return { verdict: key.slice(0, a), destination: key.slice(a + 1, b), host: key.slice(b + 1) };
}

/** Whether a denial says something about its destination: the kill switch and the limits refuse any host, and
 * would fill the top list with the hosts workloads normally reach. They are still counted by destination. */
const aboutDestination = (code: Code | null): boolean =>
  code !== null && code !== 'EGR_DENY_KILL_SWITCH' && CODES[code].kind !== 'limit' && CODES[code].kind !== 'auth';

/** The kind of opaque flow a record ends, if it ended one that was opened: its time is a lifetime, not a latency. */
function opaqueKind(r: Readonly<AuditRecord>): 'tunnel' | 'upgrade' | null {
  // A tunnel's upstream connection is opened after the ClientHello check: connectMs says it was.
  // An inspected tunnel opens none of its own; the session it carried lasted as long as a tunnel does.
  if (r.method === 'CONNECT') return r.connectMs !== null || (r.inspected && r.verdict === 'allow') ? 'tunnel' : null;
  return r.status === 101 ? 'upgrade' : null;
}

/**
 * What prom-client's collectDefaultMetrics({ register }) registers, in its order and with its defaults, the
 * process CPU counters made here (the same three, counting from registration as prom-client's do).
 */
function registerDefaultMetrics(registry: Registry): void {
  let last = process.cpuUsage();
  const registers = [registry];
  const user = new Counter({
    name: 'process_cpu_user_seconds_total',
    help: 'Total user CPU time spent in seconds.',
    registers,
    // This one metric's collect sets all three.
    collect() {
      const now = process.cpuUsage();
      const userMicros = now.user - last.user;
      const systemMicros = now.system - last.system;
      last = now;
      user.inc(userMicros / 1e6);
      system.inc(systemMicros / 1e6);
      total.inc((userMicros + systemMicros) / 1e6);
    },
  });
  const system = new Counter({
    name: 'process_cpu_system_seconds_total',
    help: 'Total system CPU time spent in seconds.',
    registers,
  });
  const total = new Counter({
    name: 'process_cpu_seconds_total',
    help: 'Total user and system CPU time spent in seconds.',
    registers,
  });
  const config = { eventLoopMonitoringPrecision: 10 };
  for (const register of [
    processStartTime,
    osMemoryHeap,
    processOpenFileDescriptors,
    processMaxFileDescriptors,
    eventLoopLag,
    ...(typeof process.getActiveResourcesInfo === 'function' ? [processResources] : []),
    processHandles,
    processRequests,
    heapSizeAndUsed,
    heapSpacesSizeAndUsed,
    version,
    gc,
  ])
    register(registry, config);
}

export function createMetrics(opts: MetricsOptions): Metrics {
  const registry = new Registry();
  if (opts.defaultMetrics !== false) registerDefaultMetrics(registry);
  const registers = [registry];
  const requests = new Counter({
    name: METRIC.requests,
    help: 'Requests by listener, verdict, code and identity.',
    labelNames: ['listener', 'verdict', 'code', 'identity'] as const,
    registers,
  });
  const duration = new Histogram({
    name: METRIC.requestDuration,
    help: 'Time from the first byte of a request to its audit record; opened tunnels and upgrades are in sluice_tunnel_duration_seconds instead.',
    labelNames: ['listener', 'verdict'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
    registers,
  });
  const dns = new Histogram({
    name: METRIC.dnsLookup,
    help: 'Upstream DNS resolution time (cache misses).',
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers,
  });
  const connect = new Histogram({
    name: METRIC.upstreamConnect,
    help: 'Upstream TCP (and TLS) connect time.',
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers,
  });
  const opaque = new Set(opts.opaqueKinds ?? ['tunnel', 'upgrade']);
  new Gauge({
    name: METRIC.activeTunnels,
    help: 'Open CONNECT/SOCKS5 tunnels and upgrades (opaque flows).',
    registers,
    collect() {
      if (!opts.flows) return void this.set(opts.tunnels?.() ?? 0);
      let n = 0;
      for (const [kind, count] of Object.entries(opts.flows())) if (opaque.has(kind)) n += count;
      this.set(n);
    },
  });
  new Gauge({
    name: METRIC.activeFlows,
    help: 'Open flows by kind: tunnel (CONNECT, SOCKS5), upgrade (an upgraded HTTP connection), forward (a forwarded request in flight), inspected (a TLS session Sluice terminates).',
    labelNames: ['kind'] as const,
    registers,
    collect() {
      if (!opts.flows) return;
      for (const [kind, count] of Object.entries(opts.flows())) this.set({ kind }, count);
    },
  });
  const bytes = new Counter({
    name: METRIC.bytes,
    help: 'Bytes sent upstream (up) and received from upstream (down).',
    labelNames: ['listener', 'direction'] as const,
    registers,
  });
  const reloads = new Counter({
    name: METRIC.policyReloads,
    help: 'Config reloads by result.',
    labelNames: ['result'] as const,
    registers,
  });
  // `aggregator`: how the primary merges its workers' series (workers: N); counters and the tunnel gauge sum.
  const kill = new Gauge({
    name: METRIC.killSwitch,
    help: '1 while the kill switch denies all egress.',
    registers,
    aggregator: 'max',
  });
  const build = new Gauge({
    name: METRIC.buildInfo,
    help: 'Build information.',
    labelNames: ['version', 'node'] as const,
    registers,
    aggregator: 'first',
  });
  // Registered only once a probe reports: an unlabelled gauge reads 0 from birth, which would raise the
  // "containment broken" alert on every deployment that runs no probe.
  const containment = new Gauge({
    name: METRIC.containmentOk,
    help: '1 when a direct connection around Sluice fails as it should; 0 when it succeeds or the probe cannot tell (containment not proven).',
    registers: [],
    aggregator: 'min',
  });
  const dnsGuard = new Counter({
    name: METRIC.dnsGuardQueries,
    help: 'DNS queries answered REFUSED by the DNS guard (workloads need no resolver).',
    registers,
  });
  const denied = new Counter({
    name: METRIC.deniedRequests,
    help: 'Denied requests (verdict deny) and report mode\'s would-be denials (would_deny) by code, identity and destination class (firewall/destination-class.ts); integration names the integration when destination="integration".',
    labelNames: ['verdict', 'code', 'identity', 'destination', 'integration'] as const,
    registers,
  });
  const tunnelDuration = new Histogram({
    name: METRIC.tunnelDuration,
    help: 'Lifetime of opened tunnels (CONNECT, SOCKS5) and upgraded connections, from the request to the close.',
    labelNames: ['listener', 'kind'] as const,
    buckets: [0.1, 1, 5, 15, 60, 300, 900, 1800, 3600, 7200, 14400, 43200, 86400],
    registers,
  });
  const topN = Math.min(opts.topHosts?.n ?? TOP_HOSTS_N, 50);
  const topHosts = createRollingTop({
    capacity: Math.max(opts.topHosts?.capacity ?? TOP_HOSTS_CAPACITY, topN),
    windowMs: opts.topHosts?.windowMs ?? TOP_HOSTS_WINDOW_MS,
    nowMs: opts.nowMs ?? Date.now,
  });
  new Gauge({
    name: METRIC.deniedHostsTop,
    help: `Most denied hosts of the last 10 to 20 minutes (at most ${TOP_HOSTS_N}; a space-saving sketch, so a count may overestimate by the smallest count's share).`,
    labelNames: ['verdict', 'destination', 'host'] as const,
    registers,
    collect() {
      this.reset();
      for (const h of topHosts.top(topN)) this.set(topLabels(h.key), h.count);
    },
  });
  // Credential names come from the config (bounded), reasons from the table above; never a run or a handle.
  const injections = new Counter({
    name: METRIC.credentialInjections,
    help: 'Requests into which the broker injected a credential, by credential.',
    labelNames: ['credential'] as const,
    registers,
  });
  const credentialDenials = new Counter({
    name: METRIC.credentialDenials,
    help: 'Requests the broker refused, by reason (scope, expired, revoked, foreign, other); exfiltration="true" when a handle was seen where it must not go.',
    labelNames: ['reason', 'exfiltration'] as const,
    registers,
  });
  const scrubbed = new Counter({
    name: METRIC.credentialScrubbed,
    help: 'Secrets replaced by their handle in responses (headers and bodies).',
    registers,
  });
  build.set({ version: opts.version, node: process.version }, 1);
  kill.set(0);
  reloads.inc({ result: 'success' }, 0);
  reloads.inc({ result: 'error' }, 0);

  // prom-client hashes the label object on every call; the label sets are few (bounded labels), so the
  // children are looked up once per set and kept.
  interface Children {
    readonly requests: ReturnType<typeof requests.labels>;
    readonly duration: ReturnType<typeof duration.labels>;
    readonly up: ReturnType<typeof bytes.labels>;
    readonly down: ReturnType<typeof bytes.labels>;
  }
  const children = new Map<string, Children>();
  const childrenFor = (r: Readonly<AuditRecord>, verdict: MetricVerdict, code: string): Children => {
    const identity = r.identity ?? NONE;
    const key = `${r.listener}|${verdict}|${code}|${identity}`;
    let c = children.get(key);
    if (!c) {
      if (children.size >= 10_000) children.clear();
      c = {
        requests: requests.labels({ listener: r.listener, verdict, code, identity }),
        duration: duration.labels({ listener: r.listener, verdict }),
        up: bytes.labels({ listener: r.listener, direction: 'up' }),
        down: bytes.labels({ listener: r.listener, direction: 'down' }),
      };
      children.set(key, c);
    }
    return c;
  };

  const leafMints = new Counter({
    name: INSPECTION_METRIC.leafMints,
    help: 'Leaf certificates minted for inspected hosts (leaf cache misses).',
    registers,
  });
  const leafHits = new Counter({
    name: INSPECTION_METRIC.leafCacheHits,
    help: 'Leaf certificates served from the cache (or a mint already under way).',
    registers,
  });
  const leafMintDuration = new Histogram({
    name: INSPECTION_METRIC.leafMintDuration,
    help: 'Time to mint one leaf (key, certificate, TLS context).',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers,
  });
  const handshakeFailures = new Counter({
    name: INSPECTION_METRIC.clientHandshakeFailures,
    help: 'Client TLS handshakes with Sluice that failed, by reason (the alert the client sent, or how it ended).',
    labelNames: ['reason'] as const,
    registers,
  });
  // Every reason at 0 from the start: an alert on a rise needs the series to exist before the first failure.
  for (const reason of CLIENT_TLS_REASONS) handshakeFailures.inc({ reason }, 0);
  const inspectedSessions = new Counter({
    name: INSPECTION_METRIC.sessions,
    help: 'Inspected TLS sessions whose handshake completed.',
    registers,
  });
  const innerRequests = new Counter({
    name: INSPECTION_METRIC.requests,
    help: 'HTTP requests read inside inspected TLS sessions.',
    registers,
  });
  const deniedChildren = new Map<string, ReturnType<typeof denied.labels>>();
  /** A denial or a would-be denial: by destination class, and its host into the sketch. */
  function observeDenied(r: Readonly<AuditRecord>, verdict: 'deny' | 'would_deny', code: Code | null): void {
    const d = classifyDestination(opts.destinations?.() ?? NO_LISTS, r.targetHost, code);
    const identity = r.identity ?? NONE;
    const integration = d.integration ?? NONE;
    const key = `${verdict}|${code ?? NONE}|${identity}|${d.class}|${integration}`;
    let c = deniedChildren.get(key);
    if (!c) {
      if (deniedChildren.size >= 10_000) deniedChildren.clear();
      c = denied.labels({ verdict, code: code ?? NONE, identity, destination: d.class, integration });
      deniedChildren.set(key, c);
    }
    c.inc();
    // Hosts are the client's choice: scrubbed of token shapes (data smuggled out in a label), cut to a DNS name's
    // length.
    if (r.targetHost && aboutDestination(code))
      topHosts.offer(topKey(verdict, d.class, scrubText(r.targetHost).slice(0, 253)));
  }

  return {
    registry,
    inspection: {
      leafMinted(seconds) {
        leafMints.inc();
        leafMintDuration.observe(seconds);
      },
      leafCacheHit: () => leafHits.inc(),
      clientHandshakeFailed: (reason) => handshakeFailures.inc({ reason }),
      sessionStarted: () => inspectedSessions.inc(),
      requestInside: () => innerRequests.inc(),
    },
    observe(r) {
      // Report mode let the request through; it is counted as what enforce mode would have done.
      const wouldDeny = r.wouldDeny !== null && r.verdict !== 'deny' ? r.wouldDeny : null;
      const verdict: MetricVerdict = wouldDeny && r.verdict === 'allow' ? 'would_deny' : r.verdict;
      const c = childrenFor(r, verdict, verdict === 'would_deny' ? wouldDeny! : (r.code ?? NONE));
      c.requests.inc();
      const opaque = opaqueKind(r);
      if (opaque) tunnelDuration.observe({ listener: r.listener, kind: opaque }, r.durationMs / 1000);
      else c.duration.observe(r.durationMs / 1000);
      if (r.bytesUp) c.up.inc(r.bytesUp);
      if (r.bytesDown) c.down.inc(r.bytesDown);
      if (r.verdict === 'deny') observeDenied(r, 'deny', r.code);
      else if (wouldDeny) observeDenied(r, 'would_deny', wouldDeny);
      const cred = r.credential;
      if (cred) {
        if (cred.action === 'injected')
          for (const name of (cred.name ?? '').split(',')) if (name) injections.inc({ credential: name });
        if (cred.action === 'exfiltration' || cred.action === 'denied') {
          credentialDenials.inc({
            reason: (r.code && CREDENTIAL_DENIAL_REASON[r.code]) ?? 'other',
            exfiltration: String(cred.action === 'exfiltration'),
          });
        }
        if (cred.scrubbed) scrubbed.inc(cred.scrubbed);
      }
    },
    dnsLookup: (ms) => dns.observe(ms / 1000),
    upstreamConnect: (ms) => connect.observe(ms / 1000),
    reload: (result) => reloads.inc({ result }),
    setKillSwitch: (engaged) => kill.set(engaged ? 1 : 0),
    setContainment(ok) {
      if (ok === null) {
        registry.removeSingleMetric(METRIC.containmentOk);
        return;
      }
      if (!registry.getSingleMetric(METRIC.containmentOk)) registry.registerMetric(containment);
      containment.set(ok ? 1 : 0);
    },
    dnsGuardQuery: () => dnsGuard.inc(),
  };
}

/** A worker's getMetricsAsJSON() entry, as far as the merge below reads it. */
interface MetricJson {
  readonly name?: unknown;
  readonly values?: readonly { readonly labels?: Readonly<Record<string, unknown>>; readonly value?: unknown }[];
}

/**
 * Workers (primary.ts): each worker keeps its own sketch, and the primary merges their top lists into one before
 * prom-client aggregates the rest — rather than labelling each worker's list with its worker — so the gauge stays
 * at TOP_HOSTS_N series however many workers run, and a replaced worker does not leave a new set of series
 * behind. The question it answers is which hosts, not which worker saw them. Returns the parts with every
 * worker's entry taken out and the merged one added to the first part.
 */
export function mergeDeniedHosts(parts: readonly (readonly unknown[])[], n: number = TOP_HOSTS_N): unknown[][] {
  const lists: HeavyHitter[][] = [];
  let template: MetricJson | null = null;
  const out = parts.map((part) =>
    part.filter((m) => {
      const metric = m as MetricJson;
      if (metric?.name !== METRIC.deniedHostsTop) return true;
      template ??= metric;
      const list: HeavyHitter[] = [];
      for (const v of metric.values ?? []) {
        const l = v.labels ?? {};
        if (
          typeof v.value !== 'number' ||
          typeof l.verdict !== 'string' ||
          typeof l.destination !== 'string' ||
          typeof l.host !== 'string'
        )
          continue;
        list.push({ key: topKey(l.verdict, l.destination, l.host), count: v.value, error: 0 });
      }
      lists.push(list);
      return false;
    }),
  );
  if (template && out.length > 0) {
    const values = mergeTopLists(lists, Math.min(n, 50)).map((h) => ({ labels: topLabels(h.key), value: h.count }));
    out[0]!.push({ ...(template as object), values });
  }
  return out;
}
