// The development identity: `npm start` with no identities configured gets one generated credential.
import type { SluiceConfig } from '../../settings/config.js';

export const DEV_IDENTITY = 'dev';

/** Development convenience: a config without identities gets one generated `dev` identity that may read
 * and use every integration. Production refuses to start instead. */
export function withDevIdentity(config: SluiceConfig, password: string): SluiceConfig {
  return {
    ...config,
    identities: {
      [DEV_IDENTITY]: {
        passwordHash: null,
        password,
        integrations: Object.keys(config.integrations),
        reads: 'public',
        mode: null,
      },
    },
  };
}
