// Shared by the inspection tests: CAs made with openssl (the operator's tool, not ours), and a port-0 server
// that plays the proxy's part — read the ClientHello, mint, hand the socket to the inspector.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { type AddressInfo, type Server, type Socket, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import { isDeny, type Deny } from '../../firewall/codes.js';
import { parseClientHello } from '../../proxy/edge/tls-client-hello.js';
import type { InspectionCa } from '../../proxy/inspection/ca.js';
import { type LeafIssuer, createLeafIssuer } from '../../proxy/inspection/leaves.js';
import type { InspectionObserver } from '../../proxy/inspection/observer.js';
import {
  type InspectedSession,
  type InspectionLimits,
  type Inspector,
  type SessionHandlers,
  createInspector,
} from '../../proxy/inspection/session.js';

export type KeyKind = 'ec256' | 'ec384' | 'ec521' | 'rsa2048' | 'rsa1024' | 'ed25519';

export interface OpensslCa {
  readonly certPem: string;
  readonly keyPem: string;
  readonly certFile: string;
  readonly keyFile: string;
  readonly dir: string;
}

const NEWKEY: Record<KeyKind, string[]> = {
  ec256: ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1'],
  ec384: ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:secp384r1'],
  ec521: ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:secp521r1'],
  rsa2048: ['-newkey', 'rsa:2048'],
  rsa1024: ['-newkey', 'rsa:1024'],
  ed25519: ['-newkey', 'ed25519'],
};

/** A self-signed certificate made by openssl; a CA unless told otherwise. */
export function opensslCa(
  kind: KeyKind,
  opts: { notCa?: boolean; noCertSign?: boolean; sec1?: boolean; encrypted?: boolean; subject?: string } = {},
): OpensslCa {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-inspect-ca-'));
  const run = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  const ext = opts.notCa
    ? ['-addext', 'basicConstraints=critical,CA:FALSE', '-addext', 'keyUsage=critical,digitalSignature']
    : [
        '-addext',
        'basicConstraints=critical,CA:TRUE,pathlen:0',
        '-addext',
        `keyUsage=critical,${opts.noCertSign ? 'digitalSignature' : 'keyCertSign,cRLSign'}`,
      ];
  run([
    'req',
    '-x509',
    ...NEWKEY[kind],
    '-nodes',
    '-keyout',
    'ca.key',
    '-out',
    'ca.crt',
    '-days',
    '365',
    '-subj',
    opts.subject ?? '/CN=Operator Test CA/O=Example Org',
    ...ext,
  ]);
  // openssl truncates its output before reading its input: convert through another name.
  const convert = (args: string[]) => {
    run([...args, '-in', 'ca.key', '-out', 'converted.key']);
    writeFileSync(join(dir, 'ca.key'), readFileSync(join(dir, 'converted.key')));
  };
  if (opts.sec1) convert(['ec']);
  if (opts.encrypted) convert(['pkcs8', '-topk8', '-passout', 'pass:secret']);
  return {
    certPem: readFileSync(join(dir, 'ca.crt'), 'utf8'),
    keyPem: readFileSync(join(dir, 'ca.key'), 'utf8'),
    certFile: join(dir, 'ca.crt'),
    keyFile: join(dir, 'ca.key'),
    dir,
  };
}

export function writeTemp(name: string, text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-inspect-'));
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

export const LIMITS: InspectionLimits = Object.freeze({
  handshakeTimeoutMs: 10_000,
  headersTimeoutMs: 10_000,
  idleTimeoutMs: 30_000,
  maxHeaderBytes: 16384,
});

export interface Inspecting {
  readonly port: number;
  readonly server: Server;
  readonly issuer: LeafIssuer;
  readonly inspector: Inspector;
  /** Every inspect() result, in order. */
  readonly sessions: (InspectedSession | Deny)[];
  /** Resolves with the next inspect() result. */
  next(): Promise<InspectedSession | Deny>;
}

/**
 * A port-0 TCP server in the proxy's role after its 200: it reads the ClientHello, mints a leaf for `host`
 * (or `leafHost`, to prove the inspector refuses a leaf for another name) and inspects with `handlers`.
 * `facts.port` is the server's own port, which is what a client's Host names.
 */
export async function startInspecting(
  t: Test,
  o: {
    ca: InspectionCa;
    host: string;
    leafHost?: string;
    handlers: SessionHandlers;
    limits?: Partial<InspectionLimits>;
    observer?: InspectionObserver;
  },
): Promise<Inspecting> {
  const issuer = createLeafIssuer({ ca: o.ca, ...(o.observer ? { observer: o.observer } : {}) });
  const inspector = createInspector({
    limits: { ...LIMITS, ...o.limits },
    ...(o.observer ? { observer: o.observer } : {}),
  });
  const sessions: (InspectedSession | Deny)[] = [];
  const waiters: ((s: InspectedSession | Deny) => void)[] = [];
  let port = 0;
  const server = createServer((socket: Socket) => {
    socket.on('error', () => socket.destroy());
    let buf = Buffer.alloc(0);
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const hello = parseClientHello(buf);
      if (hello.state === 'need-more') return;
      socket.off('data', onData);
      socket.pause();
      if (hello.state === 'invalid') {
        socket.destroy();
        return;
      }
      void issuer.leafFor(o.leafHost ?? o.host).then((leaf) => {
        if (isDeny(leaf)) throw new Error(`no leaf: ${leaf.code}`);
        const s = inspector.inspect({
          socket,
          head: buf,
          leaf,
          facts: { host: o.host, port, tunnelId: `t${sessions.length + 1}` },
          handlers: o.handlers,
        });
        sessions.push(s);
        waiters.shift()?.(s);
      });
    };
    socket.on('data', onData);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
  t.teardown(() => {
    inspector.close();
    server.close();
  });
  return {
    port,
    server,
    issuer,
    inspector,
    sessions,
    next: () => new Promise((r) => waiters.push(r)),
  };
}

/** Counts what the inspection code reports to metrics. */
export function countingObserver() {
  const counts = { mints: 0, hits: 0, sessions: 0, requests: 0, failures: [] as string[] };
  const observer: InspectionObserver = {
    leafMinted: () => void counts.mints++,
    leafCacheHit: () => void counts.hits++,
    sessionStarted: () => void counts.sessions++,
    requestInside: () => void counts.requests++,
    clientHandshakeFailed: (r) => void counts.failures.push(r),
  };
  return { counts, observer };
}
