#!/usr/bin/env node
// The `sluice` command line: one file per command under cli/; this file only dispatches.
import { isDeny } from '../firewall/codes.js';
import { err, fail } from './cli/output.js';

// Each command's module is loaded when it runs: `sluice serve` on a sidecar never pays for the webhook's schema,
// the CA tooling or the explain renderer (time to ready is multiplied by every pod). Literal relative paths
// only; the lint refuses any other dynamic import.
const USAGE = `usage: sluice <command> [options]

  serve [--config FILE]            run the proxy (no file: the embedded development default)
  check FILE                       validate a config; every problem with its path and a hint
  hash-password                    read a password on stdin, print a passwordHash for the config
  token issue --config FILE --identity ID --ttl 30m [--integrations a,b] [--run RUN]
                                   mint a run token (an expiring credential narrowed from ID)
  secret seal --config FILE --credential NAME [--out FILE]
                                   read a credential's secret on stdin, print it sealed under secrets.keyFile
  secret check --config FILE       prove every credential decrypts (or reads); exit 1 otherwise
  handle issue --config FILE --run RUN --identity ID --credential NAME --ttl 30m
                                   print a handle: what a run holds instead of the credential
  handle revoke --config FILE --run RUN
                                   end every handle of a run, on every replica (secrets.handles.revocationFile)
  handle prune --config FILE       drop revocations no longer in force (run from one place only)
  explain [--config FILE] --as ID METHOD URL [--resolve] [-H 'Name: value'] [--body]
  explain [--config FILE] --as ID CONNECT host:port [--resolve]
                                   show the decision, code and rule; exit 0 allow, 1 deny
  firewall render --mode sidecar|docker [--config FILE] [--family 4|6] [options]
                                   print the iptables-restore (IPv4) and ip6tables-restore (IPv6) rules that
                                   make Sluice the only way out; apply them with iptables/setup.sh apply FILE
      sidecar: [--uid 10001] [--workload-uid N] [--ports 3128,1080] [--dns-port 53] [--loopback-ports P,…]
      docker:  --bridge IF --proxy A [--proxy6 A] [--subnet CIDR] [--subnet6 CIDR] [--ports …] [--dns-port …]
      --config takes --ports, --dns-port (and in docker mode --proxy/--proxy6) from the config's listeners
  webhook serve --config FILE --tls-cert FILE --tls-key FILE [--listen 0.0.0.0:8443]
                                   the sidecar injector (mutating admission webhook) the Helm chart runs
  ca init --out DIR [--days 730]   make a TLS inspection CA: DIR/ca.crt (0644) and DIR/ca.key (0600); never overwrites
  ca bundle (--config FILE | --ca-cert FILE) [--roots node|system|FILE]
                                   print public roots then the inspection CA (PEM), for SSL_CERT_FILE and friends;
                                   roots: node = Node's Mozilla list (default), system = this host's OpenSSL bundle
`;

async function main(argv: string[]) {
  const [command, ...rest] = argv;
  switch (command) {
    case 'serve':
      return (await import('./cli/serve.js')).serve(rest);
    case 'check':
      return (await import('./cli/check.js')).check(rest);
    case 'hash-password':
      return (await import('./cli/hash-password.js')).hashPasswordCommand();
    case 'token':
      if (rest[0] !== 'issue') fail('usage: sluice token issue --config FILE --identity ID --ttl 30m');
      return (await import('./cli/token.js')).tokenIssue(rest.slice(1));
    case 'secret': {
      const { SECRET_USAGE, secretCheck, secretSeal } = await import('./cli/secret.js');
      if (rest[0] === 'seal') return secretSeal(rest.slice(1));
      if (rest[0] === 'check') return secretCheck(rest.slice(1));
      return fail(SECRET_USAGE);
    }
    case 'handle': {
      const { HANDLE_USAGE, handleIssue, handlePrune, handleRevoke } = await import('./cli/handle.js');
      if (rest[0] === 'issue') return handleIssue(rest.slice(1));
      if (rest[0] === 'revoke') return handleRevoke(rest.slice(1));
      if (rest[0] === 'prune') return handlePrune(rest.slice(1));
      return fail(HANDLE_USAGE);
    }
    case 'explain':
      return (await import('./cli/explain.js')).explainCommand(rest);
    case 'firewall':
      if (rest[0] !== 'render') fail('usage: sluice firewall render --mode sidecar|docker [options]');
      return (await import('./cli/firewall.js')).firewallRender(rest.slice(1));
    case 'webhook':
      return (await import('./cli/webhook.js')).webhookCommand(rest);
    case 'ca':
      return (await import('./cli/ca.js')).caCommand(rest);
    case 'help':
    case '--help':
    case '-h':
    case undefined:
      process.stdout.write(USAGE);
      return;
    default:
      process.stderr.write(USAGE);
      fail(`unknown command "${command}"`);
  }
}

main(process.argv.slice(2)).catch((e: unknown) => {
  if (isDeny(e)) fail(e.code);
  err(`sluice: ${(e as Error)?.message ?? String(e)}`);
  process.exit(2);
});
