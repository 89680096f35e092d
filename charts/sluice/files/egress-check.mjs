// `helm test`: through the gateway, one allowed request must get the expected status and one to the metadata
// address must be refused by policy (403 with an EGR_DENY_ code in Proxy-Status, RFC 9209). Any other outcome,
// a network error included, fails the test. Absolute-form requests over plain http, so the proxy's own verdict
// is what the test sees (a CONNECT tunnel would hide the status behind a client error).
//
// SLUICE_CHECK=containment runs in a pod of a workload namespace instead and proves the other half: direct
// egress fails — TCP to each SLUICE_DIRECT_TCP target (IPv4 and IPv6), DNS over UDP and TCP to the pod's own
// resolvers and to each SLUICE_DIRECT_DNS server — and Sluice answers on its proxy port (with SLUICE_TOKEN:
// the allowed request passes; without one: Sluice's own 407). A direct attempt that connects, or a DNS server
// that answers anything but REFUSED (the DNS guard's answer), fails the test.
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect, isIPv6 } from 'node:net';

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const containment = process.env.SLUICE_CHECK === 'containment';
const proxy = new URL(env('SLUICE_PROXY'));
const token = containment ? process.env.SLUICE_TOKEN : env('SLUICE_TOKEN');
const auth = token ? 'Basic ' + Buffer.from(`${env('SLUICE_IDENTITY')}:${token}`).toString('base64') : null;
const timeoutMs = Number(process.env.SLUICE_TIMEOUT_MS || 5000);

function get(url) {
  return new Promise((resolve) => {
    const target = new URL(url);
    const req = request(
      {
        host: proxy.hostname,
        port: Number(proxy.port || 3128),
        method: 'GET',
        path: target.href,
        headers: { host: target.host, ...(auth ? { 'proxy-authorization': auth } : {}), connection: 'close' },
        timeout: 20_000,
      },
      (res) => {
        res.resume();
        res.on('end', () =>
          resolve({ status: res.statusCode, proxyStatus: String(res.headers['proxy-status'] ?? '') }),
        );
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (e) => resolve({ status: 0, proxyStatus: '', error: e.message }));
    req.end();
  });
}

/** "host:port" or "[v6]:port" → [host, port]. */
function hostPort(t) {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(t) ?? /^([^:]+):(\d+)$/.exec(t);
  if (!m) throw new Error(`bad target ${t}`);
  return [m[1], Number(m[2])];
}

/** A direct TCP connection: 'connected' is a leak; refused, unreachable or silence is blocked. */
function tcp(host, port) {
  return new Promise((resolve) => {
    const s = connect({ host, port, timeout: timeoutMs });
    const done = (r) => {
      s.destroy();
      resolve(r);
    };
    s.once('connect', () => done('connected'));
    s.once('timeout', () => done('blocked (no answer)'));
    s.once('error', (e) => done(`blocked (${e.code})`));
  });
}

// A DNS query for example.com A (RFC 1035 §4.1), id 0x5c11, recursion desired.
const QUERY = Buffer.from('5c1101000001000000000000076578616d706c6503636f6d0000010001', 'hex');
/** RCODE and answer count of a reply, or null. */
const rcode = (b) => (b.length >= 12 ? { rcode: b[3] & 0x0f, answers: b.readUInt16BE(6) } : null);
const REFUSED = 5;
const judge = (r) =>
  r === null
    ? 'blocked (no answer)'
    : r.rcode === REFUSED && r.answers === 0
      ? 'refused by the DNS guard'
      : `answered (rcode ${r.rcode}, ${r.answers} answers)`;

function dnsUdp(server) {
  return new Promise((resolve) => {
    const s = createSocket(isIPv6(server) ? 'udp6' : 'udp4');
    const timer = setTimeout(() => done('blocked (no answer)'), timeoutMs);
    const done = (r) => {
      clearTimeout(timer);
      s.close();
      resolve(r);
    };
    s.on('message', (m) => done(judge(rcode(m))));
    s.on('error', (e) => done(`blocked (${e.code})`));
    s.send(QUERY, 53, server, (e) => e && done(`blocked (${e.code})`));
  });
}

function dnsTcp(server) {
  return new Promise((resolve) => {
    const s = connect({ host: server, port: 53, timeout: timeoutMs });
    let buf = Buffer.alloc(0);
    const done = (r) => {
      s.destroy();
      resolve(r);
    };
    s.once('connect', () => s.write(Buffer.concat([Buffer.from([0, QUERY.length]), QUERY])));
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= 14) done(judge(rcode(buf.subarray(2))));
    });
    s.once('end', () => done(buf.length ? 'answered (a partial reply)' : 'connected (closed without a reply)'));
    s.once('timeout', () => done(buf.length ? 'answered' : 'connected (no reply)'));
    s.once('error', (e) => done(`blocked (${e.code})`));
  });
}

const list = (name) =>
  (process.env[name] ?? '')
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);
const ok = (r) => r.startsWith('blocked') || r.startsWith('refused by the DNS guard');

let failed = 0;
const report = (pass, name, detail) => {
  console.log(`${pass ? 'ok' : 'FAIL'} - ${name}: ${detail}`);
  if (!pass) failed++;
};

if (containment) {
  let resolvers = [];
  try {
    resolvers = readFileSync(process.env.SLUICE_RESOLV_CONF || '/etc/resolv.conf', 'utf8')
      .split('\n')
      .map((l) => /^\s*nameserver\s+(\S+)/.exec(l)?.[1])
      .filter(Boolean);
  } catch {
    // no resolv.conf: only the listed servers
  }
  const tcpTargets = list('SLUICE_DIRECT_TCP');
  const dnsServers = [...new Set([...resolvers, ...list('SLUICE_DIRECT_DNS')])];
  if (!tcpTargets.length || !dnsServers.length)
    throw new Error('SLUICE_DIRECT_TCP and a DNS server (resolv.conf or SLUICE_DIRECT_DNS) are needed');
  for (const t of tcpTargets) {
    const r = await tcp(...hostPort(t));
    report(r.startsWith('blocked'), `direct TCP ${t}`, r);
  }
  for (const server of dnsServers) {
    const u = await dnsUdp(server);
    report(ok(u), `direct DNS over UDP to ${server}`, u);
    const t = await dnsTcp(server);
    report(ok(t), `direct DNS over TCP to ${server}`, t);
  }
  const via = await get(env('SLUICE_ALLOWED_URL'));
  if (token) {
    const expected = Number(process.env.SLUICE_ALLOWED_STATUS || 200);
    report(
      via.status === expected,
      'through Sluice',
      `expected ${expected}, got ${via.status} ${via.proxyStatus}${via.error ?? ''}`,
    );
  } else {
    // No credential in this namespace: Sluice's own refusal proves the one open path leads to Sluice.
    report(
      via.status === 407 && /EGR_AUTH_REQUIRED/.test(via.proxyStatus),
      'Sluice answers on its proxy port',
      `expected 407 EGR_AUTH_REQUIRED, got ${via.status} ${via.proxyStatus}${via.error ?? ''}`,
    );
  }
  process.exit(failed ? 1 : 0);
}

const expected = Number(process.env.SLUICE_ALLOWED_STATUS || 200);
const allowed = await get(env('SLUICE_ALLOWED_URL'));
const denied = await get(env('SLUICE_DENIED_URL'));
report(
  allowed.status === expected,
  'allowed request',
  `expected ${expected}, got ${allowed.status} ${allowed.proxyStatus}${allowed.error ?? ''}`,
);
report(
  denied.status === 403 && /EGR_DENY_/.test(denied.proxyStatus),
  'metadata request',
  `expected 403 with an EGR_DENY_ code, got ${denied.status} ${denied.proxyStatus}${denied.error ?? ''}`,
);
process.exit(failed ? 1 : 0);
