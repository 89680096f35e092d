import t from 'tap';
import { pathForLog, scrubText } from '../../proxy/redact.js';

t.test('the scrubber removes common token shapes from free text', async (t) => {
  const rows: [string, RegExp][] = [
    ['jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.SflKxwRJSMeKKF2QT4fwpM', /eyJhbGci/],
    ['token ghp_abcdefghijklmnopqrstuvwxyz0123456789', /ghp_abc/],
    ['github_pat_11ABCDEFG0123456789_abcdefghijklmnop', /github_pat_11/],
    ['key sk-proj-abcdefghijklmnopqrstuvwx', /sk-proj/],
    ['aws AKIAIOSFODNN7EXAMPLE here', /AKIAIOSFODNN7EXAMPLE/],
    ['slack xoxb-1234567890-abcdefghij', /xoxb-1234/],
    ['Authorization: Bearer abcdef0123456789', /abcdef0123456789/],
    ['basic dXNlcjpwYXNzd29yZA==', /dXNlcjpwYXNzd29yZA/],
    ['http://user:hunter2@example.com/x', /hunter2/],
    ['run sluice.v1.eyJzdWIiOiJ.AbCdEf', /sluice\.v1\.eyJ/],
  ];
  for (const [text, secret] of rows) {
    const out = scrubText(text);
    t.notMatch(out, secret, text);
    t.match(out, /\[redacted\]/);
  }
  t.equal(scrubText('ECONNREFUSED 10.0.0.1:443'), 'ECONNREFUSED 10.0.0.1:443', 'ordinary text untouched');
});

t.test('paths keep query keys only', async (t) => {
  t.equal(pathForLog('/search?q=secret&page=2'), '/search?q=&page=');
  t.equal(pathForLog('/a/b'), '/a/b');
  t.equal(pathForLog('/x?token'), '/x?token=');
  t.notMatch(pathForLog('/hook/ghp_abcdefghijklmnopqrstuvwxyz0123456789'), /ghp_/);
  t.ok(pathForLog('/' + 'a'.repeat(1000)).length < 300, 'capped');
});
