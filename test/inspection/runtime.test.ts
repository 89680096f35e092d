// Inspection as `sluice serve` runs it (dist/, real processes, in the lo-only namespace): development mode's
// ephemeral CA inspects in one process and reaches every worker; production refuses a CA key group or others
// can read, at start and in `sluice check`; a CA configured from files is read by each worker.
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { cliArgv } from '../helpers/cli.js';
import { waitFor } from '../helpers/harness.js';
import { isolate } from '../helpers/netns.js';
import { type World, buildWorld } from '../helpers/world.js';
import { inspectedSession, inspectionCaFiles, sessionClient } from './wire-helpers.js';
import { startHttpsCanary } from '../helpers/canary.js';

const dir = mkdtempSync(join(tmpdir(), 'sluice-inspect-runtime-'));

function devConfig(w: World, extra: Record<string, unknown> = {}): string {
  const path = join(dir, `cfg-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(
    path,
    JSON.stringify({
      listen: { http: '127.0.0.1:0', socks5: null, admin: null },
      dns: { servers: [w.dns.server], timeoutMs: 1000, minTtlS: 0, maxTtlS: 1 },
      upstream: { caFile: w.pki.caFile, connectTimeoutMs: 1000, tunnelHelloTimeoutMs: 1000 },
      addressGuard: { allow: [{ cidr: '127.0.0.0/8', hosts: ['*.test'] }] },
      ...extra,
    }),
  );
  return path;
}

/** Starts serve; resolves once it printed its proxy line (and, in development mode, the CA lines). */
async function start(t: Test, cfg: string, env: Record<string, string> = {}, until = /^NODE_EXTRA_CA_CERTS=/m) {
  const child = spawn(process.execPath, [...cliArgv(), 'serve', '--config', cfg], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(() => child.kill('SIGKILL'));
  let err = '';
  child.stderr!.on('data', (c) => (err += c));
  child.stdout!.on('data', () => undefined);
  await waitFor(() => until.test(err), 60_000);
  return { child, err: () => err };
}

if (isolate(t, import.meta.url)) {
  const w = await buildWorld(t);
  const www = await startHttpsCanary('127.0.0.2', 443, w.pki, (req, res) => res.end(`www ${req.method} ${req.url}`));
  t.teardown(() => www.close());

  for (const workers of [1, 2]) {
    t.test(`development mode (${workers} worker(s)): the ephemeral CA inspects`, async (t) => {
      const { err } = await start(t, devConfig(w, { workers }));
      const proxy = /^HTTPS_PROXY=http:\/\/([^:]+):([^@]+)@127\.0\.0\.1:(\d+)$/m.exec(err())!;
      t.ok(proxy, 'the proxy line is printed');
      const certFile = /^NODE_EXTRA_CA_CERTS=(\S+)$/m.exec(err())![1]!;
      const auth = `Basic ${Buffer.from(`${proxy[1]}:${proxy[2]}`).toString('base64')}`;
      const ca = readFileSync(certFile, 'utf8');
      // Several sessions: with workers, connections spread over them, and each must sign with the same CA.
      for (let i = 0; i < 4; i++) {
        const tls = await inspectedSession(Number(proxy[3]), 'public.test', ca, auth);
        const r = await sessionClient(tls, 'public.test').request({ path: `/dev${i}` });
        t.equal(r.body, `www GET /dev${i}`);
        tls.destroy();
      }
    });
  }

  t.test('production refuses a CA key that group or others can read (serve and check)', async (t) => {
    const files = await inspectionCaFiles();
    chmodSync(files.keyFile, 0o640);
    const cfg = devConfig(w, { inspection: { caCertFile: files.certFile, caKeyFile: files.keyFile } });
    const check = spawnSync(process.execPath, [...cliArgv(), 'check', cfg, '--production'], { encoding: 'utf8' });
    t.not(check.status, 0);
    t.match(check.stdout + check.stderr, /\/inspection\/caKeyFile.*group or others/);
    const serve = spawnSync(process.execPath, [...cliArgv(), 'serve', '--config', cfg], {
      encoding: 'utf8',
      env: { ...process.env, SLUICE_ENV: 'production' },
      timeout: 60_000,
    });
    t.not(serve.status, 0);
    t.match(serve.stderr, /\/inspection\/caKeyFile/);
    const notCa = join(dir, 'leaf.crt');
    writeFileSync(notCa, w.pki.certPem);
    const bad = devConfig(w, { inspection: { caCertFile: notCa, caKeyFile: files.keyFile } });
    const r = spawnSync(process.execPath, [...cliArgv(), 'check', bad], { encoding: 'utf8' });
    t.match(r.stdout + r.stderr, /\/inspection\/caCertFile.*not a CA/);
  });

  t.test('a CA from files: every worker reads it', async (t) => {
    const files = await inspectionCaFiles();
    const cfg = devConfig(w, { workers: 2, inspection: { caCertFile: files.certFile, caKeyFile: files.keyFile } });
    const { err } = await start(t, cfg, {}, /^HTTPS_PROXY=/m);
    t.notMatch(err(), /ephemeral/);
    const proxy = /^HTTPS_PROXY=http:\/\/([^:]+):([^@]+)@127\.0\.0\.1:(\d+)$/m.exec(err())!;
    const auth = `Basic ${Buffer.from(`${proxy[1]}:${proxy[2]}`).toString('base64')}`;
    for (let i = 0; i < 4; i++) {
      const tls = await inspectedSession(Number(proxy[3]), 'public.test', files.certPem, auth);
      t.equal((await sessionClient(tls, 'public.test').request({ path: '/f' })).status, 200);
      tls.destroy();
    }
  });
}
