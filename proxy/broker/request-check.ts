// The per-request check (CONTRACT §11), pure: the principal, the target, the headers, the URL and the first
// KiB of the body in; out comes either the headers to send (the handle replaced by the real secret exactly
// where its credential says, Accept-Encoding narrowed for a credential's hosts) or a denial:
//
//   a handle anywhere but its credential's header, toward any host but its integration's, from another run or
//   identity, without a run token, or over cleartext    → EGR_DENY_CREDENTIAL_SCOPE (an exfiltration attempt)
//   its run revoked                                     → EGR_DENY_CREDENTIAL_REVOKED
//   expired                                             → EGR_DENY_CREDENTIAL_EXPIRED
//   the revocation list unknown (unreadable too long)   → EGR_INTERNAL (fail closed)
//   a token of the client's own in a credential's header, replaceForeign: deny → EGR_DENY_CREDENTIAL_FOREIGN
//
// The pipeline calls it after decide() allowed the request and before the dialer. Its cost when no handle
// is present and the host has no credential is one gate per header value (see handle-scan.ts).
import { type Code, type Deny } from '../../firewall/codes.js';
import type { SluiceConfig } from '../../settings/config.js';
import type { ReplaceForeign } from '../../firewall/credential-config.js';
import { type HostIndex, compileHostIndex, lookupHost } from '../../firewall/host-match.js';
import { type HandleClaims, handleId } from './handle.js';
import { type Place, type Sighting, findHandles } from './handle-scan.js';
import { type Injector, createInjector } from './injectors.js';
import type { RunStatus } from './revocations.js';
import type { SecretValue } from './secret-value.js';

export interface CompiledCredential {
  readonly name: string;
  readonly integration: string;
  readonly injector: Injector;
  readonly replaceForeign: ReplaceForeign;
  /** `credentials.<name>`: the audit record's rule. */
  readonly rule: string;
}

export interface CompiledCredentials {
  readonly byName: ReadonlyMap<string, CompiledCredential>;
  /** The hosts of each credential's integration → the credentials they may receive. */
  readonly byHost: HostIndex<CompiledCredential>;
}

export function compileCredentials(config: SluiceConfig): CompiledCredentials {
  const byName = new Map<string, CompiledCredential>();
  const hostEntries: (readonly [string, CompiledCredential])[] = [];
  for (const [name, c] of Object.entries(config.credentials)) {
    const compiled: CompiledCredential = Object.freeze({
      name,
      integration: c.integration,
      injector: createInjector(c.inject),
      replaceForeign: c.replaceForeign,
      rule: `credentials.${name}`,
    });
    byName.set(name, compiled);
    for (const host of config.integrations[c.integration]?.hosts ?? []) hostEntries.push([host, compiled]);
  }
  return { byName, byHost: compileHostIndex(hostEntries) };
}

/** Who is asking: the authenticated principal, as identity.ts produces it. */
export interface BrokerPrincipal {
  readonly identity: string;
  /** The run of the run token that authenticated the request; null for a configured identity (whose
   * password never ends with a run, so it can carry no handle). */
  readonly run: string | null;
  /** The principal's integrations after any run-token narrowing. */
  readonly integrations: ReadonlySet<string>;
}

export interface BrokerRequest {
  readonly principal: BrokerPrincipal;
  /** Upper-case method (for signing processors). */
  readonly method: string;
  /** Normalised target host (what decide() judged). */
  readonly host: string;
  /** Sluice originates verified TLS to the host (decide()'s `tls`, or an inspected HTTPS request). */
  readonly upstreamTls: boolean;
  /** Client request headers, flat name/value list (Node's rawHeaders). */
  readonly rawHeaders: readonly string[];
  /** Origin-form path and query as received. */
  readonly path: string;
  /** The first bytes of the body (only the first KiB is looked at); null when there is none. */
  readonly bodyPrefix: Uint8Array | null;
  /** The request asks to switch protocols (WebSocket): what flows after it is never scanned. */
  readonly upgrade?: boolean;
}

/** A handle this deployment issued: its verified claims and its handleId(). */
export interface OpenedHandle {
  readonly claims: HandleClaims;
  readonly id: string;
}

export interface CheckContext {
  readonly nowS: number;
  /** The handle opened (the caller may cache), or null when it is not one this deployment issued. */
  readonly open: (handle: string) => OpenedHandle | null;
  readonly runStatus: (run: string, nowS: number) => RunStatus;
  readonly secret: (credential: string) => SecretValue | undefined;
}

export interface Injected {
  readonly credential: string;
  readonly handleId: string;
}

/** What the response path needs: the credentials whose secrets may come back from this host, and the handle
 * to put back for each (absent: a placeholder). */
export interface ScrubPlan {
  readonly credentials: readonly string[];
  readonly handles: ReadonlyMap<string, string>;
}

export interface BrokerAllow {
  readonly verdict: 'allow';
  /** Headers to forward: the same array as given when nothing changed. */
  readonly rawHeaders: readonly string[];
  readonly injected: readonly Injected[];
  /** Credentials whose header carried the client's own token, let through by replaceForeign: pass. */
  readonly foreignPassed: readonly string[];
  /** Non-null when the host may receive a credential: its responses must be scrubbed. */
  readonly scrub: ScrubPlan | null;
}

export interface CredentialDeny extends Deny {
  /** The credential concerned, when known (audit only). */
  readonly credential: string | null;
  /** handleId() of the handle concerned, when one was cut out (audit only). */
  readonly handleId: string | null;
  /** A handle seen where it must not go: audited and counted as an exfiltration attempt. */
  readonly exfiltration: boolean;
}

const EMPTY: readonly never[] = Object.freeze([]);

function refuse(
  code: Code,
  rule: string,
  detail: string,
  credential: string | null,
  handle: string | null,
  exfiltration: boolean,
): CredentialDeny {
  // Denials are rare: the id is computed here rather than looked up.
  return {
    verdict: 'deny',
    code,
    rule,
    detail,
    credential,
    handleId: handle === null ? null : handleId(handle),
    exfiltration,
  };
}

const PLACE: Record<Place, string> = { header: 'a header', path: 'the URL', body: 'the body', host: 'the host name' };

function sightingDetail(s: Sighting, rawHeaders: readonly string[]): string {
  // A header name is client data like any other: it is named only when it looks like a header name.
  const name = s.place === 'header' ? rawHeaders[s.header]!.toLowerCase() : '';
  const where =
    s.place === 'header' ? (/^[a-z0-9-]{1,40}$/.test(name) ? `header ${name}` : 'a header name') : PLACE[s.place];
  return `handle in ${where}${s.encoding === 'raw' ? '' : ` (${s.encoding}-encoded)`}`;
}

function narrowAcceptEncoding(headers: string[]): void {
  // Responses from a credential's hosts are scanned; asking for them unencoded keeps the scanner out of
  // decompression (and its bombs). The response path still decodes what a server sends regardless.
  for (let i = headers.length - 2; i >= 0; i -= 2) {
    if (headers[i]!.length === 15 && headers[i]!.toLowerCase() === 'accept-encoding') headers.splice(i, 2);
  }
  headers.push('accept-encoding', 'identity');
}

/** The check itself. See the header of this file for the outcomes. */
export function checkRequest(
  compiled: CompiledCredentials,
  req: BrokerRequest,
  ctx: CheckContext,
): BrokerAllow | CredentialDeny {
  const sightings = findHandles(req);
  const here = lookupHost(compiled.byHost, req.host);
  if (sightings.length === 0 && here.length === 0) {
    return { verdict: 'allow', rawHeaders: req.rawHeaders, injected: EMPTY, foreignPassed: EMPTY, scrub: null };
  }
  const raw = req.rawHeaders;

  // Slot candidates: headers holding a handle, each judged once; everything else is out of place.
  const slotHeaders = new Map<number, Sighting[]>();
  for (const s of sightings) {
    if (s.place === 'header' && s.handle !== null) {
      const list = slotHeaders.get(s.header);
      if (list) list.push(s);
      else slotHeaders.set(s.header, [s]);
      continue;
    }
    const credential = s.handle ? (ctx.open(s.handle)?.claims.credential ?? null) : null;
    return refuse(
      'EGR_DENY_CREDENTIAL_SCOPE',
      credential ? `credentials.${credential}` : 'credentials',
      sightingDetail(s, raw),
      credential,
      s.handle,
      true,
    );
  }

  const injections: {
    index: number;
    credential: CompiledCredential;
    handle: string;
    id: string;
    user: string | null;
  }[] = [];
  for (const [index, list] of slotHeaders) {
    const first = list[0]!;
    const opened = ctx.open(first.handle!);
    if (!opened) {
      return refuse(
        'EGR_DENY_CREDENTIAL_SCOPE',
        'credentials',
        `${sightingDetail(first, raw)} that this deployment did not issue (or that was altered)`,
        null,
        first.handle,
        true,
      );
    }
    const { claims } = opened;
    const c = compiled.byName.get(claims.credential);
    const rule = `credentials.${claims.credential}`;
    const scope = (detail: string, exfiltration = true) =>
      refuse('EGR_DENY_CREDENTIAL_SCOPE', rule, detail, claims.credential, first.handle, exfiltration);
    if (!c) return scope(`${sightingDetail(first, raw)} for a credential that is no longer configured`, false);
    if (!here.includes(c))
      return scope(`${sightingDetail(first, raw)} toward a host outside integration ${c.integration}`);
    const name = raw[index]!.toLowerCase();
    const parsed = name === c.injector.slot ? c.injector.parse(raw[index + 1]!) : null;
    if (!parsed || list.some((s) => s.handle !== parsed.handle)) {
      return scope(
        `${sightingDetail(first, raw)}, not where credential ${c.name} is injected (${c.injector.type} ${c.injector.slot})`,
      );
    }
    if (req.principal.run === null)
      return scope('a handle needs a run token: this request was authenticated by a configured identity');
    if (claims.run !== req.principal.run || claims.identity !== req.principal.identity)
      return scope('the handle belongs to another run');
    if (!req.principal.integrations.has(c.integration))
      return scope(`the run is not granted integration ${c.integration}`, false);
    if (!req.upstreamTls)
      return scope('a secret is never sent in cleartext: this request does not leave over TLS', false);
    // After a protocol switch the connection is spliced raw: its responses could return the secret unscanned.
    if (req.upgrade) return scope('a secret is never injected into a request that switches protocols (Upgrade)', false);
    const status = ctx.runStatus(claims.run, ctx.nowS);
    if (status === 'unknown') {
      return refuse(
        'EGR_INTERNAL',
        'secrets.handles.revocationFile',
        'the revocation list cannot be read: handles are refused until it can',
        c.name,
        first.handle,
        false,
      );
    }
    if (status === 'revoked')
      return refuse('EGR_DENY_CREDENTIAL_REVOKED', rule, 'the run was revoked', c.name, first.handle, false);
    if (ctx.nowS >= claims.expS)
      return refuse('EGR_DENY_CREDENTIAL_EXPIRED', rule, 'the handle expired', c.name, first.handle, false);
    injections.push({ index, credential: c, handle: parsed.handle, id: opened.id, user: parsed.user });
  }

  // One header, one value: a repeated slot header would leave the upstream to choose which one counts.
  const filled = new Set(injections.map((i) => i.index));
  const foreignPassed: string[] = [];
  for (const c of here) {
    let count = 0;
    let foreign = false;
    for (let i = 0; i < raw.length; i += 2) {
      if (raw[i]!.length !== c.injector.slot.length || raw[i]!.toLowerCase() !== c.injector.slot) continue;
      count++;
      if (!filled.has(i)) foreign = true;
    }
    if (count > 1 && filled.size > 0 && injections.some((j) => j.credential.injector.slot === c.injector.slot)) {
      return refuse(
        'EGR_DENY_CREDENTIAL_SCOPE',
        c.rule,
        `header ${c.injector.slot} appears ${count} times beside a handle`,
        c.name,
        null,
        true,
      );
    }
    if (!foreign || injections.some((j) => j.credential.injector.slot === c.injector.slot)) continue;
    if (c.replaceForeign === 'deny') {
      return refuse(
        'EGR_DENY_CREDENTIAL_FOREIGN',
        c.rule,
        `header ${c.injector.slot} carries a token that is not a handle`,
        c.name,
        null,
        false,
      );
    }
    if (!foreignPassed.includes(c.name)) foreignPassed.push(c.name);
  }

  if (here.length === 0) {
    // Sightings were all in header slots, yet no credential may go to this host: caught above (not `here`).
    return { verdict: 'allow', rawHeaders: raw, injected: EMPTY, foreignPassed: EMPTY, scrub: null };
  }
  const headers: string[] = [];
  const handles = new Map<string, string>();
  const injected: Injected[] = [];
  const byIndex = new Map(injections.map((j) => [j.index, j]));
  for (let i = 0; i < raw.length; i += 2) {
    const j = byIndex.get(i);
    if (!j) {
      headers.push(raw[i]!, raw[i + 1]!);
      continue;
    }
    const secret = ctx.secret(j.credential.name);
    if (!secret) {
      return refuse(
        'EGR_INTERNAL',
        j.credential.rule,
        "the credential's secret is not loaded",
        j.credential.name,
        j.handle,
        false,
      );
    }
    for (const [n, v] of j.credential.injector.render({
      slot: { handle: j.handle, user: j.user },
      secret,
      method: req.method,
      path: req.path,
      rawHeaders: raw,
    })) {
      headers.push(n, v);
    }
    handles.set(j.credential.name, j.handle);
    injected.push({ credential: j.credential.name, handleId: j.id });
  }
  narrowAcceptEncoding(headers);
  const credentials = [...new Set(here.map((c) => c.name))];
  return { verdict: 'allow', rawHeaders: headers, injected, foreignPassed, scrub: { credentials, handles } };
}
