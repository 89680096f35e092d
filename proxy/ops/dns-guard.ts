// The DNS guard (listen.dns, off by default). Workloads need no resolver: Sluice resolves names itself, after
// deciding on them. Pointing a workload's resolv.conf here makes every lookup fail at once (REFUSED) instead of
// timing out, and turns each query into a signal: a workload that asks DNS is either misconfigured or trying to
// tunnel data out through names. Queries are counted and logged, each name at most once per window and cut
// short (a name can be the payload).
//
// This is an inbound socket only: the guard sends nothing but one reply to each querier, to the address and
// port the query came from (test/proxy/choke-point.test.ts keeps it that way). It never resolves anything.
import { type RemoteInfo, type Socket, createSocket } from 'node:dgram';
import type { AddressInfo } from 'node:net';
import { isIP } from 'node:net';
import dnsPacket from 'dns-packet';
import type { Logger } from 'pino';
import type { ListenAddress } from '../../firewall/config.js';

export const DNS_GUARD_LOG = Object.freeze({ query: 'dns.guard.query', suppressed: 'dns.guard.suppressed' });
/** Logged names are cut to this many characters (the full length is logged too). */
export const MAX_LOGGED_NAME = 64;

const QR = 0x8000;
const OPCODE_MASK = 0x7800;
const RD = 0x0100;
const REFUSED = 5;

export interface DnsGuardOptions {
  readonly logger: Logger;
  /** Called once per query received (sluice_dns_guard_queries_total). */
  readonly onQuery: () => void;
  readonly nowMs: () => number;
  /** A name is logged at most once per window. */
  readonly windowMs?: number;
  /** Distinct names remembered (and so logged) per window; the rest are summarised. Bounds memory. */
  readonly maxNamesPerWindow?: number;
}

export interface DnsGuard {
  listen(addr: ListenAddress): Promise<AddressInfo>;
  close(): Promise<void>;
}

/** The REFUSED reply to a query: its id, opcode, RD bit and question, nothing else. null: not a query. */
export function refusedReply(query: Buffer): Buffer | null {
  if (query.length < 12) return null;
  const flags = query.readUInt16BE(2);
  if (flags & QR) return null; // a response: answering it could loop two DNS speakers into each other
  const replyFlags = QR | (flags & OPCODE_MASK) | (flags & RD) | REFUSED;
  let questions: dnsPacket.Question[] = [];
  try {
    questions = dnsPacket.decode(query).questions ?? [];
  } catch {
    questions = [];
  }
  try {
    const reply = dnsPacket.encode({ id: query.readUInt16BE(0), type: 'response', flags: replyFlags & ~QR, questions });
    // Never more than the query: the guard must not amplify anything.
    if (reply.length <= query.length) {
      reply.writeUInt16BE(replyFlags, 2);
      return reply;
    }
  } catch {
    // a question dns-packet cannot re-encode: reply without it
  }
  const bare = Buffer.alloc(12);
  bare.writeUInt16BE(query.readUInt16BE(0), 0);
  bare.writeUInt16BE(replyFlags, 2);
  return bare;
}

function questionOf(query: Buffer): { name: string; type: string } | null {
  try {
    const q = dnsPacket.decode(query).questions?.[0];
    return q ? { name: q.name, type: String(q.type) } : null;
  } catch {
    return null;
  }
}

export function createDnsGuard(opts: DnsGuardOptions): DnsGuard {
  const windowMs = opts.windowMs ?? 60_000;
  const maxNames = opts.maxNamesPerWindow ?? 1000;
  let socket: Socket | null = null;
  let windowStart = opts.nowMs();
  let seen = new Set<string>();
  let suppressed = 0;

  const roll = () => {
    const now = opts.nowMs();
    if (now - windowStart < windowMs) return;
    if (suppressed > 0)
      opts.logger.warn({ 'dns.suppressed': suppressed, 'dns.windowMs': windowMs }, DNS_GUARD_LOG.suppressed);
    windowStart = now;
    seen = new Set();
    suppressed = 0;
  };

  const note = (msg: Buffer, rinfo: RemoteInfo) => {
    roll();
    const q = questionOf(msg);
    const name = (q?.name ?? '').toLowerCase();
    const key = `${q?.type ?? '-'} ${name}`;
    if (seen.has(key)) return;
    if (seen.size >= maxNames) {
      suppressed++;
      return;
    }
    seen.add(key);
    opts.logger.warn(
      {
        'client.addr': rinfo.address,
        'dns.name': name.slice(0, MAX_LOGGED_NAME),
        'dns.nameLength': name.length,
        'dns.type': q?.type ?? null,
      },
      DNS_GUARD_LOG.query,
    );
  };

  const onMessage = (msg: Buffer, rinfo: RemoteInfo) => {
    const reply = refusedReply(msg);
    if (!reply) return;
    opts.onQuery();
    // The only send: one reply, back to the querier's own address and port.
    socket?.send(reply, rinfo.port, rinfo.address);
    try {
      note(msg, rinfo);
    } catch (e) {
      opts.logger.error({ err: e }, 'dns guard: logging a query failed');
    }
  };

  return {
    listen(addr) {
      return new Promise((resolve, reject) => {
        // `[::]:53` answers IPv4 too, like the HTTP listener on `::`.
        const s = createSocket({ type: isIP(addr.host) === 6 ? 'udp6' : 'udp4' });
        s.once('error', reject);
        s.bind(addr.port, addr.host, () => {
          s.removeListener('error', reject);
          // A send error (the querier went away) is not a reason to stop answering others.
          s.on('error', (e) => opts.logger.warn({ err: e }, 'dns guard socket error'));
          s.on('message', onMessage);
          socket = s;
          resolve(s.address());
        });
      });
    },
    close() {
      const s = socket;
      socket = null;
      return s ? new Promise((r) => s.close(() => r())) : Promise.resolve();
    },
  };
}
