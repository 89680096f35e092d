// Handles and sealed blobs never reach a log line: free text is scrubbed of both (proxy/ops/redact.ts).
import t from 'tap';
import { scrubText } from '../../proxy/ops/redact.js';
import { brokerCanary } from '../helpers/canary.js';

t.test('handles and sealed blobs are scrubbed from free text', async (t) => {
  const c = brokerCanary({ credential: 'api-token' });
  const text = `failed for ${c.handle} (x-note: ${c.handle}) sealed=${c.sealed}; Bearer ${c.handle}`;
  const out = scrubText(text);
  t.same(c.leaks(out), []);
  t.match(out, /\[redacted\]/);
  t.equal(scrubText('nothing here'), 'nothing here');
});
