import { readFileSync } from 'node:fs';
import t from 'tap';
import {
  ALL_CODES,
  CODES,
  SOCKS_REP,
  denyMessage,
  proxyStatusValue,
  renderCodesMarkdown,
} from '../../firewall/codes.js';
import { repoPath } from '../helpers/repo.js';

t.test('the table is internally consistent', async (t) => {
  for (const code of ALL_CODES) {
    const c = CODES[code];
    t.match(code, /^EGR_[A-Z_]+$/);
    if (code.startsWith('EGR_AUTH_')) t.equal(c.status, 407, `${code} is 407`);
    else t.not(c.status, 407, `407 is only for credentials (${code})`);
    if (code.startsWith('EGR_DENY_')) t.equal(c.status, 403, `${code} is 403`);
    if (code.startsWith('EGR_LIMIT_')) t.equal(c.status, 429, `${code} is 429`);
    t.ok(Object.values(SOCKS_REP).includes(c.socks as never) && c.socks !== 0, `${code} has a failure REP byte`);
    t.notMatch(c.summary, /[\r\n"]/, 'summaries are one line without quotes');
  }
  t.equal(CODES.EGR_DENY_WRITE.socks, SOCKS_REP.notAllowed, 'policy denials are REP 0x02');
  t.equal(CODES.EGR_FAIL_DNS.socks, SOCKS_REP.hostUnreachable, 'DNS failure is REP 0x04');
  t.equal(CODES.EGR_FAIL_CONNECT_REFUSED.socks, SOCKS_REP.connectionRefused, 'refused is REP 0x05');
  t.equal(CODES.EGR_UNSUPPORTED.socks, SOCKS_REP.commandNotSupported);
});

t.test('rendering', async (t) => {
  t.equal(proxyStatusValue('EGR_DENY_WRITE'), 'sluice; error=http_request_denied; details="EGR_DENY_WRITE"');
  t.match(
    denyMessage('EGR_DENY_WRITE', 'abc'),
    /^Sluice blocked this request by egress policy; do not retry around it: EGR_DENY_WRITE: .*\(request abc\)$/,
  );
  t.notMatch(denyMessage('EGR_FAIL_DNS'), /policy/);
});

t.test('the README table is the code table', async (t) => {
  const readme = readFileSync(repoPath('README.md'), 'utf8');
  const start = readme.indexOf('<!-- codes:start -->');
  const end = readme.indexOf('<!-- codes:end -->');
  t.ok(start !== -1 && end > start, 'README has the codes markers');
  t.equal(
    readme.slice(start + '<!-- codes:start -->'.length, end).trim(),
    renderCodesMarkdown(),
    'README table differs from firewall/codes.ts: run `npm run docs:codes`',
  );
});
