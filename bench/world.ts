// The benchmark's world on loopback: nginx origins (plain HTTP and TLS with a throwaway certificate), the
// bench's DNS server for Sluice, a hosts file for the peers, and the proxies, each with its own config in the
// work directory, started in the foreground and stopped by PID. Proxies marked `lazy` (multi-process
// variants, the intercepting peers, Sluice variants for single workloads) are started only by the workload
// that needs them. A proxy that cannot start is recorded as such and left out; it never aborts the run.
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { hashPassword } from '../proxy/auth/password-hash.js';
import { type BenchDns, BOMB_SUFFIX, startBenchDns } from './bench-dns.js';
import { type Foreground, NOFILE, ensureDir, freePort, squidOpenssl, startForeground, waitForPort } from './env.js';

/** The origins: names for proxies that resolve (Sluice via DNS, the peers via their hosts file), addresses for
 * direct runs. Sluice listens on 127.0.0.1, so the origins live on other loopback addresses (the proxy's own
 * address is never an allowed target). */
export const ORIGIN = Object.freeze({
  http: { name: 'origin.bench.test', address: '127.0.0.71', port: 8080 },
  tls: { name: 'tls.bench.test', address: '127.0.0.72', port: 443 },
});
/** The integration Sluice writes to: `POST http://api.bench.test/...` leaves Sluice over TLS to port 443 of the
 * TLS origin (the peers are sent `POST https://api.bench.test/...`, the same upstream work). */
export const INTEGRATION = Object.freeze({ name: 'api.bench.test', address: ORIGIN.tls.address, port: 443 });
/** `h<i>.mitm.bench.test`: distinct hosts (all the TLS origin) for the intercepting proxies' leaf caches. */
export const MITM_DOMAIN = 'mitm.bench.test';
export const mitmHost = (i: number) => `h${i}.${MITM_DOMAIN}`;
export const MITM_HOSTS = 1000;
/** The DNS-answer bomb's names answer the HTTP origin first, then addresses in this /16 (loopback: never
 * leaves the machine; nothing listens there). */
export const BOMB_PREFIX = '127.1';
export const bombHost = (i: number) => `n${i}${BOMB_SUFFIX}`;
/** Responds 200 to any method (POST bodies are read and dropped). */
export const ECHO_PATH = '/echo';
export const SMALL_PATH = '/small';
export const SMALL_BYTES = 128;
export const BULK_PATH = '/bulk-10m';
export const BULK_BYTES = 10 * 1024 * 1024;

export const BENCH_USER = 'bench';

/** `sluice-b`: a second Sluice build (`--compare DIR`), measured in the same rounds for an A/B of a change. */
/** `floor`: the bare forwarder on Sluice's stack (bench/floor-peer.ts). The lazy ones: `sluice-smp`
 * (`workers: auto`), `squid-smp` (Squid's `workers` at the same count), `squid-bump` (squid-openssl with
 * ssl_bump), `mitmproxy`, `sluice-hostile` (a fresh Sluice for the hostile workloads, with a kill-switch file,
 * an admin listener and victim identities), and two diagnosis variants for the stall study: `sluice-quiet`
 * (log level warn: no audit lines written) and `sluice-young` (a 16 MiB young generation: fewer scavenges). */
export type TargetName =
  | 'direct'
  | 'sluice'
  | 'squid'
  | 'tinyproxy'
  | 'node'
  | 'floor'
  | 'sluice-b'
  | 'sluice-smp'
  | 'squid-smp'
  | 'squid-bump'
  | 'mitmproxy'
  | 'sluice-hostile'
  | 'sluice-inspect'
  | 'sluice-quiet'
  | 'sluice-young';
export type ProxyName = Exclude<TargetName, 'direct'>;
export const PROXIES: readonly ProxyName[] = ['sluice', 'squid', 'tinyproxy', 'node', 'floor'];
export const LAZY: readonly ProxyName[] = [
  'sluice-smp',
  'squid-smp',
  'squid-bump',
  'mitmproxy',
  'sluice-hostile',
  'sluice-inspect',
  'sluice-quiet',
  'sluice-young',
];

export interface Proxy {
  readonly name: ProxyName;
  readonly port: number;
  /** Started only by the workloads that use it. */
  readonly lazy: boolean;
  /** Why it could not start (then it is left out of every workload), or null. */
  failed: string | null;
  /** Proxy-Authorization value (Sluice only: the peers run without authentication). */
  readonly auth: string | null;
  readonly userinfo: string | null;
  readonly proc: () => Foreground;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface World {
  readonly dir: string;
  /** The origin's certificate (self-signed; the proxies trust it for upstream TLS). */
  readonly caFile: string;
  /** The intercepting proxies' CA (certificate; the key beside it), which clients trust for intercepted TLS. */
  readonly mitmCa: { readonly cert: string; readonly key: string };
  readonly nginx: Foreground;
  readonly dns: BenchDns;
  readonly proxies: ReadonlyMap<ProxyName, Proxy>;
  readonly sluiceConfig: string;
  /** The password of the bench identity (hostile workloads use it, and wrong ones). */
  readonly password: string;
  /** Victim identities of the login flood (each logs in once, uncached), name → password. */
  readonly victims: ReadonlyMap<string, string>;
  /** The hostile Sluice's kill-switch file and admin port. */
  readonly hostile: { readonly killFile: string; readonly adminPort: number };
  /** Worker count `workers: auto` resolves to (and Squid's SMP `workers`). */
  readonly smpWorkers: number;
  /** Writes a Sluice config (for start-up timing: admin listener on `adminPort`). */
  writeStartupConfig(path: string, port: number, adminPort: number): void;
  /** Whether the compiled Sluice has TLS inspection (`inspection` in its config schema). */
  readonly sluiceInspects: boolean;
  /** Writes the Sluice config variant used by the reload workload (`flip` alternates a registry). */
  writeSluiceConfig(flip: boolean): void;
  close(): Promise<void>;
}

export interface WorldOptions {
  readonly dir: string;
  /** How Sluice is started: the bench child (SIGHUP reload) or `sluice serve` (once it reloads on SIGHUP). */
  readonly sluiceVia: 'child' | 'cli';
  /** Extra node flags for Sluice (e.g. --cpu-prof), read at every start. */
  readonly sluiceNodeFlags?: string[];
  /** Node flags for Sluice B (`--compare`) only. */
  readonly compareNodeFlags?: string[];
  /** Another compiled Sluice (a `dist` directory) to run beside the main one as `sluice-b`. */
  readonly compareDist?: string | null;
  /** Multi-worker experiment: Sluice (or Sluice B, when comparing) as this many processes sharing its port. */
  readonly workers?: number;
  /** More Node flags for a Node proxy (Sluice, its variants, the Node peer, the floor) at its next start:
   * a profiler, a preload. */
  readonly flagsFor?: (name: ProxyName) => readonly string[];
  /** Which lazy proxies to define (the others are not even configured). */
  readonly lazy?: ReadonlySet<ProxyName>;
  readonly log: (s: string) => void;
}

const distDir = fileURLToPath(new URL('..', import.meta.url));

function writeCert(dir: string): { cert: string; key: string } {
  const cert = join(dir, 'tls-cert.pem');
  const key = join(dir, 'tls-key.pem');
  // ECDSA P-256: the handshake cost a modern origin has; the certificate lives only in the work directory.
  const san = `subjectAltName=DNS:${ORIGIN.tls.name},DNS:${INTEGRATION.name},DNS:*.${MITM_DOMAIN}`;
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '2',
      '-subj',
      `/CN=${ORIGIN.tls.name}`,
      '-addext',
      san,
      '-keyout',
      key,
      '-out',
      cert,
    ],
    { stdio: 'ignore' },
  );
  return { cert, key };
}

/** The intercepting proxies' CA: ECDSA P-256, a CA certificate that may sign leaves (throwaway, work dir only). */
function writeMitmCa(dir: string): { cert: string; key: string } {
  const cert = join(dir, 'mitm-ca.pem');
  const key = join(dir, 'mitm-ca.key');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '2',
      '-subj',
      '/CN=Sluice bench interception CA',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
      '-keyout',
      key,
      '-out',
      cert,
    ],
    { stdio: 'ignore' },
  );
  return { cert, key };
}

function nginxConf(dir: string, www: string, tls: { cert: string; key: string }): string {
  const tmp = ensureDir(join(dir, 'nginx-tmp'));
  return `# Origins for the Sluice benchmark (one process, no master: stopped by PID).
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile ${NOFILE};
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'nginx-error.log')} warn;
events { worker_connections 30000; }
http {
  access_log off;
  client_body_temp_path ${tmp}/body;
  proxy_temp_path ${tmp}/proxy;
  fastcgi_temp_path ${tmp}/fastcgi;
  uwsgi_temp_path ${tmp}/uwsgi;
  scgi_temp_path ${tmp}/scgi;
  default_type application/octet-stream;
  sendfile on;
  keepalive_requests 10000000;
  keepalive_timeout 600s;
  client_header_timeout 600s;
  open_file_cache max=16;
  client_body_buffer_size 64k;
  server {
    listen ${ORIGIN.http.address}:${ORIGIN.http.port};
    root ${www};
    location = ${ECHO_PATH} { return 200 "ok"; }
  }
  server {
    listen ${ORIGIN.tls.address}:${ORIGIN.tls.port} ssl;
    ssl_certificate ${tls.cert};
    ssl_certificate_key ${tls.key};
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache off;
    ssl_session_tickets off;
    root ${www};
    location = ${ECHO_PATH} { return 200 "ok"; }
  }
}
`;
}

/** `workers`: Squid's SMP mode (kids share the port; needs shared memory and a writable run directory, which
 * startSquid provides). `bump`: squid-openssl intercepting every CONNECT with leaves signed by the bench's CA. */
function squidConf(
  dir: string,
  port: number,
  opts: { caFile: string; workers?: number; bump?: { cert: string; key: string; certgen: string } },
): string {
  const bump = opts.bump
    ? `http_port 127.0.0.1:${port} ssl-bump tls-cert=${opts.bump.cert} tls-key=${opts.bump.key} generate-host-certificates=on dynamic_cert_mem_cache_size=64MB
sslcrtd_program ${opts.bump.certgen} -s ${join(dir, 'ssl_db')} -M 64MB
sslcrtd_children 8 startup=2 idle=1
acl step1 at_step SslBump1
ssl_bump peek step1
ssl_bump bump all
`
    : `http_port 127.0.0.1:${port}\n`;
  return `# Squid as a plain forward proxy: no cache (every request goes to the origin, as through Sluice),
# access log on (Sluice's audit log is on too), names from /etc/hosts (a private bind mount).
${bump}${opts.workers && opts.workers > 1 ? `workers ${opts.workers}\n` : ''}# https:// targets (absolute-form https reads and writes) are verified against the bench origin's certificate.
tls_outgoing_options cafile=${opts.caFile}
visible_hostname squid.bench.test
http_access allow all
cache deny all
cache_mem 8 MB
access_log stdio:${join(dir, 'access.log')}
cache_log ${join(dir, 'cache.log')}
cache_store_log none
pid_filename ${opts.workers && opts.workers > 1 ? join(dir, 'squid.pid') : 'none'}
coredump_dir ${dir}
max_filedescriptors ${NOFILE}
shutdown_lifetime 0 seconds
client_idle_pconn_timeout 10 minutes
read_timeout 15 minutes
dns_nameservers 127.0.0.1
`;
}

function tinyproxyConf(dir: string, port: number): string {
  return `# tinyproxy as a plain forward proxy; CONNECT to 443 allowed; log at Info (one line per connection).
Port ${port}
Listen 127.0.0.1
Timeout 600
MaxClients 10000
LogFile "${join(dir, 'tinyproxy.log')}"
LogLevel Info
ConnectPort 443
`;
}

/** mitmproxy's confdir: the CA as mitmproxy wants it (key and certificate in one PEM). */
function mitmConfdir(dir: string, ca: { cert: string; key: string }): string {
  const conf = ensureDir(join(dir, 'mitmproxy'));
  writeFileSync(join(conf, 'mitmproxy-ca.pem'), readFileSync(ca.key, 'utf8') + readFileSync(ca.cert, 'utf8'));
  writeFileSync(join(conf, 'mitmproxy-ca-cert.pem'), readFileSync(ca.cert, 'utf8'));
  return conf;
}

export interface SluiceConfigOptions {
  readonly port: number;
  readonly flip?: boolean;
  readonly workers?: number | 'auto';
  readonly adminPort?: number;
  readonly killFile?: string;
  readonly extraIdentities?: Record<string, { passwordHash: string; integrations: string[]; reads: 'public' }>;
  /** The TLS-inspection settings, once Sluice has them (see inspectionConfig). */
  readonly inspection?: Record<string, unknown>;
  readonly logLevel?: string;
}

export async function startWorld(opts: WorldOptions): Promise<World> {
  const { dir, log } = opts;
  const lazy = opts.lazy ?? new Set<ProxyName>();
  ensureDir(dir);
  chmodSync(dir, 0o755);
  const logDir = ensureDir(join(dir, 'logs'));
  const www = ensureDir(join(dir, 'www'));
  writeFileSync(join(www, SMALL_PATH.slice(1)), 'x'.repeat(SMALL_BYTES - 1) + '\n');
  writeFileSync(join(www, BULK_PATH.slice(1)), randomBytes(BULK_BYTES));
  const tls = writeCert(dir);
  const mitmCa = writeMitmCa(dir);
  const hosts = join(dir, 'hosts');
  const hostLines = [
    '127.0.0.1 localhost',
    `${ORIGIN.http.address} ${ORIGIN.http.name}`,
    `${ORIGIN.tls.address} ${ORIGIN.tls.name} ${INTEGRATION.name}`,
  ];
  for (let i = 0; i < MITM_HOSTS; i += 8)
    hostLines.push(`${ORIGIN.tls.address} ${Array.from({ length: 8 }, (_, k) => mitmHost(i + k)).join(' ')}`);
  writeFileSync(hosts, hostLines.join('\n') + '\n');
  chmodSync(hosts, 0o644);

  writeFileSync(join(dir, 'nginx.conf'), nginxConf(dir, www, tls));
  const nginx = startForeground('nginx', ['nginx', '-c', join(dir, 'nginx.conf'), '-p', dir], { logDir });
  await waitForPort(ORIGIN.http.address, ORIGIN.http.port);
  await waitForPort(ORIGIN.tls.address, ORIGIN.tls.port);

  const dns = await startBenchDns('127.0.0.1');
  dns.set(ORIGIN.http.name, [ORIGIN.http.address]);
  dns.set(ORIGIN.tls.name, [ORIGIN.tls.address]);
  dns.set(INTEGRATION.name, [INTEGRATION.address]);
  for (let i = 0; i < MITM_HOSTS; i++) dns.set(mitmHost(i), [ORIGIN.tls.address]);
  dns.bomb(ORIGIN.http.address, BOMB_PREFIX);

  const password = randomBytes(12).toString('base64url');
  const passwordHash = await hashPassword(password);
  const victims = new Map<string, string>();
  const victimIdentities: Record<string, { passwordHash: string; integrations: string[]; reads: 'public' }> = {};
  if (lazy.has('sluice-hostile')) {
    for (let i = 0; i < 20; i++) {
      const pass = randomBytes(12).toString('base64url');
      victims.set(`victim${i}`, pass);
      victimIdentities[`victim${i}`] = { passwordHash: await hashPassword(pass), integrations: [], reads: 'public' };
    }
  }
  const sluiceConfig = join(dir, 'sluice.yaml');
  const sluicePort = await freePort();
  const configFor = (o: SluiceConfigOptions) => ({
    mode: 'enforce',
    // The product's multi-worker mode (`--workers N`): a primary and N processes sharing the port. Left
    // out for one, so that a --compare build older than the setting still reads the file.
    ...(o.workers !== undefined && o.workers !== 1 ? { workers: o.workers } : {}),
    listen: { http: `127.0.0.1:${o.port}`, socks5: null, admin: o.adminPort ? `127.0.0.1:${o.adminPort}` : null },
    registries: o.flip ? [ORIGIN.tls.name, 'registry.npmjs.org'] : [ORIGIN.tls.name],
    integrations: { 'bench-api': { hosts: [INTEGRATION.name], methods: ['GET', 'POST'] } },
    identities: {
      [BENCH_USER]: { passwordHash, integrations: ['bench-api'], reads: 'public' },
      ...(o.extraIdentities ?? {}),
    },
    addressGuard: {
      allow: [
        { cidr: `${ORIGIN.http.address}/32`, hosts: [ORIGIN.http.name, `*${BOMB_SUFFIX}`] },
        { cidr: `${ORIGIN.tls.address}/32`, hosts: [ORIGIN.tls.name, INTEGRATION.name, `*.${MITM_DOMAIN}`] },
        { cidr: `${BOMB_PREFIX}.0.0/16`, hosts: [`*${BOMB_SUFFIX}`] },
      ],
      deny: [],
    },
    dns: { servers: [dns.server], timeoutMs: 2000, minTtlS: 300, maxTtlS: 300 },
    // The origin's certificate is the bench's own: trusted for Sluice-originated TLS (integration writes and
    // https:// reads) through upstream.caFile, as a deployment with a private CA would.
    upstream: { caFile: tls.cert },
    // Idle tunnels must outlive the memory workload, and its 5,000 tunnels (one identity) must be admitted.
    limits: { idleTimeoutMs: 600_000, maxConnections: 65_536, maxConnectionsPerIdentity: 65_536 },
    ...(o.killFile ? { killSwitch: { file: o.killFile } } : {}),
    ...(o.inspection ? { inspection: o.inspection } : {}),
    log: { level: o.logLevel ?? 'info' },
  });
  const writeConfig = (path: string, o: SluiceConfigOptions) => {
    // YAML is a superset of JSON; rename makes the swap atomic for a reader.
    writeFileSync(`${path}.tmp`, JSON.stringify(configFor(o), null, 2));
    renameSync(`${path}.tmp`, path);
  };
  const workers = opts.workers ?? 1;
  const sluiceWorkers = opts.compareDist ? 1 : workers;
  const writeSluiceConfig = (flip: boolean) =>
    writeConfig(sluiceConfig, { port: sluicePort, flip, workers: sluiceWorkers });
  writeSluiceConfig(false);
  const smpWorkers =
    Number(execFileSync(process.execPath, ['-p', 'require("node:os").availableParallelism()']).toString().trim()) || 2;

  const proxies = new Map<ProxyName, Proxy>();
  const add = (
    name: ProxyName,
    port: number,
    launch: () => Foreground,
    auth: { user: string; pass: string } | null,
    ready?: () => Promise<void>,
  ) => {
    let current: Foreground | null = null;
    const p: Proxy = {
      name,
      port,
      lazy: LAZY.includes(name),
      failed: null,
      auth: auth ? `Basic ${Buffer.from(`${auth.user}:${auth.pass}`).toString('base64')}` : null,
      userinfo: auth ? `${auth.user}:${auth.pass}` : null,
      proc: () => {
        if (!current) throw new Error(`${name} is not running`);
        return current;
      },
      async start() {
        current = launch();
        const exited = new Promise<never>((_, reject) =>
          current!.child.once('exit', (code, sig) =>
            reject(new Error(`${name} exited (${code ?? sig}) before listening; see ${join(logDir, name)}.err`)),
          ),
        );
        exited.catch(() => undefined);
        try {
          await Promise.race([(ready ?? (() => waitForPort('127.0.0.1', port, 30_000)))(), exited]);
        } catch (e) {
          await current?.stop();
          current = null;
          throw e;
        }
      },
      async stop() {
        await current?.stop();
        current = null;
      },
    };
    proxies.set(name, p);
  };

  const node = process.execPath;
  const allFlags = (name: ProxyName) => [...(opts.flagsFor?.(name) ?? [])];
  // Workers are the CLI's (the primary forks them and relays SIGHUP as a reload), so a run with workers
  // starts `sluice serve` whatever --sluice says.
  const launchSluice =
    (name: ProxyName, dist: string, config: string, viaCli: boolean, flags: readonly string[]) => () => {
      const argv =
        opts.sluiceVia === 'cli' || viaCli
          ? [node, ...allFlags(name), ...flags, join(dist, 'proxy/cli.js'), 'serve', '--config', config]
          : [node, ...allFlags(name), ...flags, join(dist, 'bench/sluice-child.js'), config];
      // stdout is the audit log (pino's normal destination), kept in a file.
      return startForeground(name, argv, { logDir });
    };
  const sluiceAuth = { user: BENCH_USER, pass: password };
  add(
    'sluice',
    sluicePort,
    launchSluice('sluice', distDir, sluiceConfig, sluiceWorkers > 1, opts.sluiceNodeFlags ?? []),
    sluiceAuth,
  );
  if (opts.compareDist) {
    const portB = await freePort();
    const configB = join(dir, 'sluice-b.yaml');
    writeConfig(configB, { port: portB, workers });
    add(
      'sluice-b',
      portB,
      launchSluice('sluice-b', opts.compareDist, configB, workers > 1, opts.compareNodeFlags ?? []),
      sluiceAuth,
    );
  }
  if (lazy.has('sluice-smp')) {
    const port = await freePort();
    const config = join(dir, 'sluice-smp.yaml');
    writeConfig(config, { port, workers: 'auto' });
    add('sluice-smp', port, launchSluice('sluice-smp', distDir, config, true, []), sluiceAuth);
  }
  if (lazy.has('sluice-quiet')) {
    const port = await freePort();
    const config = join(dir, 'sluice-quiet.yaml');
    writeConfig(config, { port, logLevel: 'warn' });
    add('sluice-quiet', port, launchSluice('sluice-quiet', distDir, config, false, []), sluiceAuth);
  }
  if (lazy.has('sluice-young')) {
    const port = await freePort();
    const config = join(dir, 'sluice-young.yaml');
    writeConfig(config, { port });
    add(
      'sluice-young',
      port,
      launchSluice('sluice-young', distDir, config, false, ['--max-semi-space-size=16']),
      sluiceAuth,
    );
  }
  const hostile = { killFile: join(dir, 'hostile-kill-switch'), adminPort: await freePort() };
  if (lazy.has('sluice-hostile')) {
    const port = await freePort();
    const config = join(dir, 'sluice-hostile.yaml');
    writeConfig(config, {
      port,
      adminPort: hostile.adminPort,
      killFile: hostile.killFile,
      extraIdentities: victimIdentities,
    });
    add('sluice-hostile', port, launchSluice('sluice-hostile', distDir, config, true, []), sluiceAuth);
  }
  const sluiceInspects = inspectionSupported();
  if (lazy.has('sluice-inspect') && sluiceInspects) {
    const port = await freePort();
    const config = join(dir, 'sluice-inspect.yaml');
    writeConfig(config, { port, inspection: inspectionConfig(mitmCa) });
    add('sluice-inspect', port, launchSluice('sluice-inspect', distDir, config, true, []), sluiceAuth);
  }

  // Squid drops root for its cache_effective_user (Debian: proxy); it must be able to write its directories.
  const proxyUser = (() => {
    try {
      return {
        uid: Number(execFileSync('id', ['-u', 'proxy']).toString().trim()),
        gid: Number(execFileSync('id', ['-g', 'proxy']).toString().trim()),
      };
    } catch {
      return null;
    }
  })();
  const squidDirFor = (name: string) => {
    const d = ensureDir(join(dir, name));
    if (proxyUser) chownSync(d, proxyUser.uid, proxyUser.gid);
    else chmodSync(d, 0o777);
    return d;
  };
  // Debian's `squid` is built with GnuTLS, and reading an https:// origin's TLS 1.3 response fails there
  // (ERR_READ_ERROR after a good handshake), so every Squid in the bench is the squid-openssl build of the same
  // version (unpacked, see env.ts); the installed binary only if that cannot be had.
  let squidBin = 'squid';
  let squidCertgen: string | null = null;
  try {
    const sq = squidOpenssl(dir, log);
    squidBin = sq.squid;
    squidCertgen = sq.certgen;
  } catch (e) {
    log(
      `squid-openssl is not available (${(e as Error).message.split('\n')[0]}): Squid's https:// rows will fail and ssl_bump is left out`,
    );
  }
  const squidPort = await freePort();
  const squidDir = squidDirFor('squid');
  writeFileSync(join(squidDir, 'squid.conf'), squidConf(squidDir, squidPort, { caFile: tls.cert }));
  add(
    'squid',
    squidPort,
    () => startForeground('squid', [squidBin, '-N', '-f', join(squidDir, 'squid.conf')], { logDir, hosts }),
    null,
  );

  if (lazy.has('squid-smp')) {
    const port = await freePort();
    const d = squidDirFor('squid-smp');
    // SMP kids talk over Unix sockets in Squid's run directory and share memory segments in /dev/shm: the
    // private mount namespace gets a run directory of its own (the host's /run/squid is never touched).
    const run = squidDirFor('squid-smp/run');
    writeFileSync(join(d, 'squid.conf'), squidConf(d, port, { caFile: tls.cert, workers: smpWorkers }));
    add(
      'squid-smp',
      port,
      () =>
        startForeground('squid-smp', [squidBin, '--foreground', '-f', join(d, 'squid.conf')], {
          logDir,
          hosts,
          binds: [[run, '/run/squid']],
        }),
      null,
    );
  }
  if (lazy.has('squid-bump') && squidCertgen) {
    const port = await freePort();
    const d = squidDirFor('squid-bump');
    const db = join(d, 'ssl_db');
    if (existsSync(db)) rmSync(db, { recursive: true });
    execFileSync(squidCertgen, ['-c', '-s', db, '-M', '64MB'], { stdio: 'ignore' });
    if (proxyUser) execFileSync('chown', ['-R', `${proxyUser.uid}:${proxyUser.gid}`, db]);
    // The CA key must be readable by the proxy user Squid drops to (a throwaway key in the work directory).
    chmodSync(mitmCa.key, 0o644);
    writeFileSync(
      join(d, 'squid.conf'),
      squidConf(d, port, { caFile: tls.cert, bump: { cert: mitmCa.cert, key: mitmCa.key, certgen: squidCertgen } }),
    );
    add(
      'squid-bump',
      port,
      () => startForeground('squid-bump', [squidBin, '-N', '-f', join(d, 'squid.conf')], { logDir, hosts }),
      null,
    );
  }
  if (lazy.has('mitmproxy')) {
    const port = await freePort();
    const conf = mitmConfdir(dir, mitmCa);
    add(
      'mitmproxy',
      port,
      () =>
        startForeground(
          'mitmproxy',
          [
            'mitmdump',
            '--quiet',
            '--mode',
            'regular',
            '--listen-host',
            '127.0.0.1',
            '--listen-port',
            String(port),
            '--set',
            `confdir=${conf}`,
            '--set',
            `ssl_verify_upstream_trusted_ca=${tls.cert}`,
            '--set',
            'http2=false',
          ],
          { logDir, hosts },
        ),
      null,
    );
  }

  const tinyDir = ensureDir(join(dir, 'tinyproxy'));
  chmodSync(tinyDir, 0o777);
  const tinyPort = await freePort();
  writeFileSync(join(tinyDir, 'tinyproxy.conf'), tinyproxyConf(tinyDir, tinyPort));
  add(
    'tinyproxy',
    tinyPort,
    () => startForeground('tinyproxy', ['tinyproxy', '-d', '-c', join(tinyDir, 'tinyproxy.conf')], { logDir, hosts }),
    null,
  );

  const nodePort = await freePort();
  add(
    'node',
    nodePort,
    () =>
      startForeground(
        'node-peer',
        [node, ...allFlags('node'), join(distDir, 'bench/node-peer.js'), `127.0.0.1:${nodePort}`, tls.cert],
        { logDir, hosts },
      ),
    null,
  );
  const floorPort = await freePort();
  // The floor gets the same Proxy-Authorization bytes as Sluice (and drops them unread, as hop-by-hop).
  add(
    'floor',
    floorPort,
    () =>
      startForeground(
        'floor-peer',
        [node, ...allFlags('floor'), join(distDir, 'bench/floor-peer.js'), `127.0.0.1:${floorPort}`, tls.cert],
        { logDir, hosts },
      ),
    sluiceAuth,
  );

  const close = async () => {
    for (const p of proxies.values()) await p.stop();
    await nginx.stop();
    await dns.close();
  };
  for (const p of proxies.values()) {
    if (p.lazy) continue;
    log(`starting ${p.name} on 127.0.0.1:${p.port}`);
    try {
      await p.start();
    } catch (err) {
      // A peer that did not come up is left out of every workload; the run goes on without it.
      p.failed = (err as Error).message.split('\n')[0]!;
      log(`  ${p.name} failed to start: ${p.failed}`);
    }
  }
  return {
    dir,
    caFile: tls.cert,
    mitmCa,
    nginx,
    dns,
    proxies,
    sluiceConfig,
    password,
    victims,
    hostile,
    smpWorkers,
    writeStartupConfig: (path, port, adminPort) => writeConfig(path, { port, adminPort }),
    sluiceInspects,
    writeSluiceConfig,
    close,
  };
}

// ─── Sluice joins the TLS-inspection workloads here ────────────────────────────────────────────────────────
// Sluice does not intercept TLS yet. Once its config schema has `inspection` ({ caCertFile, caKeyFile }), the
// bench starts `sluice-inspect` with the interception CA below and runs the inspection workloads (mitm-ka50,
// mitm-conn32, mitm-memory) against it beside squid-bump and mitmproxy, with no other change here. What may
// need adjusting then: which CONNECT targets Sluice intercepts (the bench's hosts are the TLS origin's
// `tls.bench.test` and `h<i>.mitm.bench.test`, reached through the addressGuard.allow entry above) and
// any further `inspection` settings the feature requires.
export function inspectionConfig(ca: { cert: string; key: string }): Record<string, unknown> {
  return { caCertFile: ca.cert, caKeyFile: ca.key };
}

/** Whether the compiled Sluice knows `inspection` (its config schema has the key). */
export function inspectionSupported(): boolean {
  try {
    const schema = readFileSync(join(distDir, 'firewall/config-schema.js'), 'utf8');
    return /\binspection\s*:/.test(schema);
  } catch {
    return false;
  }
}
