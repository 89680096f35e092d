// `helm test`: through the gateway, one allowed request must get the expected status and one to the metadata
// address must be refused by policy (403 with an EGR_DENY_ code in Proxy-Status, RFC 9209). Any other outcome,
// a network error included, fails the test. Absolute-form requests over plain http, so the proxy's own verdict
// is what the test sees (a CONNECT tunnel would hide the status behind a client error).
import { request } from 'node:http';

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const proxy = new URL(env('SLUICE_PROXY'));
const auth = 'Basic ' + Buffer.from(`${env('SLUICE_IDENTITY')}:${env('SLUICE_TOKEN')}`).toString('base64');

function get(url) {
  return new Promise((resolve) => {
    const target = new URL(url);
    const req = request(
      {
        host: proxy.hostname,
        port: Number(proxy.port || 3128),
        method: 'GET',
        path: target.href,
        headers: { host: target.host, 'proxy-authorization': auth, connection: 'close' },
        timeout: 20_000,
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode, proxyStatus: String(res.headers['proxy-status'] ?? '') }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (e) => resolve({ status: 0, proxyStatus: '', error: e.message }));
    req.end();
  });
}

const expected = Number(process.env.SLUICE_ALLOWED_STATUS || 200);
const allowed = await get(env('SLUICE_ALLOWED_URL'));
const denied = await get(env('SLUICE_DENIED_URL'));
const checks = [
  ['allowed request', allowed.status === expected, `expected ${expected}, got ${allowed.status} ${allowed.proxyStatus}${allowed.error ?? ''}`],
  ['metadata request', denied.status === 403 && /EGR_DENY_/.test(denied.proxyStatus), `expected 403 with an EGR_DENY_ code, got ${denied.status} ${denied.proxyStatus}${denied.error ?? ''}`],
];
let failed = 0;
for (const [name, ok, detail] of checks) {
  console.log(`${ok ? 'ok' : 'FAIL'} - ${name}: ${detail}`);
  if (!ok) failed++;
}
process.exit(failed ? 1 : 0);
