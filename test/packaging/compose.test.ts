// compose/compose.yaml: valid against the compose-spec JSON schema (the copy dclint ships), no dclint errors,
// and the properties that make Sluice the only way out: an internal sandbox network with isolated gateway
// modes, a hardened workload that reaches only Sluice, host rules applied before the workload starts, and
// the metrics port on loopback only. compose/sluice.yaml passes Sluice's own validator and agrees with it.
import { spawnSync } from 'node:child_process';
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Ajv } from 'ajv';
import t from 'tap';
import { parse } from 'yaml';
import { REPO } from './helm.js';
import { type SluiceYaml, checkSluiceConfig } from './sluice-config.js';

/** The parts of compose.yaml these tests read (the compose-spec schema checks the whole file below). */
interface Service {
  readonly build?: { readonly target?: string };
  readonly user?: string | number;
  readonly read_only?: boolean;
  readonly tmpfs?: readonly string[];
  readonly cap_add?: readonly string[];
  readonly cap_drop?: readonly string[];
  readonly security_opt?: readonly string[];
  readonly restart?: string;
  readonly network_mode?: string;
  readonly networks?: readonly string[] | Readonly<Record<string, { readonly ipv4_address?: string } | null>>;
  readonly ports?: readonly string[];
  readonly dns?: readonly string[];
  readonly environment?: Readonly<Record<string, string>>;
  readonly volumes?: readonly string[];
  readonly secrets?: readonly string[];
  readonly entrypoint?: readonly string[];
  readonly command?: readonly string[];
  readonly healthcheck?: { readonly test?: readonly string[] };
  readonly depends_on?: Readonly<Record<string, { readonly condition: string }>>;
}
/** Sluice is on both networks, each at a fixed address. */
interface DualHomed extends Service {
  readonly networks: Readonly<Record<'sandbox' | 'egress', { readonly ipv4_address: string }>>;
}
interface ComposeFile {
  readonly services: {
    readonly sluice: DualHomed;
    readonly workload: Service;
    readonly firewall: Service;
    readonly selftest: Service;
    readonly [name: string]: Service;
  };
  readonly networks: Readonly<
    Record<
      'sandbox' | 'egress',
      {
        readonly internal?: boolean;
        readonly driver?: string;
        readonly driver_opts?: Readonly<Record<string, string>>;
        readonly ipam?: { readonly config: readonly { readonly subnet: string }[] };
      }
    >
  >;
  readonly secrets: Readonly<Record<string, { readonly file: string }>>;
}

const require = createRequire(import.meta.url);
const dclintDir = dirname(require.resolve('dclint/package.json'));
const composeFile = join(REPO, 'compose/compose.yaml');
// `<<: *hardened` merge keys are resolved the way compose resolves them.
const compose = parse(readFileSync(composeFile, 'utf8'), { merge: true }) as ComposeFile;
const policyText = readFileSync(join(REPO, 'compose/sluice.yaml'), 'utf8');
const policy = parse(policyText) as SluiceYaml;
const { sluice, workload, firewall, selftest } = compose.services;

function composeValidator() {
  const schema = JSON.parse(readFileSync(join(dclintDir, 'schemas/compose.schema.json'), 'utf8')) as Record<
    string,
    unknown
  >;
  // The schema names the draft-07 meta-schema by an https URL ajv does not register; it is draft-07 all the same.
  delete schema.$schema;
  return new Ajv({ allErrors: true, strict: false }).compile(schema);
}

t.test('valid against the compose-spec schema', async (t) => {
  const validate = composeValidator();
  t.ok(validate(compose), JSON.stringify(validate.errors, null, 2));
  const typo = structuredClone(compose);
  Object.assign(typo.services.workload, { read_onyl: true });
  t.notOk(validate(typo), 'the schema is strict: a misspelt key is rejected');
  const badNet = structuredClone(compose);
  Object.assign(badNet.networks.sandbox.ipam!, { config: 'x' });
  t.notOk(validate(badNet), 'and so is a wrong type');
});

t.test('dclint reports no errors', async (t) => {
  const r = spawnSync(
    process.execPath,
    [join(dclintDir, 'bin/dclint.cjs'), '--quiet', '--color', 'false', composeFile],
    { encoding: 'utf8' },
  );
  t.equal(r.status, 0, r.stdout + r.stderr);
});

t.test('the sandbox network has no way out but Sluice', async (t) => {
  const sandbox = compose.networks.sandbox;
  t.equal(sandbox.internal, true, 'internal: no route off the bridge');
  t.equal(sandbox.driver, 'bridge');
  t.equal(sandbox.driver_opts!['com.docker.network.bridge.gateway_mode_ipv4'], 'isolated');
  t.equal(sandbox.driver_opts!['com.docker.network.bridge.gateway_mode_ipv6'], 'isolated');
  t.notOk(compose.networks.egress.internal, 'the egress network routes out');
  t.same(Object.keys(sluice.networks).sort(), ['egress', 'sandbox'], 'Sluice is dual-homed');
  t.same(workload.networks, ['sandbox'], 'the workload is on the sandbox only');
  for (const [name, svc] of Object.entries(compose.services)) {
    if (name === 'sluice' || name === 'firewall') continue;
    t.ok(svc.network_mode === undefined || svc.network_mode === 'none', `${name} is not on the host network`);
    const nets = Array.isArray(svc.networks) ? svc.networks : Object.keys(svc.networks ?? {});
    t.notOk(nets.includes('egress'), `${name} cannot reach the egress network`);
    t.notOk(svc.ports, `${name} publishes nothing`);
  }
});

t.test('the workload: proxy variables in both cases, Node opt-in, DNS guard, hardened', async (t) => {
  const env = workload.environment!;
  const sandboxIp = sluice.networks.sandbox.ipv4_address;
  const httpPort = policy.listen!.http!.split(':').at(-1);
  for (const name of ['HTTP_PROXY', 'HTTPS_PROXY', 'http_proxy', 'https_proxy']) {
    t.match(
      env[name],
      new RegExp(`^http://agent:\\$\\{SLUICE_TOKEN:-\\}@sluice:${httpPort}$`),
      `${name} points at Sluice`,
    );
  }
  for (const name of ['NO_PROXY', 'no_proxy']) t.equal(env[name], 'localhost,127.0.0.1,::1', name);
  t.equal(env.NODE_USE_ENV_PROXY, '1');
  for (const name of [
    'SSL_CERT_FILE',
    'REQUESTS_CA_BUNDLE',
    'PIP_CERT',
    'CURL_CA_BUNDLE',
    'GIT_SSL_CAINFO',
    'NPM_CONFIG_CAFILE',
  ])
    t.equal(env[name], '/etc/sluice-trust/bundle.pem', `${name}: the trust bundle`);
  t.equal(env.NODE_EXTRA_CA_CERTS, '/etc/sluice-trust/ca.crt');
  t.ok(workload.volumes!.includes('sluice-trust:/etc/sluice-trust:ro'));
  t.same(workload.depends_on!.trust, { condition: 'service_completed_successfully' });
  t.same(workload.dns, [sandboxIp], 'the resolver is the DNS guard on Sluice');
  t.equal(policy.listen!.dns, `${sandboxIp}:53`, 'and the DNS guard listens there');
  t.equal(policy.listen!.http, `${sandboxIp}:${httpPort}`, 'the proxy listens on the sandbox address only');
  t.same(workload.cap_drop, ['ALL']);
  t.equal(workload.read_only, true);
  t.ok(workload.security_opt!.includes('no-new-privileges:true'));
  t.not(String(workload.user).split(':')[0], '10001', 'never the UID the rules exempt');
  t.same(workload.depends_on!.sluice, { condition: 'service_healthy' }, 'starts once Sluice is healthy');
  t.same(workload.depends_on!.firewall, { condition: 'service_healthy' }, 'and while the host rules are in place');
  t.same(
    workload.depends_on!.selftest,
    { condition: 'service_completed_successfully' },
    'and only once the self-test proved direct egress fails',
  );
  t.equal(workload.restart, undefined, 'never restarted by Docker alone at boot, ahead of the rules');
});

t.test('Sluice: UID 10001, read-only, secrets at the shared paths, healthcheck, loopback-only metrics', async (t) => {
  t.equal(sluice.user, '10001:10001');
  t.equal(sluice.read_only, true);
  t.same(sluice.cap_drop, ['ALL']);
  t.ok(sluice.security_opt!.includes('no-new-privileges:true'));
  t.same(sluice.tmpfs, ['/tmp'], 'the only writable path');
  t.equal(sluice.environment!.SLUICE_ENV, 'production');
  t.ok(sluice.volumes!.includes('./sluice.yaml:/etc/sluice/sluice.yaml:ro'));
  t.equal(sluice.build!.target, 'runtime');
  // compose mounts a secret at /run/secrets/<name>.
  t.same(
    sluice.secrets!.map((s: string) => `/run/secrets/${s}`).sort(),
    [
      policy.admin!.tokenFile,
      policy.tokens!.keyFile,
      policy.inspection!.caCertFile,
      '/run/secrets/sluice-inspection-ca-key',
    ].sort(),
  );
  t.match(
    sluice.entrypoint!.join(' '),
    /install -m 0600 \/run\/secrets\/sluice-inspection-ca-key \/tmp\/inspection-ca\.key && exec node /,
    'the CA key reaches Sluice 0600, node replaces the shell',
  );
  t.equal(policy.inspection!.caKeyFile, '/tmp/inspection-ca.key');
  for (const s of sluice.secrets!)
    t.ok(compose.secrets[s]!.file.startsWith('./secrets/'), `${s} comes from a file on the host`);
  t.same(sluice.ports, ['127.0.0.1:9090:9090'], 'metrics published on the host loopback only');
  const egressIp = sluice.networks.egress.ipv4_address;
  t.equal(policy.listen!.admin, `${egressIp}:9090`, 'the admin listener is on the egress side, not the sandbox');
  t.equal(sluice.environment!.SLUICE_HEALTHCHECK_URL, `http://${egressIp}:9090/healthz`);
  t.equal(sluice.healthcheck!.test![0], 'CMD');
  t.match(sluice.healthcheck!.test!.join(' '), /fetch\(process\.env\.SLUICE_HEALTHCHECK_URL\)/);
});

t.test('the one-shot firewall service applies the docker-mode rules on the host', async (t) => {
  t.equal(firewall.network_mode, 'host');
  t.ok(firewall.cap_add!.includes('NET_ADMIN'));
  t.same(firewall.cap_drop, ['ALL'], 'and nothing else it does not need');
  t.equal(
    firewall.restart,
    'always',
    'Docker starts it again after a host reboot: the kernel rules do not survive one',
  );
  t.equal(firewall.build!.target, 'firewall');
  t.equal(
    firewall.environment!.IPTABLES_BACKEND,
    'auto',
    "the host's backend (nft or legacy), found by where DOCKER-USER is",
  );
  const cmd = firewall.command!.join(' ');
  t.match(cmd, /sluice firewall render --mode docker/);
  t.match(cmd, /\/app\/iptables\/setup\.sh apply \/tmp\/sluice\.rules &&/);
  t.match(
    cmd,
    /while sleep 30; do \/app\/iptables\/setup\.sh verify \/tmp\/sluice\.rules --no-selftest 2>\/dev\/null \|\| \/app\/iptables\/setup\.sh apply \/tmp\/sluice\.rules --no-selftest; done/,
    'stays and re-applies what goes missing',
  );
  t.same(
    firewall.healthcheck!.test,
    ['CMD', '/app/iptables/setup.sh', 'verify', '/tmp/sluice.rules', '--no-selftest'],
    'healthy only while the rules are installed',
  );
  t.match(
    cmd,
    new RegExp(`--bridge ${compose.networks.sandbox.driver_opts!['com.docker.network.bridge.name']}\\b`),
    'the sandbox bridge by name',
  );
  t.match(cmd, new RegExp(`--subnet ${compose.networks.sandbox.ipam!.config[0]!.subnet.replace(/[./]/g, '\\$&')}`));
  t.match(cmd, new RegExp(`--proxy ${sluice.networks.sandbox.ipv4_address.replace(/\./g, '\\.')}\\b`));
});

t.test("compose/sluice.yaml passes Sluice's validator", async (t) => {
  const r = checkSluiceConfig(policyText);
  t.same(r.problems, []);
  t.equal(r.raw.mode, 'enforce');
  t.ok(Object.keys(r.raw.identities!).length > 0, 'production mode needs identities');
});

t.test('init-secrets.sh makes both secrets once and never replaces them', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-compose-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'secrets'));
  copyFileSync(join(REPO, 'compose/init-secrets.sh'), join(dir, 'init-secrets.sh'));
  const run = () => spawnSync('sh', [join(dir, 'init-secrets.sh')], { encoding: 'utf8' });
  const first = run();
  t.equal(first.status, 0, first.stderr);
  const read = (n: string) => readFileSync(join(dir, 'secrets', n), 'utf8').trim();
  const key = read('sluice-token-key');
  const admin = read('sluice-admin-token');
  t.match(key, /^[0-9a-f]{64}$/, 'a 32-byte key (Sluice needs at least 32)');
  t.match(admin, /^[0-9a-f]{64}$/);
  t.not(key, admin);
  for (const n of compose.services.sluice.secrets!) {
    const st = statSync(join(dir, 'secrets', n));
    t.ok(st.uid === 10001 || (st.mode & 0o777) === 0o444, `${n} is readable by UID 10001 in the container`);
    t.equal(st.mode & 0o022, 0, `${n} is writable by its owner only`);
  }
  t.equal(run().status, 0);
  t.equal(read('sluice-token-key'), key, 'a second run keeps the key, so tokens already issued stay valid');
  t.same(
    readFileSync(join(REPO, 'compose/secrets/.gitignore'), 'utf8')
      .split('\n')
      .filter((l) => l && !l.startsWith('#')),
    ['*', '!.gitignore'],
    'secrets are never committed',
  );
});

t.test('the self-test at apply: a throwaway container on the sandbox proves direct egress fails', async (t) => {
  t.same(selftest.networks, ['sandbox'], 'where a workload sits');
  t.same(selftest.depends_on!.firewall, { condition: 'service_healthy' }, 'after the rules');
  t.equal(selftest.restart, 'no');
  t.same(selftest.entrypoint, ['node', '/check/egress-check.mjs']);
  t.ok(
    selftest.volumes!.includes('../charts/sluice/files/egress-check.mjs:/check/egress-check.mjs:ro'),
    'the same script as helm test',
  );
  t.equal(selftest.environment!.SLUICE_CHECK, 'containment');
  t.match(selftest.environment!.SLUICE_DIRECT_TCP, /\[2606:4700:4700::1111\]:443/, 'IPv6 too');
  t.equal(selftest.environment!.SLUICE_PROXY, `http://sluice:${policy.listen!.http!.split(':').at(-1)}`);
  t.same(selftest.cap_drop, ['ALL']);
  t.not(String(selftest.user).split(':')[0], '10001');
});

t.test('init-secrets.sh refuses to run without openssl, and compose/README.md exists for it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-compose-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'secrets'));
  copyFileSync(join(REPO, 'compose/init-secrets.sh'), join(dir, 'init-secrets.sh'));
  mkdirSync(join(dir, 'bin'));
  for (const tool of ['dirname', 'chown', 'chmod'])
    symlinkSync(
      spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).stdout.trim(),
      join(dir, 'bin', tool),
    );
  const r = spawnSync('/bin/sh', [join(dir, 'init-secrets.sh')], { encoding: 'utf8', env: { PATH: join(dir, 'bin') } });
  t.equal(r.status, 1);
  t.match(r.stderr, /needs openssl .*compose\/README\.md/);
  t.same(readdirSync(join(dir, 'secrets')), [], 'nothing made');
  t.match(readFileSync(join(REPO, 'compose/init-secrets.sh'), 'utf8'), /compose\/README\.md/);
  const readme = readFileSync(join(REPO, 'compose/README.md'), 'utf8');
  for (const topic of [
    /init-secrets\.sh/,
    /openssl/,
    /IPTABLES_BACKEND=auto|iptables backend/i,
    /reboot/i,
    /selftest/,
    /systemd/,
  ])
    t.match(readme, topic);
});
