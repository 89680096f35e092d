// `sluice ca init` makes the TLS inspection CA; `sluice ca bundle` prints the trust bundle for workloads.
import { X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_CA_DAYS, createCa } from '../inspection/ca.js';
import { type RootsSource, pemCertificates, readRoots, renderBundle, trustLines } from '../inspection/bundle.js';
import { requireConfig } from './load-config.js';
import { err, fail, out } from './output.js';

export const CA_USAGE = `usage: sluice ca init --out DIR [--days ${DEFAULT_CA_DAYS}]
       sluice ca bundle (--config FILE | --ca-cert FILE) [--roots node|system|FILE]`;

const readText = (path: string): string | null => {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
};

export async function caCommand(argv: string[]) {
  const [sub, ...rest] = argv;
  if (sub === 'init') return caInit(rest);
  if (sub === 'bundle') return caBundle(rest);
  fail(CA_USAGE);
}

async function caInit(argv: string[]) {
  const { values } = parseArgs({
    args: argv,
    options: { out: { type: 'string', short: 'o' }, days: { type: 'string' } },
  });
  if (!values.out) fail(CA_USAGE);
  const days = values.days === undefined ? DEFAULT_CA_DAYS : Number(values.days);
  if (!Number.isInteger(days) || days < 1 || days > 3650)
    fail(`--days ${values.days} is not a whole number of days from 1 to 3650`);
  const dir = resolve(values.out);
  const certFile = join(dir, 'ca.crt');
  const keyFile = join(dir, 'ca.key');
  // Never replace a CA: every workload that trusts the old one would break, and its key would be lost.
  for (const f of [certFile, keyFile])
    if (existsSync(f))
      fail(`${f} exists; refusing to overwrite a CA (hint: choose another --out, or remove both files deliberately)`);
  mkdirSync(dir, { recursive: true });
  const { ca, keyPem } = await createCa({ exportKey: true, days });
  // 'wx': created here or not at all, even if another process raced us to the name.
  writeFileSync(keyFile, keyPem!, { mode: 0o600, flag: 'wx' });
  chmodSync(keyFile, 0o600);
  writeFileSync(certFile, ca.certPem, { mode: 0o644, flag: 'wx' });
  chmodSync(certFile, 0o644);
  out(certFile);
  out(keyFile);
  err(`${ca.subjectText}, valid until ${ca.notAfter.toISOString()}, SHA-256 ${ca.fingerprint256}`);
  err('Keep ca.key secret (mode 0600, readable only by Sluice). In sluice.yaml:');
  err(`  inspection: { caCertFile: ${certFile}, caKeyFile: ${keyFile} }`);
  err('Workloads trust it through the bundle (`sluice ca bundle --ca-cert ca.crt > bundle.pem`):');
  for (const line of trustLines('bundle.pem', certFile)) err(`  ${line}`);
}

function caBundle(argv: string[]) {
  const { values } = parseArgs({
    args: argv,
    options: { config: { type: 'string', short: 'c' }, 'ca-cert': { type: 'string' }, roots: { type: 'string' } },
  });
  if ((values.config === undefined) === (values['ca-cert'] === undefined)) fail(CA_USAGE);
  let caFile = values['ca-cert'];
  if (values.config !== undefined) {
    const config = requireConfig(values.config);
    if (!config.inspection)
      fail(
        `${values.config} has no inspection section (hint: inspection: { caCertFile: …, caKeyFile: … }, or use --ca-cert FILE)`,
      );
    caFile = config.inspection.caCertFile;
  }
  const text = readText(caFile!);
  if (text === null) fail(`${caFile} cannot be read`);
  const certs = pemCertificates(text);
  if (certs.length !== 1) fail(`${caFile} must hold exactly one PEM certificate (found ${certs.length})`);
  if (!new X509Certificate(certs[0]!).ca)
    fail(`${caFile} is not a CA certificate (hint: make one with \`sluice ca init --out DIR\`)`);
  const roots = values.roots ?? 'node';
  const source: RootsSource = roots === 'node' || roots === 'system' ? { kind: roots } : { kind: 'file', path: roots };
  const found = readRoots(source, readText);
  if ('error' in found) fail(`--roots ${roots}: ${found.error}`);
  process.stdout.write(renderBundle(found, certs[0]!));
}
