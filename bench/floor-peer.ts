// The floor: the least a correct forward proxy on Sluice's own stack does. Node's HTTP server with the options
// Sluice's listener sets, the same undici Agent (loaded the same way, same keep-alive settings) whose connect
// hook dials an address resolved once per name with `noDelay` and one shared TLS context, as Sluice's dialer
// does, and the same header rules (hop-by-hop fields dropped, Host set to the target). No authentication, no
// policy, no address guard, no audit log, no metrics. CONNECT: resolve, connect, 200, pipe.
//
// Sluice ÷ floor is what Sluice's own work costs on top of the runtime; the functions are named for the
// stage they stand for, so that bench/profile-budget.ts can put the floor's profile in the same table.
//
//   node dist/bench/floor-peer.js HOST:PORT [CA-FILE]
import { lookup } from 'node:dns/promises';
import { readFileSync } from 'node:fs';
import { type IncomingMessage, type ServerResponse, createServer } from 'node:http';
import { createRequire } from 'node:module';
import { type Socket, connect as netConnect } from 'node:net';
import type { Duplex } from 'node:stream';
import { type ConnectionOptions, connect as tlsConnect, createSecureContext, rootCertificates } from 'node:tls';
import type { Agent as UndiciAgent, Dispatcher } from 'undici';

const Agent = createRequire(import.meta.url)('undici/lib/dispatcher/agent.js') as typeof UndiciAgent;

const [host, portText] = (process.argv[2] ?? '127.0.0.1:0').split(':');
const caFile = process.argv[3];
const secureContext = createSecureContext(caFile ? { ca: [...rootCertificates, readFileSync(caFile, 'utf8')] } : {});

// Names resolve once (the bench's names never change); Sluice's dialer likewise reuses a validated plan.
const resolved = new Map<string, Promise<string>>();
function floorResolve(name: string): Promise<string> {
  let p = resolved.get(name);
  if (!p) {
    p = lookup(name, { family: 4 }).then((r) => r.address);
    resolved.set(name, p);
  }
  return p;
}

function floorDial(
  connectOpts: { hostname: string; port: string; protocol: string },
  callback: (err: Error | null, socket: Socket | null) => void,
): void {
  const tls = connectOpts.protocol === 'https:';
  const port = Number(connectOpts.port) || (tls ? 443 : 80);
  floorResolve(connectOpts.hostname).then(
    (address) => {
      const socket = tls
        ? tlsConnect({
            host: address,
            port,
            servername: connectOpts.hostname,
            secureContext,
            ALPNProtocols: ['http/1.1'],
            rejectUnauthorized: true,
            noDelay: true,
          } as ConnectionOptions)
        : netConnect({ host: address, port, noDelay: true });
      const onError = (err: Error) => callback(err, null);
      socket.once('error', onError);
      socket.once(tls ? 'secureConnect' : 'connect', () => {
        socket.removeListener('error', onError);
        callback(null, socket);
      });
    },
    (err: Error) => callback(err, null),
  );
}

const agent = new Agent({ keepAliveTimeout: 4000, keepAliveMaxTimeout: 60_000, connect: floorDial as never });

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authorization',
  'proxy-authenticate',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
  'expect',
  'http2-settings',
]);

function floorRequestHeaders(raw: readonly string[], authority: string): string[] {
  const out = ['host', authority];
  for (let i = 0; i < raw.length; i += 2) if (!HOP_BY_HOP.has(raw[i]!.toLowerCase())) out.push(raw[i]!, raw[i + 1]!);
  return out;
}

function floorResponseHeaders(raw: readonly Buffer[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toString('latin1');
    if (!HOP_BY_HOP.has(name.toLowerCase())) out.push(name, raw[i + 1]!.toString('latin1'));
  }
  return out;
}

function floorForward(req: IncomingMessage, res: ServerResponse): void {
  let target: URL;
  try {
    target = new URL(req.url ?? '');
  } catch {
    res.writeHead(400).end();
    return;
  }
  const cl = req.headers['content-length'];
  const body = req.headers['transfer-encoding'] !== undefined || (cl !== undefined && cl !== '0') ? req : null;
  const handler: Dispatcher.DispatchHandler = {
    onConnect() {},
    onHeaders(status, rawHeaders, resume, statusText) {
      if (status < 200) return true;
      res.writeHead(status, statusText, floorResponseHeaders(rawHeaders as unknown as Buffer[]));
      res.on('drain', resume);
      return true;
    },
    onData: (chunk) => res.write(chunk),
    onComplete: () => {
      res.end();
    },
    onError: () => {
      if (!res.headersSent) res.writeHead(502).end();
      else res.destroy();
    },
  };
  agent.dispatch(
    {
      origin: target.origin,
      path: `${target.pathname}${target.search}`,
      method: req.method as Dispatcher.HttpMethod,
      headers: floorRequestHeaders(req.rawHeaders, target.host),
      body,
    },
    handler,
  );
}

function floorTunnel(req: IncomingMessage, client: Duplex, head: Buffer): void {
  const url = req.url ?? '';
  const colon = url.lastIndexOf(':');
  client.on('error', () => client.destroy());
  floorResolve(url.slice(0, colon)).then(
    function floorTunnelDial(address) {
      const upstream = netConnect(
        { host: address, port: Number(url.slice(colon + 1)), noDelay: true },
        function floorTunnelOpen() {
          client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
          if (head.length) upstream.write(head);
          upstream.pipe(client);
          client.pipe(upstream);
        },
      );
      upstream.on('error', function floorTunnelUpstreamError() {
        client.destroy();
      });
      client.on('close', function floorTunnelClientClose() {
        upstream.destroy();
      });
      upstream.on('close', function floorTunnelUpstreamClose() {
        client.destroy();
      });
    },
    () => client.destroy(),
  );
}

// Sluice's listener options (proxy's http-listener with the default limits).
const server = createServer({
  requireHostHeader: false,
  maxHeaderSize: 16384,
  headersTimeout: 10_000,
  requestTimeout: 0,
  keepAliveTimeout: 5000,
  connectionsCheckingInterval: 1000,
  insecureHTTPParser: false,
  noDelay: true,
});
server.timeout = 600_000;
server.on('request', floorForward);
server.on('connect', floorTunnel);
server.listen({ host, port: Number(portText), backlog: 1024 }, () =>
  process.stderr.write(`floor-peer listening on ${host}:${portText}\n`),
);
process.on('SIGTERM', () => process.exit(0));
