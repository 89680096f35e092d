// JSON Schema of the runtime half of sluice.yaml: how the process runs (listeners, resolver, upstream,
// limits, admin, workers, logging, the containment probe), as opposed to the policy of what may be reached
// (firewall/config-schema.ts). One file holds both; settings/config.ts checks it against their union. The
// defaults live here (ajv `useDefaults`) and the TypeScript type is derived from this schema (FromSchema).

const listenAddr = {
  anyOf: [{ type: 'string', minLength: 3, maxLength: 64 }, { type: 'null' }, { const: false }],
} as const;
const positiveInt = { type: 'integer', minimum: 1 } as const;

export const SETTINGS_SCHEMA = {
  $id: 'https://sluice.dev/schema/sluice-settings.json',
  type: 'object',
  additionalProperties: false,
  properties: {
    listen: {
      type: 'object',
      additionalProperties: false,
      // The section as a whole: written, it replaces this (a key it leaves out is off).
      default: { http: '127.0.0.1:3128', socks5: '127.0.0.1:1080', admin: '127.0.0.1:9090' },
      properties: { http: listenAddr, socks5: listenAddr, admin: listenAddr, dns: listenAddr },
    },
    dns: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        // Absent: the system's resolvers (/etc/resolv.conf).
        servers: { type: 'array', items: { type: 'string', minLength: 1, maxLength: 64 }, minItems: 1 },
        timeoutMs: { type: 'integer', minimum: 50, maximum: 60000, default: 2000 },
        minTtlS: { type: 'integer', minimum: 0, maximum: 86400, default: 5 },
        maxTtlS: { type: 'integer', minimum: 0, maximum: 86400, default: 300 },
      },
    },
    upstream: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        caFile: { type: 'string', minLength: 1 },
        connectTimeoutMs: { type: 'integer', minimum: 50, maximum: 120000, default: 10000 },
        tunnelHelloTimeoutMs: { type: 'integer', minimum: 50, maximum: 120000, default: 10000 },
      },
    },
    limits: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        headersTimeoutMs: { ...positiveInt, default: 10000 },
        idleTimeoutMs: { ...positiveInt, default: 60000 },
        maxHeaderBytes: { type: 'integer', minimum: 1024, maximum: 1048576, default: 16384 },
        maxConnections: { ...positiveInt, default: 8192 },
        maxConnectionsPerIdentity: { ...positiveInt, default: 2048 },
        // Absent: no rate limit.
        requestsPerSecond: { type: 'number', exclusiveMinimum: 0 },
        // Absent: one second's worth of requestsPerSecond (settings/settings.ts).
        burst: positiveInt,
        authFailuresPerMinute: { ...positiveInt, default: 30 },
        drainMs: { type: 'integer', minimum: 0, maximum: 600000, default: 10000 },
      },
    },
    admin: {
      type: 'object',
      additionalProperties: false,
      default: {},
      // protectReads absent: true when listen.admin is beyond loopback (settings/settings.ts).
      properties: { tokenFile: { type: 'string', minLength: 1 }, protectReads: { type: 'boolean' } },
    },
    killSwitch: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: { file: { type: 'string', minLength: 1 } },
    },
    workers: { anyOf: [{ type: 'integer', minimum: 1, maximum: 256 }, { const: 'auto' }], default: 1 },
    containment: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        probe: {
          type: 'object',
          additionalProperties: false,
          required: ['target'],
          properties: {
            target: { type: 'string', minLength: 3, maxLength: 64 },
            intervalS: { type: 'integer', minimum: 5, maximum: 86400, default: 60 },
            timeoutMs: { type: 'integer', minimum: 100, maximum: 60000, default: 3000 },
            // The probe runs as `nobody` unless told otherwise.
            uid: { type: 'integer', minimum: 1, maximum: 4294967294, default: 65534 },
            gid: { type: 'integer', minimum: 1, maximum: 4294967294, default: 65534 },
          },
        },
      },
    },
    log: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        level: { enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], default: 'info' },
        redactPaths: {
          type: 'array',
          maxItems: 16,
          items: { type: 'string', minLength: 2, maxLength: 200 },
          default: [],
        },
      },
    },
  },
} as const;
