// Loading the broker's key and every credential's secret from the files the config names, through injected
// readers. Used at start, on reload, by `sluice secret check` and by credentialProblems(): one path, so what
// `sluice check` accepts is exactly what serve can load.
import type { ConfigIssue, SluiceConfig } from '../../settings/config.js';
import { type BrokerKeys, deriveBrokerKeys, keyMaterialOf, keyMaterialProblem } from './keys.js';
import { openSealed } from './sealed.js';
import { SecretValue, secretOfFile, secretProblem } from './secret-value.js';

export interface MaterialDeps {
  /** A file's bytes, or null when it cannot be read. */
  readonly readFile: (path: string) => Buffer | null;
  /** Permission bits, or null when unknown (then the check is skipped). */
  readonly modeOf?: (path: string) => number | null;
  /** SLUICE_ENV=production: group- or other-readable secret files are errors, not warnings. */
  readonly production: boolean;
}

export interface BrokerMaterial {
  readonly keys: BrokerKeys;
  readonly secrets: ReadonlyMap<string, SecretValue>;
}

export type MaterialResult =
  | { readonly ok: true; readonly material: BrokerMaterial | null; readonly issues: readonly ConfigIssue[] }
  | { readonly ok: false; readonly issues: readonly ConfigIssue[] };

const issue = (severity: ConfigIssue['severity'], path: string, message: string, hint?: string): ConfigIssue =>
  hint === undefined ? { severity, path, message } : { severity, path, message, hint };

/** A key or secret anyone else can write is one anyone else can choose: a key to forge handles with, a secret
 * of the writer's own. Production refuses it, as it refuses a writable token key. */
function writable(issues: ConfigIssue[], deps: MaterialDeps, at: string, file: string): void {
  const mode = deps.modeOf?.(file) ?? null;
  if (mode === null || (mode & 0o022) === 0) return;
  issues.push(
    issue(
      deps.production ? 'error' : 'warning',
      at,
      `${file}: writable by group or others (mode ${(mode & 0o777).toString(8)})`,
      `chmod go-w ${file}`,
    ),
  );
}

/** The broker's keys and secrets; null material when no credential is configured. Never quotes a secret. */
export function loadBrokerMaterial(config: SluiceConfig, deps: MaterialDeps): MaterialResult {
  const issues: ConfigIssue[] = [];
  const names = Object.keys(config.credentials);
  if (!config.secrets) {
    if (names.length) issues.push(issue('error', '/secrets', 'credentials are configured without secrets.keyFile'));
    return issues.length ? { ok: false, issues } : { ok: true, material: null, issues };
  }
  const keyFile = config.secrets.keyFile;
  const raw = deps.readFile(keyFile);
  const material = raw === null ? null : keyMaterialOf(raw);
  const keyProblem = keyMaterialProblem(material);
  if (keyProblem) {
    issues.push(
      issue('error', '/secrets/keyFile', `secrets.keyFile ${keyFile} ${keyProblem.message}`, keyProblem.hint),
    );
    return { ok: false, issues };
  }
  writable(issues, deps, '/secrets/keyFile', keyFile);
  const keys = deriveBrokerKeys(material!);
  const secrets = new Map<string, SecretValue>();
  for (const name of names) {
    const c = config.credentials[name]!;
    const path = `/credentials/${name}/source`;
    const bytes = deps.readFile(c.source.path);
    if (bytes === null) {
      issues.push(
        issue(
          'error',
          path,
          `${c.source.kind} ${c.source.path} cannot be read`,
          "check the path and that Sluice's user may read it",
        ),
      );
      continue;
    }
    writable(issues, deps, path, c.source.path);
    let secret: Buffer;
    if (c.source.kind === 'sealedFile') {
      const opened = openSealed(keys.seal, name, bytes.toString('latin1'));
      if (!opened.ok) {
        issues.push(
          opened.reason === 'malformed'
            ? issue(
                'error',
                path,
                `${c.source.path} is not a sealed secret`,
                `seal it with \`sluice secret seal --config FILE --credential ${name}\``,
              )
            : issue(
                'error',
                path,
                `${c.source.path} does not decrypt for credential "${name}"`,
                `it was sealed under another secrets.keyFile or for another credential (the name is bound to the blob); seal it again with \`sluice secret seal --config FILE --credential ${name}\``,
              ),
        );
        continue;
      }
      secret = opened.secret;
    } else {
      secret = secretOfFile(bytes);
      const mode = deps.modeOf?.(c.source.path) ?? null;
      if (mode !== null && (mode & 0o044) !== 0) {
        issues.push(
          issue(
            deps.production ? 'error' : 'warning',
            path,
            `${c.source.path} is readable by ${mode & 0o004 ? 'every user' : 'its group'} (mode ${mode.toString(8).padStart(4, '0')})`,
            "chmod 0400 and let only Sluice's user own it; under Kubernetes, use source.sealedFile (Secret volumes are root-owned and world-readable to non-root containers)",
          ),
        );
      }
    }
    const problem = secretProblem(secret);
    if (problem) {
      issues.push(issue('error', path, `the secret of credential "${name}" ${problem}`));
      continue;
    }
    secrets.set(name, new SecretValue(secret));
  }
  if (issues.some((i) => i.severity === 'error')) return { ok: false, issues };
  return { ok: true, material: { keys, secrets }, issues };
}
