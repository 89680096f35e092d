// Stand-ins for the outside world, on loopback addresses of Sluice's namespace (see topology.ts), with names
// only the fake DNS server knows. Every server counts its connections, so a test can prove that a denied
// request reached nothing.
import { execFileSync, spawn } from 'node:child_process';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Test } from 'tap';
import { type Canary, type Handler, startHttpCanary, startHttpsCanary } from '../../helpers/canary.js';
import { type FakeDns, startFakeDns } from '../../helpers/fake-dns.js';
import { type TestPki, testPki } from '../../helpers/pki.js';
import { type GitRepo, type NpmTarball, PKG, type Wheel, bareEnv } from './artifacts.js';

export const ADDR = {
  public: '127.0.0.2',
  api: '127.0.0.3',
  registry: '127.0.0.4',
  git: '127.0.0.5',
  forge: '127.0.0.6',
  metadata: '169.254.169.254',
} as const;

/** What the fake DNS server answers. */
const ZONE: Readonly<Record<string, string>> = {
  'public.test': ADDR.public,
  'api.test': ADDR.api,
  'registry.test': ADDR.registry,
  'pypi.test': ADDR.registry,
  'git.test': ADDR.git,
  'forge.test': ADDR.forge,
  'meta.test': ADDR.metadata,
};

/** Names the TLS stand-ins answer to; their one certificate (from the test CA) carries all of them. */
const TLS_NAMES = ['public.test', 'api.test', 'registry.test', 'pypi.test', 'git.test', 'forge.test'];

export const PUBLIC_BODY = 'public read-only site: hello';

export interface GitServer {
  readonly connections: number;
  readonly requests: { method: string; url: string }[];
}

export interface StandIns {
  readonly dns: FakeDns;
  readonly pki: TestPki;
  /** http://public.test/ — a public read-only site. */
  readonly publicSite: Canary;
  /** https://api.test/ — an integration API; anything that arrives here arrived over TLS. */
  readonly api: Canary;
  /** https://registry.test/ (npm) and https://pypi.test/ (PyPI simple index and files). */
  readonly registry: Canary;
  /** https://git.test/ (and http://git.test/) — `git http-backend` (smart HTTP). */
  readonly git: GitServer;
  /** https://forge.test/ — a git host that is not a registry: must see zero connections. */
  readonly forge: Canary;
  /** 169.254.169.254:80 and meta.test — the cloud metadata service: must see zero connections. */
  readonly metadata: Canary;
}

export interface Served {
  readonly npm?: NpmTarball;
  readonly wheel?: Wheel;
  readonly git?: GitRepo;
}

const notFound = (res: ServerResponse) => {
  res.writeHead(404, { 'content-type': 'application/json' });
  res.end('{"error":"not found"}');
};

/** One TLS server for both package registries, routed by Host. */
function registryHandler(served: Served): Handler {
  return (req, res) => {
    const host = String(req.headers.host ?? '').replace(/:443$/, '');
    const { npm, wheel } = served;
    if (req.url === '/-/ping') {
      // npm's own health endpoint; gives every client something to fetch from a registry with no artifacts.
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(`{"ok":true,"registry":"${host}"}`);
      return;
    }
    if (host === 'registry.test' && npm) {
      if (req.url === `/${PKG.name}`) {
        const tarball = `https://registry.test/${PKG.name}/-/${npm.filename}`;
        const version = {
          name: PKG.name,
          version: PKG.version,
          main: 'index.js',
          dist: { tarball, integrity: npm.integrity, shasum: npm.shasum },
        };
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            name: PKG.name,
            'dist-tags': { latest: PKG.version },
            versions: { [PKG.version]: version },
          }),
        );
        return;
      }
      if (req.url === `/${PKG.name}/-/${npm.filename}`) {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': npm.bytes.length });
        res.end(npm.bytes);
        return;
      }
    }
    if (host === 'pypi.test' && wheel) {
      // PEP 503: the project page lists files with their hash in the fragment; pip checks it.
      if (req.url === `/simple/${PKG.name}/`) {
        res.writeHead(200, { 'content-type': 'text/html' });
        res.end(
          `<!DOCTYPE html><html><body><a href="https://pypi.test/packages/${wheel.filename}#sha256=${wheel.sha256}">${wheel.filename}</a></body></html>\n`,
        );
        return;
      }
      if (req.url === `/packages/${wheel.filename}`) {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': wheel.bytes.length });
        res.end(wheel.bytes);
        return;
      }
    }
    notFound(res);
  };
}

const apiHandler: Handler = (req, res) => {
  res.writeHead(req.method === 'POST' ? 201 : 200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ ok: true, method: req.method, path: req.url, received: req.body }));
};

const publicHandler: Handler = (req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.end(req.method === 'HEAD' ? undefined : `${PUBLIC_BODY}\n`);
};

/** Git smart HTTP: `git http-backend` as a CGI behind an HTTPS server (and a plain one on 80, to show what
 * a clone over http:// meets). Bodies are binary (and may be gzip), so this streams them rather than using
 * the text-body canary. */
async function startGitServer(t: Test, pki: TestPki, repo: GitRepo | undefined): Promise<GitServer> {
  let connections = 0;
  const requests: { method: string; url: string }[] = [];
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    requests.push({ method: req.method ?? '', url: req.url ?? '' });
    if (!repo) return notFound(res);
    const url = new URL(req.url ?? '/', 'https://git.test');
    const env: Record<string, string> = {
      ...bareEnv(repo.root),
      GIT_CONFIG_NOSYSTEM: '1',
      GIT_PROJECT_ROOT: repo.root,
      GIT_HTTP_EXPORT_ALL: '1',
      PATH_INFO: decodeURIComponent(url.pathname),
      QUERY_STRING: url.search.slice(1),
      REQUEST_METHOD: req.method ?? 'GET',
      CONTENT_TYPE: String(req.headers['content-type'] ?? ''),
      REMOTE_ADDR: req.socket.remoteAddress ?? '',
      GIT_PROTOCOL: String(req.headers['git-protocol'] ?? ''),
      HTTP_CONTENT_ENCODING: String(req.headers['content-encoding'] ?? ''),
    };
    if (req.headers['content-length']) env.CONTENT_LENGTH = req.headers['content-length'];
    const cgi = spawn('git', ['http-backend'], { env, stdio: ['pipe', 'pipe', 'inherit'] });
    req.pipe(cgi.stdin);
    let head = Buffer.alloc(0);
    let headDone = false;
    cgi.stdout.on('data', (c: Buffer) => {
      if (headDone) return void res.write(c);
      head = Buffer.concat([head, c]);
      const end = head.indexOf('\r\n\r\n');
      if (end === -1) return;
      headDone = true;
      let status = 200;
      const headers: Record<string, string> = {};
      for (const line of head.subarray(0, end).toString('latin1').split('\r\n')) {
        const i = line.indexOf(':');
        const k = line.slice(0, i).trim();
        const v = line.slice(i + 1).trim();
        if (k.toLowerCase() === 'status') status = Number.parseInt(v, 10);
        else headers[k] = v;
      }
      res.writeHead(status, headers);
      res.write(head.subarray(end + 4));
    });
    cgi.on('close', () => (headDone ? res.end() : (res.writeHead(500), res.end())));
  };
  for (const [server, port] of [
    [createHttpsServer({ key: pki.keyPem, cert: pki.certPem }, handle), 443],
    [createHttpServer(handle), 80],
  ] as const) {
    server.on('connection', () => connections++);
    await new Promise<void>((r) => server.listen(port, ADDR.git, r));
    t.teardown(
      () =>
        new Promise<void>((r) => {
          server.closeAllConnections();
          server.close(() => r());
        }),
    );
  }
  return {
    get connections() {
      return connections;
    },
    requests,
  };
}

export async function startStandIns(t: Test, served: Served = {}): Promise<StandIns> {
  execFileSync('ip', ['addr', 'add', `${ADDR.metadata}/32`, 'dev', 'lo']);
  const pki = testPki(TLS_NAMES);
  const dns = await startFakeDns();
  const publicSite = await startHttpCanary(ADDR.public, 80, publicHandler);
  const api = await startHttpsCanary(ADDR.api, 443, pki, apiHandler);
  const registry = await startHttpsCanary(ADDR.registry, 443, pki, registryHandler(served));
  const git = await startGitServer(t, pki, served.git);
  const forge = await startHttpsCanary(ADDR.forge, 443, pki);
  const metadata = await startHttpCanary(ADDR.metadata, 80);
  for (const [name, address] of Object.entries(ZONE)) dns.set(name, { a: [address] });
  t.teardown(async () => {
    await Promise.all([dns, publicSite, api, registry, forge, metadata].map((s) => s.close()));
  });
  return { dns, pki, publicSite, api, registry, git, forge, metadata };
}
