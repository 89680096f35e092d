// `sluice webhook serve`: the sidecar injector (a mutating admission webhook) the chart runs as its own
// Deployment. It never talks to the Kubernetes API: the API server calls it, and it answers from files.
import { parseArgs } from 'node:util';
import { createLogDestination, createLogger } from '../ops/log-destination.js';
import { startWebhookServer } from '../webhook/server.js';
import { fail } from './output.js';

const USAGE = 'usage: sluice webhook serve --config FILE --tls-cert FILE --tls-key FILE [--listen 0.0.0.0:8443]';

export async function webhookCommand(argv: string[]) {
  if (argv[0] !== 'serve') fail(USAGE);
  const text = { type: 'string' } as const;
  const { values } = parseArgs({
    args: argv.slice(1),
    options: { config: text, 'tls-cert': text, 'tls-key': text, listen: text, 'log-level': text },
  });
  if (!values.config || !values['tls-cert'] || !values['tls-key']) fail(USAGE);
  const listen = values.listen ?? '0.0.0.0:8443';
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(listen);
  if (!m || Number(m[3]) > 65535) fail(`--listen "${listen}" must be HOST:PORT`);
  const logger = createLogger(values['log-level'] ?? 'info', createLogDestination({ shared: false }));
  let server;
  try {
    server = await startWebhookServer({
      configFile: values.config,
      certFile: values['tls-cert'],
      keyFile: values['tls-key'],
      host: m[1] ?? m[2]!,
      port: Number(m[3]),
      logger,
    });
  } catch (err) {
    fail(`webhook: ${(err as Error).message}`);
  }
  const stop = () => void server.close().then(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}
