// Shared by the wired-inspection tests: a world with a public HTTPS origin, a Sluice that inspects with a CA
// made for the test, and clients that speak HTTP inside a tunnel with a stock parser (node:http over the
// decrypted socket), so that keep-alive inside one session is exercised as real clients exercise it.
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { type IncomingHttpHeaders, Agent, request as httpRequest } from 'node:http';
import { type Socket, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ConnectionOptions, type TLSSocket, connect as tlsConnect } from 'node:tls';
import type { Test } from 'tap';
import { createCa } from '../../proxy/inspection/ca.js';
import { renderBundle } from '../../proxy/inspection/bundle.js';
import { rootCertificates } from 'node:tls';
import { AGENT_AUTH, type Harness, openTunnel, startSluice } from '../helpers/harness.js';

export { openTunnel };
import { type Canary, startHttpsCanary } from '../helpers/canary.js';
import { type World, buildWorld, worldConfig } from '../helpers/world.js';

export interface InspectionFiles {
  readonly dir: string;
  readonly certFile: string;
  readonly keyFile: string;
  /** Node's roots then the inspection CA, as `sluice ca bundle` prints it. */
  readonly bundleFile: string;
  readonly certPem: string;
}

export async function inspectionCaFiles(): Promise<InspectionFiles> {
  const { ca, keyPem } = await createCa({ exportKey: true });
  const dir = mkdtempSync(join(tmpdir(), 'sluice-wire-ca-'));
  const certFile = join(dir, 'ca.crt');
  const keyFile = join(dir, 'ca.key');
  const bundleFile = join(dir, 'bundle.pem');
  writeFileSync(certFile, ca.certPem);
  writeFileSync(keyFile, keyPem!, { mode: 0o600 });
  chmodSync(keyFile, 0o600);
  writeFileSync(bundleFile, renderBundle(rootCertificates, ca.certPem));
  return { dir, certFile, keyFile, bundleFile, certPem: ca.certPem };
}

export interface WiredWorld {
  readonly w: World;
  readonly h: Harness;
  readonly ca: InspectionFiles;
  /** A public HTTPS origin (public.test on 127.0.0.2:443, the world's certificate). */
  readonly www: Canary;
}

export async function startInspectingSluice(
  t: Test,
  extra: Record<string, unknown> = {},
  inspection: Record<string, unknown> = {},
): Promise<WiredWorld> {
  const w = await buildWorld(t);
  const www = await startHttpsCanary('127.0.0.2', 443, w.pki, (req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(`www ${req.method} ${req.url} ${req.body}`);
  });
  t.teardown(() => www.close());
  const ca = await inspectionCaFiles();
  const h = await startSluice(
    t,
    worldConfig(w, {
      inspection: { caCertFile: ca.certFile, caKeyFile: ca.keyFile, ...inspection },
      ...extra,
    }),
  );
  return { w, h, ca, www };
}

/** TLS over an open tunnel; resolves with the socket once the handshake completed, or the error. */
export function handshake(socket: Socket, opts: ConnectionOptions): Promise<TLSSocket | Error> {
  return new Promise((resolve) => {
    const tls = tlsConnect({ socket, ...opts });
    tls.once('secureConnect', () => resolve(tls));
    tls.once('error', (e) => resolve(e));
  });
}

/** CONNECT, then TLS trusting the inspection CA (and only it). */
export async function inspectedSession(
  port: number,
  host: string,
  ca: string,
  auth: string | null = AGENT_AUTH,
): Promise<TLSSocket> {
  const { head, socket } = await openTunnel(port, `${host}:443`, auth);
  if (!/^HTTP\/1\.1 200 /.test(head)) throw new Error(`CONNECT refused: ${head}`);
  const tls = await handshake(socket, { servername: host, ca });
  if (tls instanceof Error) throw tls;
  return tls;
}

export interface InnerReply {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

/** node:http over one decrypted session: every request of this agent reuses the same TLS socket. */
export function sessionClient(tls: TLSSocket, host: string) {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  (agent as unknown as { createConnection: () => TLSSocket }).createConnection = () => tls;
  return {
    agent,
    request(o: {
      method?: string;
      path?: string;
      headers?: Record<string, string>;
      body?: string;
    }): Promise<InnerReply> {
      return new Promise((resolve, reject) => {
        const req = httpRequest(
          { agent, host, method: o.method ?? 'GET', path: o.path ?? '/', headers: o.headers ?? {} },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () =>
              resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }),
            );
            res.on('error', reject);
          },
        );
        req.on('error', reject);
        req.end(o.body);
      });
    },
  };
}

export const proxyCode = (r: { headers: IncomingHttpHeaders }): string | undefined =>
  /details="([A-Z_]+)"/.exec(String(r.headers['proxy-status'] ?? ''))?.[1];
