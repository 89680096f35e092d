// What the audit record says about credentials (CONTRACT §7, §11): the credential's name and a short handle
// id, never the handle, the secret or a sealed blob. The lead adds these to proxy/ops/audit.ts's FIELD.
export { handleId } from './handle.js';

export const CREDENTIAL_FIELD = Object.freeze({
  /** Credential name(s) concerned, comma-separated when a request injected more than one. */
  name: 'credential.name',
  /** handleId() of the handle concerned (12 hex characters of its SHA-256). */
  handle: 'credential.handle',
  /** What the broker did: one of CREDENTIAL_ACTIONS. */
  action: 'credential.action',
  /** Replacements of a secret in the response (headers and body). */
  scrubbed: 'credential.scrubbed',
} as const);

export const CREDENTIAL_ACTIONS = Object.freeze({
  injected: 'injected',
  /** A handle out of scope: audited and counted as an exfiltration attempt. */
  exfiltration: 'exfiltration',
  denied: 'denied',
  foreignPassed: 'foreign-passed',
  /** No handle in the request, but a credential's host answered: its response was scanned. */
  scrubbed: 'scrubbed',
} as const);

/** A pattern for log scrubbing (proxy/ops/redact.ts): handles are not secrets by themselves, but a handle in
 * a log is one more copy of a capability; keep logs to handleId(). */
export const HANDLE_TEXT = /\bsluice_h1_[A-Za-z0-9_-]{8,}/g;
export const SEALED_TEXT = /\bsluice-sealed\.v1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+/g;
