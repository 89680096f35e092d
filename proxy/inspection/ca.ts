// The inspection CA: made here (`sluice ca init`, development mode) or read from the operator's files. The
// certificate is what workloads trust; the key signs every leaf and never leaves this process's memory once
// read. What an operator's CA must be is checked once, here, with a reason and a fix for each refusal.
import { X509Certificate, createPrivateKey, randomBytes, type KeyObject, type webcrypto } from 'node:crypto';
import { type Name, subtle, x509 } from './x509.js';

type CryptoKey = webcrypto.CryptoKey;

/** The CA key types Sluice signs with. RSA is accepted because the CAs that cert-manager and most corporate PKIs
 * issue by default are RSA; leaves are ECDSA P-256 whatever the CA is. */
export type CaKeyType = 'ec-p256' | 'ec-p384' | 'rsa';

export const MIN_RSA_BITS = 2048;
/** A CA that expires within this many days is reported at start-up (a warning; expired is an error). */
export const CA_EXPIRY_WARNING_DAYS = 30;

export interface InspectionCa {
  /** The CA certificate, PEM: what workloads trust (`NODE_EXTRA_CA_CERTS`, the bundle). */
  readonly certPem: string;
  /** The CA's subject as written in its certificate; leaves name it as their issuer, byte for byte. */
  readonly subject: Name;
  readonly subjectText: string;
  /** Hex, or null when the CA certificate has no subjectKeyIdentifier (leaves then carry no AKI). */
  readonly subjectKeyId: string | null;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly keyType: CaKeyType;
  readonly signingKey: CryptoKey;
  readonly signingAlgorithm: { readonly name: string; readonly hash: string };
  /** SHA-256 fingerprint, colon-separated hex (what `openssl x509 -fingerprint -sha256` prints). */
  readonly fingerprint256: string;
  /** Made for this run only (development mode); production refuses one. */
  readonly ephemeral: boolean;
}

/** One thing wrong with the operator's CA files, attributed to the file that has to change. */
export interface CaProblem {
  readonly severity: 'error' | 'warning';
  readonly file: 'caCertFile' | 'caKeyFile';
  readonly message: string;
  readonly hint?: string;
}

/** What was read and checked, before the key is handed to WebCrypto. */
export interface CaMaterial {
  readonly certPem: string;
  readonly cert: X509Certificate;
  readonly key: KeyObject;
  readonly keyType: CaKeyType;
}

const ALGORITHMS: Record<
  CaKeyType,
  {
    readonly import: { name: string; namedCurve?: string; hash?: string };
    readonly sign: { name: string; hash: string };
  }
> = {
  'ec-p256': { import: { name: 'ECDSA', namedCurve: 'P-256' }, sign: { name: 'ECDSA', hash: 'SHA-256' } },
  'ec-p384': { import: { name: 'ECDSA', namedCurve: 'P-384' }, sign: { name: 'ECDSA', hash: 'SHA-384' } },
  rsa: { import: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, sign: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } },
};

const P256 = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const PEM_CERT = /-----BEGIN CERTIFICATE-----/g;

const problem = (
  severity: CaProblem['severity'],
  file: CaProblem['file'],
  message: string,
  hint?: string,
): CaProblem => (hint === undefined ? { severity, file, message } : { severity, file, message, hint });

function keyTypeOf(key: KeyObject): CaKeyType | string {
  const d = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'ec') {
    if (d.namedCurve === 'prime256v1') return 'ec-p256';
    if (d.namedCurve === 'secp384r1') return 'ec-p384';
    return `EC ${d.namedCurve ?? 'unknown curve'}`;
  }
  if (key.asymmetricKeyType === 'rsa')
    return (d.modulusLength ?? 0) >= MIN_RSA_BITS ? 'rsa' : `RSA-${d.modulusLength ?? 0}`;
  return key.asymmetricKeyType ?? 'unknown';
}

const isCaKeyType = (t: string): t is CaKeyType => t === 'ec-p256' || t === 'ec-p384' || t === 'rsa';

/**
 * Checks an operator's CA: one PEM certificate that is a CA (basicConstraints CA:TRUE, keyCertSign if it has a
 * keyUsage), valid now, and a private key — PKCS#8, SEC1 "EC PRIVATE KEY" or PKCS#1, unencrypted — of a type
 * Sluice signs with, that matches the certificate. Sync and free of I/O: the caller reads the files.
 */
export function checkCaMaterial(
  certPem: string,
  keyPem: string,
  nowMs: number,
): { material: CaMaterial | null; problems: CaProblem[] } {
  const problems: CaProblem[] = [];
  let cert: X509Certificate | null = null;
  const certCount = certPem.match(PEM_CERT)?.length ?? 0;
  if (certCount === 0) {
    problems.push(
      problem(
        'error',
        'caCertFile',
        'holds no PEM certificate',
        'give the CA certificate in PEM ("-----BEGIN CERTIFICATE-----"), e.g. from `sluice ca init`',
      ),
    );
  } else if (certCount > 1) {
    problems.push(
      problem(
        'error',
        'caCertFile',
        `holds ${certCount} certificates`,
        'give the CA certificate alone: it is the one that signs the leaves',
      ),
    );
  } else {
    try {
      cert = new X509Certificate(certPem);
    } catch {
      problems.push(
        problem(
          'error',
          'caCertFile',
          'is not a readable X.509 certificate',
          'give the CA certificate in PEM, e.g. from `sluice ca init`',
        ),
      );
    }
  }
  if (cert) {
    if (!cert.ca) {
      problems.push(
        problem(
          'error',
          'caCertFile',
          'is not a CA certificate (basicConstraints CA:TRUE is missing)',
          'make a CA with `sluice ca init --out DIR`',
        ),
      );
    }
    const usage = new x509.X509Certificate(cert.raw).getExtension(x509.KeyUsagesExtension);
    if (usage && (usage.usages & x509.KeyUsageFlags.keyCertSign) === 0) {
      problems.push(
        problem(
          'error',
          'caCertFile',
          'its keyUsage does not allow signing certificates (keyCertSign)',
          'issue the CA with keyUsage keyCertSign, cRLSign',
        ),
      );
    }
    const notBefore = Date.parse(cert.validFrom);
    const notAfter = Date.parse(cert.validTo);
    if (notBefore > nowMs)
      problems.push(
        problem(
          'error',
          'caCertFile',
          `is not valid before ${new Date(notBefore).toISOString()}`,
          'check the clock, or issue a CA valid from now',
        ),
      );
    if (notAfter <= nowMs)
      problems.push(
        problem(
          'error',
          'caCertFile',
          `expired on ${new Date(notAfter).toISOString()}`,
          'make a new CA and redistribute the trust bundle',
        ),
      );
    else if (notAfter - nowMs < CA_EXPIRY_WARNING_DAYS * 86_400_000) {
      problems.push(
        problem(
          'warning',
          'caCertFile',
          `expires on ${new Date(notAfter).toISOString()}`,
          'make a new CA and redistribute the trust bundle before then',
        ),
      );
    }
    if (cert.subject !== cert.issuer) {
      problems.push(
        problem(
          'warning',
          'caCertFile',
          'is not self-signed',
          'workloads must trust this certificate itself: OpenSSL-based clients do not accept an intermediate as a trust anchor without its root',
        ),
      );
    }
  }

  let key: KeyObject | null = null;
  let keyType: CaKeyType | null = null;
  if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/.test(keyPem)) {
    problems.push(
      problem(
        'error',
        'caKeyFile',
        'is encrypted',
        'store it unencrypted in a file only Sluice can read: `openssl pkey -in KEY -out ca.key` (mode 0600)',
      ),
    );
  } else {
    try {
      key = createPrivateKey({ key: keyPem, format: 'pem' });
    } catch {
      problems.push(
        problem(
          'error',
          'caKeyFile',
          'is not a readable private key',
          'give a PEM key: PKCS#8 ("PRIVATE KEY"), SEC1 ("EC PRIVATE KEY") or PKCS#1 ("RSA PRIVATE KEY")',
        ),
      );
    }
  }
  if (key) {
    const t = keyTypeOf(key);
    if (isCaKeyType(t)) keyType = t;
    else
      problems.push(
        problem(
          'error',
          'caKeyFile',
          `is a ${t} key, which Sluice does not sign with`,
          `use ECDSA P-256 (\`sluice ca init\`), P-384, or RSA of at least ${MIN_RSA_BITS} bits`,
        ),
      );
  }
  if (cert && key && !cert.checkPrivateKey(key)) {
    problems.push(
      problem('error', 'caKeyFile', 'does not match the CA certificate', 'give the key the certificate was issued for'),
    );
  }
  const ok = cert !== null && key !== null && keyType !== null && !problems.some((p) => p.severity === 'error');
  return { material: ok ? { certPem, cert: cert!, key: key!, keyType: keyType! } : null, problems };
}

/** Hands checked material to WebCrypto. The imported key is not extractable. */
export async function importCa(material: CaMaterial, ephemeral = false): Promise<InspectionCa> {
  const der = material.key.export({ format: 'der', type: 'pkcs8' });
  const alg = ALGORITHMS[material.keyType];
  const signingKey = await subtle.importKey('pkcs8', der, alg.import, false, ['sign']);
  const parsed = new x509.X509Certificate(material.cert.raw);
  const ski = parsed.getExtension(x509.SubjectKeyIdentifierExtension);
  return Object.freeze({
    certPem: material.cert.toString(),
    subject: parsed.subjectName,
    subjectText: parsed.subject,
    subjectKeyId: ski ? ski.keyId : null,
    notBefore: new Date(material.cert.validFrom),
    notAfter: new Date(material.cert.validTo),
    keyType: material.keyType,
    signingKey,
    signingAlgorithm: alg.sign,
    fingerprint256: material.cert.fingerprint256,
    ephemeral,
  });
}

export const DEFAULT_CA_DAYS = 730;
/** The CA's notBefore is back-dated by this much: a workload whose clock runs a little slow still accepts it. */
export const BACKDATE_MS = 5 * 60_000;

export interface CreatedCa {
  readonly ca: InspectionCa;
  /** PKCS#8 PEM, only when asked for: `sluice ca init` writes it; an ephemeral CA's stays in memory (a primary
   * hands it to its workers over IPC) and is never written. */
  readonly keyPem: string | null;
}

/**
 * A new CA: ECDSA P-256, basicConstraints CA:TRUE pathLen 0 (critical: it signs leaves only, never another CA),
 * keyUsage keyCertSign + cRLSign (critical), a subjectKeyIdentifier, and a name that says it is Sluice's with a
 * random suffix so that two deployments' CAs are told apart in a trust store.
 */
export async function createCa(opts: {
  readonly nowMs?: number;
  readonly days?: number;
  readonly exportKey: boolean;
  readonly ephemeral?: boolean;
}): Promise<CreatedCa> {
  const now = opts.nowMs ?? Date.now();
  const days = opts.days ?? DEFAULT_CA_DAYS;
  const keys = await subtle.generateKey(P256, true, ['sign', 'verify']);
  const suffix = randomBytes(4).toString('hex');
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: [{ CN: [`Sluice egress inspection CA (${suffix})`] }, { O: ['Sluice'] }],
    notBefore: new Date(now - BACKDATE_MS),
    notAfter: new Date(now + days * 86_400_000),
    signingAlgorithm: P256,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const pkcs8 = Buffer.from(await subtle.exportKey('pkcs8', keys.privateKey));
  const material: CaMaterial = {
    certPem: cert.toString('pem'),
    cert: new X509Certificate(cert.toString('pem')),
    key: createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }),
    keyType: 'ec-p256',
  };
  const ca = await importCa(material, opts.ephemeral ?? false);
  const keyPem = opts.exportKey ? (material.key.export({ format: 'pem', type: 'pkcs8' }) as string) : null;
  pkcs8.fill(0);
  return { ca, keyPem };
}

/** A random 128-bit serial, positive (top bit clear) and of fixed length (first byte non-zero), as hex. */
export function randomSerial(): string {
  const b = randomBytes(16);
  b[0] = b[0]! & 0x7f;
  if (b[0] === 0) b[0] = 0x01 + (b[1]! % 0x7f);
  return b.toString('hex');
}
