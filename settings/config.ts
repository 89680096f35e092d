// The config file: one YAML document holding the policy (firewall/config-schema.ts) and the runtime settings
// (settings/schema.ts) side by side at the top level. Validated against the union of the two schemas in one
// pass (the validator `npm run build` precompiles), then through each half's own checks.
import {
  type ConfigIssue,
  type PolicyConfig,
  type PolicyInput,
  type Validated,
  applySchema,
  checkPolicy,
  formatIssue,
  settle,
} from '../firewall/config.js';
import { POLICY_SCHEMA } from '../firewall/config-schema.js';
import { SETTINGS_SCHEMA } from './schema.js';
import { type RuntimeSettings, type SettingsInput, checkSettings } from './settings.js';

export { type ConfigIssue, formatIssue };

/** The whole config: policy and runtime settings. */
export type SluiceConfig = PolicyConfig & RuntimeSettings;
export type ConfigResult = Validated<SluiceConfig>;

const P = POLICY_SCHEMA.properties;
const S = SETTINGS_SCHEMA.properties;

/** The schema of the config file: both halves, in the order the README documents them. */
export const CONFIG_SCHEMA = {
  $id: 'https://sluice.dev/schema/sluice.json',
  type: 'object',
  additionalProperties: false,
  properties: {
    mode: P.mode,
    listen: S.listen,
    registries: P.registries,
    integrations: P.integrations,
    identities: P.identities,
    tokens: P.tokens,
    globalDeny: P.globalDeny,
    addressGuard: P.addressGuard,
    dns: S.dns,
    upstream: S.upstream,
    limits: S.limits,
    inspection: P.inspection,
    admin: S.admin,
    killSwitch: S.killSwitch,
    workers: S.workers,
    containment: S.containment,
    log: S.log,
    secrets: P.secrets,
    credentials: P.credentials,
  },
} as const;

/** Validates a parsed YAML/JSON value (the caller's object is not changed). Every problem is reported. */
export function validateConfig(input: unknown): ConfigResult {
  const { value, ctx } = applySchema(input, CONFIG_SCHEMA);
  if (value === null) return { ok: false, issues: ctx.issues };
  const policy = checkPolicy(value as PolicyInput, ctx);
  const settings = checkSettings(value as SettingsInput, ctx);
  return settle(ctx, { ...policy, ...settings });
}
