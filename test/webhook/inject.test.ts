// The sidecar injector's decisions, on real AdmissionReview documents (fixtures/) and the injection config the
// chart renders (helm template): the patch is RFC 6902 (applied here by an independent implementation,
// fast-json-patch), the patched pod validates against the Kubernetes schema (kubernetes-models), and the
// injected iptables container is the chart's own — the one test/iptables/setup.test.ts runs with exactly its
// capabilities. Unlabelled, opted-out and already-injected pods are untouched; pods the sidecar could not
// contain and malformed reviews are refused (allowed: false), never crash and never pass.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import jsonpatch, { type Operation } from 'fast-json-patch';
import { type IContainer, type IPod, Pod } from 'kubernetes-models/v1';
import t, { type Test } from 'tap';
import { parse } from 'yaml';
import { type AdmissionResponse, type Scope, review } from '../../proxy/webhook/inject.js';
import { type InjectionConfig, parseInjectionConfig } from '../../proxy/webhook/injection-config.js';
import { named, one, podSpec, render } from '../packaging/helm.js';
import { restrictedViolations } from '../packaging/pod-security.js';
import { type SluiceYaml, checkSluiceConfig } from '../packaging/sluice-config.js';
import { repoPath } from '../helpers/repo.js';

const FIXTURES = repoPath('test/webhook/fixtures');
/** An AdmissionReview as the fixtures hold it (the last test checks each is one). */
interface ReviewFixture {
  apiVersion: string;
  request: { uid: string; object: IPod; [field: string]: unknown };
}
const fixture = (name: string) => JSON.parse(readFileSync(join(FIXTURES, name), 'utf8')) as ReviewFixture;
const CA_PEM = '-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n';

/** The injector's config as the chart renders it into its ConfigMap. */
function chartConfig(set: string[] = []): { config: InjectionConfig; manifests: ReturnType<typeof render> } {
  const manifests = render({ set: ['injector.enabled=true', ...set] });
  const cm = one(manifests, 'ConfigMap', 'egress-sluice-injector');
  const r = parseInjectionConfig(cm.data!['inject.yaml']!);
  if (!r.ok) throw new Error(`the chart's inject.yaml does not validate: ${r.problems.join('; ')}`);
  return { config: r.config, manifests };
}

const sidecar = chartConfig(['mode=sidecar']);
const gateway = chartConfig(['service.clusterIP=10.96.0.53']);

/** Applies the response's patch to the review's pod, as the API server would. */
function patched(body: ReviewFixture, response: AdmissionResponse): IPod {
  t.equal(response.patchType, 'JSONPatch');
  const ops = JSON.parse(Buffer.from(response.patch!, 'base64').toString('utf8')) as Operation[];
  t.equal(
    jsonpatch.validate(ops, structuredClone(body.request.object)),
    undefined,
    'a valid RFC 6902 patch for this pod',
  );
  return jsonpatch.applyPatch(structuredClone(body.request.object), ops, true, false).newDocument;
}

function validPod(t: Test, pod: IPod, what: string) {
  try {
    new Pod(pod).validate();
    t.pass(`${what}: the patched pod validates against the Kubernetes schema`);
  } catch (err) {
    t.fail(`${what}: ${(err as Error).message}`);
  }
}

const env = (c: IContainer) => Object.fromEntries((c.env ?? []).map((e) => [e.name, e.value ?? e.valueFrom]));

t.test('the chart renders a valid injection config for both modes', async (t) => {
  t.equal(sidecar.config.mode, 'sidecar');
  t.equal(gateway.config.mode, 'gateway');
  t.same(
    sidecar.config.inject.initContainers.map((c) => c.name),
    ['sluice', 'sluice-iptables'],
  );
  t.same(gateway.config.inject.initContainers, [], 'gateway mode adds no container without inspection');
  t.same(sidecar.config.inject.dropCapabilities, ['SETUID', 'SETGID']);
  const cfg = checkSluiceConfig(sidecar.config.inject.annotations['sluice.dev/config']!);
  t.same(cfg.problems, [], "the sidecar's sluice.yaml (carried in the pod annotation) validates");
  t.same(cfg.raw.listen, { admin: '0.0.0.0:9090', http: '127.0.0.1:3128', socks5: '127.0.0.1:1080' });
  t.notOk(
    parseInjectionConfig(
      'mode: sidecar\nsluiceUid: 10001\nidentity: a\ninject: { initContainers: [], volumes: [], env: [] }\n',
    ).ok,
    'sidecar mode without a native sidecar is refused',
  );
  t.notOk(parseInjectionConfig('mode: bogus').ok);
  t.notOk(parseInjectionConfig('a: [').ok);
});

t.test("sidecar: a Deployment's pod gets Sluice, the rules, the proxy variables, and stays valid", async (t) => {
  const body = fixture('agent-pod.json');
  const out = review(body, 'namespace', sidecar.config);
  t.equal(out.result, 'injected', out.reason);
  t.equal(out.review.response.uid, body.request.uid, 'the response answers this review');
  t.equal(out.review.response.allowed, true);
  const pod = patched(body, out.review.response);
  validPod(t, pod, 'agent');

  const inits = pod.spec!.initContainers!;
  t.same(
    inits.map((c) => c.name),
    ['sluice', 'sluice-iptables', 'fetch-deps'],
    "Sluice and the rules before any of the pod's own code",
  );
  const [sl, ipt, own] = [inits[0]!, inits[1]!, inits[2]!];
  t.equal(sl.restartPolicy, 'Always', 'a native sidecar');
  t.same(restrictedViolations({ securityContext: {}, containers: [sl] }), [], 'the sidecar is restricted');
  // The exact container the chart's example uses, which setup.test.ts runs with exactly these capabilities.
  const example = podSpec(one(render({ values: ['ci/sidecar-values.yaml'] }), 'Deployment', 'egress-sluice-example'))
    .initContainers![1];
  t.same(ipt, example, "the injected iptables container is the chart's own");
  t.same(
    ipt.securityContext!.capabilities,
    { drop: ['ALL'], add: ['NET_ADMIN', 'NET_RAW'] },
    'and exactly these capabilities',
  );
  t.match(ipt.command!.join(' '), /setup\.sh apply \/tmp\/sluice\.rules --test-uid current/);

  t.equal(pod.metadata!.annotations!['sluice.dev/status'], 'injected');
  t.equal(pod.metadata!.labels!['sluice.dev/sidecar'], 'true', 'the label the PodMonitor selects');
  t.equal(pod.metadata!.labels!.app, 'agent', "the pod's own labels are kept");
  t.same(checkSluiceConfig(pod.metadata!.annotations!['sluice.dev/config']).problems, []);
  const cfgVol = named(pod.spec!.volumes, 'sluice-config');
  t.same(
    cfgVol.downwardAPI!.items![0]!.fieldRef!.fieldPath,
    "metadata.annotations['sluice.dev/config']",
    "the config is the pod's own annotation",
  );
  t.ok(
    pod.spec!.volumes!.some((v) => v.name === 'work') &&
      pod.spec!.volumes!.some((v) => v.name === 'kube-api-access-x1'),
    "the pod's volumes are kept",
  );

  for (const c of [own, ...pod.spec!.containers]) {
    const e = env(c);
    for (const n of ['HTTP_PROXY', 'HTTPS_PROXY', 'http_proxy', 'https_proxy'])
      t.equal(e[n], 'http://$(SLUICE_IDENTITY):$(SLUICE_TOKEN)@127.0.0.1:3128', `${c.name} ${n}`);
    t.equal(e.NO_PROXY, 'localhost,127.0.0.1,::1');
    t.equal(e.no_proxy, 'localhost,127.0.0.1,::1');
    t.equal(e.NODE_USE_ENV_PROXY, '1');
    t.equal(e.SLUICE_IDENTITY, 'agent');
    const names = c.env!.map((x) => x.name);
    t.ok(
      names.indexOf('SLUICE_IDENTITY') < names.indexOf('HTTPS_PROXY'),
      'defined before the variables that expand it',
    );
    t.ok(
      c.securityContext!.capabilities!.drop!.includes('SETUID') &&
        c.securityContext!.capabilities!.drop!.includes('SETGID'),
      `${c.name} cannot switch to Sluice's UID`,
    );
    t.notOk(
      (c.volumeMounts ?? []).some((m) => m.name === 'sluice-secrets'),
      `${c.name} cannot read Sluice's secrets`,
    );
  }
  t.equal(env(pod.spec!.containers[0]!).LOG_LEVEL, 'info', "the container's own variables are kept, first");
  t.ok(
    out.review.response.warnings?.some((w) => /no run token/.test(w)),
    'no token source: a warning, and Sluice will answer 407',
  );
});

t.test('per-pod identity and token Secret; a pod labelled in an unlabelled namespace', async (t) => {
  const body = fixture('opted-in-pod.json');
  const out = review(body, 'pod', sidecar.config);
  t.equal(out.result, 'injected');
  const pod = patched(body, out.review.response);
  validPod(t, pod, 'opted-in');
  const e = env(pod.spec!.containers[0]!);
  t.equal(e.SLUICE_IDENTITY, 'ci');
  t.same(e.SLUICE_TOKEN, { secretKeyRef: { name: 'ci-run-token', key: 'value' } });
  t.equal(out.review.response.warnings, undefined);
  const bad = structuredClone(body);
  bad.request.object.metadata!.annotations!['sluice.dev/token-secret'] = '../etc/passwd';
  t.match(review(bad, 'pod', sidecar.config).review.response, { allowed: false, status: { code: 400 } });
});

t.test('untouched: an unlabelled pod, an opted-out pod, a pod already injected', async (t) => {
  const rows: [string, string, Scope][] = [
    ['bare-pod.json', 'unlabelled pod in an unlabelled namespace', 'pod'],
    ['opted-out-pod.json', 'opted out in a labelled namespace', 'namespace'],
  ];
  for (const [file, what, scope] of rows) {
    const out = review(fixture(file), scope, sidecar.config);
    t.equal(out.result, 'skipped', what);
    t.same(out.review.response, { uid: fixture(file).request.uid, allowed: true }, `${what}: allowed, no patch`);
  }
  const body = fixture('agent-pod.json');
  const once = patched(body, review(body, 'namespace', sidecar.config).review.response);
  const again = structuredClone(body);
  again.request.object = once;
  const second = review(again, 'namespace', sidecar.config);
  t.equal(second.result, 'skipped');
  t.equal(second.review.response.patch, undefined, 'never injected twice');
  const impostor = structuredClone(body);
  impostor.request.object.spec!.containers.push({ name: 'sluice', image: 'evil' });
  t.match(
    review(impostor, 'namespace', sidecar.config).review.response,
    { allowed: false, status: { code: 409 } },
    'a container posing as the sidecar is refused',
  );
});

t.test('pods the sidecar could not contain are refused, with the reason', async (t) => {
  const rows: [string, RegExp][] = [
    ['host-network-pod.json', /host network/],
    ['sluice-uid-pod.json', /UID 10001, Sluice's UID/],
    ['net-admin-pod.json', /NET_ADMIN/],
  ];
  for (const [file, reason] of rows) {
    const out = review(fixture(file), 'namespace', sidecar.config);
    t.equal(out.result, 'refused', file);
    t.equal(out.review.response.allowed, false);
    t.match(out.review.response.status?.message, reason);
  }
  t.equal(
    review(fixture('host-network-pod.json'), 'namespace', gateway.config).review.response.allowed,
    false,
    'gateway mode: host network bypasses NetworkPolicies too',
  );
  t.equal(
    review(fixture('sluice-uid-pod.json'), 'namespace', gateway.config).result,
    'injected',
    'gateway mode: the UID does not matter',
  );
});

t.test('malformed reviews: allowed false, never a crash', async (t) => {
  const good = fixture('bare-pod.json');
  const rows: [string, unknown][] = [
    ['null', null],
    ['a string', 'AdmissionReview'],
    ['an array', []],
    ['no request', { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' }],
    ['v1beta1', { ...good, apiVersion: 'admission.k8s.io/v1beta1' }],
    ['no uid', { ...good, request: { ...good.request, uid: undefined } }],
    [
      'not a pod',
      { ...good, request: { ...good.request, kind: { group: 'apps', version: 'v1', kind: 'Deployment' } } },
    ],
    ['UPDATE', { ...good, request: { ...good.request, operation: 'UPDATE' } }],
    ['no object', { ...good, request: { ...good.request, object: null } }],
    [
      'containers not a list',
      { ...good, request: { ...good.request, object: { metadata: {}, spec: { containers: 'x' } } } },
    ],
    ['a container without a name', { ...good, request: { ...good.request, object: { spec: { containers: [{}] } } } }],
    [
      'volumes not a list',
      { ...good, request: { ...good.request, object: { spec: { containers: [{ name: 'a' }], volumes: 7 } } } },
    ],
    [
      'metadata a string',
      { ...good, request: { ...good.request, object: { metadata: 'x', spec: { containers: [{ name: 'a' }] } } } },
    ],
  ];
  for (const [what, body] of rows) {
    for (const cfg of [sidecar.config, gateway.config]) {
      const out = review(body, 'namespace', cfg);
      t.equal(out.review.response.allowed, false, `${what} (${cfg.mode})`);
      t.equal(out.review.response.patch, undefined);
      t.equal(out.review.kind, 'AdmissionReview');
    }
  }
  t.equal(
    review(rows[7]![1], 'namespace', sidecar.config).review.response.uid,
    good.request.uid,
    'the uid is echoed whenever there is one',
  );
});

t.test('gateway mode: the proxy variables point at the gateway Service', async (t) => {
  const body = fixture('agent-pod.json');
  const out = review(body, 'namespace', gateway.config);
  t.equal(out.result, 'injected');
  const pod = patched(body, out.review.response);
  validPod(t, pod, 'gateway');
  t.same(
    pod.spec!.initContainers!.map((c) => c.name),
    ['fetch-deps'],
    'no sidecar',
  );
  t.equal(
    env(pod.spec!.containers[0]!).HTTPS_PROXY,
    'http://$(SLUICE_IDENTITY):$(SLUICE_TOKEN)@10.96.0.53:3128',
    'the pinned ClusterIP (no cluster DNS for workloads)',
  );
  t.equal(pod.spec!.containers[0]!.securityContext!.capabilities, undefined, 'capabilities untouched in gateway mode');
});

t.test('inspection: the CA certificate and bundle reach every container, never the key', async (t) => {
  for (const mode of ['sidecar', 'gateway']) {
    const { config, manifests } = chartConfig([`mode=${mode}`, 'inspection.enabled=true']);
    t.equal(config.caCertFile, '/etc/sluice-injector/ca/ca.crt');
    const body = fixture('agent-pod.json');
    t.match(
      review(body, 'namespace', config, null).review.response,
      { allowed: false, status: { code: 503 } },
      `${mode}: no CA readable yet → refused, not injected without trust`,
    );
    const out = review(body, 'namespace', config, CA_PEM);
    const pod = patched(body, out.review.response);
    validPod(t, pod, `${mode} + inspection`);
    t.equal(pod.metadata!.annotations!['sluice.dev/ca.crt'], CA_PEM);
    const inits = pod.spec!.initContainers!;
    const bundle = named(inits, 'sluice-ca-bundle');
    t.match(
      bundle.command!.join(' '),
      /sluice ca bundle --ca-cert \/etc\/sluice-ca\/cert\/ca\.crt > \/etc\/sluice-ca\/bundle\/ca-bundle\.pem/,
    );
    t.ok(
      inits.findIndex((c) => c.name === 'sluice-ca-bundle') < inits.findIndex((c) => c.name === 'fetch-deps'),
      "the bundle exists before the pod's own init containers run",
    );
    for (const c of [...pod.spec!.containers, named(inits, 'fetch-deps')]) {
      const e = env(c);
      for (const n of [
        'SSL_CERT_FILE',
        'REQUESTS_CA_BUNDLE',
        'PIP_CERT',
        'CURL_CA_BUNDLE',
        'GIT_SSL_CAINFO',
        'NPM_CONFIG_CAFILE',
      ])
        t.equal(e[n], '/etc/sluice-ca/bundle/ca-bundle.pem', `${c.name} ${n}`);
      t.equal(e.NODE_EXTRA_CA_CERTS, '/etc/sluice-ca/cert/ca.crt');
      t.same(
        c.volumeMounts!.filter((m) => m.name.startsWith('sluice-ca')).map((m) => m.mountPath),
        ['/etc/sluice-ca/cert', '/etc/sluice-ca/bundle'],
      );
    }
    const certVol = named(pod.spec!.volumes, 'sluice-ca-cert');
    t.same(
      certVol.downwardAPI!.items,
      [{ path: 'ca.crt', fieldRef: { fieldPath: "metadata.annotations['sluice.dev/ca.crt']" } }],
      "the certificate from the annotation, no Secret in the workload's reach",
    );
    const dep = one(manifests, 'Deployment', 'egress-sluice-injector');
    const caVol = named(podSpec(dep).volumes, 'ca-cert');
    t.same(
      caVol.secret!.items,
      [{ key: 'tls.crt', path: 'ca.crt' }],
      'the injector itself mounts the certificate only',
    );
    if (mode === 'sidecar') {
      const secrets = named(pod.spec!.volumes, 'sluice-secrets').projected!.sources!.map((s) => s.secret);
      t.same(
        secrets.at(-1),
        {
          name: 'sluice-inspection-ca',
          items: [
            { key: 'tls.crt', path: 'sluice-ca/ca.crt' },
            { key: 'tls.key', path: 'sluice-ca/ca.key' },
          ],
        },
        "the key only in Sluice's own volume",
      );
      const cfg = parse(pod.metadata!.annotations!['sluice.dev/config']!) as SluiceYaml;
      t.same(cfg.inspection, {
        caCertFile: '/run/secrets/sluice-ca/ca.crt',
        caKeyFile: '/run/secrets/sluice-ca/ca.key',
      });
    }
  }
});

t.test('every fixture is a real AdmissionReview shape', async (t) => {
  for (const f of readdirSync(FIXTURES)) {
    const b = fixture(f);
    t.equal(b.apiVersion, 'admission.k8s.io/v1', f);
    t.match(b.request.uid, /^[0-9a-f-]{36}$/);
    validPod(t, b.request.object, f);
  }
});
