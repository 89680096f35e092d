// Prometheus metrics (CONTRACT §7). Labels are bounded: listener, verdict and code come from fixed sets, identity
// from the config (a run token counts as its identity) — never hosts, paths, addresses or run ids.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { AuditRecord } from './audit.js';

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
export const METRIC_NAMES: readonly string[] = Object.freeze(Object.values(METRIC));

const NONE = 'none';

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
}

export function createMetrics(opts: MetricsOptions): Metrics {
  const registry = new Registry();
  if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: registry });
  const registers = [registry];
  const requests = new Counter({ name: METRIC.requests, help: 'Requests by listener, verdict, code and identity.', labelNames: ['listener', 'verdict', 'code', 'identity'] as const, registers });
  const duration = new Histogram({
    name: METRIC.requestDuration,
    help: 'Time from the first byte of a request to its audit record (tunnels: their whole life).',
    labelNames: ['listener', 'verdict'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
    registers,
  });
  const dns = new Histogram({ name: METRIC.dnsLookup, help: 'Upstream DNS resolution time (cache misses).', buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5], registers });
  const connect = new Histogram({ name: METRIC.upstreamConnect, help: 'Upstream TCP (and TLS) connect time.', buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers });
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
    help: 'Open flows by kind: tunnel (CONNECT, SOCKS5), upgrade (an upgraded HTTP connection), forward (a forwarded request in flight).',
    labelNames: ['kind'] as const,
    registers,
    collect() {
      if (!opts.flows) return;
      for (const [kind, count] of Object.entries(opts.flows())) this.set({ kind }, count);
    },
  });
  const bytes = new Counter({ name: METRIC.bytes, help: 'Bytes sent upstream (up) and received from upstream (down).', labelNames: ['listener', 'direction'] as const, registers });
  const reloads = new Counter({ name: METRIC.policyReloads, help: 'Config reloads by result.', labelNames: ['result'] as const, registers });
  // `aggregator`: how the primary merges its workers' series (workers: N); counters and the tunnel gauge sum.
  const kill = new Gauge({ name: METRIC.killSwitch, help: '1 while the kill switch denies all egress.', registers, aggregator: 'max' });
  const build = new Gauge({ name: METRIC.buildInfo, help: 'Build information.', labelNames: ['version', 'node'] as const, registers, aggregator: 'first' });
  // Registered only once a probe reports: an unlabelled gauge reads 0 from birth, which would raise the
  // "containment broken" alert on every deployment that runs no probe.
  const containment = new Gauge({ name: METRIC.containmentOk, help: '1 when a direct connection around Sluice fails as it should; 0 when it succeeds or the probe cannot tell (containment not proven).', registers: [], aggregator: 'min' });
  const dnsGuard = new Counter({ name: METRIC.dnsGuardQueries, help: 'DNS queries answered REFUSED by the DNS guard (workloads need no resolver).', registers });
  // Credential names come from the config (bounded), reasons from the table above; never a run or a handle.
  const injections = new Counter({ name: METRIC.credentialInjections, help: 'Requests into which the broker injected a credential, by credential.', labelNames: ['credential'] as const, registers });
  const credentialDenials = new Counter({
    name: METRIC.credentialDenials,
    help: 'Requests the broker refused, by reason (scope, expired, revoked, foreign, other); exfiltration="true" when a handle was seen where it must not go.',
    labelNames: ['reason', 'exfiltration'] as const,
    registers,
  });
  const scrubbed = new Counter({ name: METRIC.credentialScrubbed, help: 'Secrets replaced by their handle in responses (headers and bodies).', registers });
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
  const childrenFor = (r: Readonly<AuditRecord>): Children => {
    const code = r.code ?? NONE;
    const identity = r.identity ?? NONE;
    const key = `${r.listener}|${r.verdict}|${code}|${identity}`;
    let c = children.get(key);
    if (!c) {
      if (children.size >= 10_000) children.clear();
      c = {
        requests: requests.labels({ listener: r.listener, verdict: r.verdict, code, identity }),
        duration: duration.labels({ listener: r.listener, verdict: r.verdict }),
        up: bytes.labels({ listener: r.listener, direction: 'up' }),
        down: bytes.labels({ listener: r.listener, direction: 'down' }),
      };
      children.set(key, c);
    }
    return c;
  };

  return {
    registry,
    observe(r) {
      const c = childrenFor(r);
      c.requests.inc();
      c.duration.observe(r.durationMs / 1000);
      if (r.bytesUp) c.up.inc(r.bytesUp);
      if (r.bytesDown) c.down.inc(r.bytesDown);
      const cred = r.credential;
      if (cred) {
        if (cred.action === 'injected') for (const name of (cred.name ?? '').split(',')) if (name) injections.inc({ credential: name });
        if (cred.action === 'exfiltration' || cred.action === 'denied') {
          credentialDenials.inc({ reason: (r.code && CREDENTIAL_DENIAL_REASON[r.code]) ?? 'other', exfiltration: String(cred.action === 'exfiltration') });
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
