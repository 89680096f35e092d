// The `inspection` section's files: what is wrong with them, as config issues with a path and a fix, and the
// CA they hold once nothing is. Files are reached through an injected reader so that the checks are pure and
// production start-up, `sluice check`-like tools and tests share them.
import type { InspectionConfig } from '../../firewall/config.js';
import type { ConfigIssue, SluiceConfig } from '../../settings/config.js';
import { hostMatches, hostSet } from '../../firewall/host-match.js';
import { type InspectionCa, checkCaMaterial, importCa } from './ca.js';

export interface CaFileAccess {
  /** The file's bytes, or null if it cannot be read. */
  read(path: string): Buffer | null;
  /** The file's mode bits (after following symlinks, as Kubernetes Secret mounts need), or null. */
  stat(path: string): { readonly mode: number } | null;
}

export interface InspectionCheckOptions {
  /** SLUICE_ENV=production: a key file readable beyond its owner is an error rather than a warning. */
  readonly production: boolean;
  readonly nowMs?: number;
}

const mode = (m: number) => `0${(m & 0o777).toString(8)}`;

function check(inspection: InspectionConfig, files: CaFileAccess, opts: InspectionCheckOptions) {
  const issues: ConfigIssue[] = [];
  const at = (file: 'caCertFile' | 'caKeyFile') => `/inspection/${file}`;
  const cert = files.read(inspection.caCertFile);
  const key = files.read(inspection.caKeyFile);
  if (!cert)
    issues.push({
      severity: 'error',
      path: at('caCertFile'),
      message: `${inspection.caCertFile} cannot be read`,
      hint: 'make a CA with `sluice ca init --out DIR` and point caCertFile at DIR/ca.crt',
    });
  if (!key)
    issues.push({
      severity: 'error',
      path: at('caKeyFile'),
      message: `${inspection.caKeyFile} cannot be read`,
      hint: 'point caKeyFile at the CA key (DIR/ca.key from `sluice ca init`), readable by Sluice',
    });
  if (key) {
    const st = files.stat(inspection.caKeyFile);
    // The CA key can mint a certificate for any name that every workload trusts: only its owner may read it.
    if (st && (st.mode & 0o077) !== 0) {
      issues.push({
        severity: opts.production ? 'error' : 'warning',
        path: at('caKeyFile'),
        message: `${inspection.caKeyFile} is accessible to group or others (mode ${mode(st.mode)})${opts.production ? '' : ' (refused when SLUICE_ENV=production)'}`,
        hint: `chmod 600 ${inspection.caKeyFile}; a Kubernetes Secret volume with fsGroup is group-readable, so copy the key into an emptyDir as Sluice's user with mode 0600`,
      });
    }
  }
  if (!cert || !key) return { issues, material: null };
  const checked = checkCaMaterial(cert.toString('utf8'), key.toString('utf8'), opts.nowMs ?? Date.now());
  for (const p of checked.problems) {
    const file = p.file === 'caCertFile' ? inspection.caCertFile : inspection.caKeyFile;
    issues.push(
      p.hint === undefined
        ? { severity: p.severity, path: at(p.file), message: `${file} ${p.message}` }
        : { severity: p.severity, path: at(p.file), message: `${file} ${p.message}`, hint: p.hint },
    );
  }
  return { issues, material: checked.material };
}

/**
 * Everything wrong with the config's inspection CA (none when inspection is off). Errors stop a start; in
 * production (`opts.production`) a key file that group or others can read is an error too.
 */
export function inspectionProblems(
  config: SluiceConfig,
  files: CaFileAccess,
  opts: InspectionCheckOptions,
): ConfigIssue[] {
  return config.inspection ? check(config.inspection, files, opts).issues : [];
}

export type LoadedCa =
  | { readonly ok: true; readonly ca: InspectionCa; readonly warnings: readonly ConfigIssue[] }
  | { readonly ok: false; readonly issues: readonly ConfigIssue[] };

/** Reads, checks and imports the operator's CA. */
export async function loadInspectionCa(
  inspection: InspectionConfig,
  files: CaFileAccess,
  opts: InspectionCheckOptions,
): Promise<LoadedCa> {
  const { issues, material } = check(inspection, files, opts);
  if (!material || issues.some((i) => i.severity === 'error')) return { ok: false, issues };
  return { ok: true, ca: await importCa(material), warnings: issues };
}

/** Production never runs on a CA made for one run: workloads would have to trust a new CA on every start. */
export function ephemeralCaProblem(production: boolean): ConfigIssue | null {
  return production
    ? {
        severity: 'error',
        path: '/inspection',
        message: 'an ephemeral inspection CA is for development only',
        hint: 'make a CA with `sluice ca init --out DIR` and set inspection.caCertFile and inspection.caKeyFile',
      }
    : null;
}

/**
 * Whether Sluice inspects the TLS of an integration's traffic: inspection is configured and none of the
 * integration's host patterns is kept opaque (`inspection.opaque`). The credential broker asks this: a handle
 * sent through a tunnel Sluice does not inspect is never replaced. Development mode's ephemeral CA is not
 * configuration, so it does not count here.
 */
export function integrationInspected(config: SluiceConfig, integration: string): boolean {
  const i = Object.hasOwn(config.integrations, integration) ? config.integrations[integration] : undefined;
  if (!config.inspection || !i) return false;
  const opaque = hostSet(config.inspection.opaque);
  // A wildcard host is opaque if its subdomains are: asked with one of them.
  return !i.hosts.some(
    (h) =>
      config.inspection!.opaque.includes(h) ||
      hostMatches(opaque, h.startsWith('*.') ? `sluice-probe.${h.slice(2)}` : h),
  );
}
