// The bench's DNS server on loopback, UDP and TCP on one port (dns-packet): fixed answers for the bench's
// names, and the DNS-answer bomb — every name under BOMB_SUFFIX answers BOMB_RECORDS A records. Such an
// answer does not fit a UDP reply, so over UDP it is truncated (TC, no answers) and the resolver (c-ares)
// asks again over TCP, as it would from an attacker's authoritative server.
import { createSocket } from 'node:dgram';
import { type Server, type Socket, createServer } from 'node:net';
import dnsPacket from 'dns-packet';

export const BOMB_SUFFIX = '.bomb.bench.test';
export const BOMB_RECORDS = 1500;

export interface BenchDns {
  /** `127.0.0.1:port`, for `dns.servers`. */
  readonly server: string;
  set(name: string, addresses: readonly string[], ttl?: number): void;
  /** The A records of a bomb name: `first` (a working address) and then addresses under `prefix` (a /16). */
  bomb(first: string, prefix: string, ttl?: number): void;
  readonly stats: { udp: number; tcp: number; truncated: number };
  close(): Promise<void>;
}

const UDP_MAX = 512;

export async function startBenchDns(host = '127.0.0.1'): Promise<BenchDns> {
  const fixed = new Map<string, { a: readonly string[]; ttl: number }>();
  let bomb: { a: readonly string[]; ttl: number } | null = null;
  const stats = { udp: 0, tcp: 0, truncated: 0 };

  const answer = (msg: Buffer, udp: boolean): Buffer | null => {
    let query: dnsPacket.Packet;
    try {
      query = dnsPacket.decode(msg);
    } catch {
      return null;
    }
    const q = query.questions?.[0];
    if (!q) return null;
    const name = q.name.toLowerCase();
    const entry = fixed.get(name) ?? (bomb && name.endsWith(BOMB_SUFFIX) ? bomb : null);
    const answers: dnsPacket.Answer[] = [];
    if (entry && q.type === 'A')
      for (const a of entry.a) answers.push({ type: 'A', name: q.name, ttl: entry.ttl, class: 'IN', data: a });
    const flags = dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | (entry ? 0 : 3);
    const out = dnsPacket.encode({ id: query.id, type: 'response', flags, questions: query.questions, answers });
    if (udp && out.length > UDP_MAX) {
      stats.truncated++;
      return dnsPacket.encode({
        id: query.id,
        type: 'response',
        flags: flags | dnsPacket.TRUNCATED_RESPONSE,
        questions: query.questions,
        answers: [],
      });
    }
    return out;
  };

  const udp = createSocket('udp4');
  udp.on('message', (msg, rinfo) => {
    stats.udp++;
    const out = answer(msg, true);
    if (out) udp.send(out, rinfo.port, rinfo.address);
  });
  await new Promise<void>((r) => udp.bind(0, host, r));
  const port = udp.address().port;

  const sockets = new Set<Socket>();
  const tcp: Server = createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => s.destroy());
    let buf = Buffer.alloc(0);
    s.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 2) {
        const len = buf.readUInt16BE(0);
        if (buf.length < 2 + len) break;
        const msg = buf.subarray(2, 2 + len);
        buf = buf.subarray(2 + len);
        stats.tcp++;
        const out = answer(msg, false);
        if (!out) continue;
        const head = Buffer.alloc(2);
        head.writeUInt16BE(out.length);
        s.write(Buffer.concat([head, out]));
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    tcp.once('error', reject);
    tcp.listen(port, host, () => resolve());
  });

  return {
    server: `${host}:${port}`,
    set(name, a, ttl = 300) {
      fixed.set(name.toLowerCase(), { a, ttl });
    },
    bomb(first, prefix, ttl = 300) {
      const a = [first];
      for (let i = 1; a.length < BOMB_RECORDS; i++) a.push(`${prefix}.${(i >> 8) & 255}.${i & 255}`);
      bomb = { a, ttl };
    },
    stats,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => tcp.close(() => r()));
      await new Promise<void>((r) => udp.close(() => r()));
    },
  };
}
