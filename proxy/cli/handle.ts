// `sluice handle issue | revoke | prune`: the orchestrator's side of the credential broker. A handle is
// printed on stdout (nothing else is); revocations go to secrets.handles.revocationFile, which every replica
// polls.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { parseDuration } from '../../firewall/config.js';
import { type SluiceConfig } from '../../settings/config.js';
import { appendLine, readFileOrNull, writeFileAtomic } from '../broker/files.js';
import { issueHandleFor, revokeRunFor } from '../broker/issue.js';
import { deriveBrokerKeys, keyMaterialOf, keyMaterialProblem } from '../broker/keys.js';
import { type RunStatus, parseRevocations, renderRevocations } from '../broker/revocations.js';
import { requireConfig } from './load-config.js';
import { err, fail, out } from './output.js';

export const HANDLE_USAGE = `usage: sluice handle issue --config FILE --run RUN --identity ID --credential NAME --ttl 30m
       sluice handle revoke --config FILE --run RUN
       sluice handle prune --config FILE`;

const iso = (s: number) => new Date(s * 1000).toISOString();
const nowS = () => Math.floor(Date.now() / 1000);

/** The revocation list read once, now: absent means nothing is revoked yet; present but unreadable or
 * unparsable means unknown (and issuing refuses, as serve would). */
function readRevocations(file: string): Map<string, number> | null {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOENT' ? new Map() : null;
  }
  const parsed = parseRevocations(bytes, nowS());
  return parsed.ok ? parsed.entries : null;
}

function runStatusNow(config: SluiceConfig): (run: string, at: number) => RunStatus {
  const file = config.secrets?.handles.revocationFile ?? null;
  if (file === null) return () => 'active';
  const entries = readRevocations(file);
  if (entries === null) return () => 'unknown';
  return (run, at) => ((entries.get(run) ?? 0) > at ? 'revoked' : 'active');
}

function brokerConfig(path: string): SluiceConfig & { secrets: NonNullable<SluiceConfig['secrets']> } {
  const config = requireConfig(path);
  if (!config.secrets)
    fail(
      'the config has no secrets section (hint: secrets: { keyFile: /run/secrets/sluice-broker-key, handles: { maxTtl: 8h, revocationFile: … } })',
    );
  return config as SluiceConfig & { secrets: NonNullable<SluiceConfig['secrets']> };
}

export function handleIssue(argv: string[]) {
  const { values } = parseArgs({
    args: argv,
    options: {
      config: { type: 'string', short: 'c' },
      run: { type: 'string' },
      identity: { type: 'string' },
      credential: { type: 'string' },
      ttl: { type: 'string' },
    },
  });
  if (!values.config || !values.run || !values.identity || !values.credential || !values.ttl) fail(HANDLE_USAGE);
  const config = brokerConfig(values.config);
  const ttlS = parseDuration(values.ttl);
  if (ttlS === null) fail(`--ttl ${values.ttl} is not a duration (hint: use e.g. 30m, 2h)`);
  const raw = readFileOrNull(config.secrets.keyFile);
  const material = raw === null ? null : keyMaterialOf(raw);
  const problem = keyMaterialProblem(material);
  if (problem) fail(`secrets.keyFile ${config.secrets.keyFile} ${problem.message} (hint: ${problem.hint})`);
  const r = issueHandleFor(
    config,
    deriveBrokerKeys(material!).handle,
    {
      run: values.run,
      identity: values.identity,
      credential: values.credential,
      ttlS: Math.floor(ttlS),
    },
    { nowS: nowS(), runStatus: runStatusNow(config) },
  );
  if (!r.ok) fail(`${r.error}${r.hint ? ` (hint: ${r.hint})` : ''}`);
  out(r.handle);
  err(
    `handle ${r.handleId} for credential ${r.credential} (integration ${r.integration}), run ${values.run}, identity ${values.identity}; expires ${iso(r.expiresAtS)}`,
  );
  err(`honoured only on requests authenticated with a run token of run ${values.run}`);
}

export async function handleRevoke(argv: string[]) {
  const { values } = parseArgs({
    args: argv,
    options: { config: { type: 'string', short: 'c' }, run: { type: 'string' } },
  });
  if (!values.config || !values.run) fail(HANDLE_USAGE);
  const config = brokerConfig(values.config);
  const file = config.secrets.handles.revocationFile;
  if (file === null)
    fail(
      'secrets.handles.revocationFile is not set: a revocation from the command line would reach no replica (hint: set it, or use the admin API of each replica)',
    );
  const r = await revokeRunFor(config, values.run, { nowS: nowS(), append: appendLine, revokeLocal: () => undefined });
  if (!r.ok) fail(r.error);
  out(`run ${r.run} revoked (entry kept until ${iso(r.untilS)})`);
  err(
    `every replica refuses its handles within secrets.handles.pollMs (${config.secrets.handles.pollMs} ms) of ${file} changing on its volume`,
  );
}

/** Drops the entries no longer in force. A rewrite, not an append: run it from one place (the orchestrator),
 * not concurrently with revocations, or a line appended between the read and the rename is lost. */
export function handlePrune(argv: string[]) {
  const { values } = parseArgs({ args: argv, options: { config: { type: 'string', short: 'c' } } });
  if (!values.config) fail(HANDLE_USAGE);
  const config = brokerConfig(values.config);
  const file = config.secrets.handles.revocationFile;
  if (file === null) fail('secrets.handles.revocationFile is not set');
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return out(`${file}: no revocations`);
    fail(`${file} cannot be read (${(e as NodeJS.ErrnoException).code})`);
  }
  const parsed = parseRevocations(bytes, nowS());
  if (!parsed.ok)
    fail(`${file}: ${parsed.message} (hint: fix or remove that line; until then every replica refuses all handles)`);
  writeFileAtomic(file, renderRevocations(parsed.entries), 0o644);
  out(`${file}: ${parsed.entries.size} revocation(s) in force`);
}
