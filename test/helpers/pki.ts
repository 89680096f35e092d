// A throwaway CA and leaf certificate made with openssl at test time (never committed), cached per process.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestPki {
  readonly caPem: string;
  readonly caFile: string;
  readonly keyPem: string;
  readonly certPem: string;
}

const cache = new Map<string, TestPki>();

export function testPki(names: readonly string[], ips: readonly string[] = []): TestPki {
  const key = [...names, '|', ...ips].join(',');
  const hit = cache.get(key);
  if (hit) return hit;
  const dir = mkdtempSync(join(tmpdir(), 'sluice-pki-'));
  const run = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  run([
    'req',
    '-x509',
    ...ec,
    '-keyout',
    'ca.key',
    '-out',
    'ca.pem',
    '-days',
    '2',
    '-subj',
    '/CN=Sluice Test CA',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  run(['req', ...ec, '-keyout', 'leaf.key', '-out', 'leaf.csr', '-subj', `/CN=${names[0] ?? 'localhost'}`]);
  const san = [...names.map((n) => `DNS:${n}`), ...ips.map((i) => `IP:${i}`)].join(',');
  writeFileSync(
    join(dir, 'ext.cnf'),
    `subjectAltName=${san}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n`,
  );
  run([
    'x509',
    '-req',
    '-in',
    'leaf.csr',
    '-CA',
    'ca.pem',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    'leaf.pem',
    '-days',
    '2',
    '-extfile',
    'ext.cnf',
  ]);
  const pki: TestPki = {
    caPem: readFileSync(join(dir, 'ca.pem'), 'utf8'),
    caFile: join(dir, 'ca.pem'),
    keyPem: readFileSync(join(dir, 'leaf.key'), 'utf8'),
    certPem: readFileSync(join(dir, 'leaf.pem'), 'utf8'),
  };
  cache.set(key, pki);
  return pki;
}
