// The canonical audit record: exactly one `egress.decision` line per request, written in the pipeline's
// `finally`. Field names are constants (CONTRACT §7) so that dashboards, tests and docs share one spelling.
import { randomUUID } from 'node:crypto';
import { CODES, type Code, type Deny } from '../../firewall/codes.js';
import type { AuditLogger } from './log-destination.js';
import { pathForLog, scrubText } from './redact.js';
import { CREDENTIAL_FIELD } from '../broker/audit-fields.js';

export const AUDIT_MESSAGE = 'egress.decision';

export const FIELD = Object.freeze({
  id: 'id',
  listener: 'listener',
  clientAddr: 'client.addr',
  identity: 'identity',
  run: 'run',
  method: 'method',
  targetHost: 'target.host',
  targetPort: 'target.port',
  targetPath: 'target.path',
  verdict: 'verdict',
  code: 'code',
  rule: 'rule',
  wouldDeny: 'wouldDeny',
  dialAddress: 'dial.address',
  dnsMs: 'dns.ms',
  connectMs: 'connect.ms',
  status: 'status',
  bytesUp: 'bytes.up',
  bytesDown: 'bytes.down',
  durationMs: 'duration.ms',
  detail: 'detail',
  close: 'close',
  tunnel: 'tunnel',
  inspected: 'inspected',
  // The credential broker's (proxy/broker/audit-fields.ts): a name and a short handle id, never a handle or secret.
  credentialName: CREDENTIAL_FIELD.name,
  credentialHandle: CREDENTIAL_FIELD.handle,
  credentialAction: CREDENTIAL_FIELD.action,
  credentialScrubbed: CREDENTIAL_FIELD.scrubbed,
} as const);

/** What the credential broker did with a request (null: nothing, the common case). */
export interface CredentialAudit {
  /** Credential name(s), comma-separated when a request injected more than one; null when unknown. */
  name: string | null;
  /** handleId() (12 hex characters), never the handle. */
  handle: string | null;
  /** CREDENTIAL_ACTIONS: injected, exfiltration, denied, foreign-passed; 'scrubbed' when only the response was. */
  action: string;
  /** Replacements of a secret in the response. */
  scrubbed: number;
}

export type Listener = 'http' | 'socks5';
/** Why Sluice closed a flow (proxy/runtime/flows.ts); a flow that ended by itself has none. */
export type CloseReason = 'idle' | 'kill-switch' | 'token-expired' | 'revoked' | 'shutdown';
/** allow: let through (maybe cut short later); deny: refused by auth, policy, guard, request rules or limits;
 * error: allowed but the destination or Sluice failed. */
export type Verdict = 'allow' | 'deny' | 'error';

export interface AuditRecord {
  readonly id: string;
  readonly listener: Listener;
  readonly clientAddr: string;
  readonly startedMs: number;
  identity: string | null;
  run: string | null;
  method: string | null;
  targetHost: string | null;
  targetPort: number | null;
  /** Origin-form path as requested (HTTP only); logged through pathForLog (redact.ts): query and matrix values
   * dropped, secret-like segments redacted. */
  targetPath: string | null;
  verdict: Verdict;
  code: Code | null;
  rule: string | null;
  wouldDeny: Code | null;
  dialAddress: string | null;
  dnsMs: number | null;
  connectMs: number | null;
  status: number | null;
  bytesUp: number;
  bytesDown: number;
  durationMs: number;
  detail: string | null;
  /**
   * Why Sluice closed the flow (kill switch, idle, token expiry, revocation, shutdown); null when it ended by
   * itself.
   */
  close: CloseReason | null;
  /** TLS inspection: the id of the inspected tunnel's own (CONNECT) record, on it and on every request inside. */
  tunnel: string | null;
  /** The record is of an inspected tunnel or of a request read inside one. */
  inspected: boolean;
  credential: CredentialAudit | null;
}

export type AuditObserver = (record: Readonly<AuditRecord>) => void;

/**
 * A record from begin() to end(): the pipeline records what each stage learnt through these methods, never by
 * assigning fields, so that what a field means is written once, here.
 */
export interface OpenRecord extends Readonly<AuditRecord> {
  /** What the client asked: its method (CONNECT for a tunnel). */
  request(method: string | null): void;
  /** The normalised target; the origin-form path for HTTP. */
  target(host: string, port: number, path?: string): void;
  /** A request read inside the inspected tunnel whose own record is `tunnelId` (the tunnel's record: its own id). */
  insideOf(tunnelId: string): void;
  identified(who: { readonly identity: string | null; readonly runId: string | null }): void;
  /** decide() allowed: the rule, and what report mode let through. */
  decided(rule: string, wouldDeny: Deny | null): void;
  /** What report mode let through later (the SNI check); the first one found is kept. */
  wouldHaveDenied(d: Deny | null): void;
  /** What the credential broker did. */
  brokered(credential: CredentialAudit | null): void;
  /** The replacements the broker's scrubber made in the response (on a record the broker acted on). */
  scrubbed(replaced: number): void;
  /** What a stage measured. */
  stage(fields: StageFields): void;
  note(detail: string): void;
  /** Marks the record with a denial (the verdict follows from the code's kind). */
  deny(d: Deny): void;
  /** Sluice closed the flow (kill switch, expiry, revocation, idle, shutdown): why, on an allowed record. */
  closed(close: { readonly reason: CloseReason; readonly deny: Deny | null }): void;
  /** Writes the one canonical line; called once, in the pipeline's `finally`. */
  end(): void;
}

/** The measurements a stage reports (dial, forward, tunnel). */
export type StageFields = Partial<
  Pick<AuditRecord, 'dialAddress' | 'dnsMs' | 'connectMs' | 'status' | 'bytesUp' | 'bytesDown'>
>;

export interface Audit {
  /** Requests begun and not yet ended (graceful shutdown waits for this to reach 0). */
  readonly inFlight: number;
  begin(listener: Listener, clientAddr: string): OpenRecord;
  /** The same as `record.deny(d)`. */
  denied(record: AuditRecord, d: Deny): void;
  /** The same as `record.end()`. */
  end(record: AuditRecord): void;
}

export const verdictOf = (code: Code): Verdict => {
  const kind = CODES[code].kind;
  return kind === 'upstream' || kind === 'internal' ? 'error' : 'deny';
};

function markDenied(record: AuditRecord, d: Deny): void {
  record.verdict = verdictOf(d.code);
  record.code = d.code;
  record.rule = d.rule;
  record.detail = d.detail ?? null;
}

// A class, not an object literal: every record has the same shape and shares its methods (the hot path).
class OpenAuditRecord implements OpenRecord {
  readonly id = randomUUID();
  identity: string | null = null;
  run: string | null = null;
  method: string | null = null;
  targetHost: string | null = null;
  targetPort: number | null = null;
  targetPath: string | null = null;
  verdict: Verdict = 'allow';
  code: Code | null = null;
  rule: string | null = null;
  wouldDeny: Code | null = null;
  dialAddress: string | null = null;
  dnsMs: number | null = null;
  connectMs: number | null = null;
  status: number | null = null;
  bytesUp = 0;
  bytesDown = 0;
  durationMs = 0;
  detail: string | null = null;
  close: CloseReason | null = null;
  tunnel: string | null = null;
  inspected = false;
  credential: CredentialAudit | null = null;

  constructor(
    readonly listener: Listener,
    readonly clientAddr: string,
    readonly startedMs: number,
    private readonly writer: (r: AuditRecord) => void,
  ) {}

  request(method: string | null): void {
    this.method = method;
  }
  target(host: string, port: number, path?: string): void {
    this.targetHost = host;
    this.targetPort = port;
    if (path !== undefined) this.targetPath = path;
  }
  insideOf(tunnelId: string): void {
    this.tunnel = tunnelId;
    this.inspected = true;
  }
  identified(who: { readonly identity: string | null; readonly runId: string | null }): void {
    this.identity = who.identity;
    this.run = who.runId;
  }
  decided(rule: string, wouldDeny: Deny | null): void {
    this.rule = rule;
    this.wouldDeny = wouldDeny?.code ?? null;
  }
  wouldHaveDenied(d: Deny | null): void {
    if (d && !this.wouldDeny) this.wouldDeny = d.code;
  }
  brokered(credential: CredentialAudit | null): void {
    this.credential = credential;
  }
  scrubbed(replaced: number): void {
    if (this.credential) this.credential.scrubbed = replaced;
  }
  stage(fields: StageFields): void {
    Object.assign(this, fields);
  }
  note(detail: string): void {
    this.detail = detail;
  }
  deny(d: Deny): void {
    markDenied(this, d);
  }
  closed(close: { readonly reason: CloseReason; readonly deny: Deny | null }): void {
    this.close = close.reason;
    const d = close.deny;
    if (d && this.verdict === 'allow') this.detail = d.detail ? `${d.code}: ${d.detail}` : d.code;
  }
  end(): void {
    this.writer(this);
  }
}

export function createAudit(opts: {
  logger: AuditLogger;
  nowMs: () => number;
  observers?: AuditObserver[];
  /** The operator's path patterns (config `log.redactPaths`), read per record so that a reload applies. */
  redactPaths?: () => readonly string[];
}): Audit {
  const observers = opts.observers ?? [];
  const redactPaths = opts.redactPaths ?? (() => []);
  let inFlight = 0;
  function end(record: AuditRecord): void {
    inFlight--;
    record.durationMs = Math.round((opts.nowMs() - record.startedMs) * 1000) / 1000;
    const line = {
      [FIELD.id]: record.id,
      [FIELD.listener]: record.listener,
      [FIELD.clientAddr]: record.clientAddr,
      [FIELD.identity]: record.identity,
      [FIELD.run]: record.run,
      [FIELD.method]: record.method,
      [FIELD.targetHost]: record.targetHost,
      [FIELD.targetPort]: record.targetPort,
      [FIELD.targetPath]: record.targetPath === null ? null : pathForLog(record.targetPath, redactPaths()),
      [FIELD.verdict]: record.verdict,
      [FIELD.code]: record.code,
      [FIELD.rule]: record.rule,
      [FIELD.wouldDeny]: record.wouldDeny,
      [FIELD.dialAddress]: record.dialAddress,
      [FIELD.dnsMs]: record.dnsMs,
      [FIELD.connectMs]: record.connectMs,
      [FIELD.status]: record.status,
      [FIELD.bytesUp]: record.bytesUp,
      [FIELD.bytesDown]: record.bytesDown,
      [FIELD.durationMs]: record.durationMs,
      [FIELD.detail]: record.detail === null ? null : scrubText(record.detail),
      [FIELD.close]: record.close,
      [FIELD.tunnel]: record.tunnel,
      [FIELD.inspected]: record.inspected,
      [FIELD.credentialName]: record.credential?.name ?? null,
      [FIELD.credentialHandle]: record.credential?.handle ?? null,
      [FIELD.credentialAction]: record.credential?.action ?? null,
      [FIELD.credentialScrubbed]: record.credential?.scrubbed ?? null,
    };
    if (record.verdict === 'allow') opts.logger.info(line, AUDIT_MESSAGE);
    else if (record.code === 'EGR_INTERNAL') opts.logger.error(line, AUDIT_MESSAGE);
    else opts.logger.warn(line, AUDIT_MESSAGE);
    for (const o of observers) {
      try {
        o(record);
      } catch {
        // An observer (metrics) must never break the request path.
      }
    }
  }
  return {
    get inFlight() {
      return inFlight;
    },
    begin(listener, clientAddr) {
      inFlight++;
      return new OpenAuditRecord(listener, clientAddr, opts.nowMs(), end);
    },
    denied: markDenied,
    end,
  };
}
