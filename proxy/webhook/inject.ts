// Sidecar injection as a pure function: an AdmissionReview in, an AdmissionReview out (admission.k8s.io/v1).
// No I/O: the server hands in the parsed body, the path it came on and the CA certificate it read.
//
// Which pods: the MutatingWebhookConfiguration's selectors decide which reviews arrive, and the path says which
// webhook sent it. /inject/namespace: the namespace is labelled, so every pod is injected unless it opts out
// (label sluice.dev/inject=false). /inject/pod: the namespace is not labelled, so only a pod labelled
// sluice.dev/inject=true is. The pod's label is checked here again, so a selector mistake cannot inject an
// unlabelled pod.
//
// Fail closed: a review that cannot be read, a pod the sidecar could not contain (host network, a container
// that runs as or may become Sluice's UID, one that may rewrite the rules) and a pod whose names clash with the
// injected ones are all answered allowed: false with the reason, never allowed through untouched.
import type { InjectionConfig, K8sObject } from './injection-config.js';

export const LABEL_INJECT = 'sluice.dev/inject';
export const ANNOTATION_STATUS = 'sluice.dev/status';
export const ANNOTATION_IDENTITY = 'sluice.dev/identity';
export const ANNOTATION_TOKEN_SECRET = 'sluice.dev/token-secret';
export const ANNOTATION_CA_CERT = 'sluice.dev/ca.crt';

export type Scope = 'namespace' | 'pod';

export interface JsonPatchOp {
  readonly op: 'add';
  readonly path: string;
  readonly value: unknown;
}

export interface AdmissionResponse {
  readonly uid: string;
  readonly allowed: boolean;
  readonly patchType?: 'JSONPatch';
  readonly patch?: string;
  readonly status?: { readonly code: number; readonly message: string };
  readonly warnings?: readonly string[];
}

export interface AdmissionReviewOut {
  readonly apiVersion: 'admission.k8s.io/v1';
  readonly kind: 'AdmissionReview';
  readonly response: AdmissionResponse;
}

/** What happened, for the log line (never the pod spec). */
export interface ReviewOutcome {
  readonly review: AdmissionReviewOut;
  readonly result: 'injected' | 'skipped' | 'refused' | 'malformed';
  readonly reason: string;
  readonly patch: readonly JsonPatchOp[];
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
/** A field read from the pod as an object, `{}` when it is absent or not one. */
const objOf = (v: unknown): Obj => (isObj(v) ? v : {});

/** A container or volume: podOf has checked that each has a string name. */
interface Named extends Obj {
  readonly name: string;
}
const isNamedList = (v: unknown): v is Named[] =>
  Array.isArray(v) && v.every((x) => isObj(x) && typeof x.name === 'string');

/** The pod as podOf has checked it; the rest of its fields stay unknown and are read with objOf. */
interface Pod {
  readonly metadata?: Obj;
  readonly spec: Obj & { containers: Named[]; initContainers?: Named[]; volumes?: Named[] };
}

/** RFC 6901: `~` and `/` inside a key. */
export const pointer = (key: string): string => key.replace(/~/g, '~0').replace(/\//g, '~1');

const respond = (uid: string, r: Omit<AdmissionResponse, 'uid'>): AdmissionReviewOut => ({
  apiVersion: 'admission.k8s.io/v1',
  kind: 'AdmissionReview',
  response: { uid, ...r },
});

function refuse(uid: string, code: number, reason: string, result: 'refused' | 'malformed' = 'refused'): ReviewOutcome {
  return {
    review: respond(uid, { allowed: false, status: { code, message: `sluice injector: ${reason}` } }),
    result,
    reason,
    patch: [],
  };
}

const skip = (uid: string, reason: string): ReviewOutcome => ({
  review: respond(uid, { allowed: true }),
  result: 'skipped',
  reason,
  patch: [],
});

const SECRET_REF = /^([a-z0-9]([-a-z0-9.]*[a-z0-9])?)(?:\/([-._a-zA-Z0-9]+))?$/;
const IDENTITY = /^[^:@/\s]{1,128}$/;
/** Capabilities that let a container rewrite the rules, or take Sluice's UID and leave with its exemption. */
const ESCAPE_CAPS = new Set(['ALL', 'NET_ADMIN', 'SYS_ADMIN', 'SETUID', 'SETGID', 'SYS_PTRACE', 'BPF']);

/** The review's pod, or why there is none. */
function podOf(body: unknown): { uid: string; pod: Pod; namespace: string } | { uid: string; error: string } {
  if (!isObj(body)) return { uid: '', error: 'the body is not a JSON object' };
  const req = body.request;
  const uid = isObj(req) && typeof req.uid === 'string' ? req.uid : '';
  if (body.apiVersion !== 'admission.k8s.io/v1' || body.kind !== 'AdmissionReview')
    return { uid, error: 'not an admission.k8s.io/v1 AdmissionReview' };
  if (!isObj(req) || !uid) return { uid, error: 'the review has no request.uid' };
  const kind = req.kind;
  if (!isObj(kind) || kind.group !== '' || kind.version !== 'v1' || kind.kind !== 'Pod')
    return { uid, error: 'the review is not about a v1 Pod' };
  if (req.subResource) return { uid, error: `unexpected subresource ${String(req.subResource)}` };
  if (req.operation !== 'CREATE')
    return { uid, error: `unexpected operation ${String(req.operation)} (the injector handles CREATE)` };
  const pod = req.object;
  if (!isObj(pod) || !isObj(pod.spec) || !Array.isArray(pod.spec.containers))
    return { uid, error: 'request.object is not a pod with spec.containers' };
  const spec = pod.spec;
  for (const list of ['containers', 'initContainers'] as const) {
    if (spec[list] !== undefined && !isNamedList(spec[list])) return { uid, error: `spec.${list} is malformed` };
  }
  if (spec.volumes !== undefined && !isNamedList(spec.volumes)) return { uid, error: 'spec.volumes is malformed' };
  const metadata = pod.metadata;
  if (metadata !== undefined && !isObj(metadata)) return { uid, error: 'metadata is malformed' };
  const namespace = typeof req.namespace === 'string' ? req.namespace : String(metadata?.namespace ?? '');
  return { uid, pod: { metadata, spec: spec as Pod['spec'] }, namespace };
}

const stringMap = (v: unknown): Record<string, string> =>
  isObj(v)
    ? (Object.fromEntries(Object.entries(v).filter(([, x]) => typeof x === 'string')) as Record<string, string>)
    : {};

/** Why the pod cannot be contained, or null. */
function uncontainable(pod: Pod, config: InjectionConfig): string | null {
  const spec = pod.spec;
  if (spec.hostNetwork === true)
    return "the pod uses the host network: neither a sidecar's rules nor NetworkPolicies would contain it (and the rules would land on the node)";
  if (config.mode !== 'sidecar') return null;
  if (spec.shareProcessNamespace === true)
    return "shareProcessNamespace would put Sluice's process in reach of the workload; remove it";
  if (spec.hostPID === true || spec.hostIPC === true)
    return "hostPID/hostIPC would put the node's processes in reach of the workload";
  const podUid = objOf(spec.securityContext).runAsUser;
  for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
    const sc = objOf(c.securityContext);
    const uid = sc.runAsUser ?? podUid;
    if (uid === config.sluiceUid)
      return `container "${c.name}" runs as UID ${config.sluiceUid}, Sluice's UID, whose traffic the rules exempt; pick another UID`;
    if (sc.privileged === true) return `container "${c.name}" is privileged: it could rewrite the rules`;
    const add = objOf(sc.capabilities).add;
    const added: unknown[] = Array.isArray(add) ? add : [];
    const bad = added.map((x) => String(x).toUpperCase().replace(/^CAP_/, '')).filter((x) => ESCAPE_CAPS.has(x));
    if (bad.length)
      return `container "${c.name}" adds ${bad.join(', ')}: enough to rewrite the rules or take Sluice's UID`;
  }
  return null;
}

/** The names this pod gives the proxy settings, from its annotations or the defaults; or why they are bad. */
function credentials(
  annotations: Record<string, string>,
  config: InjectionConfig,
): { identity: string; token: { name: string; key: string } | null } | string {
  const identity = annotations[ANNOTATION_IDENTITY] ?? config.identity;
  if (!IDENTITY.test(identity)) return `annotation ${ANNOTATION_IDENTITY} "${identity}" is not an identity name`;
  const ref = annotations[ANNOTATION_TOKEN_SECRET];
  if (ref === undefined) return { identity, token: config.tokenSecret };
  const m = SECRET_REF.exec(ref);
  if (!m) return `annotation ${ANNOTATION_TOKEN_SECRET} "${ref}" must be SECRET or SECRET/KEY`;
  return { identity, token: { name: m[1]!, key: m[3] ?? 'token' } };
}

/** One container with the proxy settings, the CA mounts and the dropped capabilities added. */
function mutateContainer(
  c: Named,
  env: readonly K8sObject[],
  mounts: readonly K8sObject[],
  drop: readonly string[],
): Obj | string {
  const out: Obj = structuredClone(c);
  const ownEnv: unknown[] = Array.isArray(out.env) ? out.env : [];
  const have = new Set(ownEnv.map((e) => objOf(e).name));
  // Appended after the container's own variables: `$(SLUICE_TOKEN)` in the proxy URL expands only from
  // variables defined earlier in the list, and a container that sets a name itself keeps its own value.
  const add = env.filter((e) => !have.has(e.name));
  if (add.length) out.env = [...ownEnv, ...structuredClone(add)];
  if (mounts.length) {
    const existing: unknown[] = Array.isArray(out.volumeMounts) ? out.volumeMounts : [];
    for (const m of mounts) {
      if (existing.some((x) => objOf(x).mountPath === m.mountPath || objOf(x).name === m.name))
        return `container "${c.name}" already mounts ${String(m.mountPath)} or a volume named ${String(m.name)}`;
    }
    out.volumeMounts = [...existing, ...structuredClone(mounts as K8sObject[])];
  }
  if (drop.length) {
    const sc = objOf(out.securityContext);
    const caps = objOf(sc.capabilities);
    const dropped: string[] = Array.isArray(caps.drop) ? caps.drop.map(String) : [];
    if (!dropped.includes('ALL')) {
      const missing = drop.filter((d) => !dropped.includes(d));
      if (missing.length) out.securityContext = { ...sc, capabilities: { ...caps, drop: [...dropped, ...missing] } };
    }
  }
  return out;
}

/** Decide and build the response for one review body. `caCert` is the PEM the config's caCertFile held. */
export function review(
  body: unknown,
  scope: Scope,
  config: InjectionConfig,
  caCert: string | null = null,
): ReviewOutcome {
  const p = podOf(body);
  if ('error' in p) return refuse(p.uid, 400, `malformed review: ${p.error}`, 'malformed');
  const { uid, pod } = p;
  const labels = stringMap(pod.metadata?.labels);
  const annotations = stringMap(pod.metadata?.annotations);
  const optIn = labels[LABEL_INJECT];
  if (scope === 'pod' && optIn !== 'true') return skip(uid, `the pod is not labelled ${LABEL_INJECT}=true`);
  if (scope === 'namespace' && optIn === 'false') return skip(uid, `the pod opts out (${LABEL_INJECT}=false)`);
  const ours = new Set(config.inject.initContainers.map((c) => c.name));
  const allContainers: Named[] = [...(pod.spec.initContainers ?? []), ...pod.spec.containers];
  if (annotations[ANNOTATION_STATUS] === 'injected') {
    // Injected already (a re-invocation, or a pod copied from an injected one): never twice.
    return skip(uid, 'already injected');
  }
  const clash = allContainers.find((c) => ours.has(c.name));
  if (clash)
    return refuse(
      uid,
      409,
      `the pod already has a container named "${clash.name}" without the ${ANNOTATION_STATUS} annotation; rename it`,
    );
  const volumeClash = (pod.spec.volumes ?? []).find((v) => config.inject.volumes.some((o) => o.name === v.name));
  if (volumeClash) return refuse(uid, 409, `the pod already has a volume named "${volumeClash.name}"; rename it`);
  const why = uncontainable(pod, config);
  if (why) return refuse(uid, 403, why);
  const creds = credentials(annotations, config);
  if (typeof creds === 'string') return refuse(uid, 400, creds);
  if (config.caCertFile && !caCert)
    return refuse(
      uid,
      503,
      `the CA certificate (${config.caCertFile}) is not readable yet; the pod would not trust Sluice's inspection`,
    );

  const warnings: string[] = [];
  const env: K8sObject[] = [{ name: 'SLUICE_IDENTITY', value: creds.identity }];
  if (creds.token)
    env.push({ name: 'SLUICE_TOKEN', valueFrom: { secretKeyRef: { name: creds.token.name, key: creds.token.key } } });
  else if (!allContainers.every((c) => Array.isArray(c.env) && c.env.some((e) => objOf(e).name === 'SLUICE_TOKEN'))) {
    warnings.push(
      `no run token: set annotation ${ANNOTATION_TOKEN_SECRET}=SECRET[/KEY] or SLUICE_TOKEN in each container; until then Sluice answers 407`,
    );
  }
  env.push(...config.inject.env);

  const mutated: Obj[] = [];
  for (const c of allContainers) {
    const m = mutateContainer(c, env, config.inject.volumeMounts, config.inject.dropCapabilities);
    if (typeof m === 'string') return refuse(uid, 409, m);
    mutated.push(m);
  }
  const ownInit = mutated.slice(0, (pod.spec.initContainers ?? []).length);
  const apps = mutated.slice(ownInit.length);

  const patch: JsonPatchOp[] = [];
  const addMap = (parent: string, existing: unknown, entries: Record<string, string>) => {
    if (!Object.keys(entries).length) return;
    if (!isObj(existing)) patch.push({ op: 'add', path: parent, value: entries });
    else
      for (const [k, v] of Object.entries(entries))
        patch.push({ op: 'add', path: `${parent}/${pointer(k)}`, value: v });
  };
  if (!isObj(pod.metadata)) patch.push({ op: 'add', path: '/metadata', value: {} });
  const newAnnotations: Record<string, string> = { ...config.inject.annotations, [ANNOTATION_STATUS]: 'injected' };
  if (caCert) newAnnotations[ANNOTATION_CA_CERT] = caCert;
  addMap('/metadata/annotations', pod.metadata?.annotations, newAnnotations);
  addMap('/metadata/labels', pod.metadata?.labels, { ...config.inject.labels });
  // Whole lists: the injected init containers go first (Sluice up, rules applied before any of the pod's own
  // code runs, its init containers included), and every container is rewritten anyway. `add` on an existing
  // member replaces it (RFC 6902 §4.1).
  patch.push({
    op: 'add',
    path: '/spec/initContainers',
    value: [...structuredClone(config.inject.initContainers as K8sObject[]), ...ownInit],
  });
  patch.push({ op: 'add', path: '/spec/containers', value: apps });
  if (config.inject.volumes.length) {
    if (!Array.isArray(pod.spec.volumes))
      patch.push({ op: 'add', path: '/spec/volumes', value: structuredClone(config.inject.volumes as K8sObject[]) });
    else
      for (const v of config.inject.volumes)
        patch.push({ op: 'add', path: '/spec/volumes/-', value: structuredClone(v) });
  }
  const review = respond(uid, {
    allowed: true,
    patchType: 'JSONPatch',
    patch: Buffer.from(JSON.stringify(patch)).toString('base64'),
    ...(warnings.length ? { warnings } : {}),
  });
  return { review, result: 'injected', reason: config.mode, patch };
}
