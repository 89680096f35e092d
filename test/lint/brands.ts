// Compiled by test/lint/brands.test.ts (and by `npm run typecheck`): every line under a @ts-expect-error must
// fail to type-check for the reason it names, so a validated address or plan cannot be made up elsewhere.
import { type AddressPass, checkAddress } from '../../firewall/address-guard.js';
import type { Deny } from '../../firewall/codes.js';
import type { Host } from '../../firewall/normalise.js';
import type { Dialer, DialPlan } from '../../proxy/egress/dialer.js';
import type { Policy } from '../../firewall/policy.js';

// @ts-expect-error -- an AddressPass is the guard's verdict; a literal that looks like one is not.
export const forgedPass: AddressPass = {
  verdict: 'allow',
  address: '169.254.169.254',
  family: 4,
  class: 'public',
  rule: 'unicast',
};

// @ts-expect-error -- a DialPlan comes out of the dialer's prepare() and nowhere else.
export const forgedPlan: DialPlan = {
  host: { host: 'metadata.google.internal', kind: 'name' },
  addresses: [],
  dnsMs: 0,
};

// Nor can a real plan be given an address the guard never saw.
export const widened = (plan: DialPlan): DialPlan => ({
  ...plan,
  // @ts-expect-error -- the literal is not the guard's verdict.
  addresses: [{ verdict: 'allow', address: '10.0.0.1', family: 4, class: 'private', rule: 'unicast' }],
});

// The guard's own verdicts are what a plan holds.
export function narrowed(plan: DialPlan, policy: Policy): DialPlan {
  const checked = checkAddress(policy.guard, '10.0.0.1', plan.host.host);
  return checked.verdict === 'deny' ? plan : { ...plan, addresses: [checked] };
}

// The Agent, whose connect hook is the choke point, stays in the dialer; forwarding goes through dispatch().
// @ts-expect-error -- there is no `agent` to take.
export const agentOf = (dialer: Dialer): unknown => dialer.agent;

export const prepared = (dialer: Dialer, host: Host): Promise<DialPlan | Deny> => dialer.prepare(host);
