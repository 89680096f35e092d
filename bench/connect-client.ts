// Load generator for tunnels, in its own process so that its CPU is not the benchmark driver's:
//   cycle: N concurrent loops of CONNECT → 200 → TLS handshake → one GET → close, for a fixed time;
//   hold:  opens N tunnels (TLS established through each) and keeps them idle until SIGTERM.
// Without a proxy it connects straight to the origin (the "direct" baseline). Every handshake is a full one
// (no session resumption), as for a client's first connection to a host.
import { readFileSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';

export interface ConnectClientArgs {
  readonly mode: 'cycle' | 'hold';
  /** null: straight to the origin. */
  readonly proxy: { readonly host: string; readonly port: number } | null;
  /** Value of Proxy-Authorization, if the proxy wants one. */
  readonly auth: string | null;
  /** The TLS origin: its name (CONNECT target, SNI) and its address (direct connections). */
  readonly origin: { readonly name: string; readonly address: string; readonly port: number };
  readonly caFile: string;
  readonly path: string;
  readonly concurrency: number;
  readonly durationMs?: number;
  readonly count?: number;
}

export interface CycleResult {
  readonly connections: number;
  readonly errors: number;
  readonly firstError: string | null;
  readonly seconds: number;
  readonly totalP50Ms: number;
  readonly totalP99Ms: number;
  /** CONNECT sent → 200 read (0 for direct). */
  readonly establishedP50Ms: number;
  /** CONNECT sent → TLS handshake done through the tunnel. */
  readonly tlsP50Ms: number;
}

const args = JSON.parse(process.argv[2] ?? '{}') as ConnectClientArgs;
const ca = readFileSync(args.caFile);
const CONNECT_HEAD = `CONNECT ${args.origin.name}:${args.origin.port} HTTP/1.1\r\nHost: ${args.origin.name}:${args.origin.port}\r\n${args.auth ? `Proxy-Authorization: ${args.auth}\r\n` : ''}\r\n`;
const GET = `GET ${args.path} HTTP/1.1\r\nHost: ${args.origin.name}\r\nConnection: close\r\n\r\n`;

function tunnel(): Promise<Socket> {
  const { proxy } = args;
  return new Promise((resolve, reject) => {
    const s = netConnect(proxy!.port, proxy!.host);
    s.setNoDelay(true);
    let buf = '';
    const onData = (chunk: Buffer) => {
      buf += chunk.toString('latin1');
      const end = buf.indexOf('\r\n\r\n');
      if (end === -1) return;
      s.removeListener('data', onData);
      s.pause();
      if (!/^HTTP\/1\.[01] 200/.test(buf)) {
        s.destroy();
        reject(new Error(`CONNECT refused: ${buf.split('\r\n')[0]}`));
      } else if (end + 4 !== buf.length) {
        s.destroy();
        reject(new Error('bytes after the CONNECT reply'));
      } else {
        resolve(s);
      }
    };
    s.on('data', onData);
    s.once('error', reject);
    s.once('connect', () => s.write(CONNECT_HEAD));
  });
}

function handshake(socket: Socket | null): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const opts = { servername: args.origin.name, ca, ALPNProtocols: ['http/1.1'] };
    const t = socket ? tlsConnect({ ...opts, socket }) : tlsConnect({ ...opts, host: args.origin.address, port: args.origin.port });
    t.once('secureConnect', () => resolve(t));
    t.once('error', reject);
  });
}

async function openOne(): Promise<{ tls: TLSSocket; establishedMs: number; tlsMs: number; started: number }> {
  const started = performance.now();
  const raw = args.proxy ? await tunnel() : null;
  const establishedMs = args.proxy ? performance.now() - started : 0;
  const tls = await handshake(raw);
  return { tls, establishedMs, tlsMs: performance.now() - started, started };
}

function getOnce(tls: TLSSocket): Promise<void> {
  return new Promise((resolve, reject) => {
    let head = '';
    tls.on('data', (c: Buffer) => {
      if (head.length < 16) head += c.toString('latin1', 0, 16);
    });
    tls.once('end', () => (head.startsWith('HTTP/1.1 200') ? resolve() : reject(new Error(`bad response: ${head}`))));
    tls.once('error', reject);
    tls.write(GET);
  });
}

const pct = (xs: number[], p: number) => {
  if (!xs.length) return NaN;
  const s = xs.sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
};

async function cycle(): Promise<CycleResult> {
  const total: number[] = [];
  const established: number[] = [];
  const tlsDone: number[] = [];
  let errors = 0;
  let firstError: string | null = null;
  const t0 = performance.now();
  const until = t0 + (args.durationMs ?? 5000);
  const loop = async () => {
    while (performance.now() < until) {
      let tls: TLSSocket | null = null;
      try {
        const o = await openOne();
        tls = o.tls;
        await getOnce(o.tls);
        total.push(performance.now() - o.started);
        established.push(o.establishedMs);
        tlsDone.push(o.tlsMs);
      } catch (e) {
        errors++;
        firstError ??= String((e as Error).message ?? e);
      } finally {
        tls?.destroy();
      }
    }
  };
  await Promise.all(Array.from({ length: args.concurrency }, loop));
  const seconds = (performance.now() - t0) / 1000;
  return {
    connections: total.length,
    errors,
    firstError,
    seconds,
    totalP50Ms: pct(total, 50),
    totalP99Ms: pct(total, 99),
    establishedP50Ms: pct(established, 50),
    tlsP50Ms: pct(tlsDone, 50),
  };
}

async function hold(): Promise<void> {
  const open: TLSSocket[] = [];
  let errors = 0;
  let firstError: string | null = null;
  let next = 0;
  const count = args.count ?? 1000;
  const worker = async () => {
    while (next < count) {
      next++;
      try {
        const { tls } = await openOne();
        tls.on('error', () => undefined);
        open.push(tls);
      } catch (e) {
        errors++;
        firstError ??= String((e as Error).message ?? e);
      }
    }
  };
  await Promise.all(Array.from({ length: args.concurrency }, worker));
  process.stdout.write(`READY ${JSON.stringify({ open: open.length, errors, firstError })}\n`);
  process.on('SIGTERM', () => {
    for (const t of open) t.destroy();
    process.exit(0);
  });
  setInterval(() => undefined, 1 << 30);
}

if (args.mode === 'cycle') {
  const r = await cycle();
  process.stdout.write(`BENCH_JSON ${JSON.stringify(r)}\n`);
} else {
  await hold();
}
