// The broker at run time: what the pipeline, the admin API and the reloader hold. Built from a validated
// config and the material loaded for it (material.ts); a reload builds a new one. Everything per request is
// the pure checkRequest() plus a bounded cache of opened handles.
import { LRUCache } from 'lru-cache';
import type { SluiceConfig } from '../../firewall/config.js';
import { type HandleClaims, openHandle } from './handle.js';
import { type HandleRequest, type IssueOutcome, type RevokeOutcome, issueHandleFor, revokeRunFor } from './issue.js';
import type { BrokerMaterial } from './material.js';
import {
  type BrokerAllow,
  type BrokerRequest,
  type CompiledCredentials,
  type CredentialDeny,
  type ScrubPlan,
  checkRequest,
  compileCredentials,
} from './request-check.js';
import { type Decoding, type BodyScrubOptions, bodyScrubStages, decodingFor } from './response-body.js';
import type { RevocationWatcher } from './revocations.js';
import { type ScanPattern, type SecretForm, SecretScanner, patternsOf, placeholderFor, scrubHeaders, secretForms } from './secret-scanner.js';
import type { Transform } from 'node:stream';

export interface BrokerDeps {
  readonly config: SluiceConfig;
  readonly material: BrokerMaterial;
  readonly revocations: Pick<RevocationWatcher, 'status' | 'revokeLocal'>;
  readonly nowMs: () => number;
  /** Appends a line to the revocation list (the runtime passes fs.promises.appendFile). */
  readonly append: (path: string, line: string) => Promise<void>;
  /** Opened handles remembered (a handle is opened once, not per request). */
  readonly cacheMax?: number;
  readonly body?: BodyScrubOptions;
}

/** The response half of one request: scrub headers, then the body through the stages. */
export interface ResponseScrubber {
  /** Response headers with secrets replaced; the same array when none was found. */
  headers(rawHeaders: readonly string[]): readonly string[];
  /** Stream stages for the body, or why it cannot be scanned (then the response is refused, 502). */
  bodyStages(contentEncoding: string | readonly string[] | undefined): Transform[] | { readonly refuse: string };
  /** How the body will be decoded, for the caller's header rewrite. */
  decodingOf(contentEncoding: string | readonly string[] | undefined): Decoding | null;
  /** Replacements so far, headers and body (audit `credential.scrubbed`). */
  readonly replaced: number;
}

export interface Broker {
  /** The per-request check (request-check.ts). */
  checkRequest(req: BrokerRequest): BrokerAllow | CredentialDeny;
  /** For a BrokerAllow with a scrub plan. */
  responseScrubber(plan: ScrubPlan): ResponseScrubber;
  issueHandle(req: HandleRequest): IssueOutcome;
  revokeRun(run: string): Promise<RevokeOutcome>;
  readonly credentials: CompiledCredentials;
}

export function createBroker(deps: BrokerDeps): Broker {
  const { config, material } = deps;
  const credentials = compileCredentials(config);
  const opened = new LRUCache<string, HandleClaims>({ max: deps.cacheMax ?? 10_000 });
  const nowS = () => Math.floor(deps.nowMs() / 1000);
  const open = (handle: string): HandleClaims | null => {
    const hit = opened.get(handle);
    if (hit) return hit;
    const r = openHandle(material.keys.handle, handle);
    if (!r.ok) return null;
    opened.set(handle, r.claims);
    return r.claims;
  };
  // Each secret's forms are computed once; a request only chooses what replaces them.
  const forms = new Map<string, SecretForm[]>();
  for (const [name, secret] of material.secrets) forms.set(name, secretForms(secret.reveal()));
  const patternsFor = (credential: string, replacement: string): ScanPattern[] => {
    const f = forms.get(credential);
    return f ? patternsOf(f, replacement) : [];
  };

  return {
    credentials,
    checkRequest(req) {
      return checkRequest(credentials, req, {
        nowS: nowS(),
        open,
        runStatus: (run, at) => deps.revocations.status(run, at),
        secret: (name) => material.secrets.get(name),
      });
    },
    responseScrubber(plan) {
      const all = plan.credentials.flatMap((c) => patternsFor(c, plan.handles.get(c) ?? placeholderFor(c)));
      const scanner = new SecretScanner(all);
      let headerHits = 0;
      return {
        headers(raw) {
          const r = scrubHeaders(all, raw);
          headerHits += r.replaced;
          return r.rawHeaders;
        },
        bodyStages(contentEncoding) {
          const d = decodingFor(contentEncoding);
          if ('refuse' in d) return d;
          return bodyScrubStages(scanner, d.decode, deps.body);
        },
        decodingOf(contentEncoding) {
          const d = decodingFor(contentEncoding);
          return 'refuse' in d ? null : d.decode;
        },
        get replaced() {
          return headerHits + scanner.replaced;
        },
      };
    },
    issueHandle(req) {
      return issueHandleFor(config, material.keys.handle, req, { nowS: nowS(), runStatus: (run, at) => deps.revocations.status(run, at) });
    },
    revokeRun(run) {
      return revokeRunFor(config, run, { nowS: nowS(), append: deps.append, revokeLocal: (r, until) => deps.revocations.revokeLocal(r, until) });
    },
  };
}
