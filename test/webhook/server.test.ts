// The injector's HTTPS server on a port-0 loopback listener with a throwaway CA: it answers the API server's
// POSTs with AdmissionReviews (injected, untouched, refused), answers garbage with allowed: false, and swaps a
// rotated certificate and a changed config in place, keeping the last good config when the new one is bad.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import pino from 'pino';
import t from 'tap';
import type { AdmissionReviewOut } from '../../proxy/webhook/inject.js';
import { startWebhookServer } from '../../proxy/webhook/server.js';
import { one, render } from '../packaging/helm.js';
import { testPki } from '../helpers/pki.js';
import { repoPath } from '../helpers/repo.js';

const FIXTURES = repoPath('test/webhook/fixtures');
const uidOf = (review: string) => (JSON.parse(review) as { request: { uid: string } }).request.uid;
const dir = mkdtempSync(join(tmpdir(), 'sluice-webhook-'));
const pki = testPki(['egress-sluice-injector.sluice-system.svc']);
writeFileSync(join(dir, 'tls.crt'), pki.certPem);
writeFileSync(join(dir, 'tls.key'), pki.keyPem);
const injectYaml = one(
  render({ set: ['injector.enabled=true', 'mode=sidecar'] }),
  'ConfigMap',
  'egress-sluice-injector',
).data!['inject.yaml']!;
writeFileSync(join(dir, 'inject.yaml'), injectYaml);

const lines: Record<string, unknown>[] = [];
const logger = pino(
  { level: 'info' },
  new Writable({
    write(c, _e, cb) {
      lines.push(JSON.parse(String(c)) as Record<string, unknown>);
      cb();
    },
  }),
);
const server = await startWebhookServer({
  configFile: join(dir, 'inject.yaml'),
  certFile: join(dir, 'tls.crt'),
  keyFile: join(dir, 'tls.key'),
  host: '127.0.0.1',
  port: 0,
  logger,
  pollMs: 3_600_000,
});
t.teardown(() => server.close());

function call(
  path: string,
  body: string | Buffer,
  opts: { method?: string; ca?: string } = {},
): Promise<{ status: number; json: AdmissionReviewOut | null; peerCert: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: server.port,
        path,
        method: opts.method ?? 'POST',
        ca: opts.ca ?? pki.caPem,
        servername: 'egress-sluice-injector.sluice-system.svc',
        headers: { 'content-type': 'application/json' },
      },
      (res) => {
        const chunks: Buffer[] = [];
        const peerCert = (res.socket as TLSSocket | null)?.getPeerCertificate?.()?.fingerprint256 ?? '';
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({
            status: res.statusCode ?? 0,
            json: text ? (JSON.parse(text) as AdmissionReviewOut) : null,
            peerCert,
          });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

t.test('injects, leaves alone, refuses: each answer is an AdmissionReview for that uid', async (t) => {
  const agent = readFileSync(join(FIXTURES, 'agent-pod.json'), 'utf8');
  const r = await call('/inject/namespace', agent);
  t.equal(r.status, 200);
  t.equal(r.json!.kind, 'AdmissionReview');
  t.equal(r.json!.response.uid, uidOf(agent));
  t.equal(r.json!.response.allowed, true);
  t.equal(r.json!.response.patchType, 'JSONPatch');
  const bare = await call('/inject/pod', readFileSync(join(FIXTURES, 'bare-pod.json')));
  t.same(
    bare.json!.response,
    { uid: uidOf(readFileSync(join(FIXTURES, 'bare-pod.json'), 'utf8')), allowed: true },
    'an unlabelled pod is untouched',
  );
  const host = await call('/inject/namespace', readFileSync(join(FIXTURES, 'host-network-pod.json')));
  t.equal(host.json!.response.allowed, false);
  t.ok(
    lines.some((l) => l.msg === 'webhook.review' && l.result === 'injected' && l.namespace === 'agents'),
    'each review is logged',
  );
  t.notOk(JSON.stringify(lines).includes('sluice.dev/config'), 'never the pod spec or the policy in the log');
});

t.test('garbage gets allowed: false (fail closed), not a crash; unknown paths and methods are refused', async (t) => {
  for (const body of [
    '',
    'not json',
    '{"apiVersion":"admission.k8s.io/v1"}',
    '[]',
    Buffer.alloc(5 * 1024 * 1024, 0x20),
  ]) {
    const r = await call('/inject/namespace', body);
    t.equal(r.status, 200);
    t.equal(r.json!.response.allowed, false, `${String(body).slice(0, 20) || 'empty'} (${body.length} bytes)`);
  }
  t.equal((await call('/mutate', '{}')).status, 404);
  t.equal((await call('/inject/pod', '', { method: 'GET' })).status, 405);
  t.equal((await call('/healthz', '', { method: 'GET' })).status, 200);
  t.equal(
    (await call('/inject/pod', readFileSync(join(FIXTURES, 'opted-in-pod.json')))).json!.response.allowed,
    true,
    'still serving after all that',
  );
});

t.test(
  'a rotated certificate and a changed config are swapped in place; a bad config keeps the last good one',
  async (t) => {
    const before = await call('/healthz', '', { method: 'GET' });
    const next = testPki(['egress-sluice-injector.sluice-system.svc', 'rotated.invalid']);
    writeFileSync(join(dir, 'tls.crt'), next.certPem);
    writeFileSync(join(dir, 'tls.key'), next.keyPem);
    server.refresh();
    const after = await call('/healthz', '', { method: 'GET', ca: next.caPem });
    t.equal(after.status, 200, 'the new certificate is served (verified against the new CA)');
    t.not(after.peerCert, before.peerCert);
    t.ok(lines.some((l) => l.msg === 'webhook.tls_reloaded'));

    writeFileSync(join(dir, 'inject.yaml'), 'mode: [');
    server.refresh();
    t.ok(lines.some((l) => l.msg === 'webhook.config_reload_failed'));
    const still = await call('/inject/namespace', readFileSync(join(FIXTURES, 'agent-pod.json')), { ca: next.caPem });
    t.equal(still.json!.response.patchType, 'JSONPatch', 'the last good config still injects');

    writeFileSync(
      join(dir, 'inject.yaml'),
      one(
        render({ set: ['injector.enabled=true', 'service.clusterIP=10.96.0.9'] }),
        'ConfigMap',
        'egress-sluice-injector',
      ).data!['inject.yaml']!,
    );
    server.refresh();
    const gw = await call('/inject/namespace', readFileSync(join(FIXTURES, 'agent-pod.json')), { ca: next.caPem });
    const ops: unknown = JSON.parse(Buffer.from(gw.json!.response.patch!, 'base64').toString());
    t.match(JSON.stringify(ops), /10\.96\.0\.9:3128/, 'the new config (gateway mode) is in force');
  },
);

t.test('start-up refuses an invalid config', async (t) => {
  writeFileSync(join(dir, 'bad.yaml'), 'mode: sidecar\n');
  await t.rejects(
    startWebhookServer({
      configFile: join(dir, 'bad.yaml'),
      certFile: join(dir, 'tls.crt'),
      keyFile: join(dir, 'tls.key'),
      host: '127.0.0.1',
      port: 0,
      logger,
    }),
    { code: 'SLUICE_ERR_CONFIG', message: /bad\.yaml/ },
  );
});
