// The destination class of a denied request (the metrics label for "who tried to reach what"): one row per
// class and per precedence rule, against a compiled policy with registries and integrations.
import t from 'tap';
import type { Code } from '../../firewall/codes.js';
import { validateConfig } from '../../settings/config.js';
import { DESTINATION_CLASSES, classifyDestination } from '../../firewall/destination-class.js';
import { normaliseHost } from '../../firewall/normalise.js';
import { compilePolicy } from '../../firewall/policy.js';

const r = validateConfig({
  registries: ['registry.npmjs.org', '*.pythonhosted.org'],
  integrations: {
    github: { hosts: ['api.github.com', '*.githubusercontent.com'], tunnel: true },
    slack: { hosts: ['slack.com'] },
  },
  identities: { agent: { password: 'x', integrations: ['github'] } },
});
if (!r.ok) throw new Error(JSON.stringify(r.issues));
const policy = compilePolicy(r.config);

// [host as audited, code the request ended with, class, integration]
const rows: [host: string | null, code: Code | null, cls: string, integration?: string][] = [
  // no target named
  [null, 'EGR_AUTH_REQUIRED', 'unknown'],
  ['', 'EGR_BAD_REQUEST', 'unknown'],
  // metadata services, by address and by name, whatever else would apply
  ['169.254.169.254', 'EGR_DENY_IP_LITERAL', 'metadata'],
  ['169.254.170.2', 'EGR_DENY_IP_LITERAL', 'metadata'],
  ['100.100.100.200', 'EGR_DENY_IP_LITERAL', 'metadata'],
  ['192.0.0.192', 'EGR_DENY_IP_LITERAL', 'metadata'],
  ['fd00:ec2::254', 'EGR_DENY_IP_LITERAL', 'metadata'],
  ['::ffff:169.254.169.254', 'EGR_DENY_IP_LITERAL', 'metadata'],
  ['metadata.google.internal', 'EGR_DENY_ADDRESS_PRIVATE', 'metadata'],
  ['metadata', 'EGR_DENY_ADDRESS_LINK_LOCAL', 'metadata'],
  ['instance-data.ec2.internal', 'EGR_DENY_ADDRESS_PRIVATE', 'metadata'],
  // special-purpose literals
  ['127.0.0.1', 'EGR_DENY_IP_LITERAL', 'loopback'],
  ['::1', 'EGR_DENY_IP_LITERAL', 'loopback'],
  ['10.1.2.3', 'EGR_DENY_IP_LITERAL', 'private'],
  ['192.168.1.1', 'EGR_DENY_IP_LITERAL', 'private'],
  ['100.64.0.1', 'EGR_DENY_IP_LITERAL', 'private'],
  ['fd12::1', 'EGR_DENY_IP_LITERAL', 'private'],
  ['169.254.1.1', 'EGR_DENY_IP_LITERAL', 'link_local'],
  ['fe80::1', 'EGR_DENY_IP_LITERAL', 'link_local'],
  ['224.0.0.1', 'EGR_DENY_IP_LITERAL', 'reserved'],
  ['64:ff9b::a00:1', 'EGR_DENY_IP_LITERAL', 'reserved'],
  ['93.184.216.34', 'EGR_DENY_IP_LITERAL', 'public'],
  ['93.184.216.34', 'EGR_DENY_ADDRESS_SELF', 'self'],
  // special-use names, never resolved
  ['localhost', 'EGR_DENY_ADDRESS_LOOPBACK', 'loopback'],
  ['api.localhost', 'EGR_DENY_ADDRESS_LOOPBACK', 'loopback'],
  ['printer.local', 'EGR_DENY_ADDRESS_PRIVATE', 'private'],
  ['kubernetes.default.svc.cluster.local', 'EGR_DENY_ADDRESS_PRIVATE', 'private'],
  ['git.corp.internal', 'EGR_DENY_ADDRESS_PRIVATE', 'private'],
  ['abc.onion', 'EGR_FAIL_DNS', 'unresolvable'],
  ['x.invalid', 'EGR_FAIL_DNS', 'unresolvable'],
  // names the address guard refused: the address they resolved to wins over the policy lists
  ['rebind.example.com', 'EGR_DENY_ADDRESS_PRIVATE', 'private'],
  ['registry.npmjs.org', 'EGR_DENY_ADDRESS_LOOPBACK', 'loopback'],
  ['api.github.com', 'EGR_DENY_ADDRESS_LINK_LOCAL', 'link_local'],
  ['nat64.example.com', 'EGR_DENY_ADDRESS_EMBEDDED', 'reserved'],
  ['doc.example.com', 'EGR_DENY_ADDRESS_RESERVED', 'reserved'],
  ['me.example.com', 'EGR_DENY_ADDRESS_SELF', 'self'],
  // the policy lists
  ['api.github.com', 'EGR_DENY_WRITE', 'integration', 'github'],
  ['raw.githubusercontent.com', 'EGR_DENY_METHOD', 'integration', 'github'],
  ['slack.com', 'EGR_DENY_WRITE', 'integration', 'slack'],
  ['registry.npmjs.org', 'EGR_DENY_PORT', 'registry'],
  ['files.pythonhosted.org', 'EGR_DENY_PORT', 'registry'],
  ['pythonhosted.org', 'EGR_DENY_TUNNEL', 'public'],
  // everything else
  ['example.com', 'EGR_DENY_READ', 'public'],
  ['pastebin.com', 'EGR_DENY_GLOBAL', 'public'],
  ['example.com', 'EGR_DENY_ADDRESS_RULE', 'public'],
  ['example.com', null, 'public'],
];

t.test('classifyDestination, row by row', async (t) => {
  for (const [host, code, cls, integration] of rows) {
    const d = classifyDestination(policy, host, code);
    t.same(d, { class: cls, integration: integration ?? null }, `${host} ${code}`);
  }
});

t.test('every class is reached by some row, and the set is closed', async (t) => {
  const seen = new Set(rows.map(([host, code]) => classifyDestination(policy, host, code).class));
  t.same([...seen].sort(), [...DESTINATION_CLASSES].sort());
});

t.test('hosts as the normaliser hands them over', async (t) => {
  for (const [raw, cls] of [
    ['[::1]', 'loopback'],
    ['[FD00:EC2::254]', 'metadata'],
    ['API.GitHub.com.', 'integration'],
    ['[::ffff:7f00:1]', 'loopback'],
  ] as const) {
    const n = normaliseHost(raw);
    if ('code' in n) {
      t.fail(`${raw} refused by the normaliser: ${n.code}`);
      continue;
    }
    t.equal(classifyDestination(policy, n.host, null).class, cls, raw);
  }
});
