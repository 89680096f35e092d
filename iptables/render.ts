// The kernel rules that make Sluice the only way out (CONTRACT §8). Pure: options in, iptables-restore text out,
// byte-for-byte reproducible (golden files in test/iptables/golden). iptables/setup.sh applies the text.
//
// Rules live in Sluice's own chains (SLUICE-*), declared in the restore text: with `iptables-restore
// --noflush` a declared chain is created or flushed, and nothing else is touched. Each chain is entered from
// one built-in (or Docker) chain by a single hook rule, `-I <chain> 1 -j SLUICE-…`, which setup.sh keeps
// unique and first. Allowed traffic RETURNs to the caller instead of ACCEPTing, so Sluice's rules only ever
// subtract: whatever the host's or Docker's own rules refuse stays refused.
import ipaddr from 'ipaddr.js';
import { isIP } from 'node:net';
import type { SluiceConfig } from '../settings/config.js';

export type FirewallMode = 'sidecar' | 'docker';
export type Family = 4 | 6;

/** Sluice's fixed UID/GID in its container image. */
export const SLUICE_UID = 10001;
export const DEFAULT_PROXY_PORTS: readonly number[] = Object.freeze([3128, 1080]);

export const CHAIN = Object.freeze({
  /** sidecar: everything the pod's processes send. */
  output: 'SLUICE-OUTPUT',
  /** docker: forwarded traffic of the workload bridge (entered from DOCKER-USER). */
  forward: 'SLUICE-FORWARD',
  /** docker: the workload bridge talking to the host itself. */
  input: 'SLUICE-INPUT',
});

export interface FirewallOptions {
  readonly mode: FirewallMode;
  /** Sluice's UID (sidecar): its traffic is the only traffic allowed out. */
  readonly uid: number;
  /** The workload's UID, when known (sidecar): refused if equal to `uid`. */
  readonly workloadUid: number | null;
  /** Sluice's proxy listener ports (HTTP, SOCKS5) the workload may reach. */
  readonly ports: readonly number[];
  /** The DNS guard's UDP port, when it is enabled. */
  readonly dnsPort: number | null;
  /** sidecar: further loopback TCP ports the workload may reach (its own local servers). */
  readonly loopbackPorts: readonly number[];
  /** docker: the workload network's bridge interface, e.g. `br-sluice`. */
  readonly bridge: string | null;
  /** docker: the workload network's subnets (anti-spoofing on the allow rules). */
  readonly subnet4: string | null;
  readonly subnet6: string | null;
  /** docker: Sluice's address on the workload network. */
  readonly proxy4: string | null;
  readonly proxy6: string | null;
}

/** The raw option values as the command line gives them (`sluice firewall render --mode … --uid …`). */
export interface RawFirewallOptions {
  readonly mode?: string | undefined;
  readonly uid?: string | undefined;
  readonly 'workload-uid'?: string | undefined;
  readonly ports?: string | undefined;
  readonly 'dns-port'?: string | undefined;
  readonly 'loopback-ports'?: string | undefined;
  readonly bridge?: string | undefined;
  readonly subnet?: string | undefined;
  readonly subnet6?: string | undefined;
  readonly proxy?: string | undefined;
  readonly proxy6?: string | undefined;
}

export type OptionsResult =
  { readonly ok: true; readonly options: FirewallOptions } | { readonly ok: false; readonly errors: readonly string[] };

const IFNAME = /^[A-Za-z0-9_.-]{1,15}$/;

function canonicalAddress(text: string, family: Family): string | null {
  if (isIP(text) !== family) return null;
  const a = ipaddr.parse(text);
  // A v4-mapped v6 address would match IPv4 traffic in no ip6tables rule; refuse the confusion.
  if (a.kind() === 'ipv6' && (a as ipaddr.IPv6).isIPv4MappedAddress()) return null;
  return a.toString();
}

function canonicalSubnet(text: string, family: Family): string | null {
  try {
    const [addr, bits] = ipaddr.parseCIDR(text);
    if ((addr.kind() === 'ipv4' ? 4 : 6) !== family || !text.includes('/')) return null;
    const network = family === 4 ? ipaddr.IPv4.networkAddressFromCIDR(text) : ipaddr.IPv6.networkAddressFromCIDR(text);
    if (network.toString() !== addr.toString()) return null; // host bits set: almost always a typo
    return `${network.toString()}/${bits}`;
  } catch {
    return null;
  }
}

const id = (text: string): number | null =>
  /^[0-9]{1,10}$/.test(text) && Number(text) <= 0xfffffffe ? Number(text) : null;

function portList(text: string): number[] | null {
  const out: number[] = [];
  for (const part of text.split(',')) {
    if (!/^[0-9]{1,5}$/.test(part.trim())) return null;
    const p = Number(part.trim());
    if (p < 1 || p > 65535) return null;
    if (!out.includes(p)) out.push(p);
  }
  // The multiport match takes at most 15 ports.
  return out.length && out.length <= 15 ? out : null;
}

/** Validates the command-line options; every problem is reported, each with how to fix it. */
export function parseFirewallOptions(raw: RawFirewallOptions): OptionsResult {
  const errors: string[] = [];
  const mode = raw.mode;
  if (mode !== 'sidecar' && mode !== 'docker')
    errors.push(
      '--mode must be "sidecar" (workload and Sluice share a network namespace) or "docker" (host rules for a compose deployment)',
    );

  const uid = raw.uid === undefined ? SLUICE_UID : id(raw.uid);
  if (uid === null) errors.push(`--uid "${raw.uid}" is not a numeric UID`);
  // Root's traffic would be exempt: every process a root workload runs would go around Sluice.
  else if (uid === 0)
    errors.push(
      '--uid 0 would exempt everything root runs; run Sluice as its own unprivileged UID (10001 in the image)',
    );
  const workloadUid = raw['workload-uid'] === undefined ? null : id(raw['workload-uid']);
  if (raw['workload-uid'] !== undefined && workloadUid === null)
    errors.push(`--workload-uid "${raw['workload-uid']}" is not a numeric UID`);
  if (uid !== null && workloadUid !== null && uid === workloadUid) {
    errors.push(
      `--workload-uid equals --uid (${uid}): traffic owned by Sluice's UID is exempt, so a workload with that UID would go around Sluice; run the workload as another UID`,
    );
  }

  const ports = raw.ports === undefined ? [...DEFAULT_PROXY_PORTS] : portList(raw.ports);
  if (!ports) errors.push(`--ports "${raw.ports}" is not a comma-separated list of ports (e.g. 3128,1080)`);
  const dnsPort = raw['dns-port'] === undefined ? null : (portList(raw['dns-port'])?.[0] ?? null);
  if (raw['dns-port'] !== undefined && (dnsPort === null || raw['dns-port'].includes(',')))
    errors.push(`--dns-port "${raw['dns-port']}" is not a port`);
  const loopbackPorts = raw['loopback-ports'] === undefined ? [] : portList(raw['loopback-ports']);
  if (!loopbackPorts) errors.push(`--loopback-ports "${raw['loopback-ports']}" is not a comma-separated list of ports`);

  let bridge: string | null = null;
  let subnet4: string | null = null;
  let subnet6: string | null = null;
  let proxy4: string | null = null;
  let proxy6: string | null = null;
  const dockerOnly = (['bridge', 'subnet', 'subnet6', 'proxy', 'proxy6'] as const).filter((k) => raw[k] !== undefined);
  const sidecarOnly = (['workload-uid', 'loopback-ports', 'uid'] as const).filter((k) => raw[k] !== undefined);
  const only = (keys: readonly string[]) =>
    `${keys.map((k) => `--${k}`).join(', ')} ${keys.length === 1 ? 'applies' : 'apply'} only to`;
  if (mode === 'sidecar' && dockerOnly.length) errors.push(`${only(dockerOnly)} --mode docker`);
  if (mode === 'docker') {
    if (sidecarOnly.length)
      errors.push(`${only(sidecarOnly)} --mode sidecar (docker mode filters by interface and address, not by UID)`);
    if (raw.bridge === undefined)
      errors.push(
        "--mode docker needs --bridge: the workload network's bridge interface (docker network inspect -f '{{.Id}}' NET → br-<first 12 characters>, or set com.docker.network.bridge.name)",
      );
    else if (!IFNAME.test(raw.bridge))
      errors.push(`--bridge "${raw.bridge}" is not an interface name (at most 15 of A-Z a-z 0-9 _ . -)`);
    else bridge = raw.bridge;
    if (raw['proxy'] === undefined)
      errors.push("--mode docker needs --proxy: Sluice's IPv4 address on the workload network");
    else if (!(proxy4 = canonicalAddress(raw['proxy'], 4)))
      errors.push(`--proxy "${raw['proxy']}" is not an IPv4 address`);
    if (raw['proxy6'] !== undefined && !(proxy6 = canonicalAddress(raw['proxy6'], 6)))
      errors.push(`--proxy6 "${raw['proxy6']}" is not an IPv6 address`);
    if (raw.subnet !== undefined && !(subnet4 = canonicalSubnet(raw.subnet, 4)))
      errors.push(`--subnet "${raw.subnet}" is not an IPv4 network (e.g. 172.30.0.0/24, host bits zero)`);
    if (raw.subnet6 !== undefined && !(subnet6 = canonicalSubnet(raw.subnet6, 6)))
      errors.push(`--subnet6 "${raw.subnet6}" is not an IPv6 network (e.g. fd30::/64, host bits zero)`);
    if (proxy4 && subnet4 && !ipaddr.parse(proxy4).match(ipaddr.parseCIDR(subnet4)))
      errors.push(`--proxy ${proxy4} is outside --subnet ${subnet4}`);
    if (proxy6 && subnet6 && !ipaddr.parse(proxy6).match(ipaddr.parseCIDR(subnet6)))
      errors.push(`--proxy6 ${proxy6} is outside --subnet6 ${subnet6}`);
  }
  if (ports && loopbackPorts) {
    const clash = loopbackPorts.filter((p) => ports.includes(p) || p === dnsPort);
    if (clash.length) errors.push(`--loopback-ports repeats Sluice's own ports (${clash.join(', ')})`);
  }
  if (errors.length || !ports || !loopbackPorts || uid === null) return { ok: false, errors };
  return {
    ok: true,
    options: Object.freeze({
      mode: mode as FirewallMode,
      uid,
      workloadUid,
      ports,
      dnsPort,
      loopbackPorts,
      bridge,
      subnet4,
      subnet6,
      proxy4,
      proxy6,
    }),
  };
}

/** The options as a canonical command line, for the header of the generated text. */
export function describeOptions(o: FirewallOptions): string {
  const parts = [`--mode ${o.mode}`];
  if (o.mode === 'sidecar') {
    parts.push(`--uid ${o.uid}`);
    if (o.workloadUid !== null) parts.push(`--workload-uid ${o.workloadUid}`);
  }
  parts.push(`--ports ${o.ports.join(',')}`);
  if (o.dnsPort !== null) parts.push(`--dns-port ${o.dnsPort}`);
  if (o.loopbackPorts.length) parts.push(`--loopback-ports ${o.loopbackPorts.join(',')}`);
  if (o.bridge) parts.push(`--bridge ${o.bridge}`);
  if (o.subnet4) parts.push(`--subnet ${o.subnet4}`);
  if (o.subnet6) parts.push(`--subnet6 ${o.subnet6}`);
  if (o.proxy4) parts.push(`--proxy ${o.proxy4}`);
  if (o.proxy6) parts.push(`--proxy6 ${o.proxy6}`);
  return parts.join(' ');
}

const FAMILY = {
  4: {
    name: 'IPv4',
    restore: 'iptables-restore',
    loopback: '127.0.0.1/32',
    reject: 'icmp-admin-prohibited',
    icmp: 'icmp',
  },
  6: {
    name: 'IPv6',
    restore: 'ip6tables-restore',
    loopback: '::1/128',
    reject: 'icmp6-adm-prohibited',
    icmp: 'ipv6-icmp',
  },
} as const;

const host = (a: string, family: Family) => `${a}/${family === 4 ? 32 : 128}`;

// Administratively prohibited (not a TCP reset): tools fail at once, and a probe can tell "the firewall
// refused" (EHOSTUNREACH on IPv4, EACCES on IPv6) from "something on the direct path answered" (ECONNREFUSED).
const reject = (family: Family) => `-j REJECT --reject-with ${FAMILY[family].reject}`;
const tcpTo = (ports: readonly number[]) =>
  ports.length === 1 ? `-p tcp -m tcp --dport ${ports[0]}` : `-p tcp -m multiport --dports ${ports.join(',')}`;

// IPv6 neighbour discovery (RS, RA, NS, NA), hop limit 255 as RFC 4861 requires of it. Without it nothing
// IPv6 works: the kernel could not resolve the next hop for Sluice, nor the workload for the REJECT's errors.
// sidecar: NDP is sent by the kernel's own socket, which no process owns; `! --uid-owner 0-4294967294` matches
// exactly that, so a workload with CAP_NET_RAW cannot dress data up as NDP (its raw socket has an owner).
// docker: only between ports of the bridge (and to the host on it), where it stays on the link.
const NDP_TYPES = [133, 134, 135, 136] as const;
const ndp = (chain: string, match: string, tail = '') =>
  NDP_TYPES.map(
    (t) => `-A ${chain} ${match}-p ipv6-icmp -m icmp6 --icmpv6-type ${t} -m hl --hl-eq 255${tail} -j RETURN`,
  );
const KERNEL_ONLY = ' -m owner ! --uid-owner 0-4294967294';

function sidecarRules(o: FirewallOptions, family: Family): string[] {
  const c = CHAIN.output;
  const lo = FAMILY[family].loopback;
  const rules = [
    `# Replies on connections already allowed, and the ICMP errors the REJECT below sends back to the sender.`,
    `-A ${c} -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN`,
    `# Sluice itself (UID ${o.uid}, which no workload process may share).`,
    `-A ${c} -m owner --uid-owner ${o.uid} -j RETURN`,
    `# The workload reaches Sluice's listeners on loopback, and nothing else.`,
    `-A ${c} -o lo -d ${lo} ${tcpTo(o.ports)} -j RETURN`,
  ];
  if (o.dnsPort !== null) rules.push(`-A ${c} -o lo -d ${lo} -p udp -m udp --dport ${o.dnsPort} -j RETURN`);
  if (o.loopbackPorts.length) {
    rules.push(`# The workload's own local servers (--loopback-ports).`);
    rules.push(`-A ${c} -o lo -d ${lo} ${tcpTo(o.loopbackPorts)} -j RETURN`);
  }
  if (family === 6) {
    rules.push(
      "# Neighbour discovery sent by the kernel itself (no process owns it), for Sluice's traffic and the REJECT's.",
    );
    rules.push(...ndp(c, '', KERNEL_ONLY));
  }
  rules.push(`# Everything else: TCP, UDP (DNS included), ICMP, raw IP, to any address.`);
  rules.push(`-A ${c} ${reject(family)}`);
  return rules;
}

function dockerRules(o: FirewallOptions, family: Family): { forward: string[]; input: string[] } {
  const br = o.bridge!;
  const f = CHAIN.forward;
  const proxy = family === 4 ? o.proxy4 : o.proxy6;
  const subnet = family === 4 ? o.subnet4 : o.subnet6;
  const src = subnet ? `-s ${subnet} ` : '';
  const forward = [
    `# Replies on connections already allowed (Sluice answering the workload).`,
    `-A ${f} -i ${br} -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN`,
  ];
  if (proxy) {
    forward.push(`# The workload reaches Sluice's listeners, and nothing else.`);
    forward.push(`-A ${f} -i ${br} ${src}-d ${host(proxy, family)} ${tcpTo(o.ports)} -j RETURN`);
    if (o.dnsPort !== null)
      forward.push(`-A ${f} -i ${br} ${src}-d ${host(proxy, family)} -p udp -m udp --dport ${o.dnsPort} -j RETURN`);
    if (family === 6) {
      forward.push(
        '# Neighbour discovery between the workload and Sluice on the bridge (seen here when br_netfilter is on).',
      );
      forward.push(...ndp(f, `-i ${br} -o ${br} `));
    }
  } else {
    forward.push(`# No --proxy${family === 6 ? '6' : ''}: the workload has no IPv${family} path at all.`);
  }
  forward.push(`-A ${f} -i ${br} ${reject(family)}`);
  forward.push(`# Nothing from outside the workload network opens connections into it.`);
  forward.push(`-A ${f} -o ${br} -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN`);
  forward.push(`-A ${f} -o ${br} ${reject(family)}`);
  const input = [
    `# The workload network reaches none of the host's own services (SSH, metadata proxies, the Docker API…).`,
    `-A ${CHAIN.input} -i ${br} -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN`,
  ];
  if (family === 6) {
    input.push(
      "# Neighbour discovery with the host on the bridge: without it the host cannot deliver the REJECT's errors.",
    );
    input.push(...ndp(CHAIN.input, `-i ${br} `));
  }
  input.push(`-A ${CHAIN.input} -i ${br} ${reject(family)}`);
  return { forward, input };
}

/** The hook rules: `-I <built-in> 1 -j <ours>`. setup.sh recognises exactly this form. */
function hooks(mode: FirewallMode): string[] {
  return mode === 'sidecar'
    ? [`-I OUTPUT 1 -j ${CHAIN.output}`]
    : [`-I DOCKER-USER 1 -j ${CHAIN.forward}`, `-I INPUT 1 -j ${CHAIN.input}`];
}

export function chainsOf(mode: FirewallMode): string[] {
  return mode === 'sidecar' ? [CHAIN.output] : [CHAIN.forward, CHAIN.input];
}

/** The first line of each family's text: what iptables/setup.sh reads (key=value, never sourced). */
export function machineHeader(o: FirewallOptions, family: Family): string {
  const port = o.ports[0]!;
  const proxy =
    o.mode === 'sidecar'
      ? `${family === 4 ? '127.0.0.1' : '[::1]'}:${port}`
      : family === 4
        ? `${o.proxy4}:${port}`
        : o.proxy6
          ? `[${o.proxy6}]:${port}`
          : '';
  return `# sluice-firewall family=${family} mode=${o.mode} uid=${o.mode === 'sidecar' ? o.uid : ''} proxy=${proxy}`;
}

/** The rule set for one family: iptables-restore (--noflush) text. */
export function renderRules(o: FirewallOptions, family: Family): string {
  const f = FAMILY[family];
  const lines = [
    machineHeader(o, family),
    `# Sluice firewall, ${f.name}: ${describeOptions(o)}`,
    `# Generated by \`sluice firewall render\`. Apply with iptables/setup.sh apply FILE (guard first, self-test after),`,
    `# or by hand: ${f.restore} --noflush < this-part.`,
    '*filter',
    ...chainsOf(o.mode).map((c) => `:${c} - [0:0]`),
  ];
  if (o.mode === 'sidecar') lines.push(...sidecarRules(o, family));
  else {
    const d = dockerRules(o, family);
    lines.push(...d.forward, ...d.input);
  }
  lines.push(...hooks(o.mode), 'COMMIT');
  return lines.join('\n') + '\n';
}

/** What `sluice firewall render` prints: IPv4, then IPv6. */
export function renderAll(o: FirewallOptions): string {
  return renderRules(o, 4) + renderRules(o, 6);
}

/** Render defaults taken from a Sluice config (`--config`): its listener ports, and in docker mode the address
 * its proxy listener binds on the workload network. Explicit options win. */
export function optionsFromConfig(listen: SluiceConfig['listen'], mode: string | undefined): RawFirewallOptions {
  const ports = [listen.http, listen.socks5].filter((l) => l && l.port > 0).map((l) => l!.port);
  const out: { -readonly [K in keyof RawFirewallOptions]: RawFirewallOptions[K] } = {};
  if (ports.length) out.ports = ports.join(',');
  if (listen.dns && listen.dns.port > 0) out['dns-port'] = String(listen.dns.port);
  const host = listen.http?.host ?? listen.socks5?.host;
  if (mode === 'docker' && host && host !== '0.0.0.0' && host !== '::')
    out[isIP(host) === 6 ? 'proxy6' : 'proxy'] = host;
  return out;
}
