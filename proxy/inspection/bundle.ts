// The trust bundle: public roots followed by Sluice's CA, for tools that replace their trust store with one
// file (curl, pip, requests, git, npm) rather than add to it. Node takes the CA alone (NODE_EXTRA_CA_CERTS).
import { X509Certificate } from 'node:crypto';
import { rootCertificates } from 'node:tls';

/** Where the public roots come from. */
export type RootsSource =
  /** Node's copy of Mozilla's CA list (`tls.rootCertificates`): the same on every host. The default. */
  | { readonly kind: 'node' }
  /** The distribution's bundle, the file OpenSSL on this host reads by default. */
  | { readonly kind: 'system' }
  /** A PEM bundle the operator names. */
  | { readonly kind: 'file'; readonly path: string };

/** Where distributions keep the bundle their OpenSSL reads by default (the list Go's crypto/x509 searches). */
export const SYSTEM_BUNDLE_PATHS = Object.freeze([
  '/etc/ssl/certs/ca-certificates.crt', // Debian, Ubuntu, Gentoo, Arch, Alpine (ca-certificates)
  '/etc/pki/tls/certs/ca-bundle.crt', // Fedora, RHEL 6
  '/etc/ssl/ca-bundle.pem', // openSUSE
  '/etc/pki/tls/cacert.pem', // OpenELEC
  '/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem', // CentOS, RHEL 7
  '/etc/ssl/cert.pem', // Alpine (LibreSSL), macOS
]);

/**
 * Trust environment variables for workloads: each tool's own, all pointing at the bundle, and Node's, which
 * adds to its built-in roots and so takes the CA alone.
 */
export const TRUST_ENV = Object.freeze({
  bundle: Object.freeze([
    'SSL_CERT_FILE',
    'REQUESTS_CA_BUNDLE',
    'PIP_CERT',
    'CURL_CA_BUNDLE',
    'GIT_SSL_CAINFO',
    'NPM_CONFIG_CAFILE',
  ]),
  caCert: Object.freeze(['NODE_EXTRA_CA_CERTS']),
});

export function trustLines(bundleFile: string, caCertFile: string): string[] {
  return [...TRUST_ENV.bundle.map((v) => `${v}=${bundleFile}`), ...TRUST_ENV.caCert.map((v) => `${v}=${caCertFile}`)];
}

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Every certificate in a PEM text that parses, re-encoded canonically; text between blocks is dropped. */
export function pemCertificates(text: string): string[] {
  const out: string[] = [];
  for (const block of text.match(PEM_BLOCK) ?? []) {
    try {
      out.push(new X509Certificate(block).toString().trim());
    } catch {
      // A broken block in a system bundle is skipped, as OpenSSL skips it.
    }
  }
  return out;
}

/** The roots from `source`, or a reason they cannot be had. */
export function readRoots(
  source: RootsSource,
  read: (path: string) => string | null,
): string[] | { readonly error: string } {
  if (source.kind === 'node') return rootCertificates.map((c) => c.trim());
  const paths = source.kind === 'file' ? [source.path] : SYSTEM_BUNDLE_PATHS;
  for (const p of paths) {
    const text = read(p);
    if (text === null) continue;
    const certs = pemCertificates(text);
    if (certs.length > 0) return certs;
    if (source.kind === 'file') return { error: `${p} holds no PEM certificate` };
  }
  return {
    error:
      source.kind === 'file'
        ? `${source.path} cannot be read`
        : `no system bundle found (looked in ${SYSTEM_BUNDLE_PATHS.join(', ')})`,
  };
}

/** Roots, then the CA, PEM only: nothing between blocks, since some tools split the file on the END line. */
export function renderBundle(roots: readonly string[], caPem: string): string {
  const ca = new X509Certificate(caPem).toString().trim();
  const fingerprint = new X509Certificate(ca).fingerprint256;
  const others = roots.filter((r) => new X509Certificate(r).fingerprint256 !== fingerprint);
  return [...others, ca].join('\n') + '\n';
}
