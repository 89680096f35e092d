// `sluice serve`: one process, or a primary and its workers (config `workers`), on the config file or the
// embedded development default.
import cluster from 'node:cluster';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { type SluiceConfig, formatIssue } from '../../settings/config.js';
import { resolveWorkers, runPrimary } from '../runtime/primary.js';
import { startIssues } from '../runtime/production.js';
import type { ConfigSource } from '../runtime/control-plane.js';
import { type BoundListeners, createSluice } from '../runtime/sluice.js';
import { runWorker } from '../runtime/worker.js';
import { requireLoaded } from './load-config.js';
import { packageVersion } from './version.js';
import { DEV_IDENTITY, withDevIdentity } from './dev-identity.js';
import { type EphemeralCa, createEphemeralCa } from '../inspection/ephemeral.js';
import { err, fail } from './output.js';

export async function serve(argv: string[]) {
  // A worker (config `workers` > 1) takes its config from the primary, never from the file.
  if (cluster.isWorker) return runWorker();
  const { values } = parseArgs({ args: argv, options: { config: { type: 'string', short: 'c' } } });
  const path = values.config ?? process.env.SLUICE_CONFIG ?? null;
  const production = process.env.SLUICE_ENV === 'production';
  const { config: loaded, digest } = requireLoaded(path ?? undefined);
  // Development convenience: no identities → one generated credential, the same across reloads.
  const devPassword = Object.keys(loaded.identities).length === 0 ? randomBytes(18).toString('base64url') : null;
  // Every referenced file and every production rule, all reported at once, before anything opens.
  const issues = startIssues(loaded, { production, generatedIdentity: devPassword !== null });
  for (const i of issues) err(formatIssue(i));
  const errors = issues.filter((i) => i.severity === 'error').length;
  if (errors)
    fail(
      `${path ?? 'embedded default'}: ${errors} problem(s)${production ? ' with SLUICE_ENV=production' : ''}; nothing was started`,
    );
  // Development mode without an inspection section: a CA for this run only (production never makes one), built
  // and announced here and handed to the proxy (and, with workers, to each worker over IPC).
  let ephemeralCa: EphemeralCa | null = null;
  if (devPassword && !production && !loaded.inspection) {
    ephemeralCa = await createEphemeralCa({ production });
    const made = ephemeralCa;
    process.once('exit', () => made.remove());
  }
  const prepare = (c: SluiceConfig): SluiceConfig =>
    devPassword && Object.keys(c.identities).length === 0 ? withDevIdentity(c, devPassword) : c;
  // Production rules hold for reloads too (the control plane checks them): a config that would not start is
  // not swapped in.
  const source: ConfigSource = { path, digest, prepare, production };
  const announce = (bound: BoundListeners) => {
    const { http, socks5 } = bound;
    if (http && devPassword) {
      const host = http.family === 'IPv6' ? `[${http.address}]` : http.address;
      const url = `http://${DEV_IDENTITY}:${devPassword}@${host}:${http.port}`;
      // The generated credential goes to the terminal once, never into the structured log.
      err(`Sluice is running in development mode on ${host}:${http.port} (no identities configured).`);
      err('Generated credential (shown once, not stored). Point workloads at the proxy with:');
      err(`HTTPS_PROXY=${url}`);
      err(`HTTP_PROXY=${url}`);
    } else {
      for (const [name, a] of Object.entries(bound)) err(`Sluice ${name} listening on ${a.address}:${a.port}`);
    }
    if (socks5 && devPassword) {
      const host = socks5.family === 'IPv6' ? `[${socks5.address}]` : socks5.address;
      err(`ALL_PROXY=socks5h://${DEV_IDENTITY}:${devPassword}@${host}:${socks5.port}`);
    }
    if (ephemeralCa) {
      err(`TLS inspection CA for this run only (ephemeral, key in memory): ${ephemeralCa.certFile}`);
      err('Trust it in workloads with:');
      for (const line of ephemeralCa.trustLines) err(line);
    }
  };
  const workers = resolveWorkers(loaded.workers);
  if (workers > 1) {
    return runPrimary({
      source,
      config: prepare(loaded),
      workers,
      generatedIdentity: devPassword !== null,
      version: packageVersion(),
      announce,
      fail,
      inspectionCa: ephemeralCa ? { certPem: ephemeralCa.ca.certPem, keyPem: ephemeralCa.keyPem } : null,
    });
  }

  const sluice = createSluice({
    config: prepare(loaded),
    version: packageVersion(),
    generatedIdentity: devPassword !== null,
    source,
    inspectionCa: ephemeralCa?.ca ?? null,
  });
  let bound: BoundListeners;
  try {
    bound = await sluice.start();
  } catch (e) {
    fail((e as Error).message);
  }
  sluice.control.watchSource();
  announce(bound);
  sluice.control.handleSignals();
}
