// splice() on real loopback sockets: both directions with backpressure, half-close passed on, the idle
// timeout, and the flow registry's close (what the kill switch uses).
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, createServer, type OnReadOpts, type Server, type Socket } from 'node:net';
import t, { type Test } from 'tap';
import { SPLICE_READS, splice } from '../../proxy/egress/splice.js';
import { deny } from '../../firewall/codes.js';
import { createFlowRegistry } from '../../proxy/runtime/flows.js';
import { settles } from '../helpers/harness.js';

/** A connected pair of sockets: [the side we hold, the side splice() gets]. On loopback TCP by default; with
 * `unix`, over a Unix socket. With `onread`, the connecting side (the first) is dialled as the dialer dials a
 * tunnel's upstream: with it, not half-open. */
async function connectedPair(t: Test, opts: { onread?: OnReadOpts; unix?: boolean } = {}): Promise<[Socket, Socket]> {
  const server: Server = createServer(opts.unix ? {} : { allowHalfOpen: true });
  const path = opts.unix ? join(mkdtempSync(join(tmpdir(), 'sluice-splice-')), 's') : null;
  await new Promise<void>((r) => (path ? server.listen(path, r) : server.listen(0, '127.0.0.1', r)));
  t.teardown(() => new Promise((r) => server.close(() => r(undefined))));
  const accepted = new Promise<Socket>((r) => server.once('connection', r));
  const outer = path
    ? connect(path)
    : connect({
        port: (server.address() as { port: number }).port,
        host: '127.0.0.1',
        ...(opts.onread ? { onread: opts.onread } : { allowHalfOpen: true }),
      });
  await new Promise((r) => outer.once('connect', r));
  const inner = await accepted;
  t.teardown(() => {
    outer.destroy();
    inner.destroy();
  });
  return [outer, inner];
}
const pair = (t: Test, onread?: OnReadOpts) => connectedPair(t, onread ? { onread } : {});

const collect = (s: Socket) => {
  const chunks: Buffer[] = [];
  s.on('data', (c: Buffer) => chunks.push(c));
  return {
    text: () => Buffer.concat(chunks).toString('latin1'),
    bytes: () => chunks.reduce((n, c) => n + c.length, 0),
  };
};

t.test('bytes flow both ways, large transfers included, and are counted', async (t) => {
  const [client, clientInner] = await pair(t);
  const [upstreamInner, upstream] = await pair(t);
  const done = splice(clientInner, upstream);
  const atOrigin = collect(upstreamInner);
  const atClient = collect(client);
  const big = Buffer.alloc(8 * 1024 * 1024, 7);
  client.write('hello origin');
  upstreamInner.write(big);
  while (atOrigin.bytes() < 12 || atClient.bytes() < big.length) await new Promise((r) => setTimeout(r, 10));
  t.equal(atOrigin.text(), 'hello origin');
  t.equal(atClient.bytes(), big.length, '8 MiB arrived whole (backpressure does not lose data)');
  client.end();
  t.ok(await settles(new Promise((r) => upstreamInner.once('end', r))), "the client's half-close reached the origin");
  upstreamInner.end('bye');
  const r = await done;
  t.equal(r.bytesUp, 12);
  t.equal(r.bytesDown, big.length + 3);
  t.match(atClient.text().slice(-3), 'bye', 'what the origin sent last is flushed before the close');
});

t.test('an idle tunnel is closed after the idle timeout', async (t) => {
  const [client, clientInner] = await pair(t);
  const [, upstream] = await pair(t);
  const ended = new Promise((r) => client.once('end', r));
  client.on('error', () => undefined);
  await splice(clientInner, upstream, { idleTimeoutMs: 200 });
  await ended;
  t.ok(upstream.destroyed && clientInner.destroyed, 'both sides closed');
});

const grant = {
  principal: { identity: 'agent', integrations: new Set<string>(), reads: 'public' as const, mode: null, runId: null },
  request: { kind: 'tunnel' as const, target: { kind: 'name' as const, host: 'x.test', port: 443 } },
  keyGeneration: 0,
};

t.test('the flow registry closes an open tunnel, and forgets it when it ends', async (t) => {
  const registry = createFlowRegistry();
  const [client, clientInner] = await pair(t);
  const [, upstream] = await pair(t);
  client.on('error', () => undefined);
  const flow = registry.open('tunnel', grant);
  const done = splice(clientInner, upstream, { flow });
  t.equal(registry.count('tunnel'), 1);
  t.equal(registry.closeAll('kill-switch', deny('EGR_DENY_KILL_SWITCH', 'killSwitch')), 1);
  await done;
  t.ok(upstream.destroyed && clientInner.destroyed, 'both sides closed');
  t.equal(flow.closed?.reason, 'kill-switch');
  flow.end();
  t.equal(registry.size, 0);
});

t.test('an idle tunnel with a flow is closed through it, so its record can say why', async (t) => {
  const registry = createFlowRegistry();
  const [client, clientInner] = await pair(t);
  const [, upstream] = await pair(t);
  client.on('error', () => undefined);
  const flow = registry.open('tunnel', grant);
  await splice(clientInner, upstream, { idleTimeoutMs: 200, flow });
  t.same(flow.closed, { reason: 'idle', deny: null });
});

t.test('a flow closed before splice() starts is closed as soon as it is bound', async (t) => {
  const registry = createFlowRegistry();
  const [client, clientInner] = await pair(t);
  const [, upstream] = await pair(t);
  client.on('error', () => undefined);
  const flow = registry.open('tunnel', grant);
  registry.closeAll('kill-switch', null);
  await splice(clientInner, upstream, { flow });
  t.ok(upstream.destroyed && clientInner.destroyed);
});

/** A client pair over a Unix socket: its kernel buffers are small (loopback TCP autotunes to megabytes), so a
 * client that stops reading makes the proxy's writes back up at once. */
const unixPair = (t: Test) => connectedPair(t, { unix: true });

/** An upstream pair whose splice() side is the dialled socket (reads via SPLICE_READS): [origin, upstream]. */
async function upstreamPair(t: Test): Promise<[Socket, Socket]> {
  const [dialled, origin] = await pair(t, SPLICE_READS);
  return [origin, dialled];
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

t.test('SPLICE_READS: many tunnels at once, stalled and busy readers, every byte arrives in order', async (t) => {
  // Quiet tunnels share one read buffer. The hazard is a write that keeps a view of it (the client stopped
  // reading, the kernel took part of the chunk) while another tunnel reads into it: origins that send in
  // small pieces (small reads, into the shared buffer), clients that stall, and bulk tunnels beside them.
  const tunnels = await Promise.all(
    Array.from({ length: 12 }, async (_, i) => {
      const [client, clientInner] = await unixPair(t);
      const [origin, upstream] = await upstreamPair(t);
      const bulk = i % 3 === 0;
      const payload = randomBytes(bulk ? 4 * 1024 * 1024 + i : 3 * 1024 * 1024 + i);
      const done = splice(clientInner, upstream, { upstreamReads: SPLICE_READS });
      const chunks: Buffer[] = [];
      client.on('data', (c: Buffer) => chunks.push(c));
      if (i % 2 === 1) {
        // A stalled reader: the proxy's writes to it back up until the kernel takes only part of a chunk.
        client.pause();
        setTimeout(() => client.resume(), 300 + 40 * i);
      }
      let off = 0;
      const pump = () => {
        while (off < payload.length) {
          const n = Math.min(payload.length - off, bulk ? 256 * 1024 : 1500 + (off % 2048));
          const ok = origin.write(payload.subarray(off, off + n));
          off += n;
          if (!ok) return void origin.once('drain', pump);
          // Small tunnels yield between pieces, so the proxy reads them one by one.
          if (!bulk) return void setImmediate(pump);
        }
        origin.end();
      };
      pump();
      const ended = new Promise((r) => client.once('end', r));
      return { payload, chunks, done, ended };
    }),
  );
  for (const [i, x] of tunnels.entries()) {
    await x.ended;
    const r = await x.done;
    t.equal(
      sha(Buffer.concat(x.chunks)),
      sha(x.payload),
      `tunnel ${i}: ${x.payload.length} bytes arrived whole and in order`,
    );
    t.equal(r.bytesDown, x.payload.length, `tunnel ${i}: counted`);
  }
});

t.test('SPLICE_READS: bytes the origin sends before splice() starts are delivered first', async (t) => {
  const [client, clientInner] = await pair(t);
  const [origin, upstream] = await upstreamPair(t);
  const early = randomBytes(40 * 1024);
  origin.write(early);
  // Let the upstream socket read it (into the module's buffers) before the tunnel is joined.
  await new Promise((r) => setTimeout(r, 100));
  const done = splice(clientInner, upstream, { upstreamReads: SPLICE_READS });
  const atClient = collectBytes(client);
  origin.end('late');
  await new Promise((r) => client.once('end', r));
  t.equal(sha(atClient()), sha(Buffer.concat([early, Buffer.from('late')])));
  t.equal((await done).bytesDown, early.length + 4);
});

t.test('SPLICE_READS: the client half-closes, the origin answers and closes; idle timeout still applies', async (t) => {
  const [client, clientInner] = await pair(t);
  const [origin, upstream] = await upstreamPair(t);
  const done = splice(clientInner, upstream, { upstreamReads: SPLICE_READS, idleTimeoutMs: 60_000 });
  const atClient = collectBytes(client);
  client.end('request');
  const atOrigin = collectBytes(origin);
  await new Promise((r) => origin.once('end', r));
  t.equal(atOrigin().toString(), 'request');
  origin.end('response');
  await new Promise((r) => client.once('end', r));
  t.equal(atClient().toString(), 'response');
  t.same(await done, { bytesUp: 7, bytesDown: 8 });

  const [c2, c2Inner] = await pair(t);
  const [, up2] = await upstreamPair(t);
  c2.on('error', () => undefined);
  const ended = new Promise((r) => c2.once('end', r));
  await splice(c2Inner, up2, { upstreamReads: SPLICE_READS, idleTimeoutMs: 200 });
  t.ok(await settles(ended), 'an idle tunnel read through SPLICE_READS is closed after the idle timeout');
});

function collectBytes(s: Socket): () => Buffer {
  const chunks: Buffer[] = [];
  s.on('data', (c: Buffer) => chunks.push(c));
  return () => Buffer.concat(chunks);
}
