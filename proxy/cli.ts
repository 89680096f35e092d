#!/usr/bin/env node
// The `sluice` command line: serve, check, hash-password, token issue, explain, firewall render.
import cluster from 'node:cluster';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { isDeny } from '../firewall/codes.js';
import { type SluiceConfig, formatIssue, parseDuration, validateConfig } from '../firewall/config.js';
import { compilePolicy, rightsFor } from '../firewall/policy.js';
import { type RawFirewallOptions, optionsFromConfig, parseFirewallOptions, renderAll, renderRules } from '../iptables/render.js';
import { type LoadedConfig, loadConfigFile } from './config-file.js';
import { explain } from './explain.js';
import { hashPassword } from './password-hash.js';
import { createResolver } from './resolver.js';
import { issueToken, MIN_KEY_BYTES } from './run-token.js';
import { resolveWorkers, runPrimary } from './primary.js';
import { productionProblems } from './production.js';
import { type Reloader, createReloader } from './reload.js';
import { type BoundListeners, createSluice, readSecretFile } from './sluice.js';
import { runWorker } from './worker.js';

export const DEV_IDENTITY = 'dev';

const USAGE = `usage: sluice <command> [options]

  serve [--config FILE]            run the proxy (no file: the embedded development default)
  check FILE                       validate a config; every problem with its path and a hint
  hash-password                    read a password on stdin, print a passwordHash for the config
  token issue --config FILE --identity ID --ttl 30m [--integrations a,b]
                                   mint a run token (an expiring credential narrowed from ID)
  explain [--config FILE] --as ID METHOD URL [--resolve] [-H 'Name: value'] [--body]
  explain [--config FILE] --as ID CONNECT host:port [--resolve]
                                   show the decision, code and rule; exit 0 allow, 1 deny
  firewall render --mode sidecar|docker [--config FILE] [--family 4|6] [options]
                                   print the iptables-restore (IPv4) and ip6tables-restore (IPv6) rules that
                                   make Sluice the only way out; apply them with iptables/setup.sh apply FILE
      sidecar: [--uid 10001] [--workload-uid N] [--ports 3128,1080] [--dns-port 53] [--loopback-ports P,…]
      docker:  --bridge IF --proxy A [--proxy6 A] [--subnet CIDR] [--subnet6 CIDR] [--ports …] [--dns-port …]
      --config takes --ports, --dns-port (and in docker mode --proxy/--proxy6) from the config's listeners
`;

/** The package version, from package.json above this file (src and dist sit at different depths). */
export function packageVersion(): string {
  for (let url = new URL('./', import.meta.url); url.pathname !== '/'; url = new URL('../', url)) {
    const candidate = new URL('package.json', url);
    if (existsSync(candidate)) return (JSON.parse(readFileSync(candidate, 'utf8')) as { version?: string }).version ?? 'unknown';
  }
  return 'unknown';
}

const out = (s: string) => process.stdout.write(s + '\n');
const err = (s: string) => process.stderr.write(s + '\n');

function fail(message: string, code = 2): never {
  err(`sluice: ${message}`);
  process.exit(code);
}

function loadOrDefault(path: string | undefined): LoadedConfig {
  return path ? loadConfigFile(path) : { ...validateConfig({}), digest: '' };
}

/** The config and the digest of the bytes it was read from (the reloader's starting point). */
function requireLoaded(path: string | undefined): { config: SluiceConfig; digest: string } {
  const r = loadOrDefault(path);
  if (!r.ok) {
    for (const i of r.issues) err(formatIssue(i));
    fail(`${path ?? 'embedded default'}: invalid config`);
  }
  return { config: r.config, digest: r.digest };
}

function requireConfig(path: string | undefined): SluiceConfig {
  return requireLoaded(path).config;
}

/** Development convenience: a config without identities gets one generated `dev` identity that may read
 * and use every integration. Production refuses to start instead (issue: production mode). */
export function withDevIdentity(config: SluiceConfig, password: string): SluiceConfig {
  return {
    ...config,
    identities: {
      [DEV_IDENTITY]: {
        passwordHash: null,
        password,
        integrations: Object.keys(config.integrations),
        reads: 'public',
        mode: null,
      },
    },
  };
}

async function serve(argv: string[]) {
  // A worker (config `workers` > 1) takes its config from the primary, never from the file.
  if (cluster.isWorker) return runWorker();
  const { values } = parseArgs({ args: argv, options: { config: { type: 'string', short: 'c' } } });
  const path = values.config ?? process.env.SLUICE_CONFIG ?? null;
  const production = process.env.SLUICE_ENV === 'production';
  const { config: loaded, digest } = requireLoaded(path ?? undefined);
  if (production) {
    const problems = productionProblems(loaded, readSecretFile);
    if (problems.length) {
      for (const p of problems) err(`sluice: production: ${p}`);
      fail(`refusing to start with SLUICE_ENV=production (${problems.length} problem(s))`);
    }
  }
  // Development convenience: no identities → one generated credential, the same across reloads.
  const devPassword = Object.keys(loaded.identities).length === 0 ? randomBytes(18).toString('base64url') : null;
  const prepare = (c: SluiceConfig): SluiceConfig =>
    devPassword && Object.keys(c.identities).length === 0 ? withDevIdentity(c, devPassword) : c;
  // Production rules hold for reloads too: a config that would not start is not swapped in.
  const checkReload = (c: SluiceConfig) => {
    const problems = production ? productionProblems(c, readSecretFile) : [];
    if (problems.length) throw new Error(problems.join('; '));
  };
  const announce = (bound: BoundListeners) => {
    const { http, socks5 } = bound;
    if (http && devPassword) {
      const host = http.family === 'IPv6' ? `[${http.address}]` : http.address;
      const url = `http://${DEV_IDENTITY}:${devPassword}@${host}:${http.port}`;
      // The generated credential goes to the terminal once, never into the structured log.
      err(`Sluice is running in development mode on ${host}:${http.port} (no identities configured).`);
      err('Generated credential (shown once, not stored). Point workloads at the proxy with:');
      err(`HTTPS_PROXY=${url}`);
      err(`HTTP_PROXY=${url}`);
    } else {
      for (const [name, a] of Object.entries(bound)) err(`Sluice ${name} listening on ${a.address}:${a.port}`);
    }
    if (socks5 && devPassword) {
      const host = socks5.family === 'IPv6' ? `[${socks5.address}]` : socks5.address;
      err(`ALL_PROXY=socks5h://${DEV_IDENTITY}:${devPassword}@${host}:${socks5.port}`);
    }
  };
  const workers = resolveWorkers(loaded.workers);
  if (workers > 1) {
    return runPrimary({
      path,
      digest,
      config: prepare(loaded),
      workers,
      prepare,
      checkReload,
      generatedIdentity: devPassword !== null,
      version: packageVersion(),
      announce,
      fail,
    });
  }

  let reloader: Reloader | null = null;
  const sluice = createSluice({
    config: prepare(loaded),
    version: packageVersion(),
    generatedIdentity: devPassword !== null,
    reload: () => reloader!.reload('admin'),
  });
  reloader = createReloader({
    path,
    load: loadConfigFile,
    digest,
    prepare,
    current: sluice.state.config,
    swap: (c) => {
      checkReload(c);
      sluice.state.swap(c);
    },
    metrics: sluice.metrics,
    logger: sluice.logger,
  });
  let bound: BoundListeners;
  try {
    bound = await sluice.start();
  } catch (e) {
    fail((e as Error).message);
  }
  reloader.watch();
  announce(bound);
  process.on('SIGHUP', () => void reloader!.reload('sighup'));
  let stopping = false;
  const stop = async () => {
    if (stopping) {
      // A second SIGTERM: no more waiting.
      sluice.flushLogs();
      process.exit(143);
    }
    stopping = true;
    sluice.logger.info({ drainMs: sluice.state.config().limits.drainMs }, 'shutdown.draining');
    await sluice.drain(sluice.state.config().limits.drainMs);
    reloader!.close();
    await sluice.stop();
    sluice.logger.info('shutdown.complete');
    sluice.flushLogs();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
}

function check(argv: string[]) {
  const { positionals } = parseArgs({ args: argv, allowPositionals: true });
  if (positionals.length !== 1) fail('usage: sluice check FILE');
  const r = loadConfigFile(positionals[0]!);
  if (!r.ok) {
    for (const i of r.issues) out(formatIssue(i));
    out(`${positionals[0]}: ${r.issues.filter((i) => i.severity === 'error').length} problem(s)`);
    process.exit(1);
  }
  for (const w of r.warnings) out(formatIssue(w));
  out(`${positionals[0]}: ok`);
}

async function hashPasswordCommand() {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  const password = Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
  if (password.length < 12) fail('password must be at least 12 characters');
  out(await hashPassword(password));
}

function tokenIssue(argv: string[]) {
  const { values } = parseArgs({
    args: argv,
    options: {
      config: { type: 'string', short: 'c' },
      identity: { type: 'string' },
      ttl: { type: 'string' },
      integrations: { type: 'string' },
    },
  });
  if (!values.config || !values.identity || !values.ttl) fail('usage: sluice token issue --config FILE --identity ID --ttl 30m [--integrations a,b]');
  const config = requireConfig(values.config);
  if (!config.tokens) fail('the config has no tokens.keyFile (hint: add `tokens: { keyFile: /run/secrets/sluice-token-key }`)');
  const ttlS = parseDuration(values.ttl);
  if (ttlS === null || ttlS < 1) fail(`--ttl ${values.ttl} is not a duration (hint: use e.g. 30m, 2h)`);
  if (ttlS > config.tokens.maxTtlS) fail(`--ttl exceeds tokens.maxTtl (${config.tokens.maxTtlS}s)`);
  const identity = Object.hasOwn(config.identities, values.identity) ? config.identities[values.identity] : undefined;
  if (!identity) fail(`unknown identity "${values.identity}"`);
  let integrations: string[] | undefined;
  if (values.integrations !== undefined) {
    integrations = values.integrations.split(',').map((s) => s.trim()).filter(Boolean);
    const extra = integrations.filter((i) => !identity.integrations.includes(i));
    if (extra.length) fail(`identity "${values.identity}" is not granted: ${extra.join(', ')} (a token can only narrow its identity's rights)`);
  }
  const key = readSecretFile(config.tokens.keyFile);
  if (!key) fail(`tokens.keyFile ${config.tokens.keyFile} cannot be read`);
  if (key.length < MIN_KEY_BYTES) fail(`tokens.keyFile must hold at least ${MIN_KEY_BYTES} bytes`);
  const token = issueToken(key, { sub: values.identity, ttlS, nowS: Math.floor(Date.now() / 1000), ...(integrations ? { int: integrations } : {}) });
  out(token);
  err(`username: ${values.identity}  password: the token above  (expires in ${values.ttl})`);
}

async function explainCommand(argv: string[]) {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string', short: 'c' },
      as: { type: 'string' },
      resolve: { type: 'boolean', default: false },
      header: { type: 'string', short: 'H', multiple: true },
      body: { type: 'boolean', default: false },
    },
  });
  if (!values.as || positionals.length !== 2) fail('usage: sluice explain [--config FILE] --as ID METHOD URL [--resolve]');
  let config = requireConfig(values.config);
  if (Object.keys(config.identities).length === 0) config = withDevIdentity(config, randomBytes(8).toString('hex'));
  const policy = compilePolicy(config);
  const rights = rightsFor(policy, values.as);
  if (!rights) fail(`unknown identity "${values.as}" (defined: ${Object.keys(config.identities).join(', ')})`);
  const headers: Record<string, string> = {};
  for (const h of values.header ?? []) {
    const i = h.indexOf(':');
    if (i <= 0) fail(`bad header "${h}" (hint: -H 'Upgrade: websocket')`);
    headers[h.slice(0, i).trim().toLowerCase()] = h.slice(i + 1).trim();
  }
  const resolver = values.resolve
    ? createResolver({ ...config.dns, nowMs: () => performance.timeOrigin + performance.now() })
    : null;
  const r = await explain(policy, rights, { method: positionals[0]!, target: positionals[1]!, headers, body: values.body }, resolver);
  for (const l of r.lines) out(l);
  process.exit(r.allowed ? 0 : 1);
}

function firewallRender(argv: string[]) {
  const text = { type: 'string' } as const;
  const { values } = parseArgs({
    args: argv,
    options: {
      mode: text, config: text, family: text, uid: text, 'workload-uid': text, ports: text, 'dns-port': text, 'loopback-ports': text,
      bridge: text, subnet: text, subnet6: text, proxy: text, proxy6: text,
    },
  });
  const { family, config: configPath, ...given } = values;
  // --config: the listener ports (and, in docker mode, the proxy's address) come from the same sluice.yaml.
  const fromConfig = configPath ? optionsFromConfig(requireConfig(configPath).listen, given.mode) : {};
  const r = parseFirewallOptions({ ...fromConfig, ...(given as RawFirewallOptions) });
  if (!r.ok) {
    for (const e of r.errors) err(`error: ${e}`);
    fail('firewall render: invalid options (nothing rendered)');
  }
  if (family !== undefined && family !== '4' && family !== '6') fail('--family must be 4 or 6 (default: both)');
  process.stdout.write(family === '4' ? renderRules(r.options, 4) : family === '6' ? renderRules(r.options, 6) : renderAll(r.options));
}

async function main(argv: string[]) {
  const [command, ...rest] = argv;
  switch (command) {
    case 'serve':
      return serve(rest);
    case 'check':
      return check(rest);
    case 'hash-password':
      return hashPasswordCommand();
    case 'token':
      if (rest[0] !== 'issue') fail('usage: sluice token issue --config FILE --identity ID --ttl 30m');
      return tokenIssue(rest.slice(1));
    case 'explain':
      return explainCommand(rest);
    case 'firewall':
      if (rest[0] !== 'render') fail('usage: sluice firewall render --mode sidecar|docker [options]');
      return firewallRender(rest.slice(1));
    case 'help':
    case '--help':
    case '-h':
    case undefined:
      process.stdout.write(USAGE);
      return;
    default:
      process.stderr.write(USAGE);
      fail(`unknown command "${command}"`);
  }
}

main(process.argv.slice(2)).catch((e: unknown) => {
  if (isDeny(e)) fail(e.code);
  err(`sluice: ${(e as Error)?.message ?? String(e)}`);
  process.exit(2);
});
