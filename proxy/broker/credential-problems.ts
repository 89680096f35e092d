// What `sluice check` and a production start refuse about the broker (CONTRACT §11): a missing, short,
// default or all-zero `secrets.keyFile`; a credential that does not decrypt or read; a handle TTL with no
// maximum; revocation that cannot reach other replicas; and credentials for integrations whose traffic can
// pass through tunnels Sluice does not inspect. Files are read through injected readers.
import type { ConfigIssue, SluiceConfig } from '../../settings/config.js';
import { type MaterialDeps, loadBrokerMaterial } from './material.js';

export interface CredentialProblemDeps extends MaterialDeps {
  /** Whether Sluice inspects TLS to this integration's hosts (the inspection feature answers; default: never). */
  readonly inspected?: (integration: string) => boolean;
}

/** Every problem, errors and warnings. In production the start refuses on any error. */
export function credentialProblems(config: SluiceConfig, deps: CredentialProblemDeps): ConfigIssue[] {
  const names = Object.keys(config.credentials);
  if (names.length === 0) return [];
  const issues: ConfigIssue[] = [...loadBrokerMaterial(config, deps).issues];
  const strict = deps.production ? 'error' : 'warning';
  const handles = config.secrets?.handles;
  if (handles && handles.maxTtlS === null) {
    issues.push({
      severity: strict,
      path: '/secrets/handles/maxTtl',
      message: 'handles have no maximum TTL',
      hint: 'set secrets.handles.maxTtl (e.g. "8h", no longer than a run); without it, handles are capped at 24h',
    });
  }
  if (handles && handles.revocationFile === null) {
    issues.push({
      severity: strict,
      path: '/secrets/handles/revocationFile',
      message: 'revoking a run reaches only the replica that was asked',
      hint: 'set secrets.handles.revocationFile to a file every replica mounts (a ConfigMap or shared volume)',
    });
  }
  // The list is appended by the revokers (Sluice, the orchestrator), which may share a group; anyone else who
  // can write it can truncate it, and un-revoke every run.
  const listMode = handles?.revocationFile ? (deps.modeOf?.(handles.revocationFile) ?? null) : null;
  if (listMode !== null && (listMode & 0o002) !== 0) {
    issues.push({
      severity: strict,
      path: '/secrets/handles/revocationFile',
      message: `${handles!.revocationFile}: writable by others (mode ${(listMode & 0o777).toString(8)})`,
      hint: `chmod o-w ${handles!.revocationFile}: whoever can truncate it can lift every revocation`,
    });
  }
  const inspected = deps.inspected ?? (() => false);
  const reported = new Set<string>();
  for (const name of names) {
    const integration = config.credentials[name]!.integration;
    const i = config.integrations[integration];
    if (!i?.tunnel || inspected(integration) || reported.has(integration)) continue;
    reported.add(integration);
    issues.push({
      severity: strict,
      path: `/integrations/${integration}/tunnel`,
      message: `integration "${integration}" carries credential "${name}" but allows opaque tunnels: a handle sent through one is never replaced, and responses are never scanned`,
      hint: 'set "tunnel: false" (clients then send http:// and Sluice originates TLS), or inspect TLS to its hosts',
    });
  }
  return issues;
}
