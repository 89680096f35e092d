// The inspection CA: what `createCa` makes, and what an operator's CA must be to be accepted.
import { X509Certificate } from 'node:crypto';
import t from 'tap';
import {
  BACKDATE_MS,
  DEFAULT_CA_DAYS,
  MIN_RSA_BITS,
  checkCaMaterial,
  createCa,
  importCa,
  randomSerial,
} from '../../proxy/inspection/ca.js';
import { x509 } from '../../proxy/inspection/x509.js';
import { opensslCa } from './helpers.js';

const DAY = 86_400_000;

t.test(
  'createCa: ECDSA P-256, CA:TRUE pathLen 0 and certSign/cRLSign (both critical), SKI, a Sluice name',
  async (t) => {
    const now = Date.UTC(2030, 0, 1);
    const { ca, keyPem } = await createCa({ exportKey: true, nowMs: now });
    const cert = new x509.X509Certificate(ca.certPem);
    const bc = cert.getExtension(x509.BasicConstraintsExtension)!;
    t.ok(bc.critical && bc.ca, 'basicConstraints CA:TRUE, critical');
    t.equal(bc.pathLength, 0, 'pathLen 0: it signs leaves, never another CA');
    const ku = cert.getExtension(x509.KeyUsagesExtension)!;
    t.ok(ku.critical, 'keyUsage is critical');
    t.equal(ku.usages, x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign);
    const ski = cert.getExtension(x509.SubjectKeyIdentifierExtension)!;
    t.equal(ca.subjectKeyId, ski.keyId);
    t.match(cert.subject, /^CN=Sluice egress inspection CA \([0-9a-f]{8}\), O=Sluice$/);
    t.equal(cert.subject, cert.issuer, 'self-signed');
    t.same(cert.publicKey.algorithm, { name: 'ECDSA', namedCurve: 'P-256' });
    t.equal(cert.notBefore.getTime(), Math.floor((now - BACKDATE_MS) / 1000) * 1000, 'back-dated for clock skew');
    t.equal(cert.notAfter.getTime(), now + DEFAULT_CA_DAYS * DAY);
    t.ok(await cert.verify({ date: new Date(now) }), 'self-signature verifies');
    t.equal(ca.keyType, 'ec-p256');
    t.equal(ca.ephemeral, false);
    t.match(keyPem, /^-----BEGIN PRIVATE KEY-----/, 'PKCS#8');
    // What Sluice makes, Sluice accepts.
    const checked = checkCaMaterial(ca.certPem, keyPem!, now);
    t.same(checked.problems, []);
    const other = await createCa({ exportKey: true, nowMs: now });
    t.not(other.ca.subjectText, ca.subjectText, 'two CAs have different names');
  },
);

t.test('an ephemeral CA keeps its key to itself', async (t) => {
  const { ca, keyPem } = await createCa({ exportKey: false, ephemeral: true });
  t.equal(keyPem, null);
  t.equal(ca.ephemeral, true);
  t.equal(ca.signingKey.extractable, false);
});

t.test('randomSerial: 128 bits, positive, fixed length', async (t) => {
  const seen = new Set<string>();
  const bad: string[] = [];
  for (let i = 0; i < 2000; i++) {
    const s = randomSerial();
    const first = parseInt(s.slice(0, 2), 16);
    if (s.length !== 32 || first === 0 || first >= 0x80) bad.push(s);
    seen.add(s);
  }
  t.same(bad, [], '16 bytes, first byte 0x01–0x7f');
  t.equal(seen.size, 2000, 'no repeats');
});

t.test("an operator's CA: what is accepted", async (t) => {
  for (const [kind, keyType, opts] of [
    ['ec256', 'ec-p256', {}],
    ['ec256', 'ec-p256', { sec1: true }],
    ['ec384', 'ec-p384', {}],
    ['rsa2048', 'rsa', {}],
  ] as const) {
    const ca = opensslCa(kind, opts);
    const r = checkCaMaterial(ca.certPem, ca.keyPem, Date.now());
    t.same(r.problems, [], `${kind}${'sec1' in opts ? ' (SEC1 key)' : ''}`);
    t.equal(r.material?.keyType, keyType);
    if ('sec1' in opts) t.match(ca.keyPem, /BEGIN EC PRIVATE KEY/);
    const imported = await importCa(r.material!);
    t.equal(imported.subjectText, 'CN=Operator Test CA, O=Example Org');
    t.equal(imported.signingKey.extractable, false);
    t.equal(imported.certPem.trim(), ca.certPem.trim());
  }
});

t.test("an operator's CA: what is refused, and which file to fix", async (t) => {
  const ec = opensslCa('ec256');
  const other = opensslCa('ec256');
  const cases: [string, string, string, RegExp, 'caCertFile' | 'caKeyFile'][] = [
    ['not a CA', opensslCa('ec256', { notCa: true }).certPem, '', /not a CA certificate/, 'caCertFile'],
    ['keyUsage without keyCertSign', opensslCa('ec256', { noCertSign: true }).certPem, '', /keyCertSign/, 'caCertFile'],
    ['no certificate', 'hello', '', /no PEM certificate/, 'caCertFile'],
    ['two certificates', ec.certPem + other.certPem, '', /holds 2 certificates/, 'caCertFile'],
    [
      'a broken certificate',
      '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n',
      '',
      /not a readable X\.509/,
      'caCertFile',
    ],
    ['a key for another certificate', ec.certPem, other.keyPem, /does not match/, 'caKeyFile'],
    ['an encrypted key', ec.certPem, opensslCa('ec256', { encrypted: true }).keyPem, /encrypted/, 'caKeyFile'],
    ['no key', ec.certPem, 'nothing', /not a readable private key/, 'caKeyFile'],
    [`RSA below ${MIN_RSA_BITS} bits`, '', opensslCa('rsa1024').keyPem, /RSA-1024 key/, 'caKeyFile'],
    ['Ed25519', '', opensslCa('ed25519').keyPem, /ed25519 key/, 'caKeyFile'],
    ['P-521', '', opensslCa('ec521').keyPem, /EC secp521r1 key/, 'caKeyFile'],
  ];
  for (const [name, cert, key, message, file] of cases) {
    const r = checkCaMaterial(cert || ec.certPem, key || ec.keyPem, Date.now() + 60_000);
    t.equal(r.material, null, `${name}: refused`);
    t.ok(
      r.problems.some((p) => p.severity === 'error' && p.file === file && message.test(p.message) && p.hint),
      `${name}: ${JSON.stringify(r.problems)}`,
    );
  }
});

t.test("an operator's CA: validity in time", async (t) => {
  const ca = opensslCa('ec256');
  const cert = new X509Certificate(ca.certPem);
  const from = Date.parse(cert.validFrom);
  const to = Date.parse(cert.validTo);
  const at = (ms: number) => checkCaMaterial(ca.certPem, ca.keyPem, ms);
  t.match(at(from - DAY).problems, [{ severity: 'error', file: 'caCertFile', message: /not valid before/ }]);
  t.match(at(to + 1).problems, [{ severity: 'error', file: 'caCertFile', message: /expired/ }]);
  t.equal(at(to + 1).material, null);
  const soon = at(to - 5 * DAY);
  t.match(soon.problems, [{ severity: 'warning', message: /expires on/ }], 'expiring within 30 days is a warning');
  t.ok(soon.material, 'but still usable');
});

t.test('a CA that is not self-signed is a warning (OpenSSL clients need it as their anchor)', async (t) => {
  const root = await createCa({ exportKey: true });
  const keys = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
  const inter = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: 'CN=Intermediate',
    issuer: root.ca.subject,
    notBefore: new Date(Date.now() - DAY),
    notAfter: new Date(Date.now() + 60 * DAY),
    signingAlgorithm: root.ca.signingAlgorithm,
    publicKey: keys.publicKey,
    signingKey: root.ca.signingKey,
    extensions: [new x509.BasicConstraintsExtension(true, 0, true)],
  });
  const pkcs8 = Buffer.from(await crypto.subtle.exportKey('pkcs8', keys.privateKey));
  const r = checkCaMaterial(inter.toString('pem'), x509.PemConverter.encode(pkcs8, 'PRIVATE KEY'), Date.now());
  t.match(r.problems, [{ severity: 'warning', message: /not self-signed/ }]);
  t.ok(r.material);
});
