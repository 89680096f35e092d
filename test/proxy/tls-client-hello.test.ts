// The ClientHello reader: real handshakes from Node's TLS client, hand-built ones for the odd cases
// (ECH, two names, no SNI, records split), and garbage that must never parse as a hello.
import t from 'tap';
import { MAX_HELLO_BYTES, parseClientHello } from '../../proxy/edge/tls-client-hello.js';
import { realHello } from '../helpers/client-hello.js';

const u16 = (n: number) => Buffer.from([n >> 8, n & 0xff]);
const ext = (type: number, body: Buffer) => Buffer.concat([u16(type), u16(body.length), body]);
const sniExt = (...names: string[]) => {
  const list = Buffer.concat(names.map((n) => Buffer.concat([Buffer.from([0]), u16(n.length), Buffer.from(n)])));
  return ext(0, Buffer.concat([u16(list.length), list]));
};
function hello(exts: Buffer[], recordSize = 16384): Buffer {
  const extBytes = Buffer.concat(exts);
  const body = Buffer.concat([
    Buffer.from([3, 3]),
    Buffer.alloc(32, 7),
    Buffer.from([0]),
    u16(2),
    Buffer.from([0x13, 0x01]),
    Buffer.from([1, 0]),
    u16(extBytes.length),
    extBytes,
  ]);
  const hs = Buffer.concat([Buffer.from([1, body.length >> 16, (body.length >> 8) & 0xff, body.length & 0xff]), body]);
  const records: Buffer[] = [];
  for (let i = 0; i < hs.length; i += recordSize) {
    const frag = hs.subarray(i, i + recordSize);
    records.push(Buffer.concat([Buffer.from([22, 3, 1]), u16(frag.length), frag]));
  }
  return Buffer.concat(records);
}

t.test('real ClientHellos from Node', async (t) => {
  const withSni = await realHello('registry.npmjs.org');
  t.match(parseClientHello(withSni), { state: 'ok', sni: 'registry.npmjs.org', ech: false, sniCount: 1 });
  const without = await realHello();
  t.match(parseClientHello(without), { state: 'ok', sni: null });
  for (let i = 0; i < withSni.length; i++) {
    if (parseClientHello(withSni.subarray(0, i)).state !== 'need-more') {
      t.fail(`a prefix of ${i} bytes must need more`);
      break;
    }
  }
  t.pass('every proper prefix needs more bytes');
});

t.test('hand-built hellos', async (t) => {
  t.match(parseClientHello(hello([sniExt('a.example')])), { state: 'ok', sni: 'a.example' });
  t.match(
    parseClientHello(hello([sniExt('a.example')], 7)),
    { state: 'ok', sni: 'a.example' },
    'split across many records',
  );
  t.match(parseClientHello(hello([sniExt('a.example', 'b.example')])), { state: 'ok', sniCount: 2 });
  t.match(parseClientHello(hello([sniExt('outer.example'), ext(0xfe0d, Buffer.alloc(40, 1))])), {
    state: 'ok',
    ech: true,
  });
  t.match(parseClientHello(hello([])), { state: 'ok', sni: null });
  t.match(
    parseClientHello(hello([sniExt('a.example'), sniExt('b.example')])),
    { state: 'invalid' },
    'duplicate extension',
  );
  t.match(parseClientHello(hello([sniExt('a.exa\x00mple')])), { state: 'invalid' }, 'NUL in server name');
  t.match(parseClientHello(hello([sniExt('a.example')]).subarray(0, 5)), { state: 'need-more' });
});

t.test(
  'draft ESNI (0xffce) is reported like ECH: the server_name beside it may be a front (found by npm run fuzz)',
  async (t) => {
    // Bytes of a hello with server_name "front.example" and an encrypted_server_name extension
    // (draft-ietf-tls-esni-02).
    const esni = ext(0xffce, Buffer.from([0x13, 0x01, 0x00, 0x1d, 0x00, 0x04, 1, 2, 3, 4]));
    t.match(parseClientHello(hello([sniExt('front.example'), esni])), { state: 'ok', sni: 'front.example', ech: true });
    t.match(parseClientHello(hello([esni])), { state: 'ok', sni: null, ech: true }, 'ESNI alone');
    t.match(parseClientHello(hello([ext(0xfd00, Buffer.alloc(4))])), { state: 'ok', ech: true }, 'ECH outer marker');
    t.match(
      parseClientHello(hello([ext(0xffcd, Buffer.alloc(4))])),
      { state: 'ok', ech: false },
      'a neighbouring code point is not ESNI',
    );
  },
);

t.test('garbage is invalid, never a hello', async (t) => {
  const rows: [string, Buffer][] = [
    ['plain HTTP', Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')],
    ['SSH banner', Buffer.from('SSH-2.0-OpenSSH_9.6\r\n')],
    ['alert record', Buffer.from([21, 3, 3, 0, 2, 2, 40])],
    ['server hello type', Buffer.from([22, 3, 3, 0, 4, 2, 0, 0, 0])],
    ['zero-length record', Buffer.from([22, 3, 1, 0, 0])],
    ['bad record version', Buffer.from([22, 9, 1, 0, 4, 1, 0, 0, 0])],
    ['truncated body', Buffer.from([22, 3, 1, 0, 4, 1, 0, 0, 0])],
    ['huge declared length', Buffer.from([22, 3, 1, 0, 4, 1, 0xff, 0xff, 0xff])],
  ];
  for (const [name, bytes] of rows) t.equal(parseClientHello(bytes).state, 'invalid', name);
  t.equal(parseClientHello(Buffer.alloc(MAX_HELLO_BYTES + 10, 22)).state, 'invalid', 'over the cap');
});

t.test('fuzz: never throws, always a verdict', async (t) => {
  let seed = 0x5eed;
  const rand = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  const base = hello([sniExt('fuzz.example'), ext(0x0010, Buffer.from([0, 3, 2, 0x68, 0x32]))]);
  let ran = 0;
  for (let i = 0; i < 20000; i++) {
    const b = Buffer.from(base);
    const flips = 1 + Math.floor(rand() * 4);
    for (let f = 0; f < flips; f++) b[Math.floor(rand() * b.length)] = Math.floor(rand() * 256);
    const cut = rand() < 0.3 ? b.subarray(0, Math.floor(rand() * b.length)) : b;
    const r = parseClientHello(cut);
    if (!['ok', 'invalid', 'need-more'].includes(r.state)) t.fail('bad state');
    ran++;
  }
  t.equal(ran, 20000);
});
