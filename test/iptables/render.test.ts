// The rule generator is pure: its output is compared byte for byte with reviewed golden files. After an
// intended change, regenerate them with `UPDATE_GOLDEN=1 npx tap test/iptables/render.test.ts` and review the
// diff like code: it is the firewall.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import {
  type RawFirewallOptions,
  CHAIN,
  optionsFromConfig,
  parseFirewallOptions,
  renderRules,
} from '../../iptables/render.js';
import { validateConfig } from '../../settings/config.js';
import { repoPath } from '../helpers/repo.js';

const GOLDEN = repoPath('test/iptables/golden');
const UPDATE = process.env.UPDATE_GOLDEN === '1';

const CASES: Record<string, RawFirewallOptions> = {
  'sidecar-default': { mode: 'sidecar' },
  'sidecar-full': {
    mode: 'sidecar',
    uid: '20001',
    'workload-uid': '1000',
    ports: '3128',
    'dns-port': '53',
    'loopback-ports': '8080,5432',
  },
  docker: {
    mode: 'docker',
    bridge: 'br-sluice',
    proxy: '172.30.0.2',
    proxy6: 'fd30:0:0:0::2',
    subnet: '172.30.0.0/24',
    subnet6: 'fd30::/64',
    'dns-port': '53',
  },
  'docker-v4-only': { mode: 'docker', bridge: 'br-0123456789ab', proxy: '172.30.0.2' },
};

const rendered = (o: Parameters<typeof renderRules>[0]) => ({ v4: renderRules(o, 4), v6: renderRules(o, 6) });

for (const [kase, raw] of Object.entries(CASES)) {
  t.test(`golden: ${kase}`, async (t) => {
    const r = parseFirewallOptions(raw);
    if (!r.ok) throw new Error(r.errors.join('; '));
    for (const [family, text] of Object.entries(rendered(r.options))) {
      const golden = join(GOLDEN, `${kase}.${family}.rules`);
      if (UPDATE) writeFileSync(golden, text);
      t.ok(existsSync(golden), `${golden} exists (UPDATE_GOLDEN=1 writes it)`);
      t.equal(text, readFileSync(golden, 'utf8'), `${kase} ${family} equals its golden file`);
    }
  });
}

t.test('what every rendered rule set promises', async (t) => {
  for (const [kase, raw] of Object.entries(CASES)) {
    const r = parseFirewallOptions(raw);
    if (!r.ok) throw new Error(r.errors.join('; '));
    for (const [file, text] of Object.entries(rendered(r.options))) {
      t.match(
        text.split('\n')[0],
        new RegExp(`^# sluice-firewall family=${file.slice(1)} mode=(sidecar|docker) uid=\\d* proxy=\\S*$`),
        'the line setup.sh reads',
      );
      const lines = text.split('\n').filter((l) => l && !l.startsWith('#'));
      t.equal(lines[0], '*filter', `${kase} ${file}: the filter table only`);
      t.equal(lines.at(-1), 'COMMIT');
      const declared = lines.filter((l) => l.startsWith(':')).map((l) => l.slice(1).split(' ')[0]!);
      t.ok(
        declared.every((c) => c.startsWith('SLUICE-')),
        `${kase} ${file}: declares (and so flushes) only Sluice's chains`,
      );
      t.notOk(
        lines.some((l) => /^-[FXPZNE] |^-A (INPUT|OUTPUT|FORWARD|DOCKER-USER) /.test(l)),
        `${kase} ${file}: flushes, deletes and appends to nobody else's chain`,
      );
      const hooks = lines.filter((l) => l.startsWith('-I '));
      t.ok(
        hooks.length > 0 && hooks.every((l) => /^-I (OUTPUT|INPUT|DOCKER-USER) 1 -j SLUICE-[A-Z]+$/.test(l)),
        `${kase} ${file}: hooks are single jumps, first in their chain`,
      );
      const rules = lines.filter((l) => l.startsWith('-A '));
      t.notOk(
        rules.some((l) => / -j ACCEPT\b/.test(l)),
        `${kase} ${file}: never ACCEPTs (RETURN leaves the host's own rules in force)`,
      );
      for (const chain of declared) {
        const own = rules.filter((l) => l.startsWith(`-A ${chain} `));
        const last = own.at(-1) ?? '';
        t.match(
          last,
          / -j REJECT --reject-with (icmp-admin-prohibited|icmp6-adm-prohibited)$/,
          `${kase} ${file}: ${chain} ends in a REJECT`,
        );
      }
    }
  }
});

t.test("sidecar: Sluice's UID out, loopback to its ports, everything else rejected (v4 and v6)", async (t) => {
  const r = parseFirewallOptions({ mode: 'sidecar', 'workload-uid': '1000' });
  if (!r.ok) throw new Error(r.errors.join('; '));
  const b = rendered(r.options);
  for (const text of [b.v4, b.v6]) {
    t.match(text, `-A ${CHAIN.output} -m owner --uid-owner 10001 -j RETURN`);
    t.match(text, /-o lo -d (127\.0\.0\.1\/32|::1\/128) -p tcp -m multiport --dports 3128,1080 -j RETURN/);
    t.notMatch(text, /-p udp/, 'no UDP at all unless the DNS guard is enabled (DNS included)');
  }
  t.match(b.v4, /^# sluice-firewall family=4 mode=sidecar uid=10001 proxy=127\.0\.0\.1:3128$/m);
});

t.test('--config: ports and the docker proxy address come from the listeners', async (t) => {
  const c = validateConfig({
    listen: {
      http: '172.28.250.2:3128',
      socks5: '172.28.250.2:1080',
      dns: '172.28.250.2:53',
      admin: '172.28.251.2:9090',
    },
  });
  if (!c.ok) throw new Error('config');
  t.same(optionsFromConfig(c.config.listen, 'docker'), { ports: '3128,1080', 'dns-port': '53', proxy: '172.28.250.2' });
  t.same(
    optionsFromConfig(c.config.listen, 'sidecar'),
    { ports: '3128,1080', 'dns-port': '53' },
    'sidecar: loopback, no address',
  );
  const wild = validateConfig({ listen: { http: '[::]:8080', socks5: null } });
  if (!wild.ok) throw new Error('config');
  t.same(optionsFromConfig(wild.config.listen, 'docker'), { ports: '8080' }, 'a wildcard listener names no address');
});

t.test('option errors: every problem, each with a fix', async (t) => {
  const rows: [string, RawFirewallOptions, RegExp][] = [
    ['no mode', {}, /--mode must be "sidecar".*or "docker"/],
    ['bad mode', { mode: 'pod' }, /--mode must be/],
    ['root as Sluice', { mode: 'sidecar', uid: '0' }, /--uid 0 would exempt everything root runs/],
    ['equal UIDs', { mode: 'sidecar', uid: '10001', 'workload-uid': '10001' }, /--workload-uid equals --uid \(10001\)/],
    ['equal default UID', { mode: 'sidecar', 'workload-uid': '10001' }, /--workload-uid equals --uid/],
    ['bad uid', { mode: 'sidecar', uid: 'sluice' }, /--uid "sluice" is not a numeric UID/],
    ['bad ports', { mode: 'sidecar', ports: '3128,0' }, /--ports/],
    ['bad dns port', { mode: 'sidecar', 'dns-port': '53,54' }, /--dns-port/],
    [
      'loopback clash',
      { mode: 'sidecar', 'loopback-ports': '3128' },
      /--loopback-ports repeats Sluice's own ports \(3128\)/,
    ],
    ['docker opts in sidecar', { mode: 'sidecar', bridge: 'br0' }, /--bridge applies only to --mode docker/],
    [
      'uid in docker',
      { mode: 'docker', uid: '1', bridge: 'br0', proxy: '10.0.0.2' },
      /--uid applies only to --mode sidecar/,
    ],
    ['docker without bridge', { mode: 'docker', proxy: '10.0.0.2' }, /--mode docker needs --bridge/],
    ['docker without proxy', { mode: 'docker', bridge: 'br0' }, /--mode docker needs --proxy:/],
    ['long bridge', { mode: 'docker', bridge: 'br-0123456789abcdef', proxy: '10.0.0.2' }, /is not an interface name/],
    ['bridge injection', { mode: 'docker', bridge: 'br0 -j ACCEPT', proxy: '10.0.0.2' }, /is not an interface name/],
    ['v6 as v4', { mode: 'docker', bridge: 'br0', proxy: 'fd00::2' }, /--proxy "fd00::2" is not an IPv4 address/],
    [
      'mapped v6',
      { mode: 'docker', bridge: 'br0', proxy: '10.0.0.2', proxy6: '::ffff:10.0.0.2' },
      /--proxy6 .* is not an IPv6 address/,
    ],
    ['host bits', { mode: 'docker', bridge: 'br0', proxy: '10.0.0.2', subnet: '10.0.0.2/24' }, /host bits zero/],
    [
      'proxy outside subnet',
      { mode: 'docker', bridge: 'br0', proxy: '10.1.0.2', subnet: '10.0.0.0/24' },
      /outside --subnet/,
    ],
    [
      'v4 subnet6',
      { mode: 'docker', bridge: 'br0', proxy: '10.0.0.2', subnet6: '10.0.0.0/24' },
      /--subnet6 .* is not an IPv6 network/,
    ],
  ];
  for (const [name, raw, re] of rows) {
    const r = parseFirewallOptions(raw);
    t.notOk(r.ok, name);
    if (!r.ok)
      t.ok(
        r.errors.some((e) => re.test(e)),
        `${name}: ${r.errors.join(' | ')}`,
      );
  }
  const many = parseFirewallOptions({ mode: 'docker', bridge: 'x'.repeat(16), proxy: 'nope', subnet: 'nope' });
  t.ok(!many.ok && many.errors.length === 3, 'all problems at once, not the first only');
});
