// SOCKS5 codec (proxy/edge/socks5-codec.ts): never throws; each answer is need-more, ok (used ≤ bytes given)
// or an error with a denial from the codes table and a whole reply; a message decodes the same whatever
// follows it, and every proper prefix of a message needs more. Requests round-trip through the wire format.
import assert from 'node:assert/strict';
import { isIP } from 'node:net';
import fc from 'fast-check';
import ipaddr from 'ipaddr.js';
import {
  ATYP,
  type Decoded,
  MAX_MESSAGE_BYTES,
  decodeGreeting,
  decodeRequest,
  decodeUserPass,
  encodeReply,
} from '../../../proxy/edge/socks5-codec.js';
import { assertDeny, type FuzzTarget } from '../target.js';

const DECODERS = [decodeGreeting, decodeUserPass, decodeRequest] as const;

function check<T>(decode: (b: Uint8Array) => Decoded<T>, buf: Uint8Array): void {
  const r = decode(buf);
  if (r.state === 'need-more') {
    assert.ok(
      buf.length < MAX_MESSAGE_BYTES,
      'need-more past the longest message: a client could hold the buffer open',
    );
    return;
  }
  if (r.state === 'error') {
    assertDeny(r.deny);
    if (r.reply !== null) assert.ok([2, 8, 10, 22].includes(r.reply.length), `reply of ${r.reply.length} bytes`);
    return;
  }
  assert.equal(r.state, 'ok');
  assert.ok(r.used > 0 && r.used <= buf.length, `used ${r.used} of ${buf.length}`);
  // Sans-io contract: what follows a message is never read, and a message is never judged before it is whole.
  const whole = buf.subarray(0, r.used);
  assert.deepEqual(decode(whole), r, 'decoding depends on the bytes after the message');
  for (let i = 0; i < r.used; i++)
    assert.equal(decode(whole.subarray(0, i)).state, 'need-more', `prefix of ${i} bytes`);
}

// Bytes that look like SOCKS5 often enough to get past the first checks.
const socksish = fc.oneof(
  fc.uint8Array({ maxLength: 600 }),
  fc
    .tuple(fc.constantFrom(5, 1, 4), fc.uint8Array({ maxLength: 40 }))
    .map(([v, rest]) => Uint8Array.from([v, ...rest])),
  fc
    .tuple(fc.constantFrom(1, 2, 3), fc.constantFrom(1, 3, 4, 0, 2, 5), fc.uint8Array({ maxLength: 300 }))
    .map(([cmd, atyp, rest]) => Uint8Array.from([5, cmd, 0, atyp, ...rest])),
);

const request = fc.oneof(
  fc
    .tuple(fc.uint8Array({ minLength: 4, maxLength: 4 }), fc.integer({ min: 0, max: 65535 }))
    .map(([a, port]) => ({ atyp: ATYP.ipv4, addr: a, port })),
  fc
    .tuple(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.integer({ min: 0, max: 65535 }))
    .map(([a, port]) => ({ atyp: ATYP.ipv6, addr: a, port })),
  fc
    .tuple(fc.string({ unit: 'grapheme', minLength: 1, maxLength: 60 }), fc.integer({ min: 0, max: 65535 }))
    .filter(([d]) => Buffer.byteLength(d) <= 255)
    .map(([d, port]) => ({ atyp: ATYP.domain, addr: Buffer.from(d), port, domain: d })),
);

export const socks5Targets: FuzzTarget[] = [
  {
    name: 'socks5-decoders',
    weight: 12,
    sliceRuns: 2000,
    property: () =>
      fc.property(socksish, (buf) => {
        for (const d of DECODERS) check(d as (b: Uint8Array) => Decoded<unknown>, buf);
      }),
  },
  {
    name: 'socks5-request-roundtrip',
    weight: 4,
    sliceRuns: 1000,
    property: () =>
      fc.property(request, fc.uint8Array({ maxLength: 8 }), (r, trailing) => {
        const addr = r.atyp === ATYP.domain ? [r.addr.length, ...r.addr] : [...r.addr];
        const wire = Uint8Array.from([5, 1, 0, r.atyp, ...addr, r.port >> 8, r.port & 0xff, ...trailing]);
        const d = decodeRequest(wire);
        assert.equal(d.state, 'ok');
        if (d.state !== 'ok') return;
        assert.equal(d.used, wire.length - trailing.length);
        assert.equal(d.value.port, r.port);
        if (r.atyp === ATYP.ipv4) {
          assert.equal(isIP(d.value.host), 4);
          assert.deepEqual(ipaddr.IPv4.parse(d.value.host).toByteArray(), [...r.addr]);
        } else if (r.atyp === ATYP.ipv6) {
          // Differential: node:net and ipaddr.js read the codec's text as the 16 bytes that were sent.
          assert.equal(isIP(d.value.host), 6);
          assert.deepEqual(ipaddr.IPv6.parse(d.value.host).toByteArray(), [...r.addr]);
        } else {
          assert.equal(d.value.host, r.domain);
        }
        check(decodeRequest, wire);
      }),
  },
  {
    name: 'socks5-reply-encoding',
    weight: 1,
    sliceRuns: 500,
    property: () =>
      fc.property(
        fc.integer({ min: 0, max: 255 }),
        fc.oneof(fc.ipV4(), fc.ipV6(), fc.string()),
        fc.integer({ min: 0, max: 65535 }),
        (rep, address, port) => {
          const out = encodeReply(rep, { address, port });
          const v6 = isIP(address) === 6;
          assert.equal(out.length, v6 ? 22 : 10);
          assert.deepEqual([...out.subarray(0, 4)], [5, rep, 0, v6 ? ATYP.ipv6 : ATYP.ipv4]);
          assert.equal(out.readUInt16BE(out.length - 2), port);
        },
      ),
  },
];
