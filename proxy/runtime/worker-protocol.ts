// What the primary and its workers say to each other (config `workers` > 1; node:cluster IPC, JSON). The
// primary is the authority: it validates every config, owns the kill switch, and a worker only ever applies
// what it is sent, in the order it was sent. Every change is acknowledged, so the primary can answer the admin
// API only once every worker has applied it.
import type { SluiceConfig } from '../../settings/config.js';
import type { BoundListeners } from './sluice.js';

// The run-token key travels with the config (base64, null without tokens): the primary alone reads and watches
// the key file, so a worker never serves with a key the primary did not validate, and never reads one mid-write.
export type ToWorker =
  /** The first message a worker gets, before it listens: the current config, token key and kill switch. */
  | {
      readonly type: 'sluice.init';
      readonly config: SluiceConfig;
      readonly tokenKey: string | null;
      readonly killSwitch: boolean;
      readonly generatedIdentity: boolean;
      readonly version: string;
      readonly inspectionCa?: HandedCa | null;
    }
  | {
      readonly type: 'sluice.swap';
      readonly seq: number;
      readonly config: SluiceConfig;
      readonly tokenKey: string | null;
    }
  /** The key file changed (the config did not). */
  | { readonly type: 'sluice.token-key'; readonly seq: number; readonly tokenKey: string | null }
  | { readonly type: 'sluice.kill-switch'; readonly seq: number; readonly engaged: boolean }
  | { readonly type: 'sluice.metrics'; readonly seq: number }
  | { readonly type: 'sluice.drain'; readonly drainMs: number }
  /** A run revoked through the primary's admin API: in force in the worker at once, before its next poll of
   * the revocation list (which the primary appended, if one is configured). */
  | { readonly type: 'sluice.revoke'; readonly seq: number; readonly run: string; readonly untilS: number };

/** Development mode's ephemeral inspection CA, which exists only in the primary's memory: its certificate and
 * key (PKCS#8 PEM) go to each worker over the IPC channel, never through a file. A CA from the config's files
 * is read by each worker itself. */
export interface HandedCa {
  readonly certPem: string;
  readonly keyPem: string;
}

export type FromWorker =
  /** The worker listens for messages now (one sent before would be lost): the primary answers with init. */
  | { readonly type: 'sluice.hello' }
  | { readonly type: 'sluice.ready'; readonly bound: BoundListeners }
  /** The worker could not start (a listener could not bind, a file could not be read); it exits. */
  | { readonly type: 'sluice.fatal'; readonly message: string }
  /** A swap, token-key, kill-switch or revoke message applied (error null) or refused. */
  | { readonly type: 'sluice.ack'; readonly seq: number; readonly error: string | null }
  /** prom-client's getMetricsAsJSON() of the worker's registry. */
  | { readonly type: 'sluice.metrics'; readonly seq: number; readonly metrics: unknown[] };

const TYPES = new Set([
  'sluice.init',
  'sluice.swap',
  'sluice.token-key',
  'sluice.kill-switch',
  'sluice.metrics',
  'sluice.drain',
  'sluice.revoke',
  'sluice.hello',
  'sluice.ready',
  'sluice.fatal',
  'sluice.ack',
]);

/** A message of this protocol (other modules may use the same channel, e.g. prom-client's cluster support). */
export const encodeKey = (key: Buffer | null): string | null => (key ? key.toString('base64') : null);
export const decodeKey = (text: string | null): Buffer | null => (text === null ? null : Buffer.from(text, 'base64'));

export function isProtocolMessage(m: unknown): m is ToWorker | FromWorker {
  return typeof m === 'object' && m !== null && TYPES.has((m as { type?: unknown }).type as string);
}
