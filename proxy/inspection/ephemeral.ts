// Development mode's CA: made at start-up for this run only, its certificate and a trust bundle written to a
// fresh private directory so that a workload on the same machine can be pointed at them. Its key is never
// written anywhere. Production refuses one (ephemeralCaProblem).
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rootCertificates } from 'node:tls';
import { type InspectionCa, createCa } from './ca.js';
import { renderBundle, trustLines } from './bundle.js';
import { ephemeralCaProblem } from './problems.js';
import { SluiceError } from '../../firewall/errors.js';

export interface EphemeralCa {
  readonly ca: InspectionCa;
  /** 0700, made for this run. */
  readonly dir: string;
  /** The CA certificate (NODE_EXTRA_CA_CERTS). */
  readonly certFile: string;
  /** Node's roots followed by the CA (every other trust variable). */
  readonly bundleFile: string;
  /** `NAME=path` lines for a workload's environment. */
  readonly trustLines: readonly string[];
  /** The key, PKCS#8 PEM, in memory only: a primary hands it to its workers over IPC. Never written. */
  readonly keyPem: string;
  /** Deletes the directory (on exit). */
  remove(): void;
}

export async function createEphemeralCa(opts: {
  readonly production: boolean;
  readonly parent?: string;
  readonly nowMs?: number;
}): Promise<EphemeralCa> {
  const refused = ephemeralCaProblem(opts.production);
  if (refused) throw new SluiceError('SLUICE_ERR_CONFIG', `${refused.message} (hint: ${refused.hint})`);
  // A development run lasts days at most; the CA outlives it by little.
  const { ca, keyPem } = await createCa({
    exportKey: true,
    ephemeral: true,
    days: 30,
    ...(opts.nowMs === undefined ? {} : { nowMs: opts.nowMs }),
  });
  const dir = mkdtempSync(join(opts.parent ?? tmpdir(), 'sluice-ca-'));
  chmodSync(dir, 0o700);
  const certFile = join(dir, 'ca.crt');
  const bundleFile = join(dir, 'bundle.pem');
  writeFileSync(certFile, ca.certPem, { mode: 0o644, flag: 'wx' });
  writeFileSync(bundleFile, renderBundle(rootCertificates, ca.certPem), { mode: 0o644, flag: 'wx' });
  return {
    ca,
    dir,
    certFile,
    bundleFile,
    trustLines: trustLines(bundleFile, certFile),
    keyPem: keyPem!,
    remove() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
