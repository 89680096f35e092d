// The credential broker's two config sections, `secrets` and `credentials` (CONTRACT §11). Pure: the files
// they name are read by proxy/broker/, never here. The shape is in config-schema.ts; this adds what a schema
// cannot say: cross-references, the rules of each injection type, and the promise that no secret value is
// ever accepted inside the config file. The schema has filled in the defaults; since these checks also run on
// sections the schema refused (to refuse a secret wherever it was put), they still read the value defensively.
import { CREDENTIALS_SCHEMA, SECRETS_SCHEMA } from './config-schema.js';

/** How the real secret is put into a request. A discriminated union so that signing processors (HMAC,
 * SigV4) can be added as new `type`s without touching the two that exist. */
export type InjectConfig =
  | {
      readonly type: 'header';
      /** Lower-case header name. */
      readonly name: string;
      /** The value sent upstream; `{secret}` appears exactly once. */
      readonly template: string;
    }
  | {
      readonly type: 'basic';
      /** Basic auth username sent upstream; null: the username the client sent (the password is the secret). */
      readonly username: string | null;
    };

export type InjectType = InjectConfig['type'];
export const INJECT_TYPES: readonly InjectType[] = Object.freeze(['header', 'basic']);

/** Where the secret comes from: a blob sealed under `secrets.keyFile`, or a plaintext file mounted by the
 * platform (a Kubernetes or Docker secret). */
export type SecretSource =
  { readonly kind: 'sealedFile'; readonly path: string } | { readonly kind: 'file'; readonly path: string };

export type ReplaceForeign = 'deny' | 'pass';

export interface CredentialConfig {
  /** The integration whose hosts may receive the secret. */
  readonly integration: string;
  readonly inject: InjectConfig;
  readonly source: SecretSource;
  /** A token of the client's own in this credential's header: refuse it (default) or let it through. */
  readonly replaceForeign: ReplaceForeign;
}

export interface SecretsConfig {
  /** Key material (≥ 32 bytes) from which the sealing and handle keys are derived. */
  readonly keyFile: string;
  readonly handles: {
    /** Longest TTL a handle may be issued with; null: not configured (production refuses it). */
    readonly maxTtlS: number | null;
    /** The revocation list every replica polls; null: revocation is local to one process. */
    readonly revocationFile: string | null;
    readonly pollMs: number;
  };
}

export interface CredentialSections {
  readonly secrets: SecretsConfig | null;
  readonly credentials: Readonly<Record<string, CredentialConfig>>;
}

/** The schema's defaults (config-schema.ts), for code that runs without a config. */
export const CREDENTIAL_DEFAULTS = Object.freeze({
  pollMs: SECRETS_SCHEMA.properties.handles.properties.pollMs.default,
  replaceForeign: CREDENTIALS_SCHEMA.additionalProperties.properties.replaceForeign.default as ReplaceForeign,
});

/** The placeholder a header template must hold exactly once. */
export const SECRET_PLACEHOLDER = '{secret}';

// Headers a credential may not be injected into: framing, routing and the proxy's own.
const FORBIDDEN_HEADERS = new Set([
  'host',
  'content-length',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'proxy-authorization',
  'proxy-authenticate',
  'proxy-connection',
  'te',
  'trailer',
  'upgrade',
  'expect',
  'http2-settings',
  'accept-encoding',
  'content-encoding',
]);

// Shapes of real secrets. A config file is read by many people and tools (git, CI logs, ConfigMaps); a
// secret pasted into one is a leak, so the validator refuses anything that looks like one and never echoes it.
const SECRET_SHAPES: readonly (readonly [RegExp, string])[] = [
  [/sluice-sealed\.v1\./i, 'a sealed blob (put it in a file and name the file in source.sealedFile)'],
  [/sluice_h1_/i, 'a Sluice credential handle'],
  [/sluice\.v1\./i, 'a Sluice run token'],
  [/\bgh[pousr]_[A-Za-z0-9]{16,}/, 'a GitHub token'],
  [/\bgithub_pat_[A-Za-z0-9_]{16,}/, 'a GitHub token'],
  [/\bglpat-[A-Za-z0-9_-]{16,}/, 'a GitLab token'],
  [/\b(?:sk|rk|pk)[-_](?:live|test|proj|ant)?[-_]?[A-Za-z0-9_-]{16,}/, 'an API secret key'],
  [/\bxox[abposr]-[A-Za-z0-9-]{10,}/, 'a Slack token'],
  [/\b(?:AKIA|ASIA)[A-Z0-9]{16}\b/, 'an AWS access key id'],
  [/\bAIza[A-Za-z0-9_-]{30,}/, 'a Google API key'],
  [/\bnpm_[A-Za-z0-9]{30,}/, 'an npm token'],
  [/\bpypi-[A-Za-z0-9_-]{30,}/, 'a PyPI token'],
  [/\bhf_[A-Za-z0-9]{30,}/, 'a Hugging Face token'],
  [/\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\./, 'a JWT'],
  [/-----BEGIN [A-Z ]*PRIVATE KEY-----/, 'a private key'],
];

// A long run of token characters mixing upper case, lower case and digits: what random keys look like and
// what names, paths and templates almost never do.
const RANDOM_RUN = /[A-Za-z0-9+/=_-]{24,}/g;
const RANDOM_PIECE = /[A-Za-z0-9+=]{20,}/g;
const looksRandom = (run: string) => /[A-Z]/.test(run) && /[a-z]/.test(run) && /[0-9]/.test(run);

/** What a string looks like if it looks like a secret value ("a GitHub token"), else null. Never returns
 * the value itself, so callers can put the answer in a message. */
export function secretShapeOf(text: string, options: { path?: boolean } = {}): string | null {
  for (const [re, what] of SECRET_SHAPES) if (re.test(text)) return what;
  if (options.path) {
    // A path is judged by its words: `/tmp/sluice-cli-fdljK2/key` (a mkdtemp name) is fine; a bare token
    // pasted where the path goes, or a 20-character random word inside one, is not.
    if (
      !text.includes('/') &&
      [...text.matchAll(RANDOM_RUN)].some((m) => m[0].length === text.length && looksRandom(m[0]))
    )
      return 'a long random string';
    for (const m of text.matchAll(RANDOM_PIECE)) if (looksRandom(m[0])) return 'a long random string';
    return null;
  }
  for (const m of text.split(SECRET_PLACEHOLDER).join(' ').matchAll(RANDOM_RUN))
    if (looksRandom(m[0])) return 'a long random string';
  return null;
}

const PLAINTEXT_HINT =
  'secret values never go in the config file: seal it with `sluice secret seal --config FILE --credential NAME < token` and name the file in source.sealedFile, or mount it as a file and name it in source.file';

// Keys someone would reach for to put the secret itself in a credential; the schema has no such field.
const PLAINTEXT_KEYS = new Set([
  'secret',
  'value',
  'token',
  'password',
  'key',
  'apikey',
  'api_key',
  'api-key',
  'plaintext',
]);

type Raw = Record<string, unknown>;
const obj = (v: unknown): Raw => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Raw) : {});
const str = (v: unknown): v is string => typeof v === 'string';
// Control characters would let a value split a header line (CRLF injection) or hide in a log.
const CONTROL = /[\u0000-\u001f\u007f]/;

export interface SectionContext {
  readonly integrations: Readonly<Record<string, { readonly hosts: readonly string[]; readonly tunnel: boolean }>>;
  readonly tokensKeyFile: string | null;
  readonly err: (path: string, message: string, hint?: string) => void;
  readonly warn: (path: string, message: string, hint?: string) => void;
  readonly suggest: (word: string, options: readonly string[]) => string | undefined;
  readonly parseDuration: (text: string) => number | null;
}

/** Validates `secrets` and `credentials` of the raw config (after the schema has run), reporting through ctx. */
export function validateCredentialSections(raw: Raw, ctx: SectionContext): CredentialSections {
  const { err, warn } = ctx;
  const refuseSecret = (path: string, value: string, isPath = false): boolean => {
    const shape = secretShapeOf(value, { path: isPath });
    if (shape) err(path, `this looks like ${shape}`, PLAINTEXT_HINT);
    return shape !== null;
  };

  let secrets: SecretsConfig | null = null;
  if (raw.secrets !== undefined) {
    const s = obj(raw.secrets);
    const h = obj(s.handles);
    if (str(s.keyFile)) {
      refuseSecret('/secrets/keyFile', s.keyFile, true);
      if (ctx.tokensKeyFile !== null && s.keyFile === ctx.tokensKeyFile) {
        warn(
          '/secrets/keyFile',
          'the broker and run tokens share one key file',
          'give secrets.keyFile its own key: a leak of one should not forge the other',
        );
      }
    }
    let maxTtlS: number | null = null;
    if (str(h.maxTtl)) {
      maxTtlS = ctx.parseDuration(h.maxTtl);
      if (maxTtlS !== null && maxTtlS < 1)
        err('/secrets/handles/maxTtl', 'maxTtl must be at least 1s', 'use e.g. "8h"');
    }
    if (str(h.revocationFile)) refuseSecret('/secrets/handles/revocationFile', h.revocationFile, true);
    secrets = {
      keyFile: str(s.keyFile) ? s.keyFile : '',
      handles: {
        maxTtlS,
        revocationFile: str(h.revocationFile) ? h.revocationFile : null,
        pollMs: typeof h.pollMs === 'number' ? h.pollMs : CREDENTIAL_DEFAULTS.pollMs,
      },
    };
  }

  const credentials: Record<string, CredentialConfig> = {};
  const integrationNames = Object.keys(ctx.integrations);
  for (const [name, value] of Object.entries(obj(raw.credentials))) {
    const path = `/credentials/${name}`;
    // A credential named like a token is a token in the config, however it got there.
    if (refuseSecret(path, name)) continue;
    const c = obj(value);
    for (const key of Object.keys(c)) {
      if (PLAINTEXT_KEYS.has(key.toLowerCase()))
        err(`${path}/${key}`, `"${key}" would hold a secret value, and the config never does`, PLAINTEXT_HINT);
    }
    // Every string anywhere under the credential, whatever key it sits at (unknown keys included).
    const walk = (v: unknown, at: string) => {
      if (str(v)) refuseSecret(at, v, /(?:File|file)$/.test(at));
      else if (v && typeof v === 'object') for (const [k, inner] of Object.entries(v)) walk(inner, `${at}/${k}`);
    };
    walk(c, path);

    let ok = true;
    const integration = str(c.integration) ? c.integration : '';
    if (integration && !Object.hasOwn(ctx.integrations, integration)) {
      ok = false;
      err(
        `${path}/integration`,
        `unknown integration "${integration}"`,
        ctx.suggest(integration, integrationNames) ??
          (integrationNames.length
            ? `defined integrations: ${integrationNames.join(', ')}`
            : 'define it under "integrations"'),
      );
    } else if (integration && ctx.integrations[integration]!.tunnel) {
      warn(
        `${path}/integration`,
        `integration "${integration}" allows opaque tunnels (tunnel: true): a handle sent through a tunnel Sluice does not inspect is never replaced, and responses are never scanned`,
        'set "tunnel: false" on the integration, or inspect its TLS',
      );
    }

    const inj = obj(c.inject);
    let inject: InjectConfig | null = null;
    if (inj.type === 'header') {
      if (inj.username !== undefined)
        err(`${path}/inject/username`, 'username belongs to type: basic', 'remove it, or use "type: basic"');
      const header = str(inj.name) ? inj.name.toLowerCase() : null;
      const template = str(inj.template) ? inj.template : null;
      if (header === null) err(`${path}/inject`, 'missing "name"', 'the header to inject, e.g. name: Authorization');
      else if (FORBIDDEN_HEADERS.has(header) || header.startsWith('proxy-'))
        err(
          `${path}/inject/name`,
          `a credential cannot be injected into ${header}`,
          'use the header the integration reads credentials from, e.g. Authorization',
        );
      if (template === null) err(`${path}/inject`, 'missing "template"', 'e.g. template: "Bearer {secret}"');
      else if (template.split(SECRET_PLACEHOLDER).length !== 2)
        err(
          `${path}/inject/template`,
          'the template must hold {secret} exactly once',
          'e.g. "Bearer {secret}" or "token {secret}"',
        );
      else if (CONTROL.test(template))
        err(
          `${path}/inject/template`,
          'the template holds a control character',
          'a header value is one line of printable text',
        );
      if (header !== null && template !== null) inject = { type: 'header', name: header, template };
    } else if (inj.type === 'basic') {
      for (const k of ['name', 'template'] as const) {
        if (inj[k] !== undefined)
          err(
            `${path}/inject/${k}`,
            `${k} belongs to type: header`,
            'remove it: Basic auth sends the secret as the password',
          );
      }
      const username = str(inj.username) ? inj.username : null;
      if (username !== null && (username.includes(':') || CONTROL.test(username))) {
        err(
          `${path}/inject/username`,
          'a Basic username cannot hold ":" or control characters (RFC 7617)',
          'e.g. "x-access-token"',
        );
      }
      inject = { type: 'basic', username };
    }

    let source: SecretSource | null = null;
    const src = obj(c.source);
    if (str(src.sealedFile)) source = { kind: 'sealedFile', path: src.sealedFile };
    else if (str(src.file)) source = { kind: 'file', path: src.file };

    if (!secrets) {
      ok = false;
      err(
        path,
        'credentials need secrets.keyFile',
        'add `secrets: { keyFile: /run/secrets/sluice-broker-key, handles: { maxTtl: 8h } }` (at least 32 random bytes: head -c 48 /dev/urandom | base64)',
      );
    }
    if (ok && integration && inject && source) {
      credentials[name] = {
        integration,
        inject,
        source,
        replaceForeign: c.replaceForeign === 'pass' ? 'pass' : 'deny',
      };
    }
  }
  return { secrets, credentials };
}
