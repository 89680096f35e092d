// A login flood through the HTTP listener: 200 concurrent wrong passwords from one address. At most
// `authFailuresPerMinute` of them are checked (the rest get 429 at once), a credential verified before the flood
// keeps working from that same address, and another address's first login is served. The target is an IP
// literal that decide() refuses after the identity stage, so a 403 proves the credential passed and nothing
// is dialled; the file still runs in a namespace holding only lo (CONTRACT §10).
import { request } from 'node:http';
import t from 'tap';
import { hashPassword } from '../../proxy/auth/password-hash.js';
import { basic, codeOf, startSluice } from '../helpers/harness.js';
import { isolate } from '../helpers/netns.js';

interface Answer {
  readonly status: number;
  readonly code: string | undefined;
}

/** One request through the proxy from a chosen loopback source address. */
const attempt = (port: number, auth: string, localAddress = '127.0.0.1') =>
  new Promise<Answer>((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        localAddress,
        path: 'http://10.0.0.1/',
        headers: { 'proxy-authorization': auth },
        agent: false,
      },
      (res) => {
        res.resume();
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            code: codeOf({ status: res.statusCode ?? 0, headers: res.headers, body: '' }),
          }),
        );
      },
    );
    req.on('error', reject);
    req.end();
  });

if (isolate(t, import.meta.url)) {
  t.test('200 concurrent wrong passwords from one address', async (t) => {
    const hash = await hashPassword('right-password-1');
    const h = await startSluice(t, {
      identities: { agent: { passwordHash: hash }, other: { passwordHash: hash }, third: { passwordHash: hash } },
      limits: { authFailuresPerMinute: 30 },
    });
    const verified = await attempt(h.port, basic('agent', 'right-password-1'));
    t.match(
      verified,
      { status: 403, code: 'EGR_DENY_IP_LITERAL' },
      'agent logs in before the flood (and is refused by policy)',
    );

    const flood = Array.from({ length: 200 }, (_, i) => attempt(h.port, basic('agent', `guess-${i}`)));
    const other = attempt(h.port, basic('other', 'right-password-1'), '127.0.0.2');
    const cached = attempt(h.port, basic('agent', 'right-password-1'));
    const answers = await Promise.all(flood);
    const count = (status: number) => answers.filter((a) => a.status === status).length;
    t.ok(count(407) <= 30, `${count(407)} answered 407: no more than authFailuresPerMinute were checked`);
    t.equal(count(407) + count(429), 200, 'every other one got 429');
    t.ok(
      answers.filter((a) => a.status === 429).every((a) => a.code === 'EGR_LIMIT_RATE'),
      '429 EGR_LIMIT_RATE',
    );

    t.match(
      await other,
      { status: 403, code: 'EGR_DENY_IP_LITERAL' },
      "another address's first login during the flood is served",
    );
    t.match(
      await cached,
      { status: 403, code: 'EGR_DENY_IP_LITERAL' },
      'the verified credential works from the flooded address during the flood',
    );
    t.match(await attempt(h.port, basic('agent', 'right-password-1')), { status: 403 }, 'and after it');
    // The per-address bound on checks in progress refused most of the flood; fill the window one guess at a time.
    let failures = count(407);
    for (let i = 0; failures < 30 && i < 30; i++)
      if ((await attempt(h.port, basic('agent', `slow-guess-${i}`))).status === 407) failures++;
    t.equal(failures, 30);
    t.match(
      await attempt(h.port, basic('agent', 'another-guess')),
      { status: 429, code: 'EGR_LIMIT_RATE' },
      'the address is throttled',
    );
    t.match(
      await attempt(h.port, basic('third', 'right-password-1')),
      { status: 429, code: 'EGR_LIMIT_RATE' },
      'a credential not yet verified waits out the window there (no oracle)',
    );
    t.match(await attempt(h.port, basic('agent', 'right-password-1')), { status: 403 }, 'the verified one still works');
  });
}
