// Limits under hostile clients: rate and concurrency per identity, failed-credential throttling per source
// address, and 2,000 slowloris sockets that must neither starve real requests nor outlive the header timeout.
import { connect, type Socket } from 'node:net';
import t from 'tap';
import { basic, codeOf, startSluice, viaProxy, waitFor } from '../helpers/harness.js';
import { isolate } from '../helpers/netns.js';
import { PASSWORD, buildWorld, worldConfig } from '../helpers/world.js';

if (isolate(t, import.meta.url)) {
  const w = await buildWorld(t);
  const pub = `http://public.test:${w.publicHttp.port}`;

  t.test('rate limit per identity: 429 EGR_LIMIT_RATE with Retry-After', async (t) => {
    const h = await startSluice(t, worldConfig(w, { limits: { requestsPerSecond: 0.5, burst: 2 } }));
    t.equal((await viaProxy(h.port, { url: `${pub}/1` })).status, 200);
    t.equal((await viaProxy(h.port, { url: `${pub}/2` })).status, 200);
    const limited = await viaProxy(h.port, { url: `${pub}/3` });
    t.equal(limited.status, 429);
    t.equal(codeOf(limited), 'EGR_LIMIT_RATE');
    t.equal(limited.headers['retry-after'], '2');
    const other = await viaProxy(h.port, { url: `${pub}/4`, auth: basic('sealed', PASSWORD) });
    t.equal(codeOf(other), 'EGR_DENY_READ', 'another identity has its own bucket (and its own policy)');
  });

  t.test('concurrency per identity: 429 EGR_LIMIT_CONCURRENCY', async (t) => {
    const h = await startSluice(t, worldConfig(w, { limits: { maxConnectionsPerIdentity: 1 } }));
    // Hold one tunnel open (the registry canary speaks TLS; the tunnel stays open waiting for a ClientHello).
    const s = connect(h.port, '127.0.0.1');
    s.write(
      `CONNECT registry.test:443 HTTP/1.1\r\nHost: registry.test:443\r\nProxy-Authorization: ${basic('agent', PASSWORD)}\r\n\r\n`,
    );
    await new Promise((r) => s.once('data', r));
    const second = await viaProxy(h.port, { url: `${pub}/` });
    t.equal(second.status, 429);
    t.equal(codeOf(second), 'EGR_LIMIT_CONCURRENCY');
    t.ok(second.headers['retry-after']);
    s.destroy();
    await waitFor(() => h.sluice.audit.inFlight === 0);
    t.equal((await viaProxy(h.port, { url: `${pub}/` })).status, 200, 'the slot is released when the tunnel ends');
  });

  t.test('failed credentials are throttled per source address', async (t) => {
    const h = await startSluice(t, worldConfig(w, { limits: { authFailuresPerMinute: 3 } }));
    for (let i = 0; i < 3; i++)
      t.equal(
        codeOf(await viaProxy(h.port, { url: `${pub}/`, auth: basic('agent', `guess-${i}`) })),
        'EGR_AUTH_INVALID',
      );
    const throttled = await viaProxy(h.port, { url: `${pub}/`, auth: basic('agent', 'guess-4') });
    t.equal(throttled.status, 429);
    t.equal(codeOf(throttled), 'EGR_LIMIT_RATE');
    const right = await viaProxy(h.port, { url: `${pub}/`, auth: basic('agent', PASSWORD) });
    t.equal(right.status, 429, 'even the right password waits out the window: no oracle for a guesser');
  });

  t.test('2,000 slowloris sockets: real requests are served, slow ones closed at the header timeout', async (t) => {
    const h = await startSluice(t, worldConfig(w, { limits: { headersTimeoutMs: 2000 } }));
    const slow: Socket[] = [];
    let closed = 0;
    await Promise.all(
      Array.from(
        { length: 2000 },
        () =>
          new Promise<void>((resolve) => {
            const s = connect(h.port, '127.0.0.1', () => {
              s.write(`GET ${pub}/ HTTP/1.1\r\nHost: public.test\r\n`);
              resolve();
            });
            s.on('error', () => undefined);
            s.on('close', () => closed++);
            slow.push(s);
          }),
      ),
    );
    // Trickle a header byte now and then, as slowloris does, so only the header timeout can end them.
    const trickle = setInterval(() => {
      for (const s of slow) if (!s.destroyed) s.write('X-a: b\r\n');
    }, 500);
    t.teardown(() => {
      clearInterval(trickle);
      for (const s of slow) s.destroy();
    });
    const served = await Promise.all(
      Array.from({ length: 20 }, (_, i) => viaProxy(h.port, { url: `${pub}/real-${i}` })),
    );
    t.ok(
      served.every((r) => r.status === 200),
      'normal requests are served while 2,000 sockets dawdle',
    );
    await waitFor(() => closed === 2000, 20_000);
    t.equal(closed, 2000, 'every slow socket was closed by the header timeout');
    t.equal((await viaProxy(h.port, { url: `${pub}/after` })).status, 200);
  });
}
