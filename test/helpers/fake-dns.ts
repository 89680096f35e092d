// A programmable DNS server on loopback (dns-packet over UDP, and TCP on the same port) for rebinding, mixed
// answers, CNAME chains, NXDOMAIN, timeouts and answer bombs. It records every question so tests can prove a
// denied name was never resolved.
import { createSocket } from 'node:dgram';
import { type Server, type Socket, createServer } from 'node:net';
import dnsPacket from 'dns-packet';

export type Answer =
  | {
      readonly a?: readonly string[];
      readonly aaaa?: readonly string[];
      readonly cname?: string;
      readonly ttl?: number;
    }
  | 'nxdomain'
  | 'timeout'
  | 'servfail';

export interface FakeDns {
  /** `127.0.0.1:port`, for `dns.servers`. */
  readonly server: string;
  /** Sets the answer for a name; a function gets the 0-based count of earlier questions for that name. */
  set(name: string, answer: Answer | ((n: number) => Answer)): void;
  /** Names asked so far over UDP (one entry per question, any type). */
  readonly questions: string[];
  /** Names asked over TCP: the retries of answers too large for UDP (RFC 7766), which carry the whole set. */
  readonly tcpQuestions: string[];
  asked(name: string): number;
  close(): Promise<void>;
}

/** The classic UDP limit (RFC 1035 §4.2.1): a larger answer goes back truncated (TC) and the client asks over TCP. */
const UDP_MAX = 512;

/** `tcp` defaults to true on an ephemeral port and false on a fixed one: the containment proof serves UDP on :53
 * and counts direct TCP/53 attempts with a listener of its own there. */
export async function startFakeDns(host = '127.0.0.1', port = 0, opts: { tcp?: boolean } = {}): Promise<FakeDns> {
  const withTcp = opts.tcp ?? port === 0;
  let socket!: ReturnType<typeof createSocket>;
  const answers = new Map<string, Answer | ((n: number) => Answer)>();
  const counts = new Map<string, number>();
  const questions: string[] = [];
  const tcpQuestions: string[] = [];

  const lookup = (name: string, count: boolean): Answer => {
    const a = answers.get(name.toLowerCase());
    const seen = counts.get(name) ?? 0;
    if (count) counts.set(name, seen + 1);
    // A TCP retry answers as its truncated UDP question did: that question is the last one counted.
    const n = count ? seen : Math.max(0, seen - 1);
    if (a === undefined) return 'nxdomain';
    return typeof a === 'function' ? a(Math.floor(n / 2)) : a; // A and AAAA arrive as a pair per resolution
  };

  /** The response to one query (null: stay silent). A TCP question is the retry of a truncated UDP one, so it
   * does not advance the per-name count that rebinding answers are keyed on. */
  const respond = (msg: Buffer, tcp: boolean): Buffer | null => {
    let query: dnsPacket.Packet;
    try {
      query = dnsPacket.decode(msg);
    } catch {
      return null;
    }
    const q = query.questions?.[0];
    if (!q) return null;
    (tcp ? tcpQuestions : questions).push(q.name);
    const answers: dnsPacket.Answer[] = [];
    let name = q.name;
    let answer = lookup(name, !tcp);
    if (answer === 'timeout') return null;
    let rcode: 'NOERROR' | 'NXDOMAIN' | 'SERVFAIL' = 'NOERROR';
    for (let hops = 0; hops < 8 && typeof answer === 'object' && answer.cname; hops++) {
      answers.push({ type: 'CNAME', name, ttl: answer.ttl ?? 60, class: 'IN', data: answer.cname });
      name = answer.cname;
      answer = lookup(name, false);
    }
    if (answer === 'nxdomain') rcode = answers.length ? 'NOERROR' : 'NXDOMAIN';
    else if (answer === 'servfail') rcode = 'SERVFAIL';
    else if (answer !== 'timeout') {
      const ttl = answer.ttl ?? 60;
      if (q.type === 'A') for (const a of answer.a ?? []) answers.push({ type: 'A', name, ttl, class: 'IN', data: a });
      if (q.type === 'AAAA')
        for (const a of answer.aaaa ?? []) answers.push({ type: 'AAAA', name, ttl, class: 'IN', data: a });
    }
    const flags =
      dnsPacket.RECURSION_DESIRED |
      dnsPacket.RECURSION_AVAILABLE |
      (rcode === 'NXDOMAIN' ? 3 : rcode === 'SERVFAIL' ? 2 : 0);
    const response = dnsPacket.encode({ id: query.id, type: 'response', flags, questions: query.questions, answers });
    if (tcp || response.length <= UDP_MAX) return response;
    return dnsPacket.encode({
      id: query.id,
      type: 'response',
      flags: flags | dnsPacket.TRUNCATED_RESPONSE,
      questions: query.questions,
      answers: [],
    });
  };

  const onMessage = (msg: Buffer, rinfo: { port: number; address: string }) => {
    const response = respond(msg, false);
    if (response) socket.send(response, rinfo.port, rinfo.address);
  };

  // DNS over TCP: each message is preceded by its length in two bytes (RFC 1035 §4.2.2).
  const conns = new Set<Socket>();
  const tcp: Server = createServer((c) => {
    conns.add(c);
    c.on('close', () => conns.delete(c));
    c.on('error', () => undefined);
    let buf = Buffer.alloc(0);
    c.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const msg = buf.subarray(2, 2 + buf.readUInt16BE(0));
        buf = buf.subarray(2 + msg.length);
        const response = respond(msg, true);
        if (!response) continue;
        const len = Buffer.alloc(2);
        len.writeUInt16BE(response.length);
        c.write(Buffer.concat([len, response]));
      }
    });
  });

  // The TCP listener must share the UDP socket's port number: pick the TCP port, then bind UDP to it (retrying
  // on the rare collision with another UDP socket).
  const bindUdp = (p: number) =>
    new Promise<boolean>((resolve) => {
      socket = createSocket('udp4');
      socket.on('message', onMessage);
      const onError = () => resolve(false);
      socket.once('error', onError);
      socket.bind(p, host, () => {
        socket.removeListener('error', onError);
        resolve(true);
      });
    });
  let bound = port;
  for (let attempt = 0; withTcp; attempt++) {
    await new Promise<void>((resolve, reject) => {
      tcp.once('error', reject);
      tcp.listen(port, host, () => {
        tcp.removeListener('error', reject);
        resolve();
      });
    });
    bound = (tcp.address() as { port: number }).port;
    if (await bindUdp(bound)) break;
    await new Promise<void>((r) => tcp.close(() => r()));
    if (port !== 0 || attempt >= 20) throw new Error(`fake DNS: cannot bind UDP ${host}:${bound}`);
  }
  if (!withTcp) {
    if (!(await bindUdp(port))) throw new Error(`fake DNS: cannot bind UDP ${host}:${port}`);
    bound = socket.address().port;
  }
  return {
    server: `${host}:${bound}`,
    set(name, answer) {
      answers.set(name.toLowerCase(), answer);
    },
    questions,
    tcpQuestions,
    asked: (name) => questions.filter((q) => q.toLowerCase() === name.toLowerCase()).length,
    close: async () => {
      for (const c of conns) c.destroy();
      await Promise.all([
        new Promise<void>((r) => socket.close(() => r())),
        withTcp ? new Promise<void>((r) => tcp.close(() => r())) : null,
      ]);
    },
  };
}
