// The benchmark's world on loopback: nginx origins (plain HTTP and TLS with a throwaway certificate), a fake
// DNS server for Sluice, a hosts file for the peers, and the four proxies, each with its own config in the
// work directory, started in the foreground and stopped by PID.
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, renameSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type FakeDns, startFakeDns } from '../test/helpers/fake-dns.js';
import { hashPassword } from '../proxy/auth/password-hash.js';
import { type Foreground, NOFILE, ensureDir, freePort, startForeground, waitForPort } from './env.js';

/** The origins: names for proxies that resolve (Sluice via DNS, the peers via their hosts file), addresses for
 * direct runs. Sluice listens on 127.0.0.1, so the origins live on other loopback addresses (the proxy's own
 * address is never an allowed target). */
export const ORIGIN = Object.freeze({
  http: { name: 'origin.bench.test', address: '127.0.0.71', port: 8080 },
  tls: { name: 'tls.bench.test', address: '127.0.0.72', port: 443 },
});
export const SMALL_PATH = '/small';
export const SMALL_BYTES = 128;
export const BULK_PATH = '/bulk-10m';
export const BULK_BYTES = 10 * 1024 * 1024;

export const BENCH_USER = 'bench';

/** `sluice-b`: a second Sluice build (`--compare DIR`), measured in the same rounds for an A/B of a change. */
export type TargetName = 'direct' | 'sluice' | 'squid' | 'tinyproxy' | 'node' | 'sluice-b';
export const PROXIES: readonly Exclude<TargetName, 'direct'>[] = ['sluice', 'squid', 'tinyproxy', 'node'];

export interface Proxy {
  readonly name: Exclude<TargetName, 'direct'>;
  readonly port: number;
  /** Proxy-Authorization value (Sluice only: the peers run without authentication). */
  readonly auth: string | null;
  readonly userinfo: string | null;
  readonly proc: () => Foreground;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface World {
  readonly dir: string;
  readonly caFile: string;
  readonly nginx: Foreground;
  readonly dns: FakeDns;
  readonly proxies: ReadonlyMap<Exclude<TargetName, 'direct'>, Proxy>;
  readonly sluiceConfig: string;
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
  readonly log: (s: string) => void;
}

const distDir = fileURLToPath(new URL('..', import.meta.url));

function writeCert(dir: string): { cert: string; key: string } {
  const cert = join(dir, 'tls-cert.pem');
  const key = join(dir, 'tls-key.pem');
  // ECDSA P-256: the handshake cost a modern origin has; the certificate lives only in the work directory.
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
    '-subj', `/CN=${ORIGIN.tls.name}`, '-addext', `subjectAltName=DNS:${ORIGIN.tls.name}`, '-keyout', key, '-out', cert,
  ], { stdio: 'ignore' });
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
  server {
    listen ${ORIGIN.http.address}:${ORIGIN.http.port};
    root ${www};
  }
  server {
    listen ${ORIGIN.tls.address}:${ORIGIN.tls.port} ssl;
    ssl_certificate ${tls.cert};
    ssl_certificate_key ${tls.key};
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache off;
    ssl_session_tickets off;
    root ${www};
  }
}
`;
}

function squidConf(dir: string, port: number): string {
  return `# Squid as a plain forward proxy: no cache (every request goes to the origin, as through Sluice),
# access log on (Sluice's audit log is on too), names from /etc/hosts (a private bind mount).
http_port 127.0.0.1:${port}
visible_hostname squid.bench.test
http_access allow all
cache deny all
cache_mem 8 MB
access_log stdio:${join(dir, 'access.log')}
cache_log ${join(dir, 'cache.log')}
cache_store_log none
pid_filename none
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

export async function startWorld(opts: WorldOptions): Promise<World> {
  const { dir, log } = opts;
  ensureDir(dir);
  chmodSync(dir, 0o755);
  const logDir = ensureDir(join(dir, 'logs'));
  const www = ensureDir(join(dir, 'www'));
  writeFileSync(join(www, SMALL_PATH.slice(1)), 'x'.repeat(SMALL_BYTES - 1) + '\n');
  writeFileSync(join(www, BULK_PATH.slice(1)), randomBytes(BULK_BYTES));
  const tls = writeCert(dir);
  const hosts = join(dir, 'hosts');
  writeFileSync(hosts, `127.0.0.1 localhost\n${ORIGIN.http.address} ${ORIGIN.http.name}\n${ORIGIN.tls.address} ${ORIGIN.tls.name}\n`);
  chmodSync(hosts, 0o644);

  writeFileSync(join(dir, 'nginx.conf'), nginxConf(dir, www, tls));
  const nginx = startForeground('nginx', ['nginx', '-c', join(dir, 'nginx.conf'), '-p', dir], { logDir });
  await waitForPort(ORIGIN.http.address, ORIGIN.http.port);
  await waitForPort(ORIGIN.tls.address, ORIGIN.tls.port);

  const dns = await startFakeDns('127.0.0.1');
  for (const o of Object.values(ORIGIN)) dns.set(o.name, { a: [o.address], ttl: 300 });

  const password = randomBytes(12).toString('base64url');
  const passwordHash = await hashPassword(password);
  const sluiceConfig = join(dir, 'sluice.yaml');
  const sluicePort = await freePort();
  const writeConfig = (flip: boolean, path: string, port: number, workers = 1) => {
    const config = {
      mode: 'enforce',
      // The product's multi-worker mode (`--workers N`): a primary and N processes sharing the port. Left
      // out for one, so that a --compare build older than the setting still reads the file.
      ...(workers > 1 ? { workers } : {}),
      listen: { http: `127.0.0.1:${port}`, socks5: null, admin: null },
      registries: flip ? [ORIGIN.tls.name, 'registry.npmjs.org'] : [ORIGIN.tls.name],
      integrations: {},
      identities: { [BENCH_USER]: { passwordHash, integrations: [], reads: 'public' } },
      addressGuard: {
        allow: [
          { cidr: `${ORIGIN.http.address}/32`, hosts: [ORIGIN.http.name] },
          { cidr: `${ORIGIN.tls.address}/32`, hosts: [ORIGIN.tls.name] },
        ],
        deny: [],
      },
      dns: { servers: [dns.server], timeoutMs: 2000, minTtlS: 300, maxTtlS: 300 },
      upstream: { caFile: tls.cert },
      // Idle tunnels must outlive the memory workload, and its 5,000 tunnels (one identity) must be admitted.
      limits: { idleTimeoutMs: 600_000, maxConnections: 65_536, maxConnectionsPerIdentity: 65_536 },
      log: { level: 'info' },
    };
    // YAML is a superset of JSON; rename makes the swap atomic for a reader.
    writeFileSync(`${path}.tmp`, JSON.stringify(config, null, 2));
    renameSync(`${path}.tmp`, path);
  };
  const workers = opts.workers ?? 1;
  const sluiceWorkers = opts.compareDist ? 1 : workers;
  const writeSluiceConfig = (flip: boolean) => writeConfig(flip, sluiceConfig, sluicePort, sluiceWorkers);
  writeSluiceConfig(false);

  const proxies = new Map<Exclude<TargetName, 'direct'>, Proxy>();
  const add = (name: Exclude<TargetName, 'direct'>, port: number, launch: () => Foreground, auth: { user: string; pass: string } | null) => {
    let current: Foreground | null = null;
    proxies.set(name, {
      name,
      port,
      auth: auth ? `Basic ${Buffer.from(`${auth.user}:${auth.pass}`).toString('base64')}` : null,
      userinfo: auth ? `${auth.user}:${auth.pass}` : null,
      proc: () => {
        if (!current) throw new Error(`${name} is not running`);
        return current;
      },
      async start() {
        current = launch();
        await waitForPort('127.0.0.1', port);
      },
      async stop() {
        await current?.stop();
        current = null;
      },
    });
  };

  const node = process.execPath;
  // Workers are the CLI's (the primary forks them and relays SIGHUP as a reload), so a run with workers
  // starts `sluice serve` whatever --sluice says.
  const launchSluice = (name: string, dist: string, config: string, workers: number, flags: readonly string[]) => () => {
    const argv = opts.sluiceVia === 'cli' || workers > 1
      ? [node, ...flags, join(dist, 'proxy/cli.js'), 'serve', '--config', config]
      : [node, ...flags, join(dist, 'bench/sluice-child.js'), config];
    // stdout is the audit log (pino's normal destination), kept in a file.
    return startForeground(name, argv, { logDir });
  };
  add('sluice', sluicePort, launchSluice('sluice', distDir, sluiceConfig, sluiceWorkers, opts.sluiceNodeFlags ?? []), { user: BENCH_USER, pass: password });
  if (opts.compareDist) {
    const portB = await freePort();
    const configB = join(dir, 'sluice-b.yaml');
    writeConfig(false, configB, portB, workers);
    add('sluice-b', portB, launchSluice('sluice-b', opts.compareDist, configB, workers, opts.compareNodeFlags ?? []), { user: BENCH_USER, pass: password });
  }

  const squidDir = ensureDir(join(dir, 'squid'));
  const squidPort = await freePort();
  writeFileSync(join(squidDir, 'squid.conf'), squidConf(squidDir, squidPort));
  try {
    // Squid drops root for its cache_effective_user (Debian: proxy); it must be able to write its logs.
    const uid = Number(execFileSync('id', ['-u', 'proxy']).toString().trim());
    const gid = Number(execFileSync('id', ['-g', 'proxy']).toString().trim());
    chownSync(squidDir, uid, gid);
  } catch {
    chmodSync(squidDir, 0o777);
  }
  add('squid', squidPort, () => startForeground('squid', ['squid', '-N', '-f', join(squidDir, 'squid.conf')], { logDir, hosts }), null);

  const tinyDir = ensureDir(join(dir, 'tinyproxy'));
  chmodSync(tinyDir, 0o777);
  const tinyPort = await freePort();
  writeFileSync(join(tinyDir, 'tinyproxy.conf'), tinyproxyConf(tinyDir, tinyPort));
  add('tinyproxy', tinyPort, () => startForeground('tinyproxy', ['tinyproxy', '-d', '-c', join(tinyDir, 'tinyproxy.conf')], { logDir, hosts }), null);

  const nodePort = await freePort();
  add('node', nodePort, () => startForeground('node-peer', [node, join(distDir, 'bench/node-peer.js'), `127.0.0.1:${nodePort}`], { logDir, hosts }), null);

  const close = async () => {
    for (const p of proxies.values()) await p.stop();
    await nginx.stop();
    await dns.close();
  };
  try {
    for (const p of proxies.values()) {
      log(`starting ${p.name} on 127.0.0.1:${p.port}`);
      await p.start();
    }
  } catch (err) {
    // A peer that did not come up must not leave the others (and the origin) holding their ports: the next
    // run would measure against stale processes.
    await close();
    throw err;
  }
  return {
    dir,
    caFile: tls.cert,
    nginx,
    dns,
    proxies,
    sluiceConfig,
    writeSluiceConfig,
    close,
  };
}
