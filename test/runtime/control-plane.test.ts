// The control plane against a fake process model: what a reload puts in force (or refuses, keeping the last
// good config), the kill switch from both of its sources, a second signal forcing shutdown, and secret files
// rotated under a running Sluice. Real files in a temporary directory; nothing listens.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import type { SluiceConfig } from '../../settings/config.js';
import { createMetrics } from '../../proxy/ops/metrics.js';
import { loadConfigFile } from '../../proxy/runtime/config-file.js';
import { ConfigRefusal } from '../../proxy/runtime/config-refusal.js';
import {
  type Change,
  type ControlPlane,
  type ProcessModel,
  createControlPlane,
} from '../../proxy/runtime/control-plane.js';
import { waitFor } from '../helpers/harness.js';
import { captureLogs } from '../helpers/log-capture.js';

const dir = mkdtempSync(join(tmpdir(), 'sluice-control-plane-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const ADMIN_TOKEN = 'a'.repeat(40);
const KEY_1 = 'k'.repeat(48);
const KEY_2 = 'q'.repeat(48);

/** A process model that records what the control plane asks of it. */
function fakeModel() {
  const calls = {
    apply: [] as Change[],
    killSwitch: [] as boolean[],
    tokenKey: [] as (string | null)[],
    drain: 0,
    stop: 0,
    force: 0,
  };
  let finishDrain: () => void = () => undefined;
  const model: ProcessModel = {
    apply: (change) => void calls.apply.push(change),
    killSwitch: (engaged) => void calls.killSwitch.push(engaged),
    tokenKey: (key) => void calls.tokenKey.push(key?.toString() ?? null),
    drain: () => {
      calls.drain++;
      return new Promise<void>((resolve) => (finishDrain = resolve));
    },
    stop: async () => void calls.stop++,
    force: () => void calls.force++,
    flushLogs: () => undefined,
  };
  return { model, calls, finishDrain: () => finishDrain() };
}

interface Setup {
  readonly cp: ControlPlane;
  readonly calls: ReturnType<typeof fakeModel>['calls'];
  readonly finishDrain: () => void;
  readonly logs: Record<string, unknown>[];
  readonly exits: number[];
  readonly path: string;
}

/** A control plane on the config file `name` holding `yaml`; a follower (handed `followerKey`) has no source. */
function setup(t: Test, name: string, yaml: string, followerKey?: Buffer): Setup {
  const path = join(dir, `${name}.yaml`);
  writeFileSync(path, yaml);
  const loaded = loadConfigFile(path);
  if (!loaded.ok) throw new Error(`test config is invalid: ${JSON.stringify(loaded.issues)}`);
  const { logs, logger } = captureLogs();
  const { model, calls, finishDrain } = fakeModel();
  const exits: number[] = [];
  const cp = createControlPlane({
    config: loaded.config,
    logger,
    metrics: createMetrics({ version: 'test', tunnels: () => 0, defaultMetrics: false }),
    model,
    generatedIdentity: false,
    production: false,
    ...(followerKey
      ? { tokenKey: followerKey }
      : {
          source: { path, digest: loaded.digest, prepare: (c: SluiceConfig) => c, production: false },
          exit: (code: number) => void exits.push(code),
        }),
  });
  t.teardown(() => cp.close());
  return { cp, calls, finishDrain, logs, exits, path };
}

const secret = (name: string, content: string) => {
  const file = join(dir, name);
  writeFileSync(file, content, { mode: 0o600 });
  return file;
};

const yaml = (extra = '', deny = 'blocked.test') =>
  `listen: { http: 127.0.0.1:0, socks5: null, admin: null }
identities:
  agent: { password: agent-password-1 }
globalDeny: { hosts: [${deny}] }
${extra}`;

const failed = (logs: Record<string, unknown>[]) =>
  logs.filter((l) => l.msg === 'config.reload_failed: keeping the last good config');

t.test('a valid reload is prepared, then applied here and through the process model', async (t) => {
  const s = setup(t, 'good', yaml());
  writeFileSync(s.path, yaml('', 'other.test'));
  t.match(await s.cp.reload('sighup'), { ok: true });
  t.same(s.cp.config().globalDeny.hosts, ['other.test'], 'the control plane holds the new config');
  t.equal(s.calls.apply.length, 1, 'the process model was told once');
  t.same(s.calls.apply[0]!.previous.globalDeny.hosts, ['blocked.test'], 'with the config it replaces');
  t.equal(s.calls.apply[0]!.policy, s.cp.policy(), 'and the policy compiled for it');
});

t.test('an invalid config keeps the last good one and logs the issue with its path', async (t) => {
  const s = setup(t, 'bad', yaml());
  writeFileSync(s.path, yaml('limits: { drainMs: -1 }'));
  const r = await s.cp.reload('admin');
  t.equal(r.ok, false);
  t.same(s.cp.config().globalDeny.hosts, ['blocked.test'], 'the last good config stays');
  t.equal(s.calls.apply.length, 0, 'nothing reached the process model');
  const issues = failed(s.logs)[0]?.issues as string[];
  t.ok(
    issues.some((i) => i.includes('/limits/drainMs')),
    'the logged issue names the path',
  );
});

t.test('a reload that would expose the admin API beyond loopback is refused (fail closed)', async (t) => {
  const tokenFile = secret('admin-token', ADMIN_TOKEN);
  const exposed = (admin: string) =>
    `listen: { http: 127.0.0.1:0, socks5: null, admin: 0.0.0.0:0 }
identities:
  agent: { password: agent-password-1 }
${admin}`;
  const s = setup(t, 'exposed', exposed(`admin: { tokenFile: ${tokenFile} }`));
  t.equal(s.cp.adminToken()?.toString(), ADMIN_TOKEN);

  // Removing the token while the admin API listens on every address would open it to anyone.
  writeFileSync(s.path, exposed(''));
  const r = await s.cp.reload('admin');
  t.equal(r.ok, false, 'refused');
  t.ok(
    r.issues.some((i) => i.includes('/listen/admin')),
    'the issue names the listener',
  );
  t.equal(s.cp.config().admin.tokenFile, tokenFile, 'the last good config stays');
  t.equal(s.cp.adminToken()?.toString(), ADMIN_TOKEN, 'and its token');
  t.equal(s.calls.apply.length, 0);
  t.match(failed(s.logs)[0], { issues: [/\/listen\/admin/] });

  // prepare refuses with the issues of `sluice check`: path and hint.
  const next = loadConfigFile(s.path);
  if (!next.ok) throw new Error('unreachable');
  let refusal: unknown = null;
  try {
    s.cp.prepare(next.config);
  } catch (err) {
    refusal = err;
  }
  t.ok(refusal instanceof ConfigRefusal, 'a ConfigRefusal');
  t.equal((refusal as ConfigRefusal).code, 'SLUICE_ERR_CONFIG');
  t.match((refusal as ConfigRefusal).issues, [{ path: '/listen/admin', hint: String }]);

  // A token too short to be one is refused the same way.
  writeFileSync(tokenFile, 'short');
  writeFileSync(s.path, exposed(`admin: { tokenFile: ${tokenFile} }`));
  t.equal((await s.cp.reload('admin')).ok, false);
  t.equal(s.cp.adminToken()?.toString(), ADMIN_TOKEN);
});

t.test('the kill switch: engaged while either source holds it, from the API and the file', async (t) => {
  const killFile = join(dir, 'kill');
  const s = setup(t, 'kill', yaml(`killSwitch: { file: ${killFile} }`));
  await s.cp.follow();
  t.equal(s.cp.killSwitch(), false);

  await s.cp.admin.setKillSwitch(true);
  t.equal(s.cp.killSwitch(), true, 'the API engages it');
  t.same(s.calls.killSwitch, [true], 'and the process model is told');
  await s.cp.admin.setKillSwitch(false);
  t.equal(s.cp.killSwitch(), false, 'the API disengages it');
  t.same(s.calls.killSwitch, [true, false]);

  writeFileSync(killFile, '');
  await waitFor(() => s.cp.killSwitch());
  t.same(s.calls.killSwitch, [true, false, true], 'the file engages it');
  await s.cp.admin.setKillSwitch(true);
  await s.cp.admin.setKillSwitch(false);
  t.equal(s.cp.killSwitch(), true, 'the file still holds it after the API lets go');

  rmSync(killFile);
  await waitFor(() => !s.cp.killSwitch());
  t.equal(s.calls.killSwitch.at(-1), false, 'removing the file disengages it everywhere');
  t.ok(
    s.logs.some((l) => l.msg === 'kill_switch' && l.source === 'api') &&
      s.logs.some((l) => l.msg === 'kill_switch' && l.source === 'file'),
    'each change is logged with its source',
  );
});

t.test('shutdown: the first signal drains, the second forces', async (t) => {
  const s = setup(t, 'shutdown', yaml());
  const first = s.cp.shutdown();
  t.equal(s.calls.drain, 1, 'the first signal drains');
  t.equal(s.cp.stopping(), true);
  await s.cp.shutdown();
  t.same(s.exits, [143], 'the second exits at once');
  t.equal(s.calls.force, 1, 'after telling the process model to stop waiting');
  t.ok(s.logs.some((l) => l.msg === 'shutdown.forced'));
  s.finishDrain();
  await first;
  t.same(s.exits, [143, 0]);
  t.equal(s.calls.stop, 1);
});

t.test('shutdown: a drain that ends exits 0', async (t) => {
  const s = setup(t, 'graceful', yaml());
  const done = s.cp.shutdown();
  s.finishDrain();
  await done;
  t.same(s.exits, [0]);
  t.notOk(s.logs.some((l) => l.msg === 'shutdown.forced'));
  t.ok(s.logs.some((l) => l.msg === 'shutdown.complete'));
});

t.test('secret files rotated under a running control plane', async (t) => {
  const keyFile = secret('token-key', KEY_1);
  const tokenFile = secret('rotating-admin-token', ADMIN_TOKEN);
  const s = setup(t, 'rotate', yaml(`tokens: { keyFile: ${keyFile} }\nadmin: { tokenFile: ${tokenFile} }`));
  await s.cp.follow();
  t.equal(s.cp.tokenKey()?.toString(), KEY_1);

  t.test('a new token key applies at once', async (t) => {
    writeFileSync(keyFile, `${KEY_2}\n`);
    await waitFor(() => s.calls.tokenKey.length > 0);
    t.same(s.calls.tokenKey, [KEY_2], 'the process model gets the new key');
    t.equal(s.cp.tokenKey()?.toString(), KEY_2);
    t.ok(s.logs.some((l) => String(l.msg).startsWith('tokens.key_changed')));
  });

  t.test('a key too short keeps the last good one, and says where', async (t) => {
    writeFileSync(keyFile, 'short');
    await waitFor(() => s.logs.find((l) => String(l.msg).startsWith('tokens.key_reload_failed')));
    t.equal(s.cp.tokenKey()?.toString(), KEY_2);
    const refused = s.logs.find((l) => String(l.msg).startsWith('tokens.key_reload_failed'));
    t.match(refused, { issues: [/\/tokens\/keyFile/] });
  });

  t.test('a rotated admin token is read by the next reload', async (t) => {
    writeFileSync(keyFile, KEY_2);
    const next = 'b'.repeat(40);
    writeFileSync(tokenFile, next);
    writeFileSync(s.path, yaml(`tokens: { keyFile: ${keyFile} }\nadmin: { tokenFile: ${tokenFile} }`, 'x.test'));
    t.match(await s.cp.reload('admin'), { ok: true });
    t.equal(s.cp.adminToken()?.toString(), next);
    t.equal(s.calls.apply.at(-1)?.keyChanged, false, 'the key in force did not change');
  });

  t.test('a reload naming a key file that is gone keeps the last good config and key', async (t) => {
    writeFileSync(s.path, yaml(`tokens: { keyFile: ${join(dir, 'no-such-key')} }`, 'y.test'));
    const r = await s.cp.reload('admin');
    t.equal(r.ok, false);
    t.ok(r.issues.some((i) => i.includes('/tokens/keyFile')));
    t.equal(s.cp.tokenKey()?.toString(), KEY_2);
    t.same(s.cp.config().globalDeny.hosts, ['x.test']);
  });
});

t.test('a follower takes the key it is handed and never reads the key file', async (t) => {
  const handed = Buffer.from(KEY_1);
  const { cp, calls, path } = setup(t, 'follower', yaml(`tokens: { keyFile: ${join(dir, 'absent-key')} }`), handed);
  const loaded = loadConfigFile(path);
  if (!loaded.ok) throw new Error('test config is invalid');
  t.equal(cp.tokenKey(), handed);
  cp.setTokenKey(Buffer.from(KEY_1));
  t.same(calls.tokenKey, [], 'the same key changes nothing');
  cp.change(loaded.config, Buffer.from(KEY_2));
  t.equal(cp.tokenKey()?.toString(), KEY_2, 'a swap carries its key');
  t.equal(calls.apply[0]?.keyChanged, true);
  t.match(await cp.reload('admin'), { ok: false }, 'a follower has nothing to reload from');
});
