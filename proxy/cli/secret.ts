// `sluice secret seal` and `sluice secret check`: sealing a credential's secret under secrets.keyFile, and
// proving every configured credential decrypts (or reads). The secret is read from stdin and never printed.
import { parseArgs } from 'node:util';
import { formatIssue } from '../../firewall/config.js';
import { credentialProblems } from '../broker/credential-problems.js';
import { integrationInspected } from '../inspection/problems.js';
import { modeOrNull, readFileOrNull, writeFileAtomic } from '../broker/files.js';
import { deriveBrokerKeys, keyMaterialOf, keyMaterialProblem } from '../broker/keys.js';
import { sealSecret } from '../broker/sealed.js';
import { secretOfFile, secretProblem } from '../broker/secret-value.js';
import { requireConfig } from './load-config.js';
import { err, fail, out } from './output.js';

export const SECRET_USAGE =
  'usage: sluice secret seal --config FILE --credential NAME [--out FILE] < secret\n       sluice secret check --config FILE';

async function readStdin(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of process.stdin) {
    chunks.push(c as Buffer);
    size += (c as Buffer).length;
    if (size > 64 * 1024) fail('the secret on stdin is larger than 64 KiB');
  }
  return Buffer.concat(chunks);
}

export async function secretSeal(argv: string[]) {
  const { values } = parseArgs({
    args: argv,
    options: {
      config: { type: 'string', short: 'c' },
      credential: { type: 'string' },
      out: { type: 'string', short: 'o' },
    },
  });
  if (!values.config || !values.credential) fail(SECRET_USAGE);
  const config = requireConfig(values.config);
  const names = Object.keys(config.credentials);
  if (!Object.hasOwn(config.credentials, values.credential)) {
    fail(
      `unknown credential "${values.credential}" (hint: ${names.length ? `configured credentials: ${names.join(', ')}` : 'add it under "credentials" first: the name is sealed into the blob'})`,
    );
  }
  if (!config.secrets) fail('the config has no secrets.keyFile');
  const raw = readFileOrNull(config.secrets.keyFile);
  const material = raw === null ? null : keyMaterialOf(raw);
  const problem = keyMaterialProblem(material);
  if (problem) fail(`secrets.keyFile ${config.secrets.keyFile} ${problem.message} (hint: ${problem.hint})`);
  const secret = secretOfFile(await readStdin());
  const bad = secretProblem(secret);
  if (bad) fail(`the secret on stdin ${bad}`);
  const blob = sealSecret(deriveBrokerKeys(material!).seal, values.credential, secret);
  if (values.out) {
    writeFileAtomic(values.out, `${blob}\n`, 0o600);
    err(
      `sealed credential "${values.credential}" into ${values.out} (mode 0600); name it in credentials.${values.credential}.source.sealedFile`,
    );
  } else {
    out(blob);
  }
}

export function secretCheck(argv: string[]) {
  const { values } = parseArgs({ args: argv, options: { config: { type: 'string', short: 'c' } } });
  if (!values.config) fail(SECRET_USAGE);
  const config = requireConfig(values.config);
  const names = Object.keys(config.credentials);
  if (names.length === 0) {
    out(`${values.config}: no credentials configured`);
    return;
  }
  const issues = credentialProblems(config, {
    readFile: readFileOrNull,
    modeOf: modeOrNull,
    production: process.env.SLUICE_ENV === 'production',
    inspected: (i) => integrationInspected(config, i),
  });
  for (const i of issues) out(formatIssue(i));
  // A key problem fails every credential; any other problem, the credential it names.
  const failed = new Set(
    issues
      .filter((i) => i.severity === 'error')
      .map((i) => (i.path.startsWith('/secrets/keyFile') ? '*' : (/^\/credentials\/([^/]+)/.exec(i.path)?.[1] ?? ''))),
  );
  for (const name of names) out(`credential ${name}: ${failed.has(name) || failed.has('*') ? 'FAILED' : 'ok'}`);
  const errors = issues.filter((i) => i.severity === 'error').length;
  if (errors) {
    out(`${values.config}: ${errors} problem(s)`);
    process.exit(1);
  }
  out(`${values.config}: every credential ok`);
}
