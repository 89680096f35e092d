import { isDeny } from '../../firewall/codes.js';
import type { Policy } from '../../firewall/policy.js';
import { type IdentityStore, type Principal, createIdentityStore } from '../../proxy/auth/identity.js';

/**
 * An identity store whose password check is exact and as cheap as a cache hit (scrypt is not what its callers
 * exercise), warmed: a plaintext password is hashed in the background on first sight, so that first sight is
 * awaited here and no request under test waits on it.
 */
export async function createWarmIdentities(
  policy: Policy,
  user: string,
  password: string,
): Promise<{ identities: IdentityStore; principal: Principal }> {
  const identities = createIdentityStore({
    policy: () => policy,
    tokenKey: () => null,
    nowMs: () => Date.now(),
    verify: async (pw) => pw === password,
  });
  const warm = await identities.authenticate({ user, pass: password });
  if (isDeny(warm)) throw new Error(`test identity ${user} refused: ${warm.code}`);
  return { identities, principal: warm };
}
