// A programmable DNS server on loopback (dns-packet over UDP) for rebinding, mixed answers, CNAME chains,
// NXDOMAIN and timeouts. It records every question so tests can prove a denied name was never resolved.
import { createSocket } from 'node:dgram';
import dnsPacket from 'dns-packet';

export type Answer =
  | { readonly a?: readonly string[]; readonly aaaa?: readonly string[]; readonly cname?: string; readonly ttl?: number }
  | 'nxdomain'
  | 'timeout'
  | 'servfail';

export interface FakeDns {
  /** `127.0.0.1:port`, for `dns.servers`. */
  readonly server: string;
  /** Sets the answer for a name; a function gets the 0-based count of earlier questions for that name. */
  set(name: string, answer: Answer | ((n: number) => Answer)): void;
  /** Names asked so far (one entry per question, any type). */
  readonly questions: string[];
  asked(name: string): number;
  close(): Promise<void>;
}

export async function startFakeDns(host = '127.0.0.1', port = 0): Promise<FakeDns> {
  const socket = createSocket('udp4');
  const answers = new Map<string, Answer | ((n: number) => Answer)>();
  const counts = new Map<string, number>();
  const questions: string[] = [];

  const lookup = (name: string, count: boolean): Answer => {
    const a = answers.get(name.toLowerCase());
    const n = counts.get(name) ?? 0;
    if (count) counts.set(name, n + 1);
    if (a === undefined) return 'nxdomain';
    return typeof a === 'function' ? a(Math.floor(n / 2)) : a; // A and AAAA arrive as a pair per resolution
  };

  socket.on('message', (msg, rinfo) => {
    let query: dnsPacket.Packet;
    try {
      query = dnsPacket.decode(msg);
    } catch {
      return;
    }
    const q = query.questions?.[0];
    if (!q) return;
    questions.push(q.name);
    const answers: dnsPacket.Answer[] = [];
    let name = q.name;
    let answer = lookup(name, true);
    if (answer === 'timeout') return;
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
      if (q.type === 'AAAA') for (const a of answer.aaaa ?? []) answers.push({ type: 'AAAA', name, ttl, class: 'IN', data: a });
    }
    const response = dnsPacket.encode({
      id: query.id,
      type: 'response',
      flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | (rcode === 'NXDOMAIN' ? 3 : rcode === 'SERVFAIL' ? 2 : 0),
      questions: query.questions,
      answers,
    });
    socket.send(response, rinfo.port, rinfo.address);
  });

  await new Promise<void>((r) => socket.bind(port, host, r));
  const bound = socket.address().port;
  return {
    server: `${host}:${bound}`,
    set(name, answer) {
      answers.set(name.toLowerCase(), answer);
    },
    questions,
    asked: (name) => questions.filter((q) => q.toLowerCase() === name.toLowerCase()).length,
    close: () => new Promise((r) => socket.close(() => r())),
  };
}
