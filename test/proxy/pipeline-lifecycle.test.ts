// The driver (proxy/pipeline/pipeline.ts) lets a request go whatever happened in a stage: a stage that throws
// (a bug) is denied EGR_INTERNAL, and the admission slot, the flow and the audit record are still released,
// ended and written.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import t from 'tap';
import { type Deny, isDeny } from '../../firewall/codes.js';
import { validateConfig } from '../../settings/config.js';
import { type Policy, compilePolicy } from '../../firewall/policy.js';
import { createAdmission } from '../../proxy/auth/admission.js';
import type { Dialer } from '../../proxy/egress/dialer.js';
import { createAudit } from '../../proxy/ops/audit.js';
import { type PipelineDeps, createPipeline } from '../../proxy/pipeline/pipeline.js';
import { createFlowRegistry } from '../../proxy/runtime/flows.js';
import { createWarmIdentities } from '../helpers/identities.js';

const PASSWORD = 'agent-password-123';

function policyOf(): Policy {
  const r = validateConfig({
    listen: { http: '127.0.0.1:0', socks5: null, admin: null },
    registries: [],
    integrations: {
      api: { hosts: ['allowed.test'], methods: ['GET'] },
      t: { hosts: ['tunnel.test'], tunnel: true },
    },
    identities: { agent: { password: PASSWORD, integrations: ['api', 't'], reads: 'none' } },
  });
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  return compilePolicy(r.config);
}

type Bug = 'decision' | 'broker' | 'dial' | null;

async function world(bug: Bug) {
  const policy = policyOf();
  const { identities, principal: warm } = await createWarmIdentities(policy, 'agent', PASSWORD);
  const lines: Record<string, unknown>[] = [];
  const logger = { info: () => {}, warn: () => {}, error: () => {} };
  const audit = createAudit({
    logger: {
      info: (o: object) => lines.push(o as never),
      warn: (o: object) => lines.push(o as never),
      error: (o: object) => lines.push(o as never),
    } as never,
    nowMs: () => 0,
  });
  const admission = createAdmission({
    limits: () => ({
      maxConnections: 1,
      maxConnectionsPerIdentity: 1,
      requestsPerSecond: null,
      burst: 1,
      authFailuresPerMinute: 5,
    }),
    nowMs: () => 0,
  });
  const flows = createFlowRegistry();
  const dialer = {
    prepare() {
      // Thrown synchronously, not as a rejected promise: the driver must catch both.
      if (bug === 'dial') throw new Error('a bug in the dialer');
      return Promise.resolve({ addresses: [], dnsMs: 0 });
    },
  } as unknown as Dialer;
  const deps: PipelineDeps = {
    policy: () => {
      if (bug === 'decision') throw new Error('a bug in the policy');
      return policy;
    },
    state: () => ({ killSwitch: false }),
    identities,
    dialer,
    audit,
    flows,
    admission,
    logger: logger as never,
    timeouts: () => ({ tunnelHelloTimeoutMs: 1000, idleTimeoutMs: 1000 }),
    broker: () => {
      if (bug === 'broker') throw new Error('a bug in the broker');
      return null;
    },
  };
  return { pipeline: createPipeline(deps), lines, audit, admission, flows, principal: warm };
}

const base = (rejected: string[]) => ({
  listener: 'http' as const,
  clientAddr: '127.0.0.1:1',
  credentials: { user: 'agent', pass: PASSWORD },
  reject: (d: Deny) => rejected.push(d.code),
});

const httpEdge = (rejected: string[]) => ({
  ...base(rejected),
  req: { method: 'GET', url: 'http://allowed.test/x', headers: {} } as unknown as IncomingMessage,
  res: {} as ServerResponse,
});

const tunnelEdge = (rejected: string[]) => ({
  ...base(rejected),
  target: async () => ({ target: { kind: 'authority' as const, authority: 'tunnel.test:443' }, head: Buffer.alloc(0) }),
  socket: {} as Socket,
  accept: () => {},
});

for (const bug of ['decision', 'broker', 'dial'] as const) {
  for (const kind of ['http', 'tunnel'] as const) {
    if (kind === 'tunnel' && bug === 'broker') continue; // tunnels have no broker stage
    t.test(`${kind}: a stage that throws (${bug}) still lets the request go`, async (t) => {
      const w = await world(bug);
      const rejected: string[] = [];
      if (kind === 'http') await w.pipeline.http(httpEdge(rejected));
      else await w.pipeline.tunnel(tunnelEdge(rejected));
      t.same(rejected, ['EGR_INTERNAL'], 'the client is told, once');
      t.equal(w.lines.length, 1, 'one audit record');
      t.equal(w.lines[0]!.code, 'EGR_INTERNAL');
      t.equal(w.lines[0]!.identity, 'agent', 'what the stages before learnt is on it');
      t.equal(w.audit.inFlight, 0, 'the record was ended');
      t.equal(w.flows.size, 0, 'no flow left open');
      const again = w.admission.admit(w.principal);
      t.notOk(isDeny(again), 'the admission slot was released (maxConnections: 1)');
      if (!isDeny(again)) again.release();
    });
  }
}

t.test('the admission stage denies while the only slot is held', async (t) => {
  const w = await world(null);
  const rejected: string[] = [];
  const busy = w.admission.admit(w.principal);
  t.notOk(isDeny(busy));
  await w.pipeline.http(httpEdge(rejected));
  t.same(rejected, ['EGR_LIMIT_CONCURRENCY'], 'the admission stage denies while the only slot is held');
  t.equal(w.lines[0]!.code, 'EGR_LIMIT_CONCURRENCY');
  if (!isDeny(busy)) busy.release();
});
