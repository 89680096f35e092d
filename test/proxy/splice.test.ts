// splice() on real loopback sockets: both directions with backpressure, half-close passed on, the idle
// timeout, and the registry's close (what the kill switch uses).
import { connect, createServer, type Server, type Socket } from 'node:net';
import t, { type Test } from 'tap';
import { splice } from '../../proxy/splice.js';
import { createTunnelRegistry } from '../../proxy/sluice.js';

/** A connected pair of sockets on loopback: [the side we hold, the side splice() gets]. */
async function pair(t: Test): Promise<[Socket, Socket]> {
  const server: Server = createServer({ allowHalfOpen: true });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise((r) => server.close(() => r(undefined))));
  const accepted = new Promise<Socket>((r) => server.once('connection', r));
  const outer = connect({ port: (server.address() as { port: number }).port, host: '127.0.0.1', allowHalfOpen: true });
  await new Promise((r) => outer.once('connect', r));
  const inner = await accepted;
  t.teardown(() => {
    outer.destroy();
    inner.destroy();
  });
  return [outer, inner];
}

const collect = (s: Socket) => {
  const chunks: Buffer[] = [];
  s.on('data', (c: Buffer) => chunks.push(c));
  return { text: () => Buffer.concat(chunks).toString('latin1'), bytes: () => chunks.reduce((n, c) => n + c.length, 0) };
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
  await new Promise((r) => upstreamInner.once('end', r));
  t.pass('the client\'s half-close reached the origin');
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

t.test('the registry closes an open tunnel and forgets it when it ends', async (t) => {
  const registry = createTunnelRegistry();
  const [client, clientInner] = await pair(t);
  const [, upstream] = await pair(t);
  client.on('error', () => undefined);
  const done = splice(clientInner, upstream, { registry });
  t.equal(registry.size, 1);
  registry.closeAll();
  await done;
  t.equal(registry.size, 0);
});
