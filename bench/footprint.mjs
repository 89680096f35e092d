// Start-up and idle footprint, A/B: `node bench/footprint.mjs [rounds]` after `npm run bundle` (and, for the
// baseline, a build of the previous commit's dist in bench/.work/base-dist). Interleaved rounds of each variant:
// spawn → /readyz 200 (ms), CPU (utime+stime) at ready, RSS 1 s after ready, RSS after 2,000 keep-alive
// requests through the proxy (authenticated, denied by policy: parse, identity, decide, audit, metrics).
// Figures go to stdout as JSON and a Markdown table.
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { get, Agent, request } from 'node:http';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const work = join(repo, 'bench/.work');
const rounds = Number(process.argv[2] ?? 5);
const node = process.execPath;
const tick = 100; // USER_HZ on Linux
const { hashPassword } = await import(join(repo, 'dist/proxy/auth/password-hash.js'));
const password = 'footprint-bench';
const base = JSON.parse(readFileSync(join(work, 'sluice-startup.yaml'), 'utf8'));
base.identities = { bench: { ...base.identities.bench, passwordHash: await hashPassword(password) } };
const config = join(work, 'footprint.yaml');
const PORT = 41873;
const ADMIN = 41874;
base.listen = { ...base.listen, http: `127.0.0.1:${PORT}`, admin: `127.0.0.1:${ADMIN}` };
writeFileSync(config, JSON.stringify(base));

const variants = [
  ['before (previous commit, dist/proxy/cli.js)', [join(work, 'base-dist/proxy/cli.js'), 'serve', '--config', config]],
  ['after (dist/proxy/cli.js)', [join(repo, 'dist/proxy/cli.js'), 'serve', '--config', config]],
  ['after, bundled (dist/sluice.cjs)', [join(repo, 'dist/sluice.cjs'), 'serve', '--config', config]],
  [
    'after, bundled, --max-semi-space-size=1',
    ['--max-semi-space-size=1', join(repo, 'dist/sluice.cjs'), 'serve', '--config', config],
  ],
].filter(([, a]) => existsSync(a.find((x) => x.endsWith('.js') || x.endsWith('.cjs'))));

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const status = (port, path) =>
  new Promise((resolve) => {
    const req = get({ host: '127.0.0.1', port, path, agent: false, timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', () => resolve(0));
    req.on('timeout', () => (req.destroy(), resolve(0)));
  });
const rssKiB = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
const cpuMs = (pid) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / tick;
};
async function load(n) {
  const agent = new Agent({ keepAlive: true, maxSockets: 8 });
  const auth = 'Basic ' + Buffer.from(`bench:${password}`).toString('base64');
  let sent = 0;
  const one = () =>
    new Promise((resolve) => {
      const req = request(
        {
          host: '127.0.0.1',
          port: PORT,
          path: `http://denied-${sent % 50}.example.test/x`,
          headers: { 'proxy-authorization': auth, host: `denied-${sent % 50}.example.test` },
          agent,
        },
        (res) => {
          res.resume();
          res.on('end', resolve);
        },
      );
      req.on('error', resolve);
      req.end();
    });
  const codes = [];
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (sent < n) {
        sent++;
        await one();
      }
    }),
  );
  agent.destroy();
  return codes;
}

async function measure(argv) {
  const t0 = performance.now();
  const child = spawn(node, argv, { stdio: ['ignore', 'ignore', 'ignore'] });
  try {
    while ((await status(ADMIN, '/readyz')) !== 200) {
      if (child.exitCode !== null) throw new Error(`${argv.join(' ')} exited ${child.exitCode}`);
      await sleep(2);
    }
    const readyMs = performance.now() - t0;
    const cpu = cpuMs(child.pid);
    await sleep(1000);
    const idle = rssKiB(child.pid) / 1024;
    await load(2000);
    await sleep(500);
    const loaded = rssKiB(child.pid) / 1024;
    return { readyMs, cpu, idle, loaded };
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => (child.exitCode !== null ? r() : child.once('exit', r)));
  }
}

async function nodeAlone() {
  const t0 = performance.now();
  const child = spawn(node, ['-e', `require('node:http').createServer((q,s)=>s.end()).listen(${ADMIN}, '127.0.0.1')`]);
  while ((await status(ADMIN, '/')) !== 200) await sleep(2);
  const readyMs = performance.now() - t0;
  const cpu = cpuMs(child.pid);
  await sleep(1000);
  const idle = rssKiB(child.pid) / 1024;
  child.kill();
  await new Promise((r) => child.once('exit', r));
  return { readyMs, cpu, idle, loaded: NaN };
}

const all = Object.fromEntries([...variants.map(([n]) => [n, []]), ['Node alone (node:http server)', []]]);
for (let r = 0; r < rounds; r++) {
  for (const [name, argv] of variants) all[name].push(await measure(argv));
  all['Node alone (node:http server)'].push(await nodeAlone());
  process.stderr.write(`round ${r + 1}/${rounds}\n`);
}
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const rows = Object.entries(all).map(([name, xs]) => {
  const m = (k) => median(xs.map((x) => x[k]));
  return `| ${name} | ${m('readyMs').toFixed(0)} | ${m('cpu').toFixed(0)} | ${m('idle').toFixed(1)} | ${Number.isNaN(m('loaded')) ? '' : m('loaded').toFixed(1)} | ${xs.map((x) => x.readyMs.toFixed(0)).join(', ')} |`;
});
console.log(JSON.stringify(all));
console.log(
  [
    `| process (node ${process.version}, ${rounds} interleaved rounds, medians) | spawn → ready, ms | CPU at ready, ms | RSS 1 s after ready, MiB | RSS after 2,000 requests, MiB | each start, ms |`,
    '|---|---:|---:|---:|---:|---|',
    ...rows,
  ].join('\n'),
);
