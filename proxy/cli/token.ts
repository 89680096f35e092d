// `sluice token issue`: a run token, an expiring credential narrowed from an identity's rights.
import { parseArgs } from 'node:util';
import { parseDuration } from '../../firewall/config.js';
import { MIN_KEY_BYTES, issueToken } from '../auth/run-token.js';
import { RUN_ID } from '../broker/handle.js';
import { readSecretFile } from '../runtime/sluice.js';
import { requireConfig } from './load-config.js';
import { err, fail, out } from './output.js';

export function tokenIssue(argv: string[]) {
  const { values } = parseArgs({
    args: argv,
    options: {
      config: { type: 'string', short: 'c' },
      identity: { type: 'string' },
      ttl: { type: 'string' },
      integrations: { type: 'string' },
      run: { type: 'string' },
    },
  });
  if (!values.config || !values.identity || !values.ttl)
    fail('usage: sluice token issue --config FILE --identity ID --ttl 30m [--integrations a,b] [--run RUN]');
  const config = requireConfig(values.config);
  if (!config.tokens)
    fail('the config has no tokens.keyFile (hint: add `tokens: { keyFile: /run/secrets/sluice-token-key }`)');
  const ttlS = parseDuration(values.ttl);
  if (ttlS === null || ttlS < 1) fail(`--ttl ${values.ttl} is not a duration (hint: use e.g. 30m, 2h)`);
  if (ttlS > config.tokens.maxTtlS) fail(`--ttl exceeds tokens.maxTtl (${config.tokens.maxTtlS}s)`);
  const identity = Object.hasOwn(config.identities, values.identity) ? config.identities[values.identity] : undefined;
  if (!identity) fail(`unknown identity "${values.identity}"`);
  let integrations: string[] | undefined;
  if (values.integrations !== undefined) {
    integrations = values.integrations
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    const extra = integrations.filter((i) => !identity.integrations.includes(i));
    if (extra.length)
      fail(
        `identity "${values.identity}" is not granted: ${extra.join(', ')} (a token can only narrow its identity's rights)`,
      );
  }
  // The run whose credential handles this token may carry (sluice handle issue --run): the same id for both.
  if (values.run !== undefined && !RUN_ID.test(values.run))
    fail(
      `--run ${JSON.stringify(values.run.slice(0, 64))} is not a run id (hint: letters, digits, ".", "_", ":" and "-", at most 64)`,
    );
  const key = readSecretFile(config.tokens.keyFile);
  if (!key) fail(`tokens.keyFile ${config.tokens.keyFile} cannot be read`);
  if (key.length < MIN_KEY_BYTES) fail(`tokens.keyFile must hold at least ${MIN_KEY_BYTES} bytes`);
  const token = issueToken(key, {
    sub: values.identity,
    ttlS,
    nowS: Math.floor(Date.now() / 1000),
    ...(integrations ? { int: integrations } : {}),
    ...(values.run !== undefined ? { run: values.run } : {}),
  });
  out(token);
  err(`username: ${values.identity}  password: the token above  (expires in ${values.ttl})`);
}
