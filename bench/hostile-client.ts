// Load generator for the hostile workloads, in its own process (its CPU is not the driver's):
//   bomb:  GETs, one per name, of names whose DNS answer is 1,500 A records (bench/bench-dns.ts), through the
//          proxy at a fixed concurrency; meanwhile a probe client sends keep-alive GETs to an ordinary origin
//          and records their latency (what other clients see during the bomb).
//   flood: login flood — `floodConcurrency` loops from one source address, each a new connection carrying a
//          wrong password — while, from other source addresses, (a) victims log in for the first time
//          (uncached password verification), (b) a client whose credential is already verified opens new
//          connections, (c) a keep-alive probe sends GETs; and the kill-switch file is created mid-flood: the
//          time until new requests are denied is the kill-switch latency (also measured before the flood).
// Prints one `BENCH_JSON {...}` line.
import { unlinkSync, writeFileSync } from 'node:fs';
import { Agent, type IncomingMessage, request } from 'node:http';
import { performance } from 'node:perf_hooks';

export interface HostileArgs {
  readonly mode: 'bomb' | 'flood';
  readonly proxy: { readonly host: string; readonly port: number };
  /** Proxy-Authorization of a valid identity. */
  readonly auth: string;
  /** An ordinary URL every request of the probe fetches (absolute form). */
  readonly probeUrl: string;
  // bomb
  readonly names?: readonly string[];
  readonly bombPort?: number;
  readonly concurrency?: number;
  // flood
  readonly user?: string;
  readonly floodConcurrency?: number;
  readonly floodMs?: number;
  readonly victims?: readonly { readonly user: string; readonly pass: string }[];
  readonly killFile?: string;
  /** Longest wait for a request (a flood can queue verifications for tens of seconds). */
  readonly timeoutMs?: number;
}

export interface Latencies {
  readonly n: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly statuses: Record<string, number>;
}

const args = JSON.parse(process.argv[2] ?? '{}') as HostileArgs;
const timeoutMs = args.timeoutMs ?? 120_000;
const basic = (user: string, pass: string) => `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;

const pct = (xs: number[], p: number) => {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
};

class Recorder {
  readonly ms: number[] = [];
  readonly statuses: Record<string, number> = {};
  add(ms: number, status: string): void {
    this.ms.push(ms);
    this.statuses[status] = (this.statuses[status] ?? 0) + 1;
  }
  summary(): Latencies {
    return {
      n: this.ms.length,
      p50Ms: pct(this.ms, 50),
      p99Ms: pct(this.ms, 99),
      maxMs: this.ms.length ? Math.max(...this.ms) : NaN,
      statuses: this.statuses,
    };
  }
}

/** One request through the proxy; resolves with the status (or an error name) and the time it took. */
function send(
  url: string,
  auth: string,
  opts: { agent: Agent | false; localAddress?: string },
): Promise<{ status: string; ms: number; at: number }> {
  const started = performance.now();
  return new Promise((resolve) => {
    let settled = false;
    const done = (status: string) => {
      if (settled) return;
      settled = true;
      const at = performance.now();
      resolve({ status, ms: at - started, at });
    };
    const req = request(
      {
        host: args.proxy.host,
        port: args.proxy.port,
        method: 'GET',
        path: url,
        headers: { host: new URL(url).host, 'proxy-authorization': auth },
        agent: opts.agent,
        ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
        timeout: timeoutMs,
      },
      (res: IncomingMessage) => {
        res.resume();
        res.once('end', () => done(String(res.statusCode)));
        res.once('error', () => done('error'));
      },
    );
    req.once('timeout', () => {
      req.destroy();
      done('timeout');
    });
    req.once('error', (e: NodeJS.ErrnoException) => done(e.code ?? 'error'));
    req.end();
  });
}

/** Keep-alive GETs one after another until `stop()`; what an already-connected client sees. */
function probe(localAddress: string) {
  const rec = new Recorder();
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  let running = true;
  const loop = (async () => {
    while (running) {
      const r = await send(args.probeUrl, args.auth, { agent, localAddress });
      rec.add(r.ms, r.status);
    }
  })();
  return {
    async stop(): Promise<Latencies> {
      running = false;
      await loop;
      agent.destroy();
      return rec.summary();
    },
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function bomb() {
  const names = args.names ?? [];
  const rec = new Recorder();
  const agent = new Agent({ keepAlive: true, maxSockets: args.concurrency ?? 16 });
  const p = probe('127.0.0.3');
  await sleep(500);
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: args.concurrency ?? 16 }, async () => {
      while (next < names.length) {
        const name = names[next++]!;
        const r = await send(`http://${name}:${args.bombPort ?? 80}/small`, args.auth, {
          agent,
          localAddress: '127.0.0.1',
        });
        rec.add(r.ms, r.status);
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  const probeResult = await p.stop();
  agent.destroy();
  return { names: names.length, seconds, bomb: rec.summary(), probe: probeResult };
}

/** Creates the kill-switch file and sends a new request every 5 ms (each on a new connection) until one is
 * denied (403); returns the time from the file's creation to that answer, or null. Then removes the file and
 * waits for requests to be allowed again. */
async function killSwitchLatency(localAddress: string): Promise<{ engageMs: number | null; releaseMs: number | null }> {
  const file = args.killFile!;
  const watch = async (want: (status: string) => boolean) => {
    const t0 = performance.now();
    let found: number | null = null;
    const inflight: Promise<void>[] = [];
    while (found === null && performance.now() - t0 < timeoutMs) {
      inflight.push(
        send(args.probeUrl, args.auth, { agent: false, localAddress }).then((r) => {
          if (want(r.status) && found === null) found = r.at - t0;
        }),
      );
      await sleep(5);
    }
    await Promise.race([Promise.all(inflight), sleep(1000)]);
    return found;
  };
  writeFileSync(file, 'engaged by the bench\n');
  const engageMs = await watch((s) => s === '403');
  unlinkSync(file);
  const releaseMs = await watch((s) => s === '200');
  return { engageMs, releaseMs };
}

/** `concurrency` loops of wrong passwords from one address, each on a new connection, while `running()`. */
function startFlood(rec: Recorder, running: () => boolean, localAddress: string): Promise<void[]> {
  let wrong = 0;
  return Promise.all(
    Array.from({ length: args.floodConcurrency ?? 200 }, async () => {
      while (running()) {
        const r = await send(args.probeUrl, basic(args.user ?? 'bench', `wrong-password-${wrong++}`), {
          agent: false,
          localAddress,
        });
        rec.add(r.ms, r.status);
      }
    }),
  );
}

async function flood() {
  const victims = args.victims ?? [];
  const floodMs = args.floodMs ?? 10_000;
  // Warm: the cached client's credential is verified once before anything else.
  await send(args.probeUrl, args.auth, { agent: false, localAddress: '127.0.0.3' });
  const before = args.killFile ? await killSwitchLatency('127.0.0.4') : null;

  // Phase 1: the flood, and other clients' logins during it.
  const floodRec = new Recorder();
  const until = performance.now() + floodMs;
  const flooders = startFlood(floodRec, () => performance.now() < until, '127.0.0.1');
  const p = probe('127.0.0.3');
  await sleep(Math.min(1000, floodMs / 4));
  // (a) first logins of other identities from another address, spread over the flood.
  const victimRec = new Recorder();
  const spacing = Math.max(50, floodMs / 2 / Math.max(1, victims.length));
  const victimRuns = victims.map(async (v, i) => {
    await sleep(i * spacing);
    const r = await send(args.probeUrl, basic(v.user, v.pass), { agent: false, localAddress: '127.0.0.2' });
    victimRec.add(r.ms, r.status);
  });
  // (b) a client whose credential is verified (cached) opening new connections.
  const cachedRec = new Recorder();
  const cachedRun = (async () => {
    while (performance.now() < until) {
      const r = await send(args.probeUrl, args.auth, { agent: false, localAddress: '127.0.0.3' });
      cachedRec.add(r.ms, r.status);
      await sleep(50);
    }
  })();
  await Promise.all([flooders, ...victimRuns, cachedRun]);
  const probeResult = await p.stop();

  // Phase 2: the flood again, from a fresh address (127.0.0.1 is throttled by now: its later requests cost no
  // password verification), and the kill switch engaged one second into it; the flood goes on until the
  // switch has been seen to engage and release (however long that takes).
  let during: Awaited<ReturnType<typeof killSwitchLatency>> | null = null;
  if (args.killFile) {
    let measuring = true;
    const second = startFlood(new Recorder(), () => measuring, '127.0.0.5');
    await sleep(1000);
    during = await killSwitchLatency('127.0.0.4');
    measuring = false;
    await second;
  }
  return {
    floodConcurrency: args.floodConcurrency ?? 200,
    floodMs,
    flood: floodRec.summary(),
    victimsFirstLogin: victimRec.summary(),
    cachedNewConnection: cachedRec.summary(),
    keepAliveProbe: probeResult,
    killSwitchBefore: before,
    killSwitchDuring: during,
  };
}

const result = args.mode === 'bomb' ? await bomb() : await flood();
process.stdout.write(`BENCH_JSON ${JSON.stringify(result)}\n`);
process.exit(0);
