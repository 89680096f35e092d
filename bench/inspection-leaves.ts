// What a leaf costs: mint time (sequential and 32 at once), a cache hit, and memory per cached leaf. A small
// standalone measurement, not part of `npm run bench`; its numbers are quoted in docs/ARCHITECTURE.md.
//
//   npx tsc -p bench/tsconfig.json && node --expose-gc dist/bench/inspection-leaves.js [--ca ec|rsa]
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { type InspectionCa, checkCaMaterial, createCa, importCa } from '../proxy/inspection/ca.js';
import { createLeafIssuer } from '../proxy/inspection/leaves.js';

const { values } = parseArgs({
  options: { ca: { type: 'string', default: 'ec' }, n: { type: 'string', default: '400' } },
});
const N = Number(values.n);

async function rsaCa(): Promise<InspectionCa> {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-ca-'));
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      'ca.key',
      '-out',
      'ca.crt',
      '-days',
      '30',
      '-subj',
      '/CN=bench',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign',
    ],
    { cwd: dir, stdio: 'ignore' },
  );
  const { material } = checkCaMaterial(
    readFileSync(join(dir, 'ca.crt'), 'utf8'),
    readFileSync(join(dir, 'ca.key'), 'utf8'),
    Date.now(),
  );
  return importCa(material!);
}

const gc = (globalThis as { gc?: () => void }).gc;
const settle = async () => {
  for (let i = 0; i < 3; i++) {
    gc?.();
    await new Promise((r) => setTimeout(r, 50));
  }
};
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const ca = values.ca === 'rsa' ? await rsaCa() : (await createCa({ exportKey: false })).ca;
const mints: number[] = [];
const issuer = createLeafIssuer({
  ca,
  cacheSize: 100_000,
  observer: {
    leafMinted: (s) => mints.push(s * 1000),
    leafCacheHit() {},
    clientHandshakeFailed() {},
    sessionStarted() {},
    requestInside() {},
  },
});

// Warm-up: JIT and the WebCrypto thread pool.
for (let i = 0; i < 50; i++) await issuer.leafFor(`warm${i}.example`);
issuer.clear();
mints.length = 0;
await settle();

const m0 = process.memoryUsage();
let t0 = performance.now();
for (let i = 0; i < N; i++) await issuer.leafFor(`host${i}.example.com`);
const sequentialMs = (performance.now() - t0) / N;
const sequentialMints = [...mints];
await settle();
const m1 = process.memoryUsage();

t0 = performance.now();
const batch: Promise<unknown>[] = [];
for (let i = 0; i < N; i++) {
  batch.push(issuer.leafFor(`conc${i}.example.com`));
  if (batch.length === 32) await Promise.all(batch.splice(0));
}
await Promise.all(batch);
const concurrentPerSec = N / ((performance.now() - t0) / 1000);

const HITS = 200_000;
t0 = performance.now();
for (let i = 0; i < HITS; i++) await issuer.leafFor(`host${i % N}.example.com`);
const hitUs = ((performance.now() - t0) * 1000) / HITS;

const perLeafKiB = (k: 'rss' | 'heapUsed' | 'external') => (m1[k] - m0[k]) / N / 1024;
console.log(
  JSON.stringify(
    {
      node: process.version,
      ca: ca.keyType,
      leaves: N,
      mintMsSequential: +sequentialMs.toFixed(2),
      mintMsMedian: +median(sequentialMints).toFixed(2),
      mintsPerSecond32Concurrent: Math.round(concurrentPerSec),
      cacheHitMicroseconds: +hitUs.toFixed(2),
      perLeafKiB: {
        rss: +perLeafKiB('rss').toFixed(1),
        heapUsed: +perLeafKiB('heapUsed').toFixed(1),
        external: +perLeafKiB('external').toFixed(1),
      },
    },
    null,
    2,
  ),
);
