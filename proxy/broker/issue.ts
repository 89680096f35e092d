// Issuing handles and revoking runs: what `sluice handle issue|revoke` and the admin API call. Pure except
// for the injected append and clock, so both front ends give the same answers.
import type { SluiceConfig } from '../../settings/config.js';
import { RUN_ID, handleId, issueHandle } from './handle.js';
import { type RunStatus, handleMaxTtlS, revocationLine, revocationUntilS } from './revocations.js';

export interface HandleRequest {
  readonly run: string;
  readonly identity: string;
  readonly credential: string;
  readonly ttlS: number;
}

export type IssueOutcome =
  | {
      readonly ok: true;
      readonly handle: string;
      readonly handleId: string;
      readonly credential: string;
      readonly integration: string;
      readonly expiresAtS: number;
    }
  | { readonly ok: false; readonly status: 400 | 404 | 409 | 503; readonly error: string; readonly hint?: string };

export interface IssueDeps {
  readonly nowS: number;
  readonly runStatus: (run: string, nowS: number) => RunStatus;
  /** Tests fix the nonce; otherwise random. */
  readonly nonce?: Buffer;
}

const no = (status: 400 | 404 | 409 | 503, error: string, hint?: string): IssueOutcome =>
  hint === undefined ? { ok: false, status, error } : { ok: false, status, error, hint };

export function issueHandleFor(
  config: SluiceConfig,
  handleKey: Buffer,
  req: HandleRequest,
  deps: IssueDeps,
): IssueOutcome {
  if (typeof req.run !== 'string' || !RUN_ID.test(req.run))
    return no(
      400,
      'not a run id',
      'letters, digits, ".", "_", ":" and "-", at most 64, starting with a letter or digit',
    );
  const credential = Object.hasOwn(config.credentials, req.credential) ? config.credentials[req.credential] : undefined;
  if (!credential) {
    const names = Object.keys(config.credentials);
    return no(
      404,
      `unknown credential "${String(req.credential).slice(0, 64)}"`,
      names.length ? `configured credentials: ${names.join(', ')}` : 'configure one under "credentials"',
    );
  }
  const identity = Object.hasOwn(config.identities, req.identity) ? config.identities[req.identity] : undefined;
  if (!identity) return no(404, `unknown identity "${String(req.identity).slice(0, 64)}"`);
  if (!identity.integrations.includes(credential.integration)) {
    return no(
      409,
      `identity "${req.identity}" is not granted integration "${credential.integration}"`,
      'a handle is honoured only for a run whose identity is granted its integration',
    );
  }
  const maxTtlS = handleMaxTtlS(config);
  if (!Number.isInteger(req.ttlS) || req.ttlS < 1)
    return no(400, 'the TTL must be a whole number of seconds, at least 1', 'e.g. 30m');
  if (req.ttlS > maxTtlS)
    return no(
      400,
      `the TTL exceeds secrets.handles.maxTtl (${maxTtlS}s)`,
      'ask for a shorter handle, or raise the maximum',
    );
  const status = deps.runStatus(req.run, deps.nowS);
  if (status === 'revoked')
    return no(409, `run "${req.run}" has been revoked`, 'a revoked run gets no new handles; start a new run');
  if (status === 'unknown') return no(503, 'the revocation list cannot be read', 'fix secrets.handles.revocationFile');
  const expiresAtS = deps.nowS + req.ttlS;
  const handle = issueHandle(
    handleKey,
    { run: req.run, identity: req.identity, credential: req.credential, expS: expiresAtS },
    deps.nonce,
  );
  return {
    ok: true,
    handle,
    handleId: handleId(handle),
    credential: req.credential,
    integration: credential.integration,
    expiresAtS,
  };
}

export type RevokeOutcome =
  | {
      readonly ok: true;
      readonly run: string;
      readonly untilS: number;
      /** Whether the revocation was written where other replicas read it. */
      readonly shared: boolean;
    }
  | { readonly ok: false; readonly status: 400 | 500; readonly error: string };

export interface RevokeDeps {
  readonly nowS: number;
  /** Appends one line to the revocation list (O_APPEND). */
  readonly append: (path: string, line: string) => Promise<void>;
  /** In force in this process at once. */
  readonly revokeLocal: (run: string, untilS: number) => void;
}

export async function revokeRunFor(config: SluiceConfig, run: string, deps: RevokeDeps): Promise<RevokeOutcome> {
  if (typeof run !== 'string' || !RUN_ID.test(run)) return { ok: false, status: 400, error: 'not a run id' };
  const untilS = revocationUntilS(config, deps.nowS);
  // Local first: whatever happens to the file, this replica stops honouring the run now.
  deps.revokeLocal(run, untilS);
  const file = config.secrets?.handles.revocationFile ?? null;
  if (file === null) return { ok: true, run, untilS, shared: false };
  try {
    await deps.append(file, revocationLine(run, untilS));
  } catch (err) {
    return {
      ok: false,
      status: 500,
      error: `the revocation list could not be written (${(err as NodeJS.ErrnoException).code ?? 'error'}); this replica has revoked the run, others have not`,
    };
  }
  return { ok: true, run, untilS, shared: true };
}
