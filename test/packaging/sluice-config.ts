// The artefacts ship sluice.yaml files (compose/sluice.yaml, the chart's ConfigMap); Sluice's own validator
// must accept them exactly as shipped.
import { parse } from 'yaml';
import { formatIssue, validateConfig } from '../../settings/config.js';

/** A sluice.yaml as written (before the validator fills defaults): the fields the packaging tests read. The
 * shape holds once `problems` is empty, which every test asserts first. */
export interface SluiceYaml {
  readonly mode?: string;
  readonly listen?: {
    readonly http?: string;
    readonly socks5?: string;
    readonly admin?: string;
    readonly dns?: string;
  };
  readonly tokens?: { readonly keyFile?: string };
  readonly admin?: { readonly tokenFile?: string };
  readonly identities?: Readonly<Record<string, unknown>>;
  readonly integrations?: Readonly<Record<string, { readonly hosts?: readonly string[] }>>;
  readonly inspection?: { readonly caCertFile?: string; readonly caKeyFile?: string };
}

export interface ConfigCheck {
  readonly problems: string[];
  readonly raw: SluiceYaml;
}

export function checkSluiceConfig(text: string | undefined): ConfigCheck {
  const raw: unknown = parse(text ?? '');
  const r = validateConfig(raw);
  return { problems: r.ok ? [] : r.issues.map(formatIssue), raw: r.ok ? (raw as SluiceYaml) : {} };
}
