// A config (or a file it names) that must not be put in force, at start or on a reload, refused with the same
// issues `sluice check` reports: each has its path in the config, a message and a hint. Exposure, production
// rules, secret files, the broker's material and the inspection CA all refuse this way, so that a refused
// reload logs the path of what is wrong rather than one flattened sentence.
import { type ConfigIssue, formatIssue } from '../../firewall/config.js';
import { SluiceError } from '../../firewall/errors.js';

export class ConfigRefusal extends SluiceError {
  /** Errors only: warnings never refuse anything. */
  readonly issues: readonly ConfigIssue[];
  constructor(issues: readonly ConfigIssue[], separator = '\n') {
    super('SLUICE_ERR_CONFIG', issues.map(formatIssue).join(separator));
    this.issues = issues;
  }
}

export const isConfigRefusal = (e: unknown): e is ConfigRefusal => e instanceof ConfigRefusal;

/** Throws a ConfigRefusal with the errors among `issues`; warnings alone pass. */
export function refuseErrors(issues: readonly ConfigIssue[], separator?: string): void {
  const errors = issues.filter((i) => i.severity === 'error');
  if (errors.length) throw new ConfigRefusal(errors, separator);
}
