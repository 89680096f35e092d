// The dialer's per-request shortcut: a resolver cache hit under the same compiled guard reuses the plan
// validated before, and anything else — new answers, a reloaded policy — is validated again. Pure data:
// a stub resolver; the servers are on loopback. The plans name private addresses (10.x), so the file runs in
// a namespace holding only lo (CONTRACT §10): a bug that dialled one could not reach a real network.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import type { AddressInfo } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import t from 'tap';
import { Agent as UndiciAgent, request } from 'undici';
import { isDeny } from '../../firewall/codes.js';
import { validateConfig } from '../../settings/config.js';
import { type Policy, compilePolicy } from '../../firewall/policy.js';
import { createDialer, DialDenied } from '../../proxy/egress/dialer.js';
import type { NameResolver } from '../../proxy/egress/resolver.js';
import { isolate } from '../helpers/netns.js';
import { testPki } from '../helpers/pki.js';
import { viaDialer } from '../helpers/via-dialer.js';
import { repoPath } from '../helpers/repo.js';

/** A policy whose only address exception is `cidr` for svc.test (none when null); Sluice listens on `self`. */
const guardPolicy = (cidr: string | null, self = '127.0.0.1'): Policy => {
  const r = validateConfig({
    listen: { http: `${self}:3128`, socks5: null, admin: null },
    addressGuard: { allow: cidr ? [{ cidr, hosts: ['svc.test'] }] : [], deny: [] },
  });
  if (!r.ok) throw new Error('bad test config');
  return compilePolicy(r.config, [self]);
};

if (isolate(t, import.meta.url)) {
  t.test('a cache hit reuses the validated plan; new answers or a new guard are checked again', async (t) => {
    let answers: readonly string[] = ['10.1.0.5'];
    let fresh = true;
    const resolver: NameResolver = {
      resolve: async () => {
        const r = { addresses: answers, ms: fresh ? 3 : 0, cached: !fresh };
        fresh = false;
        return r;
      },
      clear: () => undefined,
    };
    let policy = guardPolicy('10.1.0.0/16');
    const dialer = createDialer({ resolver, policy: () => policy, connectTimeoutMs: 1000, nowMs: () => 0 });
    t.teardown(() => dialer.close());
    const host = { host: 'svc.test', kind: 'name' } as const;

    const first = await dialer.prepare(host);
    t.notOk(isDeny(first));
    t.match(first, { addresses: [{ address: '10.1.0.5', rule: 'addressGuard.allow[0]' }], dnsMs: 3 });
    const second = await dialer.prepare(host);
    t.match(second, { addresses: [{ address: '10.1.0.5' }], dnsMs: 0 }, 'a cache hit reports no DNS time');
    t.equal(await dialer.prepare(host), second, 'and hands back the same validated plan');

    answers = ['10.2.0.9'];
    const rebound = await dialer.prepare(host);
    t.ok(isDeny(rebound) && rebound.code === 'EGR_DENY_ADDRESS_PRIVATE', 'a new answer set is validated, not trusted');

    answers = ['10.1.0.5'];
    t.notOk(isDeny(await dialer.prepare(host)));
    policy = guardPolicy(null);
    const reloaded = await dialer.prepare(host);
    t.ok(
      isDeny(reloaded) && reloaded.code === 'EGR_DENY_ADDRESS_PRIVATE',
      'a reload that drops the exception denies the same answers',
    );
  });

  t.test('a reload keeps pooled connections only while every address they went to still passes', async (t) => {
    const server = createServer((req, res) => res.end('ok'));
    let connections = 0;
    server.on('connection', () => connections++);
    server.keepAliveTimeout = 60_000;
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    t.teardown(() => new Promise((r) => server.close(r)));
    const { port } = server.address() as AddressInfo;
    let policy = guardPolicy('127.0.0.1/32', '127.0.0.9');
    const resolver: NameResolver = {
      resolve: async () => ({ addresses: ['127.0.0.1'], ms: 0, cached: true }),
      clear: () => undefined,
    };
    const dialer = createDialer({ resolver, policy: () => policy, connectTimeoutMs: 1000, nowMs: () => 0 });
    t.teardown(() => dialer.close());
    const get = async () => {
      t.notOk(isDeny(await dialer.prepare({ host: 'svc.test', kind: 'name' })));
      const r = await request(`http://svc.test:${port}/`, { dispatcher });
      return r.body.text();
    };
    const dispatcher = viaDialer(dialer);

    t.equal(await get(), 'ok');
    t.equal(await get(), 'ok');
    policy = guardPolicy('127.0.0.1/32', '127.0.0.9');
    dialer.refresh();
    const before = connections;
    t.equal(await get(), 'ok');
    t.equal(
      connections,
      before,
      'the same exception under a new policy: the pool stays, and a pooled connection serves the next request',
    );

    policy = guardPolicy(null, '127.0.0.9');
    dialer.refresh();
    // Straight to the Agent, without prepare(): only a new connection, judged by the new guard, is left.
    const refused = await request(`http://svc.test:${port}/`, { dispatcher }).catch((err: unknown) => err);
    t.ok(
      refused instanceof DialDenied && refused.deny.code === 'EGR_DENY_ADDRESS_LOOPBACK',
      'the exception is gone: no pooled connection to that address survives',
    );
    t.equal(connections, before, 'and no new one is made');
    t.ok(isDeny(await dialer.prepare({ host: 'svc.test', kind: 'name' })), 'and the name is denied');
  });

  t.test(
    'every upstream TLS connection shares one context: the CA store is parsed once, not per connection',
    async (t) => {
      const pki = testPki(['svc.test']);
      const server = createTlsServer({ key: pki.keyPem, cert: pki.certPem }, (s) => s.end());
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      const port = (server.address() as AddressInfo).port;
      const resolver: NameResolver = {
        resolve: async () => ({ addresses: ['127.0.0.1'], ms: 0, cached: true }),
        clear: () => undefined,
      };
      const policy = guardPolicy('127.0.0.1/32', '127.0.0.9');
      const dialer = createDialer({
        resolver,
        policy: () => policy,
        connectTimeoutMs: 5000,
        nowMs: () => 0,
        extraCa: pki.caPem,
      });
      // Watch what the dialer hands tls.connect (the ESM binding follows the builtin's CommonJS export).
      const tls = createRequire(import.meta.url)('node:tls') as { connect: (...args: unknown[]) => unknown };
      const original = tls.connect;
      const contexts: unknown[] = [];
      tls.connect = (...args: unknown[]) => {
        contexts.push((args[0] as { secureContext?: unknown }).secureContext);
        return original.apply(tls, args);
      };
      syncBuiltinESMExports();
      t.teardown(() => {
        tls.connect = original;
        syncBuiltinESMExports();
        server.close();
        return dialer.close();
      });
      const plan = await dialer.prepare({ host: 'svc.test', kind: 'name' });
      if (isDeny(plan)) throw new Error(plan.code);
      for (let i = 0; i < 3; i++) {
        const c = await dialer.connect(plan, port, true);
        t.notOk(isDeny(c), 'verified against the extra CA');
        if (!isDeny(c)) c.socket.destroy();
      }
      t.equal(contexts.length, 3);
      t.ok(contexts[0], 'a context is passed');
      t.ok(
        contexts.every((c) => c === contexts[0]),
        'the same one every time',
      );
    },
  );

  t.test('a closed dialer forwards nothing: its Agent is made on first use, but never after close()', async (t) => {
    const server = createServer((_req, res) => res.end('ok'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    t.teardown(() => server.close());
    const { port } = server.address() as AddressInfo;
    const resolver: NameResolver = {
      resolve: async () => ({ addresses: ['127.0.0.1'], ms: 0, cached: false }),
      clear: () => undefined,
    };
    // Sluice on another loopback address, so that the origin on 127.0.0.1 is not Sluice itself.
    const policy = guardPolicy('127.0.0.1/32', '127.0.0.2');
    const dialer = createDialer({ resolver, policy: () => policy, connectTimeoutMs: 1000, nowMs: () => 0 });
    await dialer.close();
    const err = await request(`http://svc.test:${port}/`, { dispatcher: viaDialer(dialer) }).then(
      () => null,
      (e: unknown) => e,
    );
    t.match(err, { code: 'UND_ERR_DESTROYED' }, 'refused by the closed Agent');
  });

  t.test("the dialer's Agent is undici's own (it is loaded without undici's index)", async (t) => {
    const source = readFileSync(repoPath('proxy/egress/dialer.ts'), 'utf8');
    const path = /createRequire\(import\.meta\.url\)\('(undici\/[^']+)'\)/.exec(source)?.[1];
    t.equal(path, 'undici/lib/dispatcher/agent.js', 'the one deep path the dialer loads');
    t.equal(createRequire(import.meta.url)(path!), UndiciAgent, 'is the class undici exports');
  });
}
