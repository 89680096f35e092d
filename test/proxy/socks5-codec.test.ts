// The SOCKS5 codec at the byte level: every message of RFC 1928 and RFC 1929 and every malformed variant,
// each also fed split at every byte boundary, and a seeded fuzz run that must never throw.
import t, { type Test } from 'tap';
import { ALL_CODES, CODES, type Code, SOCKS_REP } from '../../firewall/codes.js';
import {
  type Decoded,
  MAX_MESSAGE_BYTES,
  SOCKS4_REJECT,
  decodeGreeting,
  decodeRequest,
  decodeUserPass,
  encodeAuthStatus,
  encodeDenyReply,
  encodeMethod,
  encodeReply,
} from '../../proxy/edge/socks5-codec.js';

const b = (...parts: (number | string | number[] | Buffer)[]) =>
  Buffer.concat(
    parts.map((p) =>
      typeof p === 'number' ? Buffer.from([p]) : typeof p === 'string' ? Buffer.from(p, 'utf8') : Buffer.from(p),
    ),
  );
const hex = (buf: Buffer | null) => (buf === null ? null : buf.toString('hex'));

type Expect<T> = { ok: T; used: number } | { code: Code; reply: string | null } | 'need-more';

function summarise<T>(r: Decoded<T>): Expect<T> {
  if (r.state === 'need-more') return 'need-more';
  if (r.state === 'ok') return { ok: r.value, used: r.used };
  return { code: r.deny.code, reply: hex(r.reply) };
}

/** Feeds `bytes` one prefix at a time, as a socket might deliver them, until the decoder decides. */
function streamed<T>(decode: (b: Uint8Array) => Decoded<T>, bytes: Buffer, cuts: number[]): Decoded<T> {
  let r: Decoded<T> = { state: 'need-more' };
  for (const cut of [...cuts, bytes.length]) {
    r = decode(bytes.subarray(0, cut));
    if (r.state !== 'need-more') return r;
  }
  return r;
}

/** Every strict prefix shorter than the decision point needs more; splitting anywhere gives the same answer. */
function checkRow<T>(t: Test, decode: (b: Uint8Array) => Decoded<T>, name: string, bytes: Buffer, want: Expect<T>) {
  const whole = decode(bytes);
  t.same(summarise(whole), want, name);
  for (let cut = 0; cut < bytes.length; cut++) {
    const r = summarise(decode(bytes.subarray(0, cut)));
    if (r !== 'need-more') t.same(r, want, `${name}: a prefix of ${cut} bytes decides as the whole`);
    t.same(summarise(streamed(decode, bytes, [cut])), want, `${name}: split at ${cut}`);
  }
  if (bytes.length > 2) {
    const cuts = Array.from({ length: bytes.length - 1 }, (_, i) => i + 1);
    t.same(summarise(streamed(decode, bytes, cuts)), want, `${name}: one byte at a time`);
  }
}

const REFUSE_METHOD = '05ff';
const AUTH_FAIL = '0101';
const reply = (rep: number) => `05${rep.toString(16).padStart(2, '0')}000100000000` + '0000';

t.test('greeting (RFC 1928 §3)', async (t) => {
  const rows: [string, Buffer, Expect<{ methods: number[] }>][] = [
    ['username/password only', b(5, 1, 2), { ok: { methods: [2] }, used: 3 }],
    ['no auth and username/password (curl, socks)', b(5, 2, 0, 2), { ok: { methods: [0, 2] }, used: 4 }],
    ['three methods', b(5, 3, 0, 1, 2), { ok: { methods: [0, 1, 2] }, used: 5 }],
    [
      'all 255 methods',
      b(
        5,
        255,
        Array.from({ length: 255 }, (_, i) => i),
      ),
      { ok: { methods: Array.from({ length: 255 }, (_, i) => i) }, used: 257 },
    ],
    ['pipelined credentials stay unread', b(5, 1, 2, 1, 1, 'a', 1, 'b'), { ok: { methods: [2] }, used: 3 }],
    ['only "no auth": refused with 0xFF', b(5, 1, 0), { code: 'EGR_AUTH_REQUIRED', reply: REFUSE_METHOD }],
    ['only GSSAPI', b(5, 1, 1), { code: 'EGR_AUTH_REQUIRED', reply: REFUSE_METHOD }],
    ['zero methods', b(5, 0), { code: 'EGR_BAD_REQUEST', reply: REFUSE_METHOD }],
    ['SOCKS4 CONNECT', b(4, 1, 0, 80, 127, 0, 0, 1, 'u', 0), { code: 'EGR_UNSUPPORTED', reply: hex(SOCKS4_REJECT) }],
    [
      'SOCKS4a CONNECT',
      b(4, 1, 1, 187, 0, 0, 0, 1, 0, 'registry.test', 0),
      { code: 'EGR_UNSUPPORTED', reply: hex(SOCKS4_REJECT) },
    ],
    ['HTTP on the SOCKS port', b('GET / HTTP/1.1\r\n\r\n'), { code: 'EGR_BAD_REQUEST', reply: null }],
    ['TLS on the SOCKS port', b(22, 3, 1, 0, 5), { code: 'EGR_BAD_REQUEST', reply: null }],
    ['version 0', b(0, 1, 2), { code: 'EGR_BAD_REQUEST', reply: null }],
    ['truncated methods', b(5, 3, 0, 2), 'need-more'],
    ['empty', b(), 'need-more'],
  ];
  for (const [name, bytes, want] of rows) checkRow(t, decodeGreeting, name, bytes, want);
  t.equal(SOCKS4_REJECT.length, 8, 'the SOCKS4 refusal is a whole 8-byte SOCKS4 reply');
});

t.test('username/password (RFC 1929 §2)', async (t) => {
  const u255 = 'u'.repeat(255);
  const p255 = 'p'.repeat(255);
  const rows: [string, Buffer, Expect<{ user: string; pass: string }>][] = [
    ['plain', b(1, 5, 'agent', 3, 'pwd'), { ok: { user: 'agent', pass: 'pwd' }, used: 11 }],
    [
      'longest: 255-byte username and password',
      b(1, 255, u255, 255, p255),
      { ok: { user: u255, pass: p255 }, used: MAX_MESSAGE_BYTES },
    ],
    ['empty password is well-formed (identity refuses it)', b(1, 1, 'a', 0), { ok: { user: 'a', pass: '' }, used: 4 }],
    ['UTF-8 credentials', b(1, 6, 'agént', 2, 'π'), { ok: { user: 'agént', pass: 'π' }, used: 11 }],
    ['a colon is just a byte', b(1, 3, 'a:b', 1, ':'), { ok: { user: 'a:b', pass: ':' }, used: 7 }],
    ['pipelined request stays unread', b(1, 1, 'a', 1, 'b', 5, 1, 0, 1), { ok: { user: 'a', pass: 'b' }, used: 5 }],
    ['bad sub-negotiation version', b(5, 1, 'a', 1, 'b'), { code: 'EGR_AUTH_INVALID', reply: AUTH_FAIL }],
    ['version 0', b(0), { code: 'EGR_AUTH_INVALID', reply: AUTH_FAIL }],
    ['zero-length username', b(1, 0, 1, 'b'), { code: 'EGR_AUTH_INVALID', reply: AUTH_FAIL }],
    ['username not UTF-8', b(1, 2, [0xc3, 0x28], 1, 'b'), { code: 'EGR_AUTH_INVALID', reply: AUTH_FAIL }],
    ['password not UTF-8', b(1, 1, 'a', 1, [0xff]), { code: 'EGR_AUTH_INVALID', reply: AUTH_FAIL }],
    // A length that runs past what was sent swallows what follows and waits: the listener's handshake cap
    // and timeout end that wait.
    ['username longer than what was sent', b(1, 255, 'agent', 3, 'pwd'), 'need-more'],
    ['password missing', b(1, 5, 'agent'), 'need-more'],
  ];
  for (const [name, bytes, want] of rows) checkRow(t, decodeUserPass, name, bytes, want);
});

t.test('request (RFC 1928 §4)', async (t) => {
  const v6 = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
  const ok = (atyp: number, host: string, port: number, used: number) => ({ ok: { atyp, host, port }, used });
  const rows: [string, Buffer, Expect<{ atyp: number; host: string; port: number }>][] = [
    ['CONNECT IPv4', b(5, 1, 0, 1, [127, 0, 0, 4], [1, 187]), ok(1, '127.0.0.4', 443, 10)],
    ['CONNECT domain', b(5, 1, 0, 3, 13, 'registry.test', [1, 187]), ok(3, 'registry.test', 443, 20)],
    ['CONNECT IPv6', b(5, 1, 0, 4, v6, [0, 22]), ok(4, '2001:db8:0:0:0:0:0:1', 22, 22)],
    [
      'CONNECT IPv4-mapped IPv6',
      b(5, 1, 0, 4, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 169, 254, 169, 254], [0, 80]),
      ok(4, '0:0:0:0:0:ffff:a9fe:a9fe', 80, 22),
    ],
    ['255-byte domain', b(5, 1, 0, 3, 255, 'a'.repeat(255), [1, 187]), ok(3, 'a'.repeat(255), 443, 262)],
    ['IDN domain (normalised later)', b(5, 1, 0, 3, 10, 'bücher.de', [1, 187]), ok(3, 'bücher.de', 443, 17)],
    ['an IP spelled as a domain (normalised later)', b(5, 1, 0, 3, 6, '0x7f.1', [1, 187]), ok(3, '0x7f.1', 443, 13)],
    ['port 0 (refused by normalisation)', b(5, 1, 0, 1, [1, 2, 3, 4], [0, 0]), ok(1, '1.2.3.4', 0, 10)],
    [
      'early data after the request stays unread',
      b(5, 1, 0, 1, [1, 2, 3, 4], [1, 187], [22, 3, 1]),
      ok(1, '1.2.3.4', 443, 10),
    ],
    [
      'BIND',
      b(5, 2, 0, 1, [1, 2, 3, 4], [0, 80]),
      { code: 'EGR_UNSUPPORTED', reply: reply(SOCKS_REP.commandNotSupported) },
    ],
    [
      'UDP ASSOCIATE',
      b(5, 3, 0, 1, [0, 0, 0, 0], [0, 0]),
      { code: 'EGR_UNSUPPORTED', reply: reply(SOCKS_REP.commandNotSupported) },
    ],
    [
      'unknown command',
      b(5, 0x09, 0, 1, [1, 2, 3, 4], [0, 80]),
      { code: 'EGR_UNSUPPORTED', reply: reply(SOCKS_REP.commandNotSupported) },
    ],
    ['command 0', b(5, 0, 0, 1), { code: 'EGR_UNSUPPORTED', reply: reply(SOCKS_REP.commandNotSupported) }],
    [
      'unknown ATYP 2',
      b(5, 1, 0, 2, [1, 2, 3, 4], [0, 80]),
      { code: 'EGR_UNSUPPORTED_ADDRESS_TYPE', reply: reply(SOCKS_REP.addressTypeNotSupported) },
    ],
    [
      'unknown ATYP 0xff',
      b(5, 1, 0, 0xff),
      { code: 'EGR_UNSUPPORTED_ADDRESS_TYPE', reply: reply(SOCKS_REP.addressTypeNotSupported) },
    ],
    [
      'domain length 0',
      b(5, 1, 0, 3, 0, [1, 187]),
      { code: 'EGR_INVALID_TARGET', reply: reply(SOCKS_REP.hostUnreachable) },
    ],
    [
      'domain not UTF-8',
      b(5, 1, 0, 3, 2, [0xc0, 0xaf], [1, 187]),
      { code: 'EGR_INVALID_TARGET', reply: reply(SOCKS_REP.hostUnreachable) },
    ],
    [
      'bad version',
      b(4, 1, 0, 1, [1, 2, 3, 4], [0, 80]),
      { code: 'EGR_BAD_REQUEST', reply: reply(SOCKS_REP.generalFailure) },
    ],
    [
      'reserved byte not zero',
      b(5, 1, 1, 1, [1, 2, 3, 4], [0, 80]),
      { code: 'EGR_BAD_REQUEST', reply: reply(SOCKS_REP.generalFailure) },
    ],
    ['truncated IPv6', b(5, 1, 0, 4, v6.slice(0, 10)), 'need-more'],
    ['domain without its port', b(5, 1, 0, 3, 4, 'a.io'), 'need-more'],
  ];
  for (const [name, bytes, want] of rows) checkRow(t, decodeRequest, name, bytes, want);
});

t.test('replies are whole RFC 1928 replies with the REP byte from the codes table', async (t) => {
  t.equal(hex(encodeMethod(2)), '0502');
  t.equal(hex(encodeMethod(0xff)), '05ff');
  t.equal(hex(encodeAuthStatus(true)), '0100');
  t.equal(hex(encodeAuthStatus(false)), '0101');
  t.equal(hex(encodeReply(0)), '05000001000000000000', 'success, BND 0.0.0.0:0 (10 bytes)');
  t.equal(hex(encodeReply(0, { address: '192.0.2.1', port: 1080 })), '050000' + '01' + 'c0000201' + '0438');
  t.equal(
    hex(encodeReply(5, { address: '2001:db8::1', port: 443 })),
    '050500' + '04' + '20010db8000000000000000000000001' + '01bb',
    '22 bytes with IPv6',
  );
  t.equal(encodeReply(5, { address: '::', port: 0 }).length, 22);
  for (const code of ALL_CODES) {
    const r = encodeDenyReply({ verdict: 'deny', code, rule: 'test' });
    t.equal(r.length, 10, `${code}: 10 bytes`);
    t.equal(r[1], CODES[code].socks, `${code}: REP 0x${CODES[code].socks.toString(16)}`);
    t.not(r[1], 0, `${code}: never "succeeded"`);
  }
  t.equal(encodeDenyReply({ verdict: 'deny', code: 'EGR_DENY_TUNNEL', rule: 'x' })[1], 0x02, 'policy: 0x02');
  t.equal(encodeDenyReply({ verdict: 'deny', code: 'EGR_FAIL_DNS', rule: 'x' })[1], 0x04, 'DNS failure: 0x04');
  t.equal(encodeDenyReply({ verdict: 'deny', code: 'EGR_FAIL_CONNECT_REFUSED', rule: 'x' })[1], 0x05, 'refused: 0x05');
});

// A small, seedable PRNG (mulberry32) so that any failure reproduces: SLUICE_FUZZ_SEED=<seed> npx tap <this file>.
function prng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

t.test('fuzz: 100,000 random and mutated inputs through every decoder never throw and always decide', async (t) => {
  const seed = Number(process.env.SLUICE_FUZZ_SEED ?? 0x50c55);
  t.comment(`seed ${seed}`);
  const rand = prng(seed);
  const int = (n: number) => Math.floor(rand() * n);
  const seeds = [
    b(5, 2, 0, 2),
    b(5, 1, 0),
    b(4, 1, 0, 80, 1, 2, 3, 4, 0),
    b(1, 5, 'agent', 3, 'pwd'),
    b(1, 255, 'u'.repeat(255), 255, 'p'.repeat(255)),
    b(5, 1, 0, 1, [127, 0, 0, 1], [1, 187]),
    b(5, 1, 0, 3, 13, 'registry.test', [1, 187]),
    b(5, 1, 0, 4, Buffer.alloc(16, 1), [1, 187]),
    b(5, 2, 0, 3, 1, 'x', [0, 80]),
  ];
  const decoders: ((b: Uint8Array) => Decoded<unknown>)[] = [decodeGreeting, decodeUserPass, decodeRequest];
  const input = (): Buffer => {
    if (rand() < 0.3) return Buffer.from(Array.from({ length: int(rand() < 0.9 ? 32 : 600) }, () => int(256)));
    const m = Buffer.from(seeds[int(seeds.length)]!);
    const out = [...m];
    for (let k = 1 + int(4); k > 0; k--) {
      const op = int(4);
      const at = int(out.length + 1);
      if (op === 0 && out.length)
        out[at % out.length] = int(256); // replace a byte
      else if (op === 1)
        out.splice(at, 0, int(256)); // insert one
      else if (op === 2)
        out.splice(at, 1); // delete one
      else out.length = Math.min(out.length, at); // truncate
    }
    if (rand() < 0.2) out.push(...Array.from({ length: int(40) }, () => int(256))); // trailing bytes
    return Buffer.from(out);
  };

  let runs = 0;
  let problems = 0;
  const bad = (msg: string, bytes: Buffer) => {
    if (problems++ < 5) t.fail(`${msg}: ${bytes.toString('hex')} (seed ${seed})`);
  };
  const INPUTS = 100_000;
  for (let i = 0; i < INPUTS; i++) {
    const bytes = input();
    for (const decode of decoders) {
      runs++;
      let r: Decoded<unknown>;
      try {
        r = decode(bytes);
      } catch (err) {
        bad(`${decode.name} threw ${String(err)}`, bytes);
        continue;
      }
      if (r.state === 'ok') {
        if (!(r.used > 0 && r.used <= bytes.length)) bad(`${decode.name} used ${r.used}`, bytes);
      } else if (r.state === 'error') {
        if (!ALL_CODES.includes(r.deny.code)) bad(`${decode.name} bad code`, bytes);
        if (r.reply !== null && ![2, 8, 10].includes(r.reply.length))
          bad(`${decode.name} reply of ${r.reply.length} bytes`, bytes);
        if (decode === decodeRequest && r.reply?.[1] !== CODES[r.deny.code].socks)
          bad("request reply REP is not the code's", bytes);
      } else if (r.state !== 'need-more') {
        bad(`${decode.name} state ${(r as { state: string }).state}`, bytes);
      } else if (bytes.length > MAX_MESSAGE_BYTES + 8) {
        bad(`${decode.name} needs more after ${bytes.length} bytes`, bytes);
      }
      // Streaming must not change the answer: one random split decides like the whole.
      if (i % 16 === 0 && bytes.length > 1) {
        const s = streamed(decode, bytes, [1 + int(bytes.length - 1)]);
        if (JSON.stringify(summarise(s)) !== JSON.stringify(summarise(r))) bad(`${decode.name} split differs`, bytes);
      }
    }
  }
  t.equal(runs, INPUTS * decoders.length, `${INPUTS} inputs, ${runs} decodes`);
  t.equal(problems, 0, 'no decoder threw or misbehaved');
});
