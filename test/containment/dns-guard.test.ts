// The DNS guard: every query gets REFUSED at once (so tools fail fast), is counted, and is logged at most once
// per name per window with the name cut short. Byte-level cases and a fuzz for the reply builder; a real
// resolver (c-ares) and Sluice's own wiring for the listener. Loopback only.
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { Resolver } from 'node:dns/promises';
import dnsPacket from 'dns-packet';
import t from 'tap';
import { captureLogs } from '../helpers/log-capture.js';
import { validateConfig } from '../../settings/config.js';
import { DNS_GUARD_LOG, MAX_LOGGED_NAME, createDnsGuard, refusedReply } from '../../proxy/ops/dns-guard.js';
import { METRIC, createMetrics } from '../../proxy/ops/metrics.js';
import { createSluice } from '../../proxy/runtime/sluice.js';

const query = (name: string, opts: { id?: number; type?: dnsPacket.RecordType; rd?: boolean } = {}) =>
  dnsPacket.encode({
    id: opts.id ?? 0x1234,
    type: 'query',
    flags: opts.rd === false ? 0 : dnsPacket.RECURSION_DESIRED,
    questions: [{ type: opts.type ?? 'A', name }],
  });

// dns-packet decodes the RCODE, but its types do not declare it.
const rcodeOf = (b: Buffer) => (dnsPacket.decode(b) as { rcode?: string }).rcode;

/** Sends one datagram and waits for one reply (or none within a bound). */
function ask(port: number, msg: Buffer, host = '127.0.0.1'): Promise<Buffer | null> {
  return new Promise((resolve) => {
    const s = createSocket(host.includes(':') ? 'udp6' : 'udp4');
    const timer = setTimeout(() => {
      s.close();
      resolve(null);
    }, 1500);
    s.on('message', (m) => {
      clearTimeout(timer);
      s.close();
      resolve(m);
    });
    s.send(msg, port, host);
  });
}

t.test('refusedReply: byte-level cases', async (t) => {
  const q = query('example.com', { id: 0xbeef });
  const r = refusedReply(q)!;
  const d = dnsPacket.decode(r);
  t.equal(d.id, 0xbeef, 'same id');
  t.equal(d.type, 'response');
  t.equal(rcodeOf(r), 'REFUSED');
  t.equal(r.readUInt16BE(2), 0x8105, 'QR, RD echoed, RCODE 5; no AA, TC or RA');
  t.same(
    d.questions,
    [{ name: 'example.com', type: 'A', class: 'IN' }],
    'the question echoed (stub resolvers match on it)',
  );
  t.same(
    [d.answers, d.authorities, d.additionals].map((x) => x?.length ?? 0),
    [0, 0, 0],
    'no records, so nothing to exfiltrate back either',
  );
  t.ok(r.length <= q.length, 'no amplification');
  t.equal(
    refusedReply(query('x.example', { rd: false }))!.readUInt16BE(2),
    0x8005,
    'RD clear when the query had it clear',
  );

  t.equal(refusedReply(Buffer.alloc(11)), null, 'shorter than a header: ignored');
  const response = Buffer.from(q);
  response.writeUInt16BE(0x8180, 2);
  t.equal(refusedReply(response), null, 'a response is never answered (no loops between two DNS speakers)');
  const notify = Buffer.from(q);
  notify.writeUInt16BE(0x2000, 2); // opcode NOTIFY
  t.equal(refusedReply(notify)!.readUInt16BE(2) & 0x7800, 0x2000, 'the opcode is echoed');
  const garbage = Buffer.concat([
    Buffer.from([0xab, 0xcd, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0]),
    Buffer.from([0x3f, 0x41]),
  ]);
  const bare = refusedReply(garbage)!;
  t.equal(bare.length, 12, 'an undecodable question: a bare header');
  t.equal(bare.readUInt16BE(0), 0xabcd);
  t.equal(bare.readUInt16BE(2) & 0x800f, 0x8005);
  t.equal(bare.readUInt16BE(4), 0, 'QDCOUNT 0');
  const withEdns = dnsPacket.encode({
    id: 7,
    type: 'query',
    flags: 0,
    questions: [{ type: 'TXT', name: 'a.b' }],
    additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 4096 } as dnsPacket.Answer],
  });
  t.ok(refusedReply(withEdns)!.length < withEdns.length, 'EDNS is not echoed');
});

t.test('refusedReply: fuzz (never throws, never amplifies, never answers a response)', async (t) => {
  let answered = 0;
  for (let i = 0; i < 5000; i++) {
    const buf =
      i % 2
        ? randomBytes(1 + (i % 300))
        : Buffer.concat([query(`n${i}.example`).subarray(0, 12 + (i % 20)), randomBytes(i % 40)]);
    let r: Buffer | null = null;
    try {
      r = refusedReply(buf);
    } catch (e) {
      t.fail(`threw on ${buf.toString('hex')}: ${String(e)}`);
      break;
    }
    if (r) {
      answered++;
      if (r.length > buf.length || (buf.readUInt16BE(2) & 0x8000) !== 0 || (r.readUInt16BE(2) & 0x800f) !== 0x8005) {
        t.fail(`bad reply to ${buf.toString('hex')}: ${r.toString('hex')}`);
        break;
      }
    }
  }
  t.ok(answered > 1000, `${answered} of 5000 random datagrams answered REFUSED`);
});

t.test('the guard: REFUSED, counted, logged once per name per window, names cut short', async (t) => {
  let now = 1_000_000;
  const { logs, logger } = captureLogs();
  const metrics = createMetrics({ version: 't', tunnels: () => 0, defaultMetrics: false });
  const guard = createDnsGuard({
    logger,
    onQuery: metrics.dnsGuardQuery,
    nowMs: () => now,
    windowMs: 60_000,
    maxNamesPerWindow: 3,
  });
  const { port } = await guard.listen({ host: '127.0.0.1', port: 0, text: '127.0.0.1:0' });
  t.teardown(() => guard.close());

  const r = await ask(port, query('db.internal', { id: 42 }));
  t.ok(r, 'answered');
  t.equal(rcodeOf(r!), 'REFUSED');
  t.equal(dnsPacket.decode(r!).id, 42);

  await ask(port, query('db.internal'));
  await ask(port, query('DB.internal'));
  const logged = () => logs.filter((l) => l.msg === DNS_GUARD_LOG.query);
  t.equal(logged().length, 1, 'the same name: logged once per window');
  t.match(logged()[0], {
    level: 40,
    'dns.name': 'db.internal',
    'dns.type': 'A',
    'client.addr': '127.0.0.1',
    'dns.nameLength': 11,
  });
  await ask(port, query('db.internal', { type: 'TXT' }));
  t.equal(logged().length, 2, 'another type is another signal');

  const secret = `${'c2VjcmV0LXBheWxvYWQ'.repeat(3)}.${'x'.repeat(60)}.exfil.example`;
  await ask(port, query(secret));
  const long = logged().at(-1)!;
  t.equal((long['dns.name'] as string).length, MAX_LOGGED_NAME, 'cut to 64 characters');
  t.equal(long['dns.nameLength'], secret.length, 'the full length is a signal of its own');
  t.notMatch(JSON.stringify(logs), /exfil\.example/, 'the tail of a long name never reaches the log');

  for (const n of ['a.example', 'b.example', 'c.example']) await ask(port, query(n));
  t.equal(logged().length, 3, 'at most maxNamesPerWindow names per window');
  now += 60_001;
  await ask(port, query('db.internal'));
  t.equal(logged().length, 4, 'a new window logs the name again');
  t.match(
    logs.find((l) => l.msg === DNS_GUARD_LOG.suppressed),
    { 'dns.suppressed': 3 },
    'what was not logged is summarised',
  );
  t.match(await metrics.registry.metrics(), new RegExp(`${METRIC.dnsGuardQueries} 9\\b`), 'every query counted');

  const resp = query('db.internal');
  resp.writeUInt16BE(0x8180, 2);
  t.equal(await ask(port, resp), null, 'responses get nothing back');
  t.equal(await ask(port, Buffer.from('hi')), null, 'nor does noise');
});

t.test('a real resolver fails at once with REFUSED (IPv4 and IPv6 listeners)', async (t) => {
  const { logger } = captureLogs();
  for (const host of ['127.0.0.1', '::1']) {
    const guard = createDnsGuard({ logger, onQuery: () => undefined, nowMs: () => 0 });
    const { port } = await guard.listen({ host, port: 0, text: '' });
    const resolver = new Resolver({ timeout: 5000, tries: 1 });
    resolver.setServers([host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`]);
    await t.rejects(resolver.resolve4('registry.npmjs.org'), { code: 'EREFUSED' }, `${host}: refused, not timed out`);
    await guard.close();
  }
});

t.test('Sluice wires the guard to listen.dns, counts in its metrics and closes it on stop', async (t) => {
  const r = validateConfig({ listen: { http: '127.0.0.1:0', dns: '127.0.0.1:0' } });
  if (!r.ok) throw new Error('config');
  const { logs, destination } = captureLogs();
  const sluice = createSluice({ config: r.config, logTo: { destination, level: 'debug' } });
  const bound = await sluice.start();
  t.ok(bound.dns && bound.dns.port > 0, 'bound');
  const reply = await ask(bound.dns!.port, query('metadata.google.internal'));
  t.equal(rcodeOf(reply!), 'REFUSED');
  t.match(await sluice.metrics.registry.metrics(), new RegExp(`${METRIC.dnsGuardQueries} 1\\b`));
  t.ok(logs.some((l) => l.msg === DNS_GUARD_LOG.query && l['dns.name'] === 'metadata.google.internal'));
  await sluice.stop();
  t.equal(await ask(bound.dns!.port, query('x.example')), null, 'closed on stop');

  const off = validateConfig({});
  t.ok(off.ok && off.config.listen.dns === null, 'off by default');
});
