// JSON Schema of sluice.yaml (draft 2020-12 subset that ajv 8 compiles). The schema catches shape errors;
// firewall/config.ts adds the checks a schema cannot express (host patterns, CIDRs, references) and hints.

const hostPattern = { type: 'string', minLength: 1, maxLength: 255 } as const;
const hostList = { type: 'array', items: hostPattern, uniqueItems: true } as const;
const cidr = { type: 'string', minLength: 1, maxLength: 64 } as const;
const listenAddr = {
  anyOf: [{ type: 'string', minLength: 3, maxLength: 64 }, { type: 'null' }, { const: false }],
} as const;
const method = { type: 'string', pattern: '^[A-Z][A-Z0-9_-]{0,31}$' } as const;
const duration = { type: 'string', pattern: '^[0-9]+(ms|s|m|h|d)$' } as const;
const positiveInt = { type: 'integer', minimum: 1 } as const;

// ── TLS inspection (issue 15) ──────────────────────────────────────────────────────────────────────────────
// Absent: inspection is off. The CA files are checked by proxy/inspection (a schema cannot read files).
const INSPECTION_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['caCertFile', 'caKeyFile'],
  properties: {
    caCertFile: { type: 'string', minLength: 1 },
    caKeyFile: { type: 'string', minLength: 1 },
    leafValidity: duration,
    leafCacheSize: { type: 'integer', minimum: 16, maximum: 100000 },
    opaque: hostList,
  },
} as const;
// ── end TLS inspection ─────────────────────────────────────────────────────────────────────────────────────
// ── Credential broker: `secrets` and `credentials` (firewall/credential-config.ts, proxy/broker/) ──────────
// No field holds a secret value: a credential names a sealed file or a mounted secret file, never the secret.
const SECRETS_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['keyFile'],
  properties: {
    keyFile: { type: 'string', minLength: 1, maxLength: 4096 },
    handles: {
      type: 'object',
      additionalProperties: false,
      properties: {
        maxTtl: duration,
        revocationFile: { type: 'string', minLength: 1, maxLength: 4096 },
        pollMs: { type: 'integer', minimum: 100, maximum: 60000 },
      },
    },
  },
} as const;

const CREDENTIALS_SCHEMA = {
  type: 'object',
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
      replaceForeign: { enum: ['deny', 'pass'] },
    },
  },
} as const;
// ── end of the credential broker's sections ──────────────────────────────────────────────────────────────

export const CONFIG_SCHEMA = {
  $id: 'https://sluice.dev/schema/sluice.json',
  type: 'object',
  additionalProperties: false,
  properties: {
    mode: { enum: ['enforce', 'report'] },
    listen: {
      type: 'object',
      additionalProperties: false,
      properties: { http: listenAddr, socks5: listenAddr, admin: listenAddr, dns: listenAddr },
    },
    registries: hostList,
    integrations: {
      type: 'object',
      propertyNames: { pattern: '^[a-z][a-z0-9_-]{0,62}$' },
      additionalProperties: {
        type: 'object',
        additionalProperties: false,
        required: ['hosts'],
        properties: {
          hosts: { ...hostList, minItems: 1 },
          methods: { type: 'array', items: method, minItems: 1, uniqueItems: true },
          tunnel: { type: 'boolean' },
          // Protocol names (RFC 9110 §7.8 tokens, no version) an Upgrade may switch to; off when absent.
          upgrade: {
            type: 'array',
            items: { type: 'string', pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$" },
            uniqueItems: true,
          },
        },
      },
    },
    identities: {
      type: 'object',
      propertyNames: { pattern: '^[a-z][a-z0-9_-]{0,62}$' },
      additionalProperties: {
        type: 'object',
        additionalProperties: false,
        properties: {
          passwordHash: { type: 'string', minLength: 1, maxLength: 512 },
          password: { type: 'string', minLength: 1, maxLength: 512 },
          integrations: { type: 'array', items: { type: 'string' }, uniqueItems: true },
          reads: { enum: ['public', 'none'] },
          mode: { enum: ['enforce', 'report'] },
        },
      },
    },
    tokens: {
      type: 'object',
      additionalProperties: false,
      required: ['keyFile'],
      properties: { keyFile: { type: 'string', minLength: 1 }, maxTtl: duration },
    },
    globalDeny: {
      type: 'object',
      additionalProperties: false,
      properties: { hosts: hostList, cidrs: { type: 'array', items: cidr, uniqueItems: true } },
    },
    addressGuard: {
      type: 'object',
      additionalProperties: false,
      properties: {
        allow: {
          type: 'array',
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['cidr', 'hosts'],
            properties: { cidr, hosts: { ...hostList, minItems: 1 } },
          },
        },
        deny: { type: 'array', items: cidr, uniqueItems: true },
      },
    },
    dns: {
      type: 'object',
      additionalProperties: false,
      properties: {
        servers: { type: 'array', items: { type: 'string', minLength: 1, maxLength: 64 }, minItems: 1 },
        timeoutMs: { type: 'integer', minimum: 50, maximum: 60000 },
        minTtlS: { type: 'integer', minimum: 0, maximum: 86400 },
        maxTtlS: { type: 'integer', minimum: 0, maximum: 86400 },
      },
    },
    upstream: {
      type: 'object',
      additionalProperties: false,
      properties: {
        caFile: { type: 'string', minLength: 1 },
        connectTimeoutMs: { type: 'integer', minimum: 50, maximum: 120000 },
        tunnelHelloTimeoutMs: { type: 'integer', minimum: 50, maximum: 120000 },
      },
    },
    limits: {
      type: 'object',
      additionalProperties: false,
      properties: {
        headersTimeoutMs: positiveInt,
        idleTimeoutMs: positiveInt,
        maxHeaderBytes: { type: 'integer', minimum: 1024, maximum: 1048576 },
        maxConnections: positiveInt,
        maxConnectionsPerIdentity: positiveInt,
        requestsPerSecond: { type: 'number', exclusiveMinimum: 0 },
        burst: positiveInt,
        authFailuresPerMinute: positiveInt,
        drainMs: { type: 'integer', minimum: 0, maximum: 600000 },
      },
    },
    inspection: INSPECTION_SCHEMA,
    admin: {
      type: 'object',
      additionalProperties: false,
      properties: { tokenFile: { type: 'string', minLength: 1 }, protectReads: { type: 'boolean' } },
    },
    killSwitch: {
      type: 'object',
      additionalProperties: false,
      properties: { file: { type: 'string', minLength: 1 } },
    },
    workers: { anyOf: [{ type: 'integer', minimum: 1, maximum: 256 }, { const: 'auto' }] },
    containment: {
      type: 'object',
      additionalProperties: false,
      properties: {
        probe: {
          type: 'object',
          additionalProperties: false,
          required: ['target'],
          properties: {
            target: { type: 'string', minLength: 3, maxLength: 64 },
            intervalS: { type: 'integer', minimum: 5, maximum: 86400 },
            timeoutMs: { type: 'integer', minimum: 100, maximum: 60000 },
            uid: { type: 'integer', minimum: 1, maximum: 4294967294 },
            gid: { type: 'integer', minimum: 1, maximum: 4294967294 },
          },
        },
      },
    },
    log: {
      type: 'object',
      additionalProperties: false,
      properties: {
        level: { enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] },
        redactPaths: { type: 'array', maxItems: 16, items: { type: 'string', minLength: 2, maxLength: 200 } },
      },
    },
    // The credential broker (see the block above).
    secrets: SECRETS_SCHEMA,
    credentials: CREDENTIALS_SCHEMA,
  },
} as const;

export const TOP_LEVEL_KEYS = Object.keys(CONFIG_SCHEMA.properties);
