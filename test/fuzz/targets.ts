// Every fuzz target, in one list: `npm run fuzz` (run.ts) and the seeded slice in `npm test` (fuzz.test.ts).
import type { FuzzTarget } from './target.js';
import { addressGuardTargets } from './targets/address-guard.js';
import { brokerTargets } from './targets/broker.js';
import { configTargets } from './targets/config.js';
import { credentialTargets } from './targets/credentials.js';
import { httpLiveTargets } from './targets/http-live.js';
import { inspectionTargets } from './targets/inspection.js';
import { httpValidateTargets } from './targets/http-validate.js';
import { normaliseTargets } from './targets/normalise.js';
import { socks5LiveTargets } from './targets/socks5-live.js';
import { socks5Targets } from './targets/socks5.js';
import { tlsTargets } from './targets/tls-client-hello.js';

export const TARGETS: readonly FuzzTarget[] = [
  ...httpValidateTargets,
  ...httpLiveTargets,
  ...normaliseTargets,
  ...addressGuardTargets,
  ...socks5Targets,
  ...socks5LiveTargets,
  ...tlsTargets,
  ...configTargets,
  ...credentialTargets,
  ...brokerTargets,
  ...inspectionTargets,
];
