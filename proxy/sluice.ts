// Wiring: one validated config in, listening proxy out. Owns the mutable runtime state (current policy,
// kill switch, open tunnels) that the pure core reads through getters.
import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo, Server as NetServer } from 'node:net';
import { networkInterfaces } from 'node:os';
import { performance } from 'node:perf_hooks';
import { type Logger, pino } from 'pino';
import type { ListenAddress, SluiceConfig } from '../firewall/config.js';
import { type Policy, compilePolicy } from '../firewall/policy.js';
import { type Audit, type AuditObserver, createAudit } from './audit.js';
import { type Dialer, createDialer } from './dialer.js';
import { createHttpListener } from './http-listener.js';
import { type IdentityStore, createIdentityStore } from './identity.js';
import { type Admit, type Pipeline, createPipeline } from './pipeline.js';
import { type NameResolver, createResolver } from './resolver.js';
import { type Metrics, createMetrics } from './metrics.js';
import { createSocks5Listener } from './socks5-listener.js';
import { MIN_KEY_BYTES } from './run-token.js';
import type { TunnelRegistry } from './splice.js';

export interface SluiceOptions {
  readonly config: SluiceConfig;
  readonly logger?: Logger;
  /** Monotonic-ish milliseconds; injected by tests that drive time. */
  readonly nowMs?: () => number;
  readonly observers?: AuditObserver[];
  /** Reported in sluice_build_info. */
  readonly version?: string;
}

export interface RuntimeState {
  readonly policy: () => Policy;
  readonly config: () => SluiceConfig;
  readonly killSwitch: () => boolean;
  setKillSwitch(engaged: boolean): void;
  /** Swaps in a new, already validated config (listener changes need a restart and are ignored). */
  swap(config: SluiceConfig): void;
  readonly tunnels: TunnelRegistry & { readonly size: number; closeAll(): void };
}

export type ListenerName = 'http' | 'socks5' | 'admin' | 'dns';
export type BoundListeners = Partial<Record<ListenerName, AddressInfo>>;

export interface Sluice {
  readonly state: RuntimeState;
  readonly metrics: Metrics;
  readonly pipeline: Pipeline;
  readonly dialer: Dialer;
  readonly resolver: NameResolver;
  readonly identities: IdentityStore;
  readonly audit: Audit;
  readonly logger: Logger;
  start(): Promise<BoundListeners>;
  stop(): Promise<void>;
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
      for (const list of Object.values(networkInterfaces())) for (const i of list ?? []) out.add(i.address.split('%')[0]!);
    } else {
      out.add(l.host);
    }
  }
  return [...out];
}

function readTokenKey(config: SluiceConfig): Buffer | null {
  if (!config.tokens) return null;
  const key = readFileSync(config.tokens.keyFile);
  const trimmed = Buffer.from(key.toString('utf8').trim(), 'utf8');
  if (trimmed.length < MIN_KEY_BYTES) throw new Error(`tokens.keyFile must hold at least ${MIN_KEY_BYTES} bytes of key (found ${trimmed.length})`);
  return trimmed;
}

export function createTunnelRegistry(): RuntimeState['tunnels'] {
  const open = new Set<() => void>();
  return {
    add(close) {
      open.add(close);
      return () => open.delete(close);
    },
    get size() {
      return open.size;
    },
    closeAll() {
      for (const close of [...open]) close();
    },
  };
}

export function createSluice(opts: SluiceOptions & { admit?: Admit }): Sluice {
  const nowMs = opts.nowMs ?? (() => performance.timeOrigin + performance.now());
  const logger = opts.logger ?? pino({ level: opts.config.log.level });
  let config = opts.config;
  const self = () => selfAddresses([config.listen.http, config.listen.socks5, config.listen.admin, config.listen.dns]);
  let policy = compilePolicy(config, self());
  let tokenKey = readTokenKey(config);
  let killSwitch = false;
  const tunnels = createTunnelRegistry();

  const state: RuntimeState = {
    policy: () => policy,
    config: () => config,
    killSwitch: () => killSwitch,
    setKillSwitch(engaged) {
      killSwitch = engaged;
      metrics.setKillSwitch(engaged);
      if (engaged) tunnels.closeAll();
    },
    swap(next) {
      const nextPolicy = compilePolicy({ ...next, listen: config.listen }, self());
      const nextKey = readTokenKey(next);
      config = { ...next, listen: config.listen };
      policy = nextPolicy;
      tokenKey = nextKey;
      // Pooled upstream connections were validated under the old policy; do not reuse them.
      dialer.refresh();
    },
    tunnels,
  };

  const metrics = createMetrics({ version: opts.version ?? 'dev', tunnels: () => tunnels.size });
  const resolver = createResolver({ ...config.dns, nowMs, onLookup: metrics.dnsLookup });
  const extraCa = config.upstream.caFile ? readFileSync(config.upstream.caFile, 'utf8') : null;
  const dialer = createDialer({ resolver, policy: state.policy, connectTimeoutMs: config.upstream.connectTimeoutMs, extraCa, nowMs, onConnect: metrics.upstreamConnect });
  const identities = createIdentityStore({ policy: state.policy, tokenKey: () => tokenKey, nowMs: () => Date.now() });
  const audit = createAudit({ logger, nowMs, observers: [metrics.observe, ...(opts.observers ?? [])] });
  const pipeline = createPipeline({
    policy: state.policy,
    state: () => ({ killSwitch }),
    identities,
    dialer,
    audit,
    tunnels,
    logger,
    ...(opts.admit ? { admit: opts.admit } : {}),
    timeouts: () => ({ tunnelHelloTimeoutMs: config.upstream.tunnelHelloTimeoutMs, idleTimeoutMs: config.limits.idleTimeoutMs }),
  });

  // Every listener Sluice opens, so that stop() closes each of them.
  const servers = new Map<ListenerName, NetServer>();

  const listen = (name: ListenerName, server: NetServer, addr: ListenAddress) =>
    new Promise<AddressInfo>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: addr.host, port: addr.port, backlog: 1024 }, () => {
        server.removeListener('error', reject);
        servers.set(name, server);
        resolve(server.address() as AddressInfo);
      });
    });

  return {
    state,
    pipeline,
    dialer,
    resolver,
    identities,
    audit,
    logger,
    metrics,
    async start() {
      const bound: BoundListeners = {};
      const { listen: l } = config;
      if (l.http) bound.http = await listen('http', createHttpListener(pipeline, config.limits), l.http);
      if (l.socks5) bound.socks5 = await listen('socks5', createSocks5Listener(pipeline, config.limits), l.socks5);
      return bound;
    },
    async stop() {
      const closing: Promise<unknown>[] = [];
      for (const server of servers.values()) {
        closing.push(new Promise((r) => server.close(r)));
        (server as Partial<Server>).closeAllConnections?.();
      }
      servers.clear();
      tunnels.closeAll();
      await Promise.all(closing);
      await dialer.close();
    },
  };
}
