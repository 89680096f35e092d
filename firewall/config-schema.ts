// JSON Schema of the policy half of sluice.yaml (draft 2020-12 subset that ajv 8 compiles): who may reach
// what. The runtime settings (listeners, limits, workers…) are the other half, in settings/schema.ts; the file
// is one document checked against both (settings/config.ts). The schema is the single source of the shape,
// the defaults (ajv `useDefaults`) and the TypeScript type (FromSchema); firewall/config.ts adds only the checks
// a schema cannot express (host patterns, CIDRs, references) and hints.

const hostPattern = { type: 'string', minLength: 1, maxLength: 255 } as const;
const hostList = { type: 'array', items: hostPattern, uniqueItems: true } as const;
const emptyList = { ...hostList, default: [] } as const;
const cidr = { type: 'string', minLength: 1, maxLength: 64 } as const;
const method = { type: 'string', pattern: '^[A-Z][A-Z0-9_-]{0,31}$' } as const;
export const duration = { type: 'string', pattern: '^[0-9]+(ms|s|m|h|d)$' } as const;

// ── TLS inspection (issue 15) ──────────────────────────────────────────────────────────────────────────────
// Absent: inspection is off. The CA files are checked by proxy/inspection (a schema cannot read files).
const INSPECTION_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['caCertFile', 'caKeyFile'],
  properties: {
    caCertFile: { type: 'string', minLength: 1 },
    caKeyFile: { type: 'string', minLength: 1 },
    leafValidity: { ...duration, default: '24h' },
    leafCacheSize: { type: 'integer', minimum: 16, maximum: 100000, default: 1024 },
    opaque: emptyList,
  },
} as const;
// ── end TLS inspection ─────────────────────────────────────────────────────────────────────────────────────
// ── Credential broker: `secrets` and `credentials` (firewall/credential-config.ts, proxy/broker/) ──────────
// No field holds a secret value: a credential names a sealed file or a mounted secret file, never the secret.
export const SECRETS_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['keyFile'],
  properties: {
    keyFile: { type: 'string', minLength: 1, maxLength: 4096 },
    handles: {
      type: 'object',
      default: {},
      additionalProperties: false,
      properties: {
        maxTtl: duration,
        revocationFile: { type: 'string', minLength: 1, maxLength: 4096 },
        pollMs: { type: 'integer', minimum: 100, maximum: 60000, default: 1000 },
      },
    },
  },
} as const;

export const CREDENTIALS_SCHEMA = {
  type: 'object',
  default: {},
  propertyNames: { pattern: '^[a-z][a-z0-9_-]{0,62}$' },
  additionalProperties: {
    type: 'object',
    additionalProperties: false,
    required: ['integration', 'inject', 'source'],
    properties: {
      integration: { type: 'string', minLength: 1, maxLength: 63 },
      inject: {
        type: 'object',
        additionalProperties: false,
        required: ['type'],
        properties: {
          type: { enum: ['header', 'basic'] },
          // RFC 9110 §5.1 field-name (a token).
          name: { type: 'string', pattern: "^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$" },
          template: { type: 'string', minLength: 8, maxLength: 256 },
          username: { type: 'string', minLength: 1, maxLength: 256 },
        },
      },
      source: {
        type: 'object',
        additionalProperties: false,
        minProperties: 1,
        maxProperties: 1,
        properties: {
          sealedFile: { type: 'string', minLength: 1, maxLength: 4096 },
          file: { type: 'string', minLength: 1, maxLength: 4096 },
        },
      },
      replaceForeign: { enum: ['deny', 'pass'], default: 'deny' },
    },
  },
} as const;
// ── end of the credential broker's sections ──────────────────────────────────────────────────────────────

/** Read and write methods every integration allows unless it lists its own (`methods` absent). */
export const DEFAULT_METHODS = Object.freeze(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'] as const);

/** The package registries reachable with no integration, unless `registries` lists its own. */
export const DEFAULT_REGISTRIES = [
  'registry.npmjs.org',
  'registry.yarnpkg.com',
  'pypi.org',
  'files.pythonhosted.org',
  'crates.io',
  'index.crates.io',
  'static.crates.io',
  'proxy.golang.org',
  'sum.golang.org',
  'rubygems.org',
  'index.rubygems.org',
  'repo.maven.apache.org',
  'repo1.maven.org',
  'deb.debian.org',
  'security.debian.org',
] as const;

const NAME_PATTERN = { pattern: '^[a-z][a-z0-9_-]{0,62}$' } as const;

export const POLICY_SCHEMA = {
  $id: 'https://sluice.dev/schema/sluice-policy.json',
  type: 'object',
  additionalProperties: false,
  properties: {
    mode: { enum: ['enforce', 'report'], default: 'enforce' },
    registries: { ...hostList, default: DEFAULT_REGISTRIES },
    integrations: {
      type: 'object',
      default: {},
      propertyNames: NAME_PATTERN,
      additionalProperties: {
        type: 'object',
        additionalProperties: false,
        required: ['hosts'],
        properties: {
          hosts: { ...hostList, minItems: 1 },
          // Absent: every method in DEFAULT_METHODS (kept absent, not defaulted: "unrestricted" is not a list).
          methods: { type: 'array', items: method, minItems: 1, uniqueItems: true },
          tunnel: { type: 'boolean', default: false },
          // Protocol names (RFC 9110 §7.8 tokens, no version) an Upgrade may switch to; off when empty.
          upgrade: {
            type: 'array',
            items: { type: 'string', pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$" },
            uniqueItems: true,
            default: [],
          },
        },
      },
    },
    identities: {
      type: 'object',
      default: {},
      propertyNames: NAME_PATTERN,
      additionalProperties: {
        type: 'object',
        additionalProperties: false,
        properties: {
          passwordHash: { type: 'string', minLength: 1, maxLength: 512 },
          password: { type: 'string', minLength: 1, maxLength: 512 },
          integrations: { type: 'array', items: { type: 'string' }, uniqueItems: true, default: [] },
          reads: { enum: ['public', 'none'], default: 'public' },
          // Absent: the top-level mode.
          mode: { enum: ['enforce', 'report'] },
        },
      },
    },
    tokens: {
      type: 'object',
      additionalProperties: false,
      required: ['keyFile'],
      properties: { keyFile: { type: 'string', minLength: 1 }, maxTtl: { ...duration, default: '24h' } },
    },
    globalDeny: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: { hosts: emptyList, cidrs: { type: 'array', items: cidr, uniqueItems: true, default: [] } },
    },
    addressGuard: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        allow: {
          type: 'array',
          default: [],
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['cidr', 'hosts'],
            properties: { cidr, hosts: { ...hostList, minItems: 1 } },
          },
        },
        deny: { type: 'array', items: cidr, uniqueItems: true, default: [] },
      },
    },
    inspection: INSPECTION_SCHEMA,
    // The credential broker (see the block above).
    secrets: SECRETS_SCHEMA,
    credentials: CREDENTIALS_SCHEMA,
  },
} as const;
