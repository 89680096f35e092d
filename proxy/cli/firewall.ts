// `sluice firewall render`: the kernel rules (iptables/render.ts) for a deployment, from options or the config.
import { parseArgs } from 'node:util';
import {
  type RawFirewallOptions,
  optionsFromConfig,
  parseFirewallOptions,
  renderAll,
  renderRules,
} from '../../iptables/render.js';
import { requireConfig } from './load-config.js';
import { err, fail } from './output.js';

export function firewallRender(argv: string[]) {
  const text = { type: 'string' } as const;
  const { values } = parseArgs({
    args: argv,
    options: {
      mode: text,
      config: text,
      family: text,
      uid: text,
      'workload-uid': text,
      ports: text,
      'dns-port': text,
      'loopback-ports': text,
      bridge: text,
      subnet: text,
      subnet6: text,
      proxy: text,
      proxy6: text,
    },
  });
  const { family, config: configPath, ...given } = values;
  // --config: the listener ports (and, in docker mode, the proxy's address) come from the same sluice.yaml.
  const fromConfig = configPath ? optionsFromConfig(requireConfig(configPath).listen, given.mode) : {};
  const r = parseFirewallOptions({ ...fromConfig, ...(given as RawFirewallOptions) });
  if (!r.ok) {
    for (const e of r.errors) err(`error: ${e}`);
    fail('firewall render: invalid options (nothing rendered)');
  }
  if (family !== undefined && family !== '4' && family !== '6') fail('--family must be 4 or 6 (default: both)');
  process.stdout.write(
    family === '4' ? renderRules(r.options, 4) : family === '6' ? renderRules(r.options, 6) : renderAll(r.options),
  );
}
