// The safe dialer: the only module that opens outbound sockets (eslint.config.js enforces it by import).
// resolve → validate every answer with the address guard → connect to exactly the address validated.
// A name is never handed to anything that could resolve it again, so a rebinding answer cannot slip in
// between the check and the connection.
import { createRequire } from 'node:module';
import { connect as netConnect, type OnReadOpts, type Socket } from 'node:net';
import {
  type ConnectionOptions,
  type SecureContext,
  connect as tlsConnect,
  createSecureContext,
  rootCertificates,
  type TLSSocket,
} from 'node:tls';
import { CountBoundedLru } from '../runtime/lru-count.js';
import type { Agent as UndiciAgent, Dispatcher } from 'undici';
import { type AddressPass, type CompiledGuard, checkAddress, checkAnswerSet } from '../../firewall/address-guard.js';
import { type Deny, deny, isDeny } from '../../firewall/codes.js';
import { type Host, normaliseHost } from '../../firewall/normalise.js';
import type { Policy } from '../../firewall/policy.js';
import { lruClock } from '../runtime/lru-clock.js';
import { type NameResolver, type Resolution, sizeOfEntry } from './resolver.js';

// undici's index also loads fetch, WebSocket, the caches and the mocks: ~9 MiB of RSS in every replica and
// sidecar, for nothing. The Agent is all Sluice uses; undici has no `exports` map, and
// test/proxy/dialer-plan.test.ts checks that this is the very class undici exports. Loaded with the first
// Agent (the first forwarded request), not at start: its modules are tens of ms of a sidecar's time to ready.
let AgentClass: typeof UndiciAgent | null = null;
const agentClass = (): typeof UndiciAgent =>
  (AgentClass ??= createRequire(import.meta.url)('undici/lib/dispatcher/agent.js') as typeof UndiciAgent);

// Type-only brand, as AddressPass's: only prepare() makes a DialPlan, so connect() and tunnels can take one
// knowing every address in it passed the guard (test/types/brands.ts).
declare const preparedByDialer: unique symbol;

export interface DialPlan {
  readonly [preparedByDialer]: true;
  readonly host: Host;
  /** Every address the name resolved to, each one validated. Connections go to these and nothing else. */
  readonly addresses: readonly AddressPass[];
  readonly dnsMs: number;
}

export interface Connected {
  readonly socket: Socket | TLSSocket;
  readonly address: string;
  readonly connectMs: number;
}

export interface Dialer {
  /** Resolves (names) and validates (every address). Never connects. */
  prepare(host: Host): Promise<DialPlan | Deny>;
  /** Connects to the plan's addresses in order; with `tls`, originates TLS and verifies the certificate.
   * `onread` (plain TCP only) hands the socket's reads to a callback instead of 'data' events (splice). */
  connect(plan: DialPlan, port: number, tls: boolean, onread?: OnReadOpts): Promise<Connected | Deny>;
  /** Forwards one request through the undici Agent, whose every new connection goes to the plan prepare()
   * last validated for that host — the name is not resolved again between the check and the connection.
   * The Agent itself never leaves this module: whoever held it could close it, or compose a dispatcher that
   * connects by itself. */
  dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean;
  /** After a policy change: drops pooled upstream connections unless every address they were made to
   * passes the new guard (none that the new policy would refuse is ever reused). */
  refresh(): void;
  close(): Promise<void>;
}

export interface DialerOptions {
  readonly resolver: NameResolver;
  readonly policy: () => Policy;
  readonly connectTimeoutMs: number;
  /** Extra CA certificates (PEM) trusted in addition to Node's bundled roots. */
  readonly extraCa?: string | null;
  readonly nowMs: () => number;
  /** Observes every new upstream connection (metrics). */
  readonly onConnect?: (ms: number) => void;
  readonly keepAliveTimeoutMs?: number;
}

/** Carries a denial through undici's error-only connect callback; forward.ts turns it back into a value. */
export class DialDenied extends Error {
  constructor(readonly deny: Deny) {
    super(deny.code);
  }
}

const MAX_ATTEMPTS = 4;

// OpenSSL's verification results (X509_V_ERR_*, as Node names them) and Node's own name check: the origin's
// certificate is not one Sluice accepts. Never retried without verification.
const CERT_ERRORS = new Set([
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_SIGNATURE_FAILURE',
  'CERT_REVOKED',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'INVALID_CA',
  'PATH_LENGTH_EXCEEDED',
  'INVALID_PURPOSE',
  'HOSTNAME_MISMATCH',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'ERR_TLS_CERT_ALTNAME_FORMAT',
  'ERR_SSL_UNSUPPORTED_PROTOCOL',
  'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION',
  'ERR_SSL_WRONG_VERSION_NUMBER',
]);

const planOf = (p: Omit<DialPlan, typeof preparedByDialer>): DialPlan => p as DialPlan;

function mapConnectError(err: unknown): Deny {
  const code = (err as { code?: string })?.code ?? '';
  if (CERT_ERRORS.has(code)) return deny('EGR_UPSTREAM_TLS', 'dial.tls', code);
  switch (code) {
    case 'ECONNREFUSED':
      return deny('EGR_FAIL_CONNECT_REFUSED', 'dial');
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'ENETDOWN':
    case 'EHOSTDOWN':
    case 'EADDRNOTAVAIL':
    case 'EPERM':
    case 'EACCES':
      // EPERM/EACCES: a local firewall (Sluice's own rules, in tests) rejected the packet.
      return deny('EGR_FAIL_CONNECT_UNREACHABLE', 'dial', code);
    case 'ETIMEDOUT':
      return deny('EGR_FAIL_CONNECT_TIMEOUT', 'dial');
    default:
      return deny('EGR_FAIL_UPSTREAM', 'dial', code || String((err as Error)?.message ?? err).slice(0, 120));
  }
}

const MAX_PINNED = 10_000;
const MAX_PINNED_BYTES = 16 * 1024 * 1024;
/** The shortest life of a pinned plan: covers the time between prepare() and the Agent's connect for the same
 * request (every request calls prepare() first, which pins its own plan anew). */
const PIN_MIN_TTL_MS = 10_000;

interface Pinned {
  readonly plan: DialPlan;
  /** The compiled guard the plan was validated under (a reload compiles a new one). */
  readonly guard: CompiledGuard;
  /** The resolver's answer array the plan was made from (null for literals). */
  readonly answers: readonly string[] | null;
  /** The resolver kept only part of the answer: a new guard cannot re-check the dropped addresses from here. */
  readonly truncated: boolean;
  /** The same plan with dnsMs 0, handed out on cache hits. */
  readonly reuse: DialPlan;
}

export function createDialer(opts: DialerOptions): Dialer {
  // One TLS context for every upstream connection. Without it tls.connect() builds a context per connection:
  // ~0.4 ms of CPU, and with `ca` (upstream.caFile: the whole root store plus the extra CA) ~45 ms, parsing
  // every root certificate again for each new connection. Verification is unchanged: the default context
  // trusts Node's root store, the other that store plus the extra CA.
  // TLS 1.2 at least, whatever Node's default is (RFC 8996 deprecates 1.0 and 1.1).
  // Made on the first TLS connection, not at start: parsing the root store is tens of ms of a sidecar's time to
  // ready, and a replica that only tunnels never needs it.
  let secureContextMade: SecureContext | null = null;
  const secureContext = (): SecureContext =>
    (secureContextMade ??= createSecureContext({
      minVersion: 'TLSv1.2',
      ...(opts.extraCa ? { ca: [...rootCertificates, opts.extraCa] } : {}),
    }));
  // The latest validated plan per host, for undici's connect hook: forwarding connects to these addresses
  // rather than resolving the name a second time (which a rebinding DNS server would answer differently).
  // It also spares the per-request work: a resolver cache hit hands back the very answer array validated
  // last time, and under the same compiled guard the verdict on it cannot differ. A plan lives as long as the
  // DNS answer it came from (its clamped TTL): the Agent must not keep connecting to addresses the name no
  // longer has. Bounded in entries and in bytes (a plan holds up to 32 addresses).
  const pinned = new CountBoundedLru<string, Pinned>(MAX_PINNED, {
    maxSize: MAX_PINNED_BYTES,
    // A validated address (an AddressPass) is an object of five fields: about three times a bare string.
    sizeCalculation: (p, host) => 3 * sizeOfEntry(host, p.answers ?? [host]),
    ...lruClock(opts.nowMs),
  });

  const pin = (host: Host, guard: CompiledGuard, resolved: Resolution | null, plan: DialPlan) => {
    // Never shorter than PIN_MIN_TTL_MS, even for a record with TTL 0: the request that validated the plan
    // connects through it a moment later, and must reach the address it validated, not a second answer.
    // Literals (no record) stay until evicted: lru-cache reads ttl 0 as "no expiry".
    const ttl = resolved?.ttlMs === undefined ? 0 : Math.max(resolved.ttlMs, PIN_MIN_TTL_MS);
    pinned.set(
      host.host,
      {
        plan,
        guard,
        answers: resolved?.addresses ?? null,
        truncated: resolved?.truncated === true,
        reuse: plan.dnsMs === 0 ? plan : planOf({ ...plan, dnsMs: 0 }),
      },
      { ttl },
    );
  };

  async function prepare(host: Host): Promise<DialPlan | Deny> {
    let plan: DialPlan;
    if (host.kind !== 'name') {
      const guard = opts.policy().guard;
      const r = checkAddress(guard, host.host, host.host);
      if (isDeny(r)) return r;
      plan = planOf({ host, addresses: [r], dnsMs: 0 });
      pin(host, guard, null, plan);
    } else {
      let resolved = await opts.resolver.resolve(host.host);
      if (isDeny(resolved)) return resolved;
      // The guard as of now: a reload may have landed while the name was being resolved.
      let guard = opts.policy().guard;
      const last = pinned.get(host.host);
      if (last && last.guard === guard && last.answers === resolved.addresses)
        return resolved.ms === 0 ? last.reuse : last.plan;
      if (resolved.truncated && !resolved.all) {
        // A cached answer that was cut to size, and no plan made from it under this guard: the addresses it
        // dropped were checked under another guard (or the plan was evicted). One blocked answer blocks the
        // set, so the whole set is fetched and checked again rather than judged on the part that was kept.
        resolved = await opts.resolver.resolve(host.host, { fresh: true });
        if (isDeny(resolved)) return resolved;
        guard = opts.policy().guard;
      }
      if (resolved.all) {
        const whole = checkAnswerSet(guard, resolved.all, host.host);
        if (isDeny(whole)) return whole;
      }
      const checked = checkAnswerSet(guard, resolved.addresses, host.host);
      if (isDeny(checked)) return checked;
      plan = planOf({ host, addresses: checked, dnsMs: resolved.ms });
      pin(host, guard, resolved, plan);
    }
    return plan;
  }

  /** The pinned plan, re-checked against the current guard (a reload may have landed since). */
  async function planFor(host: Host): Promise<DialPlan | Deny> {
    const p = pinned.get(host.host);
    if (!p) return prepare(host);
    const guard = opts.policy().guard;
    if (p.guard === guard) return p.plan;
    // Part of that answer was dropped and never seen by this guard: judge the whole set again.
    if (p.truncated) return prepare(host);
    const checked = checkAnswerSet(
      guard,
      p.plan.addresses.map((a) => a.address),
      host.host,
    );
    return isDeny(checked) ? checked : p.plan;
  }

  function attempt(
    plan: DialPlan,
    target: AddressPass,
    port: number,
    tls: boolean,
    onread?: OnReadOpts,
  ): Promise<Connected | Deny> {
    const started = opts.nowMs();
    return new Promise((resolve) => {
      let settled = false;
      const socket: Socket | TLSSocket = tls
        ? tlsConnect({
            host: target.address,
            port,
            // SNI and certificate identity are the validated name; an IP literal target is checked against IP SANs.
            ...(plan.host.kind === 'name' ? { servername: plan.host.host } : {}),
            secureContext: secureContext(),
            ALPNProtocols: ['http/1.1'],
            rejectUnauthorized: true,
            noDelay: true,
          } as ConnectionOptions)
        : netConnect({
            host: target.address,
            port,
            family: target.family,
            noDelay: true,
            ...(onread ? { onread } : {}),
          });
      const timer = setTimeout(() => finish(deny('EGR_FAIL_CONNECT_TIMEOUT', 'dial')), opts.connectTimeoutMs);
      const finish = (result: Connected | Deny) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.removeListener('error', onError);
        if (isDeny(result)) socket.destroy();
        resolve(result);
      };
      const onError = (err: unknown) => finish(mapConnectError(err));
      socket.once('error', onError);
      socket.once(tls ? 'secureConnect' : 'connect', () => {
        const connectMs = opts.nowMs() - started;
        opts.onConnect?.(connectMs);
        finish({ socket, address: target.address, connectMs });
      });
    });
  }

  async function connect(plan: DialPlan, port: number, tls: boolean, onread?: OnReadOpts): Promise<Connected | Deny> {
    let last: Deny = deny('EGR_FAIL_CONNECT_UNREACHABLE', 'dial', 'no address');
    for (const target of plan.addresses.slice(0, MAX_ATTEMPTS)) {
      const r = await attempt(plan, target, port, tls, onread);
      if (!isDeny(r)) return r;
      last = r;
      // A certificate or protocol failure will not improve on another address of the same name.
      if (r.code === 'EGR_FAIL_UPSTREAM' || r.code === 'EGR_UPSTREAM_TLS') break;
    }
    return last;
  }

  // Which addresses the current Agent's connections were made to, per host: pooled connections are a subset.
  // A reload keeps the Agent (and its warm connections) only when every one of them passes the new guard.
  const pooled = new Map<string, Set<string>>();
  let pooledUntracked = false;
  const track = (host: string, address: string) => {
    let set = pooled.get(host);
    if (!set) {
      if (pooled.size >= MAX_PINNED) {
        pooledUntracked = true;
        return;
      }
      pooled.set(host, (set = new Set()));
    }
    set.add(address);
  };
  const pooledStillValid = (guard: CompiledGuard): boolean => {
    if (pooledUntracked) return false;
    for (const [host, addresses] of pooled) {
      for (const a of addresses) if (isDeny(checkAddress(guard, a, host))) return false;
    }
    return true;
  };

  const newAgent = () =>
    new (agentClass())({
      keepAliveTimeout: opts.keepAliveTimeoutMs ?? 4000,
      keepAliveMaxTimeout: 60_000,
      connect(connectOpts, callback) {
        const raw = connectOpts.hostname;
        const host = normaliseHost(raw.includes(':') && !raw.startsWith('[') ? `[${raw}]` : raw);
        const tls = connectOpts.protocol === 'https:';
        const port = Number(connectOpts.port) || (tls ? 443 : 80);
        const fail = (d: Deny) => callback(new DialDenied(d), null);
        if (isDeny(host)) return fail(host);
        planFor(host)
          .then((plan) => (isDeny(plan) ? plan : connect(plan, port, tls)))
          .then((r) => {
            if (isDeny(r)) return fail(r);
            track(host.host, r.address);
            callback(null, r.socket);
          })
          .catch((err: unknown) => fail(deny('EGR_INTERNAL', 'dial', String(err))));
      },
    });

  // Made on the first forwarded request, not at start: a replica that only tunnels never needs it.
  let agent: UndiciAgent | null = null;
  let closed = false;

  return {
    prepare,
    connect,
    dispatch: (options, handler) => (agent ??= newAgent()).dispatch(options, handler),
    refresh() {
      // Plans are re-validated lazily (they remember the guard they were checked under). Pooled connections
      // are kept when every address they went to passes the new guard: replacing the Agent on every reload
      // would turn frequent reloads under load into a reconnect storm.
      if (closed || pooledStillValid(opts.policy().guard)) return;
      const old = agent;
      agent = null;
      pinned.clear();
      pooled.clear();
      pooledUntracked = false;
      void old?.close();
    },
    close: async () => {
      // Closed for good: a request after close() must fail (undici's ClientClosedError), not make a new Agent.
      closed = true;
      await (agent ??= newAgent()).close();
    },
  };
}
