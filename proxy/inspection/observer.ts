// What inspection reports to metrics. The metrics module registers these names and passes an observer in;
// nothing here imports prom-client. Labels are bounded: the only one is a handshake failure's reason, from
// CLIENT_TLS_REASONS.

export const INSPECTION_METRIC = Object.freeze({
  /** Counter: leaf certificates minted (one per host and validity period, cache misses). */
  leafMints: 'sluice_inspection_leaf_mints_total',
  /** Counter: leaf certificates served from the cache. */
  leafCacheHits: 'sluice_inspection_leaf_cache_hits_total',
  /** Histogram (seconds): time to mint one leaf (key, certificate, TLS context). */
  leafMintDuration: 'sluice_inspection_leaf_mint_seconds',
  /** Counter, label `reason`: client handshakes that failed (the client does not trust Sluice's CA, pins, …). */
  clientHandshakeFailures: 'sluice_inspection_client_handshake_failures_total',
  /** Counter: inspected sessions whose handshake completed. */
  sessions: 'sluice_inspection_sessions_total',
  /** Counter: HTTP requests read inside inspected sessions. */
  requests: 'sluice_inspection_requests_total',
} as const);

/** Why a client's handshake with Sluice failed: the TLS alert it sent, or how it ended. A closed set. */
export const CLIENT_TLS_REASONS = Object.freeze([
  'unknown_ca',
  'bad_certificate',
  'certificate_unknown',
  'unsupported_certificate',
  'certificate_expired',
  'decrypt_error',
  'handshake_failure',
  'protocol_version',
  'no_shared_cipher',
  'no_application_protocol',
  'closed',
  'timeout',
  'other',
] as const);

export type ClientTlsReason = (typeof CLIENT_TLS_REASONS)[number];

export interface InspectionObserver {
  leafMinted(seconds: number): void;
  leafCacheHit(): void;
  clientHandshakeFailed(reason: ClientTlsReason): void;
  sessionStarted(): void;
  requestInside(): void;
}

export const NO_OBSERVER: InspectionObserver = Object.freeze({
  leafMinted() {},
  leafCacheHit() {},
  clientHandshakeFailed() {},
  sessionStarted() {},
  requestInside() {},
});
