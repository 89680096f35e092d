// How a client's failed handshake with Sluice is named: the TLS alert it sent when it rejected Sluice's
// certificate (RFC 8446 §6.2), or what Sluice refused (a TLS version below 1.2, no common cipher, no common
// application protocol), or how the connection ended. Pure: OpenSSL's error codes in, a bounded reason out.
import { type Deny, deny } from '../../firewall/codes.js';
import { CLIENT_TLS_REASONS, type ClientTlsReason } from './observer.js';

export interface ClientTlsFailure extends Deny {
  readonly ok: false;
  readonly code: 'EGR_CLIENT_TLS';
  /** A metric label: one of CLIENT_TLS_REASONS. */
  readonly reason: ClientTlsReason;
  /** The alert the client sent, as OpenSSL names it (`unknown_ca`), or null if it sent none. For the audit record. */
  readonly alert: string | null;
}

export const CLIENT_TLS_RULE = 'inspection.handshake';

// OpenSSL reports an alert received from the peer as SSL_R_SSLV3_ALERT_* / SSL_R_TLSV1_ALERT_* (Node: ERR_SSL_…).
const RECEIVED_ALERT = /^ERR_SSL_(?:SSLV3|TLSV1|TLSV13)_ALERT_([A-Z0-9_]+)$/;

// What Sluice itself refused: the client's offer had nothing acceptable.
const REFUSED: Readonly<Record<string, ClientTlsReason>> = {
  ERR_SSL_UNSUPPORTED_PROTOCOL: 'protocol_version',
  ERR_SSL_WRONG_VERSION_NUMBER: 'protocol_version',
  ERR_SSL_UNKNOWN_PROTOCOL: 'protocol_version',
  ERR_SSL_VERSION_TOO_LOW: 'protocol_version',
  ERR_SSL_NO_SHARED_CIPHER: 'no_shared_cipher',
  ERR_SSL_NO_SHARED_SIGNATURE_ALGORITHMS: 'no_shared_cipher',
  ERR_SSL_NO_SUITABLE_SIGNATURE_ALGORITHM: 'no_shared_cipher',
  ERR_SSL_NO_APPLICATION_PROTOCOL: 'no_application_protocol',
};

const CLOSED = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ERR_STREAM_PREMATURE_CLOSE', 'ERR_SOCKET_CLOSED']);

const isReason = (s: string): s is ClientTlsReason => (CLIENT_TLS_REASONS as readonly string[]).includes(s);

/** Names a handshake error. `null` error: the connection closed (or timed out) before the handshake finished. */
export function classifyClientTlsError(
  err: { readonly code?: string | undefined } | null,
  ended: 'closed' | 'timeout' = 'closed',
): ClientTlsFailure {
  const code = err?.code ?? '';
  let reason: ClientTlsReason = 'other';
  let alert: string | null = null;
  const received = RECEIVED_ALERT.exec(code);
  if (err === null) {
    reason = ended;
  } else if (received) {
    alert = received[1]!.toLowerCase();
    reason = isReason(alert) ? alert : 'other';
  } else if (Object.hasOwn(REFUSED, code)) {
    reason = REFUSED[code]!;
  } else if (CLOSED.has(code)) {
    reason = 'closed';
  }
  const detail = alert ? `client sent alert ${alert}` : `${reason}${code ? ` (${code})` : ''}`;
  return { ...deny('EGR_CLIENT_TLS', CLIENT_TLS_RULE, detail), ok: false, code: 'EGR_CLIENT_TLS', reason, alert };
}
