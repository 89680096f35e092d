// What the injector adds to a pod: a YAML file the chart renders from the same named templates as its own
// sidecar example (one source of truth for the containers), validated here at the edge and frozen. The
// webhook itself stays generic: it splices what this file says into each pod it is asked about.
import { readFileSync } from 'node:fs';
import { Ajv } from 'ajv';
import { parseDocument } from 'yaml';

export type K8sObject = Record<string, unknown>;

export interface InjectionConfig {
  /** sidecar: Sluice and the iptables init container go into the pod; gateway: only the proxy settings. */
  readonly mode: 'sidecar' | 'gateway';
  /** Sluice's UID, which the sidecar rules exempt: no container of an injected pod may run as it. */
  readonly sluiceUid: number;
  /** The identity in the proxy URL unless the pod names one (annotation sluice.dev/identity). */
  readonly identity: string;
  /** Where SLUICE_TOKEN comes from unless the pod names a Secret (annotation sluice.dev/token-secret). */
  readonly tokenSecret: { readonly name: string; readonly key: string } | null;
  /** A PEM file (the inspection CA's certificate) published into the pod as an annotation, or null. */
  readonly caCertFile: string | null;
  readonly inject: {
    readonly annotations: Readonly<Record<string, string>>;
    readonly labels: Readonly<Record<string, string>>;
    /** Put before the pod's own init containers, in this order. */
    readonly initContainers: readonly K8sObject[];
    readonly volumes: readonly K8sObject[];
    /** Added to every container of the pod (its own init containers too) unless it sets the name itself. */
    readonly env: readonly K8sObject[];
    readonly volumeMounts: readonly K8sObject[];
    /** Dropped from every container of the pod (sidecar: SETUID and SETGID, so nothing can become Sluice's UID). */
    readonly dropCapabilities: readonly string[];
  };
}

const NAME = { type: 'string', pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$', maxLength: 253 } as const;
const STRING_MAP = { type: 'object', additionalProperties: { type: 'string' } } as const;

const SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['mode', 'sluiceUid', 'identity', 'inject'],
  properties: {
    mode: { enum: ['sidecar', 'gateway'] },
    sluiceUid: { type: 'integer', minimum: 1 },
    identity: { type: 'string', minLength: 1, pattern: '^[^:@/\\s]+$' },
    tokenSecret: {
      anyOf: [
        { type: 'null' },
        {
          type: 'object',
          additionalProperties: false,
          required: ['name', 'key'],
          properties: { name: NAME, key: { type: 'string', pattern: '^[-._a-zA-Z0-9]+$' } },
        },
      ],
    },
    caCertFile: { anyOf: [{ type: 'null' }, { type: 'string', minLength: 1 }] },
    inject: {
      type: 'object',
      additionalProperties: false,
      required: ['initContainers', 'volumes', 'env'],
      properties: {
        annotations: STRING_MAP,
        labels: STRING_MAP,
        initContainers: { type: 'array', items: { type: 'object', required: ['name'], properties: { name: NAME } } },
        volumes: { type: 'array', items: { type: 'object', required: ['name'], properties: { name: NAME } } },
        env: {
          type: 'array',
          items: { type: 'object', required: ['name'], properties: { name: { type: 'string', minLength: 1 } } },
        },
        volumeMounts: { type: 'array', items: { type: 'object', required: ['name', 'mountPath'] } },
        dropCapabilities: { type: 'array', items: { type: 'string', pattern: '^[A-Z_]+$' } },
      },
    },
  },
} as const;

const validate = new Ajv({ allErrors: true, strict: false }).compile(SCHEMA);

/** The file as the schema has checked it: what it may leave out is optional here. */
interface CheckedFile {
  readonly mode: InjectionConfig['mode'];
  readonly sluiceUid: number;
  readonly identity: string;
  readonly tokenSecret?: { readonly name: string; readonly key: string } | null;
  readonly caCertFile?: string | null;
  readonly inject: {
    readonly annotations?: Record<string, string>;
    readonly labels?: Record<string, string>;
    readonly initContainers: K8sObject[];
    readonly volumes: K8sObject[];
    readonly env: K8sObject[];
    readonly volumeMounts?: K8sObject[];
    readonly dropCapabilities?: string[];
  };
}

export type ConfigLoad =
  | { readonly ok: true; readonly config: InjectionConfig }
  | { readonly ok: false; readonly problems: readonly string[] };

function deepFreeze<T>(v: T): T {
  if (v && typeof v === 'object') {
    for (const x of Object.values(v)) deepFreeze(x);
    Object.freeze(v);
  }
  return v;
}

export function parseInjectionConfig(text: string): ConfigLoad {
  const doc = parseDocument(text, { uniqueKeys: true, strict: true });
  if (doc.errors.length) return { ok: false, problems: doc.errors.map((e) => e.message.split('\n')[0]!) };
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    return { ok: false, problems: [(err as Error).message] };
  }
  if (!validate(raw))
    return { ok: false, problems: (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message}`) };
  const r = raw as CheckedFile;
  const config: InjectionConfig = {
    mode: r.mode,
    sluiceUid: r.sluiceUid,
    identity: r.identity,
    tokenSecret: r.tokenSecret ?? null,
    caCertFile: r.caCertFile ?? null,
    inject: {
      annotations: r.inject.annotations ?? {},
      labels: r.inject.labels ?? {},
      initContainers: r.inject.initContainers,
      volumes: r.inject.volumes,
      env: r.inject.env,
      volumeMounts: r.inject.volumeMounts ?? [],
      dropCapabilities: r.inject.dropCapabilities ?? [],
    },
  };
  const problems: string[] = [];
  for (const kind of ['initContainers', 'volumes'] as const) {
    const seen = new Set<unknown>();
    for (const x of config.inject[kind]) {
      if (seen.has(x.name)) problems.push(`/inject/${kind}: "${String(x.name)}" appears twice`);
      seen.add(x.name);
    }
  }
  if (config.mode === 'sidecar' && !config.inject.initContainers.some((c) => c.restartPolicy === 'Always')) {
    problems.push('/inject/initContainers: sidecar mode needs the Sluice container with restartPolicy: Always');
  }
  return problems.length ? { ok: false, problems } : { ok: true, config: deepFreeze(config) };
}

export function loadInjectionConfig(path: string): ConfigLoad {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    return { ok: false, problems: [`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`] };
  }
  return parseInjectionConfig(text);
}
