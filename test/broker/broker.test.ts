// Loading the broker's material, what `sluice check` and production refuse, and the broker end to end:
// issue a handle, use it, scrub the response, revoke the run.
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import t from 'tap';
import { validateConfig } from '../../settings/config.js';
import { createBroker } from '../../proxy/broker/broker.js';
import { credentialProblems } from '../../proxy/broker/credential-problems.js';
import { openHandle } from '../../proxy/broker/handle.js';
import { loadBrokerMaterial } from '../../proxy/broker/material.js';
import { createRevocationWatcher } from '../../proxy/broker/revocations.js';
import { sealSecret } from '../../proxy/broker/sealed.js';
import { KEY_MATERIAL, NOW_S, SECRETS, brokerConfig, keys } from './fixtures.js';

function files(over: Record<string, Buffer | null> = {}) {
  const fs: Record<string, Buffer | null> = {
    '/keys/broker': Buffer.from(`${KEY_MATERIAL}\n`),
    '/creds/github-api': Buffer.from(`${sealSecret(keys.seal, 'github-api', Buffer.from(SECRETS['github-api']))}\n`),
    '/creds/github-git': Buffer.from(sealSecret(keys.seal, 'github-git', Buffer.from(SECRETS['github-git']))),
    '/creds/slack': Buffer.from(`${SECRETS['slack-bot']}\n`),
    ...over,
  };
  return (p: string) => fs[p] ?? null;
}
const modes = (m: Record<string, number>) => (p: string) => m[p] ?? 0o400;

t.test('loading: keys and every secret', async (t) => {
  const r = loadBrokerMaterial(brokerConfig(), { readFile: files(), modeOf: modes({}), production: true });
  if (!r.ok || !r.material) throw new Error(JSON.stringify(r));
  t.same(r.issues, []);
  t.equal(r.material.secrets.get('github-api')!.revealText(), SECRETS['github-api']);
  t.equal(
    r.material.secrets.get('slack-bot')!.revealText(),
    SECRETS['slack-bot'],
    'a mounted file, trailing newline dropped',
  );
  t.equal(
    JSON.stringify(Object.fromEntries(r.material.secrets)),
    '{"github-api":"[secret]","github-git":"[secret]","slack-bot":"[secret]"}',
    'never serialised',
  );
  t.equal(`${r.material.secrets.get('github-api')}`, '[secret]');
  const none = loadBrokerMaterial(validateConfigOk({}), { readFile: files(), production: true });
  t.same(none, { ok: true, material: null, issues: [] }, 'no broker configured');
});

function validateConfigOk(raw: unknown) {
  const r = validateConfig(raw);
  if (!r.ok) throw new Error('invalid');
  return r.config;
}

t.test('credentialProblems: what check and production refuse', async (t) => {
  const config = brokerConfig();
  const dev = (readFile = files(), m: Record<string, number> = {}) =>
    credentialProblems(config, { readFile, modeOf: modes(m), production: false });
  const prod = (readFile = files(), m: Record<string, number> = {}) =>
    credentialProblems(config, { readFile, modeOf: modes(m), production: true });
  t.same(prod(), [], 'a good setup has nothing to say');
  const keyCases: [string, Buffer | null, RegExp][] = [
    ['missing', null, /cannot be read/],
    ['short', Buffer.from('0123456789abcdef'), /16 bytes; at least 32/],
    ['all zero', Buffer.alloc(32), /all zeros/],
    ['default', Buffer.from('changeme-changeme-changeme-changeme-0123'), /placeholder/],
  ];
  for (const [name, key, message] of keyCases) {
    const i = prod(files({ '/keys/broker': key }));
    t.match(i, [{ severity: 'error', path: '/secrets/keyFile', message }], `key ${name}`);
  }
  const wrongKey = deriveOther();
  const cases: [string, Record<string, Buffer | null>, RegExp][] = [
    [
      'sealed for another credential',
      { '/creds/github-api': Buffer.from(sealSecret(keys.seal, 'github-git', Buffer.from(SECRETS['github-api']))) },
      /does not decrypt for credential "github-api"/,
    ],
    [
      'sealed under another key',
      { '/creds/github-api': Buffer.from(sealSecret(wrongKey, 'github-api', Buffer.from(SECRETS['github-api']))) },
      /does not decrypt/,
    ],
    ['not a sealed blob', { '/creds/github-api': Buffer.from(SECRETS['github-api']) }, /is not a sealed secret/],
    ['unreadable', { '/creds/github-git': null }, /cannot be read/],
    ['a short secret', { '/creds/slack': Buffer.from('abc\n') }, /3 bytes; at least 12/],
    ['a secret with a CR LF', { '/creds/slack': Buffer.from('xoxb-abcdefghijkl\r\nX-Evil: 1') }, /not printable ASCII/],
  ];
  for (const [name, over, message] of cases) {
    const i = prod(files(over)).filter((x) => x.severity === 'error');
    t.equal(i.length, 1, name);
    t.match(i[0], { path: /^\/credentials\//, message }, name);
  }
  t.match(
    dev(files(), { '/creds/slack': 0o644 }),
    [{ severity: 'warning', message: /readable by every user \(mode 0644\)/ }],
    'world-readable: a warning in development',
  );
  t.match(
    prod(files(), { '/creds/slack': 0o640 }),
    [{ severity: 'error', message: /readable by its group/ }],
    'group-readable: refused in production',
  );
  t.match(
    prod(files(), { '/keys/broker': 0o620 }),
    [
      {
        severity: 'error',
        path: '/secrets/keyFile',
        message: /writable by group or others \(mode 620\)/,
        hint: 'chmod go-w /keys/broker',
      },
    ],
    'a writable key: refused in production',
  );
  t.match(
    dev(files(), { '/keys/broker': 0o602 }),
    [{ severity: 'warning', path: '/secrets/keyFile' }],
    'a warning in development',
  );
  t.match(
    prod(files(), { '/creds/github-api': 0o622 }),
    [{ severity: 'error', path: '/credentials/github-api/source', message: /writable/ }],
    'a writable sealed file',
  );
  t.match(
    prod(files(), { '/lists/revoked.jsonl': 0o646 }),
    [{ severity: 'error', path: '/secrets/handles/revocationFile', message: /writable by others/ }],
    'a list anyone can truncate',
  );
  t.same(prod(files(), { '/lists/revoked.jsonl': 0o664 }), [], 'a list its writers share by group is fine');
  const lax = brokerConfig({ secrets: { keyFile: '/keys/broker' } });
  const laxIssues = credentialProblems(lax, { readFile: files(), production: true });
  t.match(
    laxIssues.find((i) => i.path === '/secrets/handles/maxTtl'),
    { severity: 'error', message: 'handles have no maximum TTL' },
  );
  t.match(
    laxIssues.find((i) => i.path === '/secrets/handles/revocationFile'),
    { severity: 'error' },
  );
  t.match(
    credentialProblems(lax, { readFile: files(), production: false }).find((i) => i.path === '/secrets/handles/maxTtl'),
    { severity: 'warning' },
  );
  const tunnel = brokerConfig({
    integrations: {
      github: { hosts: ['api.github.com'], tunnel: true },
      slack: { hosts: ['slack.com'] },
      pastebin: { hosts: ['p.example'] },
    },
  });
  t.match(
    credentialProblems(tunnel, { readFile: files(), production: true }),
    [{ severity: 'error', path: '/integrations/github/tunnel' }],
    'handles through uninspected tunnels',
  );
  t.same(
    credentialProblems(tunnel, { readFile: files(), production: true, inspected: (i) => i === 'github' }),
    [],
    'unless the integration is inspected',
  );
  for (const i of [
    ...prod(files({ '/creds/slack': Buffer.from('Qz9tiny') })),
    ...prod(files({ '/keys/broker': Buffer.from('Kx7ShortKey') })),
  ]) {
    t.notMatch(JSON.stringify(i), /ghp_|xoxb-|Kx7ShortKey|Qz9tiny/, 'no problem quotes a secret or key');
  }
});

function deriveOther() {
  return Buffer.alloc(32, 9);
}

t.test('the broker end to end: issue, inject, scrub, revoke', async (t) => {
  const config = brokerConfig();
  const r = loadBrokerMaterial(config, { readFile: files(), production: false });
  if (!r.ok || !r.material) throw new Error('load');
  let nowMs = NOW_S * 1000;
  const lines: string[] = [];
  const revocations = createRevocationWatcher({
    read: async () => Buffer.from(lines.join('')),
    nowMs: () => nowMs,
    intervalMs: 1000,
  });
  await revocations.follow('/lists/revoked.jsonl');
  const broker = createBroker({
    config,
    material: r.material,
    revocations,
    nowMs: () => nowMs,
    append: async (_p, l) => void lines.push(l),
  });

  t.match(broker.issueHandle({ run: 'job-1', identity: 'agent', credential: 'nope', ttlS: 60 }), {
    ok: false,
    status: 404,
  });
  t.match(broker.issueHandle({ run: 'job-1', identity: 'ghost', credential: 'github-api', ttlS: 60 }), {
    ok: false,
    status: 404,
  });
  t.match(broker.issueHandle({ run: 'job-1', identity: 'other', credential: 'slack-bot', ttlS: 60 }), {
    ok: false,
    status: 409,
  });
  t.match(broker.issueHandle({ run: 'job-1', identity: 'agent', credential: 'github-api', ttlS: 9 * 3600 }), {
    ok: false,
    status: 400,
    error: /maxTtl/,
  });
  t.match(broker.issueHandle({ run: 'bad run', identity: 'agent', credential: 'github-api', ttlS: 60 }), {
    ok: false,
    status: 400,
  });
  const issued = broker.issueHandle({ run: 'job-1', identity: 'agent', credential: 'github-api', ttlS: 1800 });
  if (!issued.ok) throw new Error(issued.error);
  t.equal(issued.expiresAtS, NOW_S + 1800);
  t.match(openHandle(keys.handle, issued.handle), {
    ok: true,
    claims: { run: 'job-1', identity: 'agent', credential: 'github-api' },
  });

  const principal = { identity: 'agent', run: 'job-1', integrations: new Set(['github', 'slack']) };
  const request = {
    principal,
    method: 'GET',
    host: 'api.github.com',
    upstreamTls: true,
    rawHeaders: ['Authorization', `Bearer ${issued.handle}`],
    path: '/user',
    bodyPrefix: null,
  };
  const ok = broker.checkRequest(request);
  if (ok.verdict !== 'allow' || !ok.scrub) throw new Error('expected an injection');
  t.same(ok.rawHeaders, ['authorization', `Bearer ${SECRETS['github-api']}`, 'accept-encoding', 'identity']);

  // The upstream echoes the token in a header and, split across chunks, in the body.
  const scrub = broker.responseScrubber(ok.scrub);
  t.same(scrub.headers(['X-Echo', `Bearer ${SECRETS['github-api']}`]), ['X-Echo', `Bearer ${issued.handle}`]);
  const body = Buffer.from(`{"authorization":"Bearer ${SECRETS['github-api']}","git":"${SECRETS['github-git']}"}`);
  const stages = scrub.bodyStages(undefined);
  if (!Array.isArray(stages)) throw new Error('refused');
  const parts: Buffer[] = [];
  const chunks = Array.from({ length: body.length }, (_, i) => body.subarray(i, i + 1));
  await pipeline(
    Readable.from(chunks),
    ...(stages as [(typeof stages)[0]]),
    new Writable({
      write(c: Buffer, _e, d) {
        parts.push(c);
        d();
      },
    }),
  );
  const text = Buffer.concat(parts).toString();
  t.equal(
    text,
    `{"authorization":"Bearer ${issued.handle}","git":"sluice-redacted-github-git"}`,
    'the handle is put back; a secret never injected becomes a placeholder',
  );
  t.equal(scrub.replaced, 3);
  t.match(scrub.bodyStages('zstd'), { refuse: /cannot decode/ });

  t.match(broker.checkRequest({ ...request, host: 'evil.example' }), {
    code: 'EGR_DENY_CREDENTIAL_SCOPE',
    exfiltration: true,
  });
  t.match(broker.checkRequest({ ...request, principal: { ...principal, run: 'job-2' } }), {
    code: 'EGR_DENY_CREDENTIAL_SCOPE',
  });

  const revoked = await broker.revokeRun('job-1');
  t.match(revoked, { ok: true, shared: true });
  t.match(broker.checkRequest(request), { code: 'EGR_DENY_CREDENTIAL_REVOKED' }, 'this replica: at once');
  t.match(
    broker.issueHandle({ run: 'job-1', identity: 'agent', credential: 'github-api', ttlS: 60 }),
    { ok: false, status: 409 },
    'no new handles for a revoked run',
  );

  // Another replica, another process: same key, its own watcher on the same list.
  const other = createRevocationWatcher({
    read: async () => Buffer.from(lines.join('')),
    nowMs: () => nowMs,
    intervalMs: 1000,
  });
  await other.follow('/lists/revoked.jsonl');
  const replica = createBroker({
    config,
    material: r.material,
    revocations: other,
    nowMs: () => nowMs,
    append: async () => undefined,
  });
  t.match(
    replica.checkRequest(request),
    { code: 'EGR_DENY_CREDENTIAL_REVOKED' },
    'another replica, after reading the list',
  );

  nowMs += 1801 * 1000;
  const fresh = createBroker({
    config,
    material: r.material,
    revocations: { status: () => 'active', revokeLocal: () => undefined },
    nowMs: () => nowMs,
    append: async () => undefined,
  });
  t.match(
    fresh.checkRequest(request),
    { code: 'EGR_DENY_CREDENTIAL_EXPIRED' },
    'a restart loses nothing: expiry is in the handle',
  );
  revocations.close();
  other.close();
});
