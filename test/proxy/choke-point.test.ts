// CONTRACT §3: only the dialer opens outbound sockets, and `firewall/` is pure. A grep-able choke point is only
// worth something if a test keeps it one.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';

const root = new URL('../../', import.meta.url).pathname;
const sources = (dir: string): string[] =>
  readdirSync(join(root, dir), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []);

const OUTBOUND = [
  /\bnet\.connect\b/, /\bconnect as \w+ \} from 'node:(net|tls)'/, /\{[^}]*\bconnect\b[^}]*\} from 'node:(net|tls)'/,
  /\bcreateConnection\b/, /\bnew\s+(net\.)?Socket\(/, /from 'node:dgram'/, /from 'node:https'/,
  /\bhttp\.(request|get)\(/, /\{[^}]*\b(request|get)\b[^}]*\} from 'node:http'/, /\bfetch\(/, /^import (?!type )[^;]*from 'undici'/m, /from 'node:dns/,
  /require\(['"](node:)?(net|tls|dgram|https?|dns)['"]\)/,
];
// Two sockets outside the dialer, each held to its promise here.
const EXCEPTIONS: Record<string, RegExp[]> = {
  // The DNS guard: an inbound UDP listener that answers REFUSED (CONTRACT §8).
  'proxy/ops/dns-guard.ts': [/from 'node:dgram'/],
  // The containment probe's child: the one connection that must NOT go through Sluice, made as another UID.
  'proxy/ops/containment-probe.ts': [/require\(['"](node:)?(net|tls|dgram|https?|dns)['"]\)/],
  // The sidecar injector: an inbound HTTPS server the API server calls; it never connects anywhere.
  'proxy/webhook/server.ts': [/from 'node:https'/],
};

// The dialer, and the resolver it owns (DNS queries to the configured servers; never dns.lookup).
const DIALER = new Set(['proxy/egress/dialer.ts', 'proxy/egress/resolver.ts']);

t.test('only the dialer (and its resolver) opens outbound connections', async (t) => {
  const files = [...sources('proxy'), ...sources('firewall'), ...(safeSources('iptables'))];
  t.ok(files.length > 10);
  for (const f of files) {
    const text = readFileSync(join(root, f), 'utf8').replace(/^\s*(\/\/|\*).*$/gm, '');
    const hits = OUTBOUND.filter((re) => re.test(text));
    if (f === 'proxy/egress/resolver.ts') t.notMatch(text, /\blookup\(/, 'the resolver never uses dns.lookup');
    if (DIALER.has(f)) t.ok(hits.length > 0, `${f} is the choke point`);
    else if (EXCEPTIONS[f]) t.same(hits.map(String), EXCEPTIONS[f].map(String), `${f}: only its one documented socket`);
    else t.same(hits.map(String), [], `${f} opens no outbound socket`);
  }
});

t.test('the DNS guard only listens and only ever replies to the querier', async (t) => {
  const text = readFileSync(join(root, 'proxy/ops/dns-guard.ts'), 'utf8').replace(/^\s*(\/\/|\*).*$/gm, '');
  const sends = text.match(/\.send\([^)]*\)/g) ?? [];
  t.same(sends, ['.send(reply, rinfo.port, rinfo.address)'], 'one send: the reply, to the address and port the query came from');
  t.notMatch(text, /\.connect\(|setServers|\blookup\(|Resolver/, 'never connects and never resolves');
  t.match(text, /\.bind\(addr\.port, addr\.host/, 'binds the configured listen.dns address');
});

t.test('the containment probe connects only from a child running as another UID, and sends nothing', async (t) => {
  const text = readFileSync(join(root, 'proxy/ops/containment-probe.ts'), 'utf8');
  t.match(text, /spawn\(process\.execPath, \['-e', CHILD[^\]]*\], \{\s*uid: spec\.uid,\s*gid: spec\.gid,\s*env: \{\}/, 'spawned with uid, gid and an empty environment');
  const child = /const CHILD = `([^`]*)`/.exec(text)?.[1] ?? '';
  t.match(child, /require\('node:net'\)\.connect\(/);
  t.notMatch(child, /\bs\.(write|end)\(/, 'the probe socket never carries a byte');
});

t.test('the injector only serves HTTPS; it never makes a request', async (t) => {
  const text = readFileSync(join(root, 'proxy/webhook/server.ts'), 'utf8').replace(/^\s*(\/\/|\*).*$/gm, '');
  t.match(text, /import \{ type Server, createServer \} from 'node:https'/, 'only the server half of node:https');
  t.notMatch(text, /\b(request|get|Agent)\b\s*\(|\.connect\(/, 'no request, no agent, no connect');
});

t.test('firewall/ is pure: no sockets, clock, logger or filesystem', async (t) => {
  for (const f of sources('firewall')) {
    const text = readFileSync(join(root, f), 'utf8');
    t.notMatch(text, /from 'node:(fs|http|https|tls|dgram|dns|child_process|perf_hooks)'|from 'pino'|Date\.now|performance\.now|setTimeout|process\.env/, f);
  }
});

function safeSources(dir: string): string[] {
  try {
    return sources(dir);
  } catch {
    return [];
  }
}
