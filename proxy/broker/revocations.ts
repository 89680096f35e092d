// Revocation of runs: a list every replica polls. One JSON object per line,
//
//   {"run":"job-4711","until":1767225600}
//
// appended by `sluice handle revoke` or the admin API (O_APPEND: concurrent appenders never tear each other's
// lines), or written by an orchestrator into a ConfigMap. `until` is when every handle the run could hold has
// expired anyway (issue time ≤ revocation time, plus the maximum TTL, plus a margin for replicas that had not
// yet seen the entry): after it the entry means nothing and is dropped, so the list stays bounded by the
// runs revoked within one maximum TTL.
//
// Why a polled file: it needs no shared store and no protocol of our own; every platform can deliver a file
// to every replica (a ConfigMap or Secret volume, a shared volume, a bind mount); and a replica that restarts
// reads the same list. The bound is the poll interval plus the platform's propagation (see ARCHITECTURE.md).
// Handles are also honoured only with a live run token of their run, so a run whose token is no longer
// renewed loses its handles when that token expires, whatever happens to the file.
import type { SluiceConfig } from '../../settings/config.js';
import { RUN_ID } from './handle.js';
import { SluiceError } from '../../firewall/errors.js';

export const MAX_REVOCATION_BYTES = 16 * 1024 * 1024;
export const MAX_REVOCATION_ENTRIES = 200_000;
/** Without secrets.handles.maxTtl, handles are capped at this (production refuses the missing maximum). */
export const DEFAULT_HANDLE_MAX_TTL_S = 24 * 3600;
/** Added to `until` for handles issued by a replica that had not yet seen the revocation. */
export const REVOCATION_MARGIN_S = 3600;

export type RunStatus = 'active' | 'revoked' | 'unknown';

export const handleMaxTtlS = (config: SluiceConfig): number =>
  config.secrets?.handles.maxTtlS ?? DEFAULT_HANDLE_MAX_TTL_S;

/** Until when a revocation made now must be kept. */
export const revocationUntilS = (config: SluiceConfig, nowS: number): number =>
  nowS + handleMaxTtlS(config) + REVOCATION_MARGIN_S;

export function revocationLine(run: string, untilS: number): string {
  if (!RUN_ID.test(run)) throw new SluiceError('SLUICE_ERR_INVALID_ARGUMENT', 'not a run id');
  return `${JSON.stringify({ run, until: untilS })}\n`;
}

export type ParsedRevocations =
  { readonly ok: true; readonly entries: Map<string, number> } | { readonly ok: false; readonly message: string };

/** Entries still in force at nowS. A last line without its newline is an append in progress and is left for
 * the next read; any other line that is not an entry fails the whole list (the caller fails closed). */
export function parseRevocations(bytes: Buffer, nowS: number): ParsedRevocations {
  if (bytes.length > MAX_REVOCATION_BYTES)
    return { ok: false, message: `larger than ${MAX_REVOCATION_BYTES} bytes (prune it: sluice handle prune)` };
  const text = bytes.toString('utf8');
  const complete = text.slice(0, text.lastIndexOf('\n') + 1);
  const entries = new Map<string, number>();
  let lineNo = 0;
  for (const line of complete.split('\n')) {
    lineNo++;
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    let v: unknown;
    try {
      v = JSON.parse(trimmed);
    } catch {
      return { ok: false, message: `line ${lineNo} is not JSON` };
    }
    const e = v as { run?: unknown; until?: unknown };
    if (
      typeof e !== 'object' ||
      e === null ||
      typeof e.run !== 'string' ||
      !RUN_ID.test(e.run) ||
      typeof e.until !== 'number' ||
      !Number.isFinite(e.until)
    ) {
      return { ok: false, message: `line ${lineNo} is not {"run": "<run id>", "until": <unix seconds>}` };
    }
    if (e.until <= nowS) continue;
    entries.set(e.run, Math.max(entries.get(e.run) ?? 0, e.until));
    if (entries.size > MAX_REVOCATION_ENTRIES)
      return { ok: false, message: `more than ${MAX_REVOCATION_ENTRIES} runs in force` };
  }
  return { ok: true, entries };
}

/** The list with only the entries still in force (what `sluice handle prune` writes). */
export function renderRevocations(entries: ReadonlyMap<string, number>): string {
  return [...entries].map(([run, until]) => revocationLine(run, until)).join('');
}

export interface RevocationWatcherDeps {
  /** Reads the list; rejects with an errno error (ENOENT: no list yet, nothing revoked). */
  readonly read: (path: string) => Promise<Buffer>;
  readonly nowMs: () => number;
  readonly intervalMs: number;
  /** How long a list that cannot be read or parsed is covered by the last good one before every handle is
   * refused. Default: 10 polls, at least 5 s (a save in progress, a volume hiccup). */
  readonly staleAfterMs?: number;
  /** Told once per change of health (for logs and readiness). */
  readonly onHealth?: (ok: boolean, message: string | null) => void;
}

export interface RevocationWatcher {
  /** Watches `path` (null: no file; only local revocations) instead of the file watched so far. */
  follow(path: string | null): Promise<void>;
  /** Reads the list now (the timer calls this; tests call it directly). */
  poll(): Promise<void>;
  /** A revocation made by this process: in force here at once, before the file round trip. */
  revokeLocal(run: string, untilS: number): void;
  status(run: string, nowS: number): RunStatus;
  /** null when healthy, else why handles are being refused. */
  readonly problem: string | null;
  close(): void;
}

export function createRevocationWatcher(deps: RevocationWatcherDeps): RevocationWatcher {
  const staleAfterMs = deps.staleAfterMs ?? Math.max(5000, deps.intervalMs * 10);
  let path: string | null = null;
  let fromFile = new Map<string, number>();
  const local = new Map<string, number>();
  let failingSinceMs: number | null = null;
  let failure: string | null = null;
  let reportedOk: boolean | null = null;
  let timer: NodeJS.Timeout | null = null;
  let generation = 0;

  const report = () => {
    const ok = failure === null;
    if (ok !== reportedOk) {
      reportedOk = ok;
      deps.onHealth?.(ok, failure);
    }
  };
  const fail = (message: string) => {
    failingSinceMs ??= deps.nowMs();
    failure = message;
    report();
  };
  const succeed = (entries: Map<string, number>) => {
    fromFile = entries;
    failingSinceMs = null;
    failure = null;
    report();
  };

  async function poll(): Promise<void> {
    const watching = path;
    const gen = generation;
    if (watching === null) return;
    const nowS = Math.floor(deps.nowMs() / 1000);
    for (const [run, until] of local) if (until <= nowS) local.delete(run);
    let bytes: Buffer | null;
    try {
      bytes = await deps.read(watching);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') bytes = null;
      else {
        if (gen === generation) fail(`revocation list ${watching} cannot be read (${code ?? 'error'})`);
        return;
      }
    }
    if (gen !== generation) return;
    if (bytes === null) return succeed(new Map());
    const parsed = parseRevocations(bytes, Math.floor(deps.nowMs() / 1000));
    if (parsed.ok) succeed(parsed.entries);
    else fail(`revocation list ${watching}: ${parsed.message}`);
  }

  const stop = () => {
    if (timer) clearInterval(timer);
    timer = null;
  };

  return {
    async follow(next) {
      if (next === path) return;
      stop();
      generation++;
      path = next;
      fromFile = new Map();
      failingSinceMs = null;
      failure = null;
      if (next === null) return report();
      // Until the first read answers, nothing is known: refuse rather than honour a revoked run's handle.
      fail(`revocation list ${next} not read yet`);
      failingSinceMs = -Infinity;
      await poll();
      timer = setInterval(() => void poll(), deps.intervalMs);
      timer.unref();
    },
    poll,
    revokeLocal(run, untilS) {
      local.set(run, Math.max(local.get(run) ?? 0, untilS));
    },
    status(run, nowS) {
      const l = local.get(run);
      if (l !== undefined) {
        if (l > nowS) return 'revoked';
        local.delete(run);
      }
      const f = fromFile.get(run);
      if (f !== undefined && f > nowS) return 'revoked';
      // The last good list covers a short failure; past that, no handle is honoured.
      if (failingSinceMs !== null && deps.nowMs() - failingSinceMs >= staleAfterMs) return 'unknown';
      return 'active';
    },
    get problem() {
      return failure;
    },
    close: stop,
  };
}
