// The artefacts ship sluice.yaml files (compose/sluice.yaml, the chart's ConfigMap); Sluice's own validator
// must accept them exactly as shipped.
import { parse } from 'yaml';
import { formatIssue, validateConfig } from '../../firewall/config.js';

export interface ConfigCheck {
  readonly problems: string[];
  readonly raw: Record<string, any>;
}

export function checkSluiceConfig(text: string): ConfigCheck {
  const raw = parse(text) as Record<string, any>;
  const r = validateConfig(raw);
  return { problems: r.ok ? [] : r.issues.map(formatIssue), raw };
}
