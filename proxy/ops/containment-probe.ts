// Continuous self-check of containment (containment.probe): every interval, a direct TCP connection to a
// target that would answer if nothing stood in the way, made by a child process running as an unprivileged UID
// that is not Sluice's (so Sluice's firewall exemption does not apply to it). The direct path is closed only
// when the connection fails the way a firewall or a missing route makes it fail; everything else — it
// connected, something answered with a refusal, the child could not start or said nothing sensible — is
// reported as not contained. The result is `sluice_containment_ok` (1 = the direct path is closed).
//
// Switching UID needs CAP_SETUID and CAP_SETGID in Sluice's effective set (see README, "Containment"). Without
// them the child cannot start and the metric says 0, with the reason in the log: never a false "ok".
//
// The child's socket is the one outbound socket outside proxy/egress/dialer.ts, by design: it must NOT go through
// Sluice. It only connects and closes; it never writes a byte.
import { spawn } from 'node:child_process';
import type { Logger } from 'pino';

export const PROBE_LOG = 'containment.probe';

export interface ProbeTarget {
  readonly host: string;
  readonly port: number;
}

export interface ProbeSpec extends ProbeTarget {
  readonly uid: number;
  readonly gid: number;
  readonly timeoutMs: number;
}

/** What the child reported, or why it reported nothing. */
export type ProbeOutcome =
  | { readonly outcome: 'connected' }
  | { readonly outcome: 'timeout' }
  | { readonly outcome: 'error'; readonly code: string }
  | { readonly outcome: 'probe-failed'; readonly reason: string };

export interface ProbeVerdict {
  readonly ok: boolean;
  readonly reason: string;
}

// Errors that mean "a firewall or the routing table stopped the packet": REJECT with admin-prohibited gives
// EHOSTUNREACH (v4 and v6), a DROP in OUTPUT gives EPERM, no route gives ENETUNREACH.
const CLOSED = new Set(['EHOSTUNREACH', 'ENETUNREACH', 'EPERM', 'EACCES']);

/** Pure: the probe's outcome → is the direct path closed? */
export function judgeProbe(o: ProbeOutcome): ProbeVerdict {
  switch (o.outcome) {
    case 'connected':
      return { ok: false, reason: 'a direct connection around Sluice succeeded: containment is broken' };
    case 'timeout':
      return { ok: true, reason: 'the direct connection got no answer (dropped)' };
    case 'error':
      if (CLOSED.has(o.code))
        return { ok: true, reason: `the direct connection was refused by the network (${o.code})` };
      if (o.code === 'ECONNREFUSED')
        return {
          ok: false,
          reason:
            'something on the direct path answered (ECONNREFUSED): the packet got through; choose a probe target that listens',
        };
      return { ok: false, reason: `the probe failed in an unexpected way (${o.code})` };
    case 'probe-failed':
      return { ok: false, reason: o.reason };
  }
}

// The child: CommonJS under `node -e`, no dependencies, no environment. One connect, then close.
const CHILD = `
const [host, port, timeoutMs] = process.argv.slice(1);
const done = (r) => { process.stdout.write(JSON.stringify(r)); process.exit(0); };
const s = require('node:net').connect({ host, port: Number(port) });
s.setTimeout(Number(timeoutMs), () => { s.destroy(); done({ outcome: 'timeout' }); });
s.on('connect', () => { s.destroy(); done({ outcome: 'connected' }); });
s.on('error', (e) => done({ outcome: 'error', code: String(e.code) }));
`;

/** Runs the probe child as `spec.uid`/`spec.gid`; resolves with what it reported. */
export function runProbeChild(spec: ProbeSpec): Promise<ProbeOutcome> {
  return new Promise((resolve) => {
    let settled = false;
    const finish = (o: ProbeOutcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(o);
    };
    let child: ReturnType<typeof spawn>;
    try {
      child = spawn(process.execPath, ['-e', CHILD, spec.host, String(spec.port), String(spec.timeoutMs)], {
        uid: spec.uid,
        gid: spec.gid,
        env: {},
        cwd: '/',
        stdio: ['ignore', 'pipe', 'ignore'],
      });
    } catch (e) {
      resolve({
        outcome: 'probe-failed',
        reason: `cannot start the probe as uid ${spec.uid}: ${(e as Error).message} (Sluice needs CAP_SETUID and CAP_SETGID)`,
      });
      return;
    }
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      finish({ outcome: 'probe-failed', reason: 'the probe child did not report in time' });
    }, spec.timeoutMs + 5000);
    let out = '';
    child.stdout?.on('data', (d: Buffer) => {
      if (out.length < 1024) out += d.toString();
    });
    child.on('error', (e: NodeJS.ErrnoException) => {
      const hint =
        e.code === 'EPERM' ? ' (Sluice needs CAP_SETUID and CAP_SETGID to run the probe as another UID)' : '';
      finish({
        outcome: 'probe-failed',
        reason: `cannot start the probe as uid ${spec.uid}: ${e.code ?? e.message}${hint}`,
      });
    });
    child.on('close', (code) => {
      try {
        const r = JSON.parse(out) as { outcome?: unknown; code?: unknown };
        if (r.outcome === 'connected' || r.outcome === 'timeout') return finish({ outcome: r.outcome });
        if (r.outcome === 'error' && typeof r.code === 'string') return finish({ outcome: 'error', code: r.code });
      } catch {
        // fall through
      }
      finish({ outcome: 'probe-failed', reason: `the probe child exited (${code}) without a result` });
    });
  });
}

export interface ContainmentProbeOptions {
  readonly spec: ProbeSpec;
  readonly intervalMs: number;
  readonly logger: Logger;
  readonly setContainment: (ok: boolean | null) => void;
  /** Injected by tests; defaults to the real child process. */
  readonly run?: (spec: ProbeSpec) => Promise<ProbeOutcome>;
  /** Sluice's own UID (process.getuid); a probe as that UID would be exempt from the rules. */
  readonly ownUid?: number | undefined;
}

export interface ContainmentProbe {
  /** One probe now; resolves with its verdict (also exported and logged). */
  check(): Promise<ProbeVerdict>;
  start(): void;
  stop(): void;
}

export function createContainmentProbe(opts: ContainmentProbeOptions): ContainmentProbe {
  const run = opts.run ?? runProbeChild;
  const { spec } = opts;
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<ProbeVerdict> | null = null;
  let last: boolean | null = null;

  const once = async (): Promise<ProbeVerdict> => {
    let outcome: ProbeOutcome;
    if (opts.ownUid !== undefined && opts.ownUid === spec.uid) {
      outcome = {
        outcome: 'probe-failed',
        reason: `containment.probe.uid ${spec.uid} is Sluice's own UID, whose traffic the firewall exempts; use another`,
      };
    } else {
      try {
        outcome = await run(spec);
      } catch (e) {
        outcome = { outcome: 'probe-failed', reason: (e as Error)?.message ?? String(e) };
      }
    }
    const verdict = judgeProbe(outcome);
    opts.setContainment(verdict.ok);
    const fields = {
      ok: verdict.ok,
      outcome: outcome.outcome,
      'probe.target': `${spec.host}:${spec.port}`,
      'probe.uid': spec.uid,
      reason: verdict.reason,
    };
    // A failure is logged every time (it is an incident); success once when it starts being true.
    if (!verdict.ok) opts.logger.error(fields, PROBE_LOG);
    else if (last !== true) opts.logger.info(fields, PROBE_LOG);
    else opts.logger.debug(fields, PROBE_LOG);
    last = verdict.ok;
    return verdict;
  };

  const check = () => {
    // Never two probes at once: a slow one is still the latest word.
    running ??= once().finally(() => {
      running = null;
    });
    return running;
  };

  return {
    check,
    start() {
      if (timer) return;
      void check();
      timer = setInterval(() => void check(), opts.intervalMs);
      timer.unref();
    },
    stop() {
      if (timer) clearInterval(timer);
      timer = null;
    },
  };
}
