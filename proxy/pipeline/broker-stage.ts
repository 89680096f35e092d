// The broker stage (CONTRACT §11): after decide() allowed a request Sluice can read (absolute-form http://,
// and the inner requests of an inspected CONNECT, which come through the same http path) and before the
// dialer. It peeks the first KiB of the body, hands everything to the broker's pure check, and returns what
// the forwarder sends instead — the headers with the handle replaced by the secret, the body replayed whole,
// and the response scrubber — or the broker's denial, which report mode never lifts.
import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import { type Deny, deny } from '../../firewall/codes.js';
import type { Broker } from '../broker/broker.js';
import type { BrokeredRequest } from '../egress/forward.js';
import { BODY_PREFIX_BYTES } from '../broker/handle-scan.js';
import type { BrokerAllow, CredentialDeny } from '../broker/request-check.js';
import { CREDENTIAL_ACTIONS } from '../broker/audit-fields.js';
import type { CredentialAudit } from '../ops/audit.js';
import type { Principal } from '../auth/identity.js';
import { lookupHost } from '../../firewall/host-match.js';

export interface BrokerStageInput {
  readonly broker: Broker;
  readonly principal: Principal;
  readonly req: IncomingMessage;
  /** Normalised target host, as decide() judged it. */
  readonly host: string;
  /** Origin-form path and query, as received. */
  readonly path: string;
  readonly method: string;
  /** decide()'s `tls`: Sluice originates verified TLS to the host. */
  readonly upstreamTls: boolean;
  /** The scheme and port the client asked for (an http:// read on port 80 to a credential's host is sent over TLS). */
  readonly scheme: 'http' | 'https';
  readonly port: number;
  readonly upgrade: boolean;
  readonly hasBody: boolean;
  /** How long the first KiB of a body may take to arrive (the idle timeout). */
  readonly peekTimeoutMs: number;
}

/** What the forwarder sends instead of the client's request, when the broker had anything to say. */
export interface Brokered extends BrokeredRequest {
  readonly audit: CredentialAudit | null;
}

export type BrokerStageResult =
  | { readonly ok: true; readonly brokered: Brokered | null; readonly tlsUpgrade: boolean }
  | { readonly ok: false; readonly deny: Deny; readonly audit: CredentialAudit };

interface Peeked {
  readonly prefix: Buffer;
  readonly body: Readable;
}

/** Reads up to `limit` bytes of the body and gives back a body that replays them, then the rest, unbuffered. */
async function peekBody(req: IncomingMessage, limit: number, timeoutMs: number): Promise<Peeked | 'timeout'> {
  const it = req[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const chunks: Buffer[] = [];
  let size = 0;
  let ended = false;
  let timer: NodeJS.Timeout | null = null;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), timeoutMs);
    timer.unref();
  });
  try {
    while (size < limit) {
      const r = await Promise.race([it.next(), timeout]);
      if (r === 'timeout') return 'timeout';
      if (r.done) {
        ended = true;
        break;
      }
      chunks.push(r.value);
      size += r.value.length;
    }
  } finally {
    if (timer) clearTimeout(timer);
  }
  const prefix = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
  async function* replay(): AsyncGenerator<Buffer> {
    if (prefix.length) yield prefix;
    if (ended) return;
    for (;;) {
      const r = await it.next();
      if (r.done) return;
      yield r.value;
    }
  }
  return { prefix, body: Readable.from(replay(), { objectMode: false }) };
}

const auditOfDeny = (d: CredentialDeny): CredentialAudit => ({
  name: d.credential,
  handle: d.handleId,
  action: d.exfiltration ? CREDENTIAL_ACTIONS.exfiltration : CREDENTIAL_ACTIONS.denied,
  scrubbed: 0,
});

function auditOfAllow(a: BrokerAllow): CredentialAudit | null {
  if (a.injected.length) {
    return {
      name: a.injected.map((i) => i.credential).join(','),
      handle: a.injected.map((i) => i.handleId).join(','),
      action: CREDENTIAL_ACTIONS.injected,
      scrubbed: 0,
    };
  }
  if (a.foreignPassed.length)
    return { name: a.foreignPassed.join(','), handle: null, action: CREDENTIAL_ACTIONS.foreignPassed, scrubbed: 0 };
  // A credential's host answered a request that carried no handle: its response is still scrubbed.
  if (a.scrub)
    return { name: a.scrub.credentials.join(','), handle: null, action: CREDENTIAL_ACTIONS.scrubbed, scrubbed: 0 };
  return null;
}

/** A plain-http read to a host of a credential's integration the principal is granted: decide() let it go as a
 * public read, in cleartext; it leaves over TLS to 443 like the integration's writes, so that a handle in it
 * can be replaced (never into cleartext) and its response, which may hold the secret, comes back verified. */
function tlsUpgradeFor(i: BrokerStageInput): boolean {
  if (i.upstreamTls || i.scheme !== 'http' || i.port !== 80) return false;
  return lookupHost(i.broker.credentials.byHost, i.host).some((c) => i.principal.integrations.has(c.integration));
}

export async function brokerStage(i: BrokerStageInput): Promise<BrokerStageResult> {
  const tlsUpgrade = tlsUpgradeFor(i);
  let peeked: Peeked | null = null;
  if (i.hasBody && !i.upgrade) {
    const p = await peekBody(i.req, BODY_PREFIX_BYTES, i.peekTimeoutMs);
    if (p === 'timeout') {
      return {
        ok: false,
        deny: deny('EGR_BAD_REQUEST', 'credentials', 'the body did not arrive in time to be checked for handles'),
        audit: { name: null, handle: null, action: CREDENTIAL_ACTIONS.denied, scrubbed: 0 },
      };
    }
    peeked = p;
  }
  const r = i.broker.checkRequest({
    principal: { identity: i.principal.identity, run: i.principal.run ?? null, integrations: i.principal.integrations },
    method: i.method,
    host: i.host,
    upstreamTls: i.upstreamTls || tlsUpgrade,
    rawHeaders: i.req.rawHeaders,
    path: i.path,
    bodyPrefix: peeked?.prefix ?? null,
    upgrade: i.upgrade,
  });
  if (r.verdict === 'deny') return { ok: false, deny: r, audit: auditOfDeny(r) };
  const audit = auditOfAllow(r);
  if (audit === null && peeked === null) return { ok: true, brokered: null, tlsUpgrade };
  return {
    ok: true,
    tlsUpgrade,
    brokered: {
      rawHeaders: r.rawHeaders,
      body: peeked?.body ?? null,
      scrub: r.scrub ? i.broker.responseScrubber(r.scrub) : null,
      audit,
    },
  };
}
