// What Sluice throws carries a stable code (firewall/errors.ts); the lint refuses a bare Error in firewall/ and proxy/.
import t from 'tap';
import { ERROR_CODES, type ErrorCode, SluiceError, isSluiceError } from '../../firewall/errors.js';

t.test('every code is named for what it says, with a description', async (t) => {
  for (const [code, description] of Object.entries(ERROR_CODES)) {
    t.match(code, /^SLUICE_ERR_[A-Z_]+$/, code);
    t.ok(description.length > 10, `${code} says what it means`);
  }
});

t.test('a SluiceError is an Error with its code; isSluiceError tells them apart by code', async (t) => {
  const cause = new Error('underneath');
  const e = new SluiceError('SLUICE_ERR_CONFIG', 'config.yaml: bad', { cause });
  t.ok(e instanceof Error);
  t.equal(e.name, 'SluiceError');
  t.equal(e.code, 'SLUICE_ERR_CONFIG');
  t.equal(e.cause, cause);
  t.ok(isSluiceError(e));
  t.ok(isSluiceError(e, 'SLUICE_ERR_CONFIG'));
  t.notOk(isSluiceError(e, 'SLUICE_ERR_INVARIANT' satisfies ErrorCode));
  t.notOk(isSluiceError(Object.assign(new Error('x'), { code: 'SLUICE_ERR_CONFIG' })), 'a look-alike is not one');
});
