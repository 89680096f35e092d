// Byte-level tests of the broker's formats: the key derivation, the sealed envelope and the handle.
import { createCipheriv } from 'node:crypto';
import t from 'tap';
import {
  HANDLE_PREFIX,
  MAX_HANDLE_CHARS,
  handleAt,
  handleId,
  issueHandle,
  openHandle,
} from '../../proxy/broker/handle.js';
import { KEY_LABELS, deriveBrokerKeys, keyMaterialOf, keyMaterialProblem } from '../../proxy/broker/keys.js';
import { SEALED_PREFIX, openSealed, sealSecret } from '../../proxy/broker/sealed.js';

const material = Buffer.from('k7Hq2Vx9Lm4Rz8Tp1Yw6Nc3Bf5Gd0Sa+Je/Uo==extra');
const keys = deriveBrokerKeys(material);
const other = deriveBrokerKeys(Buffer.from('Zr5Lm8Qx2Vn7Tp4Hc1Wb9Kd6Yf3Gs0Ja+Ue/Io==more'));
const SECRET = Buffer.from('ghp_R8x2Kq9LmN4pZ7vB1cD3eF5gH6jK0aS2dF4g');

/** Flips one bit of the byte under base64url character `i` of `text` and re-encodes canonically. */
function flipChar(text: string, i: number): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const v = alphabet.indexOf(text[i]!);
  return text.slice(0, i) + alphabet[v ^ 1] + text.slice(i + 1);
}

t.test('keys: problems, whitespace, distinct derivations', async (t) => {
  t.match(keyMaterialProblem(null), { message: /cannot be read/ });
  t.match(keyMaterialProblem(Buffer.from('short-key')), { message: /9 bytes; at least 32/ });
  t.match(keyMaterialProblem(Buffer.alloc(48)), { message: 'is all zeros' });
  t.match(keyMaterialProblem(Buffer.from('0'.repeat(64))), { message: 'is all zeros' });
  t.match(keyMaterialProblem(Buffer.from('a'.repeat(40))), { message: /single byte/ });
  t.match(keyMaterialProblem(Buffer.from('abcabcabcabcabcabcabcabcabcabcabcabc')), { message: /distinct byte values/ });
  t.match(keyMaterialProblem(Buffer.from('CHANGEME-please-generate-a-real-key-0123456789')), {
    message: /placeholder/,
  });
  t.equal(keyMaterialProblem(material), null);
  t.equal(
    keyMaterialOf(Buffer.from(`  ${material}\n`)).toString(),
    material.toString(),
    'a trailing newline is not key',
  );
  t.not(keys.seal.toString('hex'), keys.handle.toString('hex'), 'one key per purpose');
  t.same(deriveBrokerKeys(material), keys, 'deterministic: any replica derives the same keys');
  t.not(keys.seal.toString('hex'), other.seal.toString('hex'));
  t.not(KEY_LABELS.seal, KEY_LABELS.handle);
  t.throws(() => deriveBrokerKeys(Buffer.from('short')), { code: 'SLUICE_ERR_INVALID_ARGUMENT' });
});

t.test('sealed envelope: format', async (t) => {
  const nonce = Buffer.alloc(12, 7);
  const blob = sealSecret(keys.seal, 'github', SECRET, nonce);
  t.match(blob, /^sluice-sealed\.v1\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]+$/);
  const [n, body] = blob.slice(SEALED_PREFIX.length).split('.');
  t.equal(n, nonce.toString('base64url'));
  // Independent of sealSecret: AES-256-GCM with the credential name (prefixed) as associated data.
  const c = createCipheriv('aes-256-gcm', keys.seal, nonce);
  c.setAAD(Buffer.from(`${SEALED_PREFIX}github`));
  t.equal(body, Buffer.concat([c.update(SECRET), c.final(), c.getAuthTag()]).toString('base64url'));
  t.notMatch(blob, /ghp_/, 'the secret is not visible');
  t.not(sealSecret(keys.seal, 'github', SECRET), sealSecret(keys.seal, 'github', SECRET), 'a random nonce each time');
  t.same(
    openSealed(keys.seal, 'github', `${blob}\n`),
    { ok: true, secret: SECRET },
    "a file's trailing newline is fine",
  );
});

t.test('sealed envelope: every way to get it wrong', async (t) => {
  const blob = sealSecret(keys.seal, 'github', SECRET);
  t.same(openSealed(keys.seal, 'gitlab', blob), { ok: false, reason: 'unauthentic' }, 'moved to another credential');
  t.same(openSealed(other.seal, 'github', blob), { ok: false, reason: 'unauthentic' }, 'another key');
  t.same(
    openSealed(keys.handle, 'github', blob),
    { ok: false, reason: 'unauthentic' },
    'the handle key cannot open it',
  );
  // Every character of nonce, ciphertext and tag.
  let tampered = 0;
  for (let i = SEALED_PREFIX.length; i < blob.length; i++) {
    if (blob[i] === '.') continue;
    const r = openSealed(keys.seal, 'github', flipChar(blob, i));
    if (!r.ok) tampered++;
  }
  t.equal(tampered, blob.length - SEALED_PREFIX.length - 1, 'any changed character fails');
  for (let n = 0; n < blob.length; n++)
    t.notOk(openSealed(keys.seal, 'github', blob.slice(0, n)).ok, `truncated to ${n}`);
  const [nonce, body] = blob.slice(SEALED_PREFIX.length).split('.');
  const P = SEALED_PREFIX;
  const malformed = [
    `sluice-sealed.v2.${nonce}.${body}`,
    `${P}${nonce}.${body}.x`,
    `${P}${nonce}=.${body}`,
    `${P}${nonce}.${body}==`,
    `${P}${nonce!.replace(/[A-Za-z0-9]/, '+')}.${body}`,
    `${P}${nonce!.slice(0, -1)}.${body}`,
    `${P}${nonce}.${body!.slice(0, 20)}`,
    `${P}${nonce} .${body}`,
    `${P}AAAAAAAAAAAAAAAAAAAA.${body}`,
  ];
  for (const m of malformed)
    t.same(openSealed(keys.seal, 'github', m), { ok: false, reason: 'malformed' }, m.slice(0, 40));
  // Non-canonical base64url: the same bytes spelled with non-zero trailing bits.
  const last = body!.length - 1;
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const v = alphabet.indexOf(body![last]!);
  const bits = body!.length % 4 === 2 ? 4 : body!.length % 4 === 3 ? 2 : 0;
  if (bits) {
    const alias = body!.slice(0, last) + alphabet[v | ((1 << bits) - 1)]!;
    t.same(
      Buffer.from(alias, 'base64url'),
      Buffer.from(body!, 'base64url'),
      'Node decodes the alias to the same bytes',
    );
    if (alias !== body)
      t.same(
        openSealed(keys.seal, 'github', `${P}${nonce}.${alias}`),
        { ok: false, reason: 'malformed' },
        'but it is refused',
      );
  }
  t.throws(() => sealSecret(keys.seal, 'github', Buffer.alloc(0)), { code: 'SLUICE_ERR_INVALID_ARGUMENT' });
});

t.test('handles: round trip, opacity, randomness', async (t) => {
  const claims = { run: 'job-4711', identity: 'agent', credential: 'github-api', expS: 1_900_000_000 };
  const h = issueHandle(keys.handle, claims);
  t.ok(h.startsWith(HANDLE_PREFIX));
  t.match(h, /^sluice_h1_[A-Za-z0-9_-]+$/);
  t.equal((h.length - HANDLE_PREFIX.length) % 4, 0, 'whole base64 groups: one canonical spelling');
  t.ok(h.length <= MAX_HANDLE_CHARS);
  t.same(openHandle(keys.handle, h), { ok: true, claims });
  for (const word of ['job-4711', 'agent', 'github', 'am9i', 'YWdlbnQ'])
    t.notOk(h.slice(10).includes(word), `does not reveal ${word}`);
  t.not(issueHandle(keys.handle, claims), h, 'two handles for the same claims differ');
  t.same(openHandle(other.handle, h), { ok: false, reason: 'unauthentic' }, "another deployment's key");
  t.same(openHandle(keys.seal, h), { ok: false, reason: 'unauthentic' }, 'the sealing key');
  const long = { run: 'r'.repeat(64), identity: 'i'.repeat(63), credential: 'c'.repeat(63), expS: 0xffffffff };
  t.same(openHandle(keys.handle, issueHandle(keys.handle, long)), { ok: true, claims: long }, 'the longest claims fit');
  t.throws(() => issueHandle(keys.handle, { ...claims, run: 'has space' }), { code: 'SLUICE_ERR_INVALID_ARGUMENT' });
  t.throws(() => issueHandle(keys.handle, { ...claims, identity: 'Agent' }), { code: 'SLUICE_ERR_INVALID_ARGUMENT' });
  t.throws(() => issueHandle(keys.handle, { ...claims, expS: 2 ** 32 }), { code: 'SLUICE_ERR_INVALID_ARGUMENT' });
  t.equal(handleId(h).length, 12);
  t.match(handleId(h), /^[0-9a-f]{12}$/);
  t.equal(handleId(h), handleId(h));
  t.not(handleId(h), handleId(issueHandle(keys.handle, claims)));
});

t.test('handles: tampering, truncation, non-canonical text', async (t) => {
  const h = issueHandle(keys.handle, { run: 'job-1', identity: 'agent', credential: 'github', expS: 1_900_000_000 });
  let refused = 0;
  for (let i = HANDLE_PREFIX.length; i < h.length; i++) if (!openHandle(keys.handle, flipChar(h, i)).ok) refused++;
  t.equal(refused, h.length - HANDLE_PREFIX.length, 'any changed character fails');
  for (let n = 0; n < h.length; n++) t.notOk(openHandle(keys.handle, h.slice(0, n)).ok, `truncated to ${n}`);
  t.notOk(openHandle(keys.handle, `${h}AAAA`).ok, 'extended');
  t.notOk(openHandle(keys.handle, `${h}=`).ok, 'padded');
  t.notOk(openHandle(keys.handle, h.replace('sluice_h1_', 'sluice_h2_')).ok, 'another version');
  t.notOk(openHandle(keys.handle, h.toUpperCase()).ok);
  // The length byte is bound: changing it (and re-cutting) cannot make another valid handle.
  const bytes = Buffer.from(h.slice(10), 'base64url');
  const shorter = Buffer.concat([Buffer.from([bytes.length - 3]), bytes.subarray(1, bytes.length - 3)]);
  t.notOk(openHandle(keys.handle, HANDLE_PREFIX + shorter.toString('base64url')).ok, 'a re-cut length');
});

t.test('handleAt: a handle is self-delimiting inside text', async (t) => {
  const h = issueHandle(keys.handle, { run: 'job-1', identity: 'agent', credential: 'github', expS: 1_900_000_000 });
  t.equal(handleAt(`x ${h} y`, 2), h);
  t.equal(handleAt(`${h}_more-base64url-chars`, 0), h, 'trailing base64url characters are not part of it');
  t.equal(handleAt(`a${h}`, 1), h);
  t.equal(handleAt(h.slice(0, -1), 0), null, 'too short');
  t.equal(handleAt(`${h.slice(0, 30)}*${h.slice(31)}`, 0), null, 'a foreign character inside');
  t.equal(handleAt('sluice_h1_', 0), null);
  t.equal(handleAt('sluice_h1_AA', 0), null);
});
