// Load generator for tunnels, in its own process so that its CPU is not the benchmark driver's:
//   cycle:  N concurrent loops of CONNECT → 200 → TLS handshake → one GET → close, for a fixed time (or a
//           fixed number of connections), rotating over `names` when given (distinct hosts);
//   hold:   opens N tunnels (TLS established through each) and keeps them idle until SIGTERM;
//   inside: opens N tunnels (TLS through each) and sends keep-alive GETs inside them for a fixed time (the
//           intercepting proxies' steady state: one TLS session each side, many requests).
// Without a proxy it connects straight to the origin (the "direct" baseline). Every handshake is a full one
// (no session resumption), as for a client's first connection to a host.
import { readFileSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';

export interface ConnectClientArgs {
  readonly mode: 'cycle' | 'hold' | 'inside';
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
  /** Names to CONNECT to (and verify) in turn instead of origin.name; all reach the origin's address. */
  readonly names?: readonly string[];
}

export interface InsideResult {
  readonly requests: number;
  readonly errors: number;
  readonly firstError: string | null;
  readonly seconds: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
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
const connectHead = (name: string) =>
  `CONNECT ${name}:${args.origin.port} HTTP/1.1\r\nHost: ${name}:${args.origin.port}\r\n${args.auth ? `Proxy-Authorization: ${args.auth}\r\n` : ''}\r\n`;
const getRequest = (name: string, close: boolean) =>
  `GET ${args.path} HTTP/1.1\r\nHost: ${name}\r\n${close ? 'Connection: close\r\n' : ''}\r\n`;
let nameIndex = 0;
const nextName = () => (args.names?.length ? args.names[nameIndex++ % args.names.length]! : args.origin.name);

function tunnel(name: string): Promise<Socket> {
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
    s.once('connect', () => s.write(connectHead(name)));
  });
}

function handshake(socket: Socket | null, name: string): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const opts = { servername: name, ca, ALPNProtocols: ['http/1.1'] };
    const t = socket
      ? tlsConnect({ ...opts, socket })
      : tlsConnect({ ...opts, host: args.origin.address, port: args.origin.port });
    t.once('secureConnect', () => resolve(t));
    t.once('error', reject);
  });
}

async function openOne(
  name = nextName(),
): Promise<{ tls: TLSSocket; establishedMs: number; tlsMs: number; started: number; name: string }> {
  const started = performance.now();
  const raw = args.proxy ? await tunnel(name) : null;
  const establishedMs = args.proxy ? performance.now() - started : 0;
  const tls = await handshake(raw, name);
  return { tls, establishedMs, tlsMs: performance.now() - started, started, name };
}

/** One keep-alive GET on an open TLS connection: resolves when the whole response (Content-Length) is in. */
function getKeepAlive(tls: TLSSocket, name: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let buf = '';
    let need = -1;
    const onData = (c: Buffer) => {
      buf += c.toString('latin1');
      if (need < 0) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        if (!buf.startsWith('HTTP/1.1 200')) return done(new Error(`bad response: ${buf.slice(0, 40)}`));
        const m = /\r\ncontent-length:\s*(\d+)/i.exec(buf.slice(0, end));
        if (!m) return done(new Error('no content-length'));
        need = end + 4 + Number(m[1]);
      }
      if (buf.length >= need) done(null);
    };
    const onEnd = () => done(new Error('closed mid-response'));
    const done = (err: Error | null) => {
      tls.removeListener('data', onData);
      tls.removeListener('end', onEnd);
      tls.removeListener('error', done);
      if (err) reject(err);
      else resolve();
    };
    tls.on('data', onData);
    tls.once('end', onEnd);
    tls.once('error', done);
    tls.write(getRequest(name, false));
  });
}

function getOnce(tls: TLSSocket, name: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let head = '';
    tls.on('data', (c: Buffer) => {
      if (head.length < 16) head += c.toString('latin1', 0, 16);
    });
    tls.once('end', () => (head.startsWith('HTTP/1.1 200') ? resolve() : reject(new Error(`bad response: ${head}`))));
    tls.once('error', reject);
    tls.write(getRequest(name, true));
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
  let started = 0;
  const more = () => (args.count !== undefined ? started++ < args.count : performance.now() < until);
  const loop = async () => {
    while (more()) {
      let tls: TLSSocket | null = null;
      try {
        const o = await openOne();
        tls = o.tls;
        await getOnce(o.tls, o.name);
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

async function inside(): Promise<InsideResult> {
  const latencies: number[] = [];
  let errors = 0;
  let firstError: string | null = null;
  const fail = (e: unknown) => {
    errors++;
    firstError ??= String((e as Error).message ?? e);
  };
  // All tunnels open before the clock starts: this measures requests inside established tunnels.
  const open = await Promise.all(
    Array.from({ length: args.concurrency }, () => openOne().catch((e: unknown) => (fail(e), null))),
  );
  const t0 = performance.now();
  const until = t0 + (args.durationMs ?? 5000);
  await Promise.all(
    open.map(async (o) => {
      let conn = o;
      while (performance.now() < until) {
        try {
          conn ??= await openOne();
          const s = performance.now();
          await getKeepAlive(conn.tls, conn.name);
          latencies.push(performance.now() - s);
        } catch (e) {
          fail(e);
          conn?.tls.destroy();
          conn = null;
        }
      }
      conn?.tls.destroy();
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  return {
    requests: latencies.length,
    errors,
    firstError,
    seconds,
    p50Ms: pct(latencies, 50),
    p99Ms: pct(latencies, 99),
  };
}

if (args.mode === 'cycle') {
  const r = await cycle();
  process.stdout.write(`BENCH_JSON ${JSON.stringify(r)}\n`);
} else if (args.mode === 'inside') {
  const r = await inside();
  process.stdout.write(`BENCH_JSON ${JSON.stringify(r)}\n`);
} else {
  await hold();
}
