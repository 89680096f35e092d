// The Dockerfile: dockerfile-utils lint clean, and the properties operators rely on — multi-stage, node:24-slim,
// production dependencies only, the fixed UID the iptables rules exempt, a HEALTHCHECK that really works
// without curl, SIGTERM, and a build context that lets nothing but sources in.
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { validate } from 'dockerfile-utils';
import { REPO } from './helm.js';

const text = readFileSync(join(REPO, 'Dockerfile'), 'utf8');

interface Instruction {
  readonly op: string;
  readonly args: string;
}
interface Stage {
  readonly from: string;
  readonly name: string | null;
  readonly body: Instruction[];
}

/** Instructions grouped by stage; continuation lines joined, comments dropped. */
function parseDockerfile(source: string): { args: Instruction[]; stages: Stage[] } {
  const logical: string[] = [];
  let acc = '';
  for (const line of source.split('\n')) {
    if (/^\s*#/.test(line) && !acc) continue;
    if (/^\s*#/.test(line)) continue;
    if (line.endsWith('\\')) {
      acc += line.slice(0, -1) + ' ';
      continue;
    }
    acc += line;
    if (acc.trim()) logical.push(acc.trim());
    acc = '';
  }
  const args: Instruction[] = [];
  const stages: Stage[] = [];
  for (const l of logical) {
    const m = /^(\S+)\s*(.*)$/.exec(l)!;
    const ins = { op: m[1]!.toUpperCase(), args: m[2]!.replace(/\s+/g, ' ') };
    if (ins.op === 'FROM') {
      const f = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args)!;
      stages.push({ from: f[1]!, name: f[2] ?? null, body: [] });
    } else if (stages.length) stages.at(-1)!.body.push(ins);
    else args.push(ins);
  }
  return { args, stages };
}

const { args, stages } = parseDockerfile(text);
const stage = (name: string) => stages.find((s) => s.name === name)!;
const ops = (s: Stage, op: string) => s.body.filter((i) => i.op === op).map((i) => i.args);
const runtime = stages.at(-1)!;

t.test('dockerfile-utils lint is clean (library and CLI)', async (t) => {
  t.same(
    validate(text).map((d) => `${d.range.start.line + 1}: ${d.message}`),
    [],
    'no diagnostics',
  );
  const bin = join(REPO, 'node_modules/dockerfile-utils/bin/dockerfile-utils');
  const r = spawnSync(process.execPath, [bin, 'lint', join(REPO, 'Dockerfile')], { encoding: 'utf8' });
  t.equal(r.status, 0, r.stdout + r.stderr);
  t.equal(r.stdout.trim(), '', 'the CLI reports nothing');
});

t.test('multi-stage on node:24-slim; the default target is the runtime', async (t) => {
  const base = args.find((a) => a.op === 'ARG' && a.args.startsWith('NODE_IMAGE='))?.args ?? '';
  t.match(base, /^NODE_IMAGE=node:24-slim@sha256:[0-9a-f]{64}$/, 'one base image, node:24-slim, pinned by digest');
  t.match(text, /# The base image is pinned by digest: node:24-slim/, 'the tag it stands for, in a comment');
  t.ok(stages.length >= 3, 'build, production dependencies and runtime are separate stages');
  for (const s of stages)
    t.ok(
      s.from === '${NODE_IMAGE}' || stages.some((o) => o.name === s.from),
      `${s.name} starts from node:24-slim or a stage`,
    );
  t.equal(runtime.name, 'runtime', 'the last stage, built by default, is the runtime');
  t.ok(
    ops(stage('deps'), 'RUN').some((r) => /npm ci --omit=dev\b/.test(r)),
    'production dependencies only',
  );
  const buildRuns = ops(stage('build'), 'RUN');
  t.ok(
    buildRuns.some((r) => /tsc -p tsconfig\.build\.json/.test(r)),
    'the build stage compiles',
  );
  t.ok(
    buildRuns.some((r) => /npm ci --omit=dev\b/.test(r)),
    'the build stage starts from the production dependencies',
  );
  t.notOk(
    buildRuns.some((r) => /npm ci(?! --omit=dev)|npm install(?! --prefix \/tools)/.test(r)),
    'never the whole dev set',
  );
  t.notMatch(
    buildRuns.join(' '),
    /helm|kubectl|lambda-layer|kubernetes-models|\btap\b|dclint|dockerfile-utils/,
    'no test-only tool',
  );
  // The compiler and type packages it installs are exactly the versions the lockfile pins.
  const lock = JSON.parse(readFileSync(join(REPO, 'package-lock.json'), 'utf8'));
  const tools = [...buildRuns.join(' ').matchAll(/(@?[a-z0-9/-]+)@(\d+\.\d+\.\d+)/g)].map((m) => [m[1]!, m[2]!]);
  t.same(tools.map(([n]) => n).sort(), ['@types/dns-packet', '@types/node', 'json-schema-to-ts', 'typescript']);
  for (const [name, version] of tools)
    t.equal(version, lock.packages[`node_modules/${name}`].version, `${name}@${version} is the locked version`);
  const copies = ops(stage('base'), 'COPY');
  t.ok(
    copies.includes('--from=deps /app/node_modules ./node_modules'),
    'node_modules come from the production-only stage',
  );
  t.notOk(
    copies.some((c) => c.startsWith('--from=build') && c.includes('node_modules')),
    'never the dev node_modules',
  );
  t.notOk(
    [...ops(runtime, 'RUN'), ...ops(stage('base'), 'RUN')].some((r) => /apt-get|iptables/.test(r)),
    'iptables only in the firewall image',
  );
  t.ok(
    ops(stage('firewall'), 'RUN').some((r) => /apt-get install .*iptables/.test(r)),
    'the firewall target carries iptables',
  );
});

t.test('no frontend pull, no package manager at run time, OCI labels', async (t) => {
  t.notMatch(text, /^#\s*syntax\s*=/im, 'no `# syntax=` line: an air-gapped builder pulls no frontend');
  const rm = ops(stage('base'), 'RUN').join(' ');
  for (const path of [
    '/usr/local/lib/node_modules/npm',
    '/usr/local/lib/node_modules/corepack',
    '/usr/local/bin/npm',
    '/usr/local/bin/npx',
    '/usr/local/bin/corepack',
  ])
    t.ok(rm.includes(path), `removes ${path}`);
  const labels = ops(stage('base'), 'LABEL').join(' ');
  for (const key of ['title', 'description', 'licenses', 'version', 'revision', 'base.name'])
    t.match(labels, new RegExp(`org\\.opencontainers\\.image\\.${key.replace('.', '\\.')}=`), `label ${key}`);
  t.match(labels, /org\.opencontainers\.image\.licenses="Apache-2\.0"/);
  t.equal(
    JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')).license,
    'Apache-2.0',
    'the label agrees with package.json',
  );
});

t.test('runs as UID/GID 10001, the one the iptables rules exempt', async (t) => {
  t.same(ops(runtime, 'USER'), ['10001:10001'], 'numeric, so Kubernetes runAsNonRoot can verify it');
  t.ok(
    ops(stage('base'), 'RUN').some((r) => /groupadd .*--gid 10001/.test(r) && /useradd .*--uid 10001/.test(r)),
    'user exists with that UID',
  );
});

t.test('entry point, config path, ports, signal', async (t) => {
  t.same(ops(runtime, 'ENTRYPOINT'), ['["node", "/app/dist/proxy/cli.js"]']);
  t.same(ops(runtime, 'CMD'), ['["serve", "--config", "/etc/sluice/sluice.yaml"]']);
  t.same(ops(runtime, 'EXPOSE'), ['3128 1080 9090']);
  t.same(ops(runtime, 'STOPSIGNAL'), ['SIGTERM']);
  // dist/proxy/cli.js is what `npm run build` emits for proxy/cli.ts.
  const build = JSON.parse(readFileSync(join(REPO, 'tsconfig.build.json'), 'utf8'));
  t.equal(build.compilerOptions.outDir, 'dist');
  t.equal(build.compilerOptions.rootDir, '.');
  t.ok(
    readFileSync(join(REPO, 'proxy/cli.ts'), 'utf8').startsWith('#!/usr/bin/env node'),
    'cli.js keeps its shebang for /usr/local/bin/sluice',
  );
});

/** The HEALTHCHECK's exec-form command, as Docker would run it. */
function healthcheckArgv(): string[] {
  const hc = ops(runtime, 'HEALTHCHECK');
  if (hc.length !== 1) throw new Error('expected one HEALTHCHECK');
  const m = /CMD (\[.*\])$/.exec(hc[0]!);
  if (!m) throw new Error('HEALTHCHECK must use the exec form');
  return JSON.parse(m[1]!) as string[];
}

t.test('HEALTHCHECK: node fetch against /healthz, exit 0 only on success', async (t) => {
  const argv = healthcheckArgv();
  t.equal(argv[0], 'node', 'node:24-slim has no curl');
  t.match(argv.join(' '), /http:\/\/127\.0\.0\.1:9090\/healthz/, 'the admin listener by default');
  let status = 200;
  const paths: string[] = [];
  const server = createServer((req, res) => {
    paths.push(req.url ?? '');
    res.writeHead(status).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => server.close());
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/healthz`;
  // Asynchronously: the server answering it lives in this process.
  const run = (u: string) =>
    new Promise<number | null>((resolve) => {
      const child = spawn(process.execPath, argv.slice(1), {
        env: { ...process.env, SLUICE_HEALTHCHECK_URL: u },
        stdio: 'ignore',
      });
      child.on('exit', (code) => resolve(code));
    });
  t.equal(await run(url), 0, 'healthy');
  status = 503;
  t.equal(await run(url), 1, 'unhealthy');
  t.equal(await run('http://127.0.0.1:1/healthz'), 1, 'nothing listening');
  t.same(paths, ['/healthz', '/healthz']);
});

t.test('read-only root filesystem: nothing in the runtime writes outside /tmp', async (t) => {
  t.same(ops(runtime, 'RUN'), [], 'the runtime stage itself runs nothing');
  t.same(ops(runtime, 'VOLUME'), [], 'no anonymous volumes');
  t.match(text, /read-only root filesystem/i, 'the Dockerfile says so');
});

t.test('.dockerignore is an allow-list that keeps tests, charts and secrets out', async (t) => {
  const lines = readFileSync(join(REPO, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  t.equal(lines[0], '*', 'everything is excluded first');
  const allowed = lines.filter((l) => l.startsWith('!')).map((l) => l.slice(1).replace(/\/$/, ''));
  for (const need of [
    'package.json',
    'package-lock.json',
    'tsconfig.json',
    'tsconfig.build.json',
    'firewall',
    'settings',
    'proxy',
    'iptables',
  ])
    t.ok(allowed.includes(need), `${need} is in the context`);
  for (const never of ['test', 'charts', 'compose', 'node_modules', 'dist', '.git', 'docs'])
    t.notOk(
      allowed.some((a) => a === never || a.startsWith(`${never}/`)),
      `${never} is not`,
    );
  // Every plain COPY source is in the allow-list (or is the whole filtered context).
  for (const s of stages) {
    for (const c of ops(s, 'COPY').filter((c) => !c.startsWith('--from'))) {
      const srcs = c.split(' ').slice(0, -1);
      for (const src of srcs)
        t.ok(src === '.' || allowed.includes(src.replace(/\/$/, '')), `COPY ${src} is in the context`);
    }
  }
});
