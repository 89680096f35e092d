// Leaf certificates for inspected hosts: minted once per host (concurrent requests for one host share one
// mint), kept in a bounded LRU that forgets a leaf well before it expires, and never minted for anything but
// a normalised DNS name. Leaf keys exist only here, in memory, inside the TLS context built for them.
import { type SecureContext, createSecureContext } from 'node:tls';
import { constants, generateKeyPair } from 'node:crypto';
import { promisify } from 'node:util';
import { LRUCache } from 'lru-cache';
import { type Deny, deny } from '../../firewall/codes.js';
import { normaliseHost } from '../../firewall/normalise.js';
import { BACKDATE_MS, type InspectionCa, randomSerial } from './ca.js';
import { NO_OBSERVER, type InspectionObserver } from './observer.js';
import { type Extension, x509 } from './x509.js';

export interface Leaf {
  readonly host: string;
  /** minVersion TLSv1.2, renegotiation refused; ALPN is set on the socket (`http/1.1` only). */
  readonly secureContext: SecureContext;
  readonly certPem: string;
  /** Hex. */
  readonly serial: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

export interface LeafIssuerOptions {
  readonly ca: InspectionCa;
  /** Default 24 h. */
  readonly validitySeconds?: number;
  /** Leaves kept (one per host). Default 1024 (about 26 KiB each, mostly the TLS context). */
  readonly cacheSize?: number;
  /** Epoch milliseconds; validity and cache expiry both follow it (tests drive it). */
  readonly now?: () => number;
  readonly observer?: InspectionObserver;
}

export interface LeafIssuer {
  /**
   * The leaf for `host`, which must already be a normalised DNS name (`normaliseHost(h).host`, kind `name`);
   * anything else is refused, never minted: an IP literal → EGR_DENY_IP_LITERAL, any other spelling →
   * EGR_INVALID_TARGET. A mint that fails is EGR_INTERNAL.
   */
  leafFor(host: string): Promise<Leaf | Deny>;
  /** Leaves cached now. */
  readonly size: number;
  /** How long a cached leaf is served before a fresh one is minted, in ms (below its validity). */
  readonly reuseMs: number;
  clear(): void;
}

export const DEFAULT_LEAF_VALIDITY_S = 24 * 3600;
export const DEFAULT_LEAF_CACHE_SIZE = 1024;

const RULE = 'inspection.leaf';
const generateKeyPairAsync = promisify(generateKeyPair);

// node:crypto rather than WebCrypto for the leaf key: one thread-pool job gives both encodings the certificate
// and the TLS context need, where WebCrypto would take three (generate, export SPKI, export PKCS#8).
const leafKeyPair = () =>
  generateKeyPairAsync('ec', {
    namedCurve: 'P-256',
    publicKeyEncoding: { type: 'spki', format: 'der' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });

/**
 * A cached leaf stops being served this long before it expires (at most an hour, a quarter of its life for short
 * ones).
 */
export const reuseWindowMs = (validityMs: number): number =>
  validityMs - Math.min(3_600_000, Math.floor(validityMs / 4));

/** Refuses anything that is not already a normalised DNS name: a leaf names exactly what was decided on. */
export function leafNameProblem(host: string): Deny | null {
  const n = normaliseHost(host);
  if ('verdict' in n) return deny('EGR_INVALID_TARGET', RULE, 'no leaf for an invalid name');
  if (n.kind !== 'name') return deny('EGR_DENY_IP_LITERAL', RULE, 'no leaf for an IP literal');
  if (n.host !== host) return deny('EGR_INVALID_TARGET', RULE, 'no leaf for a name that is not normalised');
  return null;
}

export function createLeafIssuer(opts: LeafIssuerOptions): LeafIssuer {
  const { ca } = opts;
  const now = opts.now ?? Date.now;
  const observer = opts.observer ?? NO_OBSERVER;
  const validityMs = (opts.validitySeconds ?? DEFAULT_LEAF_VALIDITY_S) * 1000;
  const reuseMs = reuseWindowMs(validityMs);
  const cache = new LRUCache<string, Leaf>({
    max: opts.cacheSize ?? DEFAULT_LEAF_CACHE_SIZE,
    ttl: reuseMs,
    // Expiry follows the same clock as validity: a wall-clock jump that outdates a leaf also evicts it.
    perf: { now },
    // Staleness is checked against the clock on every lookup (the default caches "now" on a timer).
    ttlResolution: 0,
  });
  const inFlight = new Map<string, Promise<Leaf | Deny>>();
  // The same for every leaf of this CA: encoded once.
  const fixedExtensions: Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
  ];
  if (ca.subjectKeyId) fixedExtensions.push(new x509.AuthorityKeyIdentifierExtension(ca.subjectKeyId));

  async function mint(host: string): Promise<Leaf> {
    const started = performance.now();
    const t = now();
    const notBefore = new Date(t - BACKDATE_MS);
    // Never outlive the CA: a chain whose leaf outlasts its issuer is refused by strict clients anyway.
    const notAfter = new Date(Math.min(t + validityMs, ca.notAfter.getTime()));
    const keys = await leafKeyPair();
    const serial = randomSerial();
    const extensions = [
      ...fixedExtensions,
      // The one name, as a DNS name; a subject CN is only a label (RFC 6125 §6.4.4: clients match the SAN).
      new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: host }], host.length > 64),
    ];
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial,
      // CN is at most 64 characters (RFC 5280 ub-common-name); a longer name gets an empty subject and a
      // critical SAN, as RFC 5280 §4.2.1.6 allows.
      subject: host.length <= 64 ? [{ CN: [host] }] : [],
      issuer: ca.subject,
      notBefore,
      notAfter,
      signingAlgorithm: ca.signingAlgorithm,
      publicKey: new Uint8Array(keys.publicKey),
      signingKey: ca.signingKey,
      extensions,
    });
    const certPem = cert.toString('pem');
    const secureContext = createSecureContext({
      cert: certPem,
      key: keys.privateKey,
      minVersion: 'TLSv1.2',
      // TLS 1.2 renegotiation is refused outright (TLS 1.3 has none): it re-opens a handshake mid-session,
      // and Node's default only rate-limits it.
      secureOptions: constants.SSL_OP_NO_RENEGOTIATION,
    });
    observer.leafMinted((performance.now() - started) / 1000);
    return Object.freeze({ host, secureContext, certPem, serial, notBefore, notAfter });
  }

  return {
    async leafFor(host) {
      const hit = cache.get(host);
      if (hit) {
        observer.leafCacheHit();
        return hit;
      }
      const pending = inFlight.get(host);
      if (pending) {
        observer.leafCacheHit();
        return pending;
      }
      const refused = leafNameProblem(host);
      if (refused) return refused;
      const p = mint(host)
        .then(
          (leaf) => {
            cache.set(host, leaf);
            return leaf;
          },
          (e: unknown) => deny('EGR_INTERNAL', RULE, `leaf mint failed: ${(e as Error)?.message ?? String(e)}`),
        )
        .finally(() => inFlight.delete(host));
      inFlight.set(host, p);
      return p;
    },
    get size() {
      return cache.size;
    },
    reuseMs,
    clear() {
      cache.clear();
    },
  };
}
