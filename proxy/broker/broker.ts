// The broker at run time: what the pipeline, the admin API and the reloader hold. Built from a validated
// config and the material loaded for it (material.ts); a reload builds a new one. Everything per request is
// the pure checkRequest() plus a bounded cache of opened handles.
import type { Transform } from 'node:stream';
import { LRUCache } from 'lru-cache';
import type { SluiceConfig } from '../../settings/config.js';
import { handleId, openHandle } from './handle.js';
import { type HandleRequest, type IssueOutcome, type RevokeOutcome, issueHandleFor, revokeRunFor } from './issue.js';
import type { BrokerMaterial } from './material.js';
import {
  type BrokerAllow,
  type BrokerRequest,
  type CompiledCredentials,
  type CredentialDeny,
  type OpenedHandle,
  type ScrubPlan,
  checkRequest,
  compileCredentials,
} from './request-check.js';
import { type BodyScrubOptions, type Decoding, bodyScrubStages, decodingFor } from './response-body.js';
import type { RevocationWatcher } from './revocations.js';
import {
  type ScanPattern,
  type SecretForm,
  SecretScanner,
  patternsOf,
  placeholderFor,
  scrubHeaders,
  secretForms,
} from './secret-scanner.js';

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
  const opened = new LRUCache<string, OpenedHandle>({ max: deps.cacheMax ?? 10_000 });
  const nowS = () => Math.floor(deps.nowMs() / 1000);
  // Opening costs an AES-GCM decryption; a run uses its handle on every request. Failures are not cached
  // (a flood of forgeries must not evict the handles in use).
  const open = (handle: string): OpenedHandle | null => {
    const hit = opened.get(handle);
    if (hit) return hit;
    const r = openHandle(material.keys.handle, handle);
    if (!r.ok) return null;
    const entry = { claims: r.claims, id: handleId(handle) };
    opened.set(handle, entry);
    return entry;
  };
  // Each secret's forms are computed once; a request only chooses what replaces them, and the patterns for
  // one run's handle are reused by every request of that run.
  const forms = new Map<string, SecretForm[]>();
  for (const [name, secret] of material.secrets) forms.set(name, secretForms(secret.reveal()));
  const patternCache = new LRUCache<string, ScanPattern[]>({ max: deps.cacheMax ?? 10_000 });
  const patternsFor = (plan: ScrubPlan): ScanPattern[] => {
    const key = plan.credentials.map((c) => `${c}\0${plan.handles.get(c) ?? ''}`).join('\0');
    let p = patternCache.get(key);
    if (!p) {
      p = plan.credentials.flatMap((c) => {
        const f = forms.get(c);
        return f ? patternsOf(f, plan.handles.get(c) ?? placeholderFor(c)) : [];
      });
      patternCache.set(key, p);
    }
    return p;
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
      return new PlannedScrub(patternsFor(plan), deps.body);
    },
    issueHandle(req) {
      return issueHandleFor(config, material.keys.handle, req, {
        nowS: nowS(),
        runStatus: (run, at) => deps.revocations.status(run, at),
      });
    },
    revokeRun(run) {
      return revokeRunFor(config, run, {
        nowS: nowS(),
        append: deps.append,
        revokeLocal: (r, until) => deps.revocations.revokeLocal(r, until),
      });
    },
  };
}

// A class rather than a closure bag: one allocation per response, and the body scanner only when a body
// comes.
class PlannedScrub implements ResponseScrubber {
  readonly #patterns: readonly ScanPattern[];
  readonly #body: BodyScrubOptions | undefined;
  #scanner: SecretScanner | null = null;
  #headerHits = 0;

  constructor(patterns: readonly ScanPattern[], body: BodyScrubOptions | undefined) {
    this.#patterns = patterns;
    this.#body = body;
  }

  headers(raw: readonly string[]): readonly string[] {
    const r = scrubHeaders(this.#patterns, raw);
    this.#headerHits += r.replaced;
    return r.rawHeaders;
  }

  bodyStages(contentEncoding: string | readonly string[] | undefined): Transform[] | { readonly refuse: string } {
    const d = decodingFor(contentEncoding);
    if ('refuse' in d) return d;
    this.#scanner = new SecretScanner(this.#patterns);
    return bodyScrubStages(this.#scanner, d.decode, this.#body);
  }

  decodingOf(contentEncoding: string | readonly string[] | undefined): Decoding | null {
    const d = decodingFor(contentEncoding);
    return 'refuse' in d ? null : d.decode;
  }

  get replaced(): number {
    return this.#headerHits + (this.#scanner?.replaced ?? 0);
  }
}
