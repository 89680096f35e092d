// Leaf certificates: their contents, the names they are never minted for, single-flight, the bounded cache and
// its expiry on an injected clock.
import { X509Certificate } from 'node:crypto';
import t from 'tap';
import { isDeny } from '../../firewall/codes.js';
import { BACKDATE_MS, checkCaMaterial, createCa, importCa } from '../../proxy/inspection/ca.js';
import { type Leaf, createLeafIssuer, reuseWindowMs } from '../../proxy/inspection/leaves.js';
import { x509 } from '../../proxy/inspection/x509.js';
import { countingObserver, opensslCa } from './helpers.js';

const HOUR = 3_600_000;

const leafOf = async (p: Promise<unknown>): Promise<Leaf> => {
  const l = await p;
  if (isDeny(l)) throw new Error(`denied: ${l.code}`);
  return l as Leaf;
};

t.test(
  'a leaf: ECDSA P-256, SAN = the one DNS name, serverAuth, digitalSignature, AKI = CA SKI, short-lived',
  async (t) => {
    let now = Date.UTC(2030, 5, 1, 12);
    const { ca } = await createCa({ exportKey: false, nowMs: now - 1000 });
    const issuer = createLeafIssuer({ ca, now: () => now });
    const leaf = await leafOf(issuer.leafFor('api.example.com'));
    const cert = new x509.X509Certificate(leaf.certPem);
    t.same(cert.publicKey.algorithm, { name: 'ECDSA', namedCurve: 'P-256' });
    t.equal(cert.subject, 'CN=api.example.com');
    t.equal(cert.issuer, ca.subjectText);
    const san = cert.getExtension(x509.SubjectAlternativeNameExtension)!;
    t.same(san.names.toJSON(), [{ type: 'dns', value: 'api.example.com' }], 'exactly one name, a DNS name');
    const eku = cert.getExtension(x509.ExtendedKeyUsageExtension)!;
    t.same(eku.usages, [x509.ExtendedKeyUsage.serverAuth]);
    const ku = cert.getExtension(x509.KeyUsagesExtension)!;
    t.ok(ku.critical);
    t.equal(ku.usages, x509.KeyUsageFlags.digitalSignature);
    const bc = cert.getExtension(x509.BasicConstraintsExtension)!;
    t.equal(bc.ca, false, 'not a CA');
    t.equal(cert.getExtension(x509.AuthorityKeyIdentifierExtension)!.keyId, ca.subjectKeyId, 'AKI names the CA key');
    t.equal(cert.notBefore.getTime(), now - BACKDATE_MS, 'back-dated a few minutes for clock skew');
    t.equal(cert.notAfter.getTime(), now + 24 * HOUR, '24 h by default');
    t.equal(leaf.serial, cert.serialNumber.toLowerCase());
    t.equal(leaf.serial.length, 32, '128-bit serial');
    const node = new X509Certificate(leaf.certPem);
    const caCert = new X509Certificate(ca.certPem);
    t.ok(node.checkIssued(caCert), 'the issuer name matches the CA subject');
    t.ok(node.verify(caCert.publicKey), 'signed by the CA');
    t.equal(node.checkHost('api.example.com'), 'api.example.com');
    t.equal(node.checkHost('example.com'), undefined);
    t.equal(node.checkHost('x.api.example.com'), undefined);
    now += 1;
  },
);

t.test('a name longer than a CN may be gets an empty subject and a critical SAN', async (t) => {
  const { ca } = await createCa({ exportKey: false });
  const issuer = createLeafIssuer({ ca });
  const host = `${'a'.repeat(60)}.${'b'.repeat(20)}.example.com`;
  const cert = new x509.X509Certificate((await leafOf(issuer.leafFor(host))).certPem);
  t.equal(cert.subject, '');
  const san = cert.getExtension(x509.SubjectAlternativeNameExtension)!;
  t.ok(san.critical);
  t.equal(new X509Certificate(cert.toString('pem')).checkHost(host), host);
});

t.test('never minted for a literal or anything that is not a normalised name', async (t) => {
  const { ca } = await createCa({ exportKey: false });
  const { counts, observer } = countingObserver();
  const issuer = createLeafIssuer({ ca, observer });
  const cases: [string, string][] = [
    ['127.0.0.1', 'EGR_DENY_IP_LITERAL'],
    ['93.184.216.34', 'EGR_DENY_IP_LITERAL'],
    ['[::1]', 'EGR_DENY_IP_LITERAL'],
    ['0x7f.1', 'EGR_DENY_IP_LITERAL'], // other spellings of 127.0.0.1 are literals too
    ['2130706433', 'EGR_DENY_IP_LITERAL'],
    ['::1', 'EGR_INVALID_TARGET'],
    ['Example.COM', 'EGR_INVALID_TARGET'],
    ['example.com.', 'EGR_INVALID_TARGET'],
    ['bücher.de', 'EGR_INVALID_TARGET'],
    ['*.example.com', 'EGR_INVALID_TARGET'],
    ['*', 'EGR_INVALID_TARGET'],
    ['', 'EGR_INVALID_TARGET'],
    ['exa mple.com', 'EGR_INVALID_TARGET'],
    ['example.com\0.evil', 'EGR_INVALID_TARGET'],
    ['a..b', 'EGR_INVALID_TARGET'],
    ['example.123', 'EGR_INVALID_TARGET'],
    ['example.com:443', 'EGR_INVALID_TARGET'],
  ];
  for (const [host, code] of cases) {
    const r = await issuer.leafFor(host);
    t.ok(isDeny(r) && r.code === code, `${JSON.stringify(host)} → ${code}`);
  }
  t.equal(counts.mints, 0, 'nothing minted');
  t.equal(issuer.size, 0);
  t.notOk(isDeny(await issuer.leafFor('xn--bcher-kva.de')), 'the punycode form is the normal form');
});

t.test('single-flight: concurrent requests for one host share one mint; later ones hit the cache', async (t) => {
  const { ca } = await createCa({ exportKey: false });
  const { counts, observer } = countingObserver();
  const issuer = createLeafIssuer({ ca, observer });
  const leaves = await Promise.all(Array.from({ length: 25 }, () => leafOf(issuer.leafFor('one.example'))));
  t.equal(counts.mints, 1);
  t.equal(new Set(leaves).size, 1, 'the very same leaf');
  t.equal(counts.hits, 24, 'the joiners count as hits');
  const again = await leafOf(issuer.leafFor('one.example'));
  t.equal(again, leaves[0]);
  t.equal(counts.hits, 25);
  const two = await Promise.all([issuer.leafFor('two.example'), issuer.leafFor('three.example')]);
  t.equal(counts.mints, 3, 'different hosts mint separately');
  t.not((two[0] as Leaf).serial, (two[1] as Leaf).serial);
});

t.test('the cache forgets a leaf before it expires, on the injected clock', async (t) => {
  let now = Date.UTC(2030, 0, 1);
  const { ca } = await createCa({ exportKey: false, nowMs: now });
  const { counts, observer } = countingObserver();
  const issuer = createLeafIssuer({ ca, now: () => now, observer, validitySeconds: 24 * 3600 });
  t.equal(issuer.reuseMs, 23 * HOUR, 'reused for 23 of its 24 hours');
  t.equal(reuseWindowMs(HOUR), 45 * 60_000, 'a short validity keeps a quarter in reserve');
  const first = await leafOf(issuer.leafFor('clock.example'));
  now += 22 * HOUR;
  t.equal(await leafOf(issuer.leafFor('clock.example')), first, 'still served at 22 h');
  now += 2 * HOUR;
  const second = await leafOf(issuer.leafFor('clock.example'));
  t.not(second, first, 'a fresh leaf at 24 h');
  t.equal(counts.mints, 2);
  t.ok(second.notAfter.getTime() > now, 'which is valid now');
  t.equal(second.notBefore.getTime(), now - BACKDATE_MS);
});

t.test('a leaf never outlives its CA', async (t) => {
  const now = Date.UTC(2030, 0, 1);
  const { ca } = await createCa({ exportKey: false, nowMs: now, days: 1 });
  const issuer = createLeafIssuer({ ca, now: () => now + 12 * HOUR, validitySeconds: 7 * 24 * 3600 });
  const leaf = await leafOf(issuer.leafFor('short.example'));
  t.equal(leaf.notAfter.getTime(), ca.notAfter.getTime());
});

t.test('the cache is bounded', async (t) => {
  const { ca } = await createCa({ exportKey: false });
  const { counts, observer } = countingObserver();
  const issuer = createLeafIssuer({ ca, cacheSize: 16, observer });
  for (let i = 0; i < 40; i++) await leafOf(issuer.leafFor(`h${i}.example`));
  t.equal(issuer.size, 16);
  await leafOf(issuer.leafFor('h39.example'));
  t.equal(counts.hits, 1, 'the most recent is kept');
  await leafOf(issuer.leafFor('h0.example'));
  t.equal(counts.mints, 41, 'the oldest was evicted and is minted again');
  issuer.clear();
  t.equal(issuer.size, 0);
});

t.test("leaves from an operator's RSA and P-384 CAs", async (t) => {
  for (const kind of ['rsa2048', 'ec384'] as const) {
    const op = opensslCa(kind);
    const { material } = checkCaMaterial(op.certPem, op.keyPem, Date.now());
    const ca = await importCa(material!);
    const leaf = await leafOf(createLeafIssuer({ ca }).leafFor('rsa.example'));
    const node = new X509Certificate(leaf.certPem);
    const caCert = new X509Certificate(op.certPem);
    t.ok(node.checkIssued(caCert) && node.verify(caCert.publicKey), `${kind}: issued and signed by the operator's CA`);
    t.equal(node.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1', `${kind}: the leaf is P-256 all the same`);
  }
});
