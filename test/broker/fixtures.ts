// A broker world for tests: a validated config with three credentials, the keys, the secrets and handles.
import { validateConfig, type SluiceConfig } from '../../settings/config.js';
import { type BrokerKeys, deriveBrokerKeys } from '../../proxy/broker/keys.js';
import { issueHandle } from '../../proxy/broker/handle.js';
import { SecretValue } from '../../proxy/broker/secret-value.js';

export const KEY_MATERIAL = Buffer.from('Yk3Nq8Wz1Lp5Rt7Vx9Bc2Df4Gh6Jm0Sa+Ue/Io==tail');
export const SECRETS = {
  'github-api': 'ghp_R8x2Kq9LmN4pZ7vB1cD3eF5gH6jK0aS2dF4g',
  'github-git': 'ghp_GitPushToken0123456789abcdefghijKLMN',
  'slack-bot': 'xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOp',
} as const;
export const NOW_S = 1_800_000_000;

export function brokerConfig(over: Record<string, unknown> = {}): SluiceConfig {
  const r = validateConfig({
    integrations: {
      github: { hosts: ['api.github.com', 'github.com'] },
      slack: { hosts: ['slack.com', '*.slack.com'] },
      pastebin: { hosts: ['pastebin.example'] },
    },
    identities: {
      agent: { password: 'not-a-secret-1', integrations: ['github', 'slack', 'pastebin'] },
      other: { password: 'not-a-secret-2', integrations: ['github'] },
    },
    secrets: { keyFile: '/keys/broker', handles: { maxTtl: '8h', revocationFile: '/lists/revoked.jsonl' } },
    credentials: {
      'github-api': {
        integration: 'github',
        inject: { type: 'header', name: 'Authorization', template: 'Bearer {secret}' },
        source: { sealedFile: '/creds/github-api' },
      },
      'github-git': {
        integration: 'github',
        inject: { type: 'basic', username: 'x-access-token' },
        source: { sealedFile: '/creds/github-git' },
      },
      'slack-bot': {
        integration: 'slack',
        inject: { type: 'header', name: 'X-Slack-Token', template: '{secret}' },
        source: { file: '/creds/slack' },
        replaceForeign: 'pass',
      },
    },
    ...over,
  });
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  return r.config;
}

export const keys: BrokerKeys = deriveBrokerKeys(KEY_MATERIAL);
export const secrets = new Map(Object.entries(SECRETS).map(([k, v]) => [k, new SecretValue(Buffer.from(v))]));

export const handleFor = (
  credential: string,
  o: { run?: string; identity?: string; expS?: number; key?: Buffer } = {},
) =>
  issueHandle(o.key ?? keys.handle, {
    run: o.run ?? 'run-1',
    identity: o.identity ?? 'agent',
    credential,
    expS: o.expS ?? NOW_S + 3600,
  });

export const basic = (user: string, pass: string) => `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;
