// The files a config refers to, checked with real files: every problem at once, each with the config path,
// the file's path in the message and a hint.
import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { type ConfigIssue, validateConfig } from '../../settings/config.js';
import { fileIssues, readAdminToken, readCaFile, readTokenKey } from '../../proxy/runtime/secret-files.js';
import { testPki } from '../helpers/pki.js';

const dir = mkdtempSync(join(tmpdir(), 'sluice-files-'));
const file = (name: string, text: string, mode = 0o600) => {
  const p = join(dir, name);
  writeFileSync(p, text);
  chmodSync(p, mode);
  return p;
};
const config = (raw: Record<string, unknown>) => {
  const r = validateConfig({ listen: { http: '127.0.0.1:3128', socks5: null, admin: '127.0.0.1:9090' }, ...raw });
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  return r.config;
};
const brief = (issues: readonly ConfigIssue[]) =>
  issues.map((i) => `${i.severity} ${i.path}: ${i.message.replace(dir, 'DIR')}`);

const pki = testPki(['files.test']);
const key = file('key', `${'k'.repeat(48)}\n`);
const adminToken = file('admin', `${'a'.repeat(32)}\n`);
const ca = file('ca.pem', pki.caPem);
mkdirSync(join(dir, 'kill'));

t.test('good files: no issues, and the readers return their contents', async (t) => {
  const c = config({
    tokens: { keyFile: key },
    admin: { tokenFile: adminToken },
    upstream: { caFile: ca },
    killSwitch: { file: join(dir, 'kill', 'switch') },
  });
  t.same(fileIssues(c, { production: true }), []);
  t.equal(readTokenKey(c)?.toString(), 'k'.repeat(48), 'trailing newline trimmed');
  t.equal(readAdminToken(c)?.toString(), 'a'.repeat(32));
  t.equal(readCaFile(c), pki.caPem);
});

t.test('every problem is reported at once, with the config path, the file and a hint', async (t) => {
  const c = config({
    tokens: { keyFile: join(dir, 'missing-key') },
    admin: { tokenFile: file('empty-admin', '\n') },
    upstream: { caFile: file('not-a-ca.pem', 'hello\n') },
    killSwitch: { file: join(dir, 'no-such-dir', 'kill') },
  });
  const issues = fileIssues(c, { production: false });
  t.same(brief(issues), [
    'error /tokens/keyFile: DIR/missing-key: no such file',
    'error /admin/tokenFile: DIR/empty-admin: is empty',
    'error /upstream/caFile: DIR/not-a-ca.pem: holds no PEM certificate',
    'error /killSwitch/file: DIR/no-such-dir: no such directory, so the kill-switch file could never be created',
  ]);
  for (const i of issues) t.ok(i.hint, `${i.path} has a hint`);
  t.match(issues[0]!.hint, /head -c 48 \/dev\/urandom/);
});

t.test('contents: key length, admin token length, certificates that do not parse', async (t) => {
  const broken = `-----BEGIN CERTIFICATE-----\nMIIBnotacertificate\n-----END CERTIFICATE-----\n`;
  const c = config({
    tokens: { keyFile: file('short-key', 'k'.repeat(31)) },
    admin: { tokenFile: file('short-admin', 'a'.repeat(10)) },
    upstream: { caFile: file('broken.pem', pki.caPem + broken) },
  });
  const issues = brief(fileIssues(c, { production: false }));
  t.same(issues.slice(0, 2), [
    'error /tokens/keyFile: DIR/short-key: holds 31 bytes of key; at least 32 are required',
    'warning /admin/tokenFile: DIR/short-admin: holds 10 bytes; at least 24 are required in production and beyond loopback',
  ]);
  t.match(issues[2], /^error \/upstream\/caFile: DIR\/broken\.pem: certificate 2 does not parse/);
  t.equal(fileIssues(c, { production: true })[1]!.severity, 'error', 'a short admin token is an error in production');
  t.throws(
    () => readTokenKey(c),
    { code: 'SLUICE_ERR_CONFIG', message: /short-key: holds 31 bytes of key/ },
    'the runtime reader refuses it, saying the same',
  );
});

t.test('not a regular file, and unreadable (injected: root reads anything)', async (t) => {
  const c = config({ tokens: { keyFile: dir }, admin: { tokenFile: '/secret/admin' } });
  const issues = fileIssues(c, {
    production: false,
    inspect: (p, read) =>
      p === '/secret/admin'
        ? { kind: 'unreadable', code: 'EACCES' }
        : p === dir
          ? { kind: 'directory', mode: 0o40755 }
          : { kind: 'file', mode: 0o100600, bytes: read ? Buffer.from('x') : null },
  });
  t.same(brief(issues), [
    'error /tokens/keyFile: DIR: not a regular file',
    'error /admin/tokenFile: /secret/admin: cannot be read (EACCES)',
  ]);
  t.match(issues[1]!.hint, /UID 10001/);
});

t.test('permissions: a secret others can write is an error in production, a warning otherwise', async (t) => {
  const c = config({
    tokens: { keyFile: file('open-key', 'k'.repeat(48), 0o666) },
    admin: { tokenFile: file('ro-admin', 'a'.repeat(32), 0o444) },
  });
  t.same(brief(fileIssues(c, { production: true })), [
    'error /tokens/keyFile: DIR/open-key: writable by group or others (mode 666)',
  ]);
  t.same(brief(fileIssues(c, { production: false })), [
    'warning /tokens/keyFile: DIR/open-key: writable by group or others (mode 666)',
  ]);
});

t.test('the kill-switch file: engaged now, or its directory is a file', async (t) => {
  const engaged = file('engaged', '');
  t.same(brief(fileIssues(config({ killSwitch: { file: engaged } }), { production: false })), [
    'warning /killSwitch/file: DIR/engaged exists: the kill switch is engaged and every request will be denied',
  ]);
  t.match(brief(fileIssues(config({ killSwitch: { file: join(engaged, 'x') } }), { production: false })), [
    /DIR\/engaged: not a directory/,
  ]);
});
