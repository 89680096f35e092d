// `sluice firewall render` as a real process: both families on stdout, one with --family, the bundle that
// iptables/setup.sh reads with --out, and every option problem on stderr with nothing rendered.
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { parse } from 'yaml';
import { tempDir } from '../containment/topology.js';
import { cliArgv } from '../helpers/cli.js';
import { repoPath } from '../helpers/repo.js';

const GOLDEN = repoPath('test/iptables/golden');
const render = (args: string[]) => {
  const r = spawnSync(process.execPath, [...cliArgv(), 'firewall', 'render', ...args], {
    encoding: 'utf8',
    timeout: 120_000,
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
};
const golden = (name: string) => readFileSync(join(GOLDEN, name), 'utf8');

t.test('stdout: IPv4 then IPv6, exactly the golden files', async (t) => {
  const both = render(['--mode', 'sidecar']);
  t.equal(both.code, 0, both.err);
  t.equal(both.out, golden('sidecar-default.v4.rules') + golden('sidecar-default.v6.rules'));
  const v6 = render(['--mode', 'docker', '--bridge', 'br-0123456789ab', '--proxy', '172.30.0.2', '--family', '6']);
  t.equal(v6.out, golden('docker-v4-only.v6.rules'));
});

t.test('--config: the ports (and the docker proxy address) of the same sluice.yaml', async (t) => {
  const dir = tempDir('sluice-render-');
  const config = join(dir, 'sluice.yaml');
  writeFileSync(
    config,
    'listen: { http: 172.30.0.2:3128, socks5: 172.30.0.2:1080, dns: 172.30.0.2:53, admin: 127.0.0.1:9090 }\n',
  );
  const r = render([
    '--mode',
    'docker',
    '--config',
    config,
    '--bridge',
    'br-sluice',
    '--subnet',
    '172.30.0.0/24',
    '--subnet6',
    'fd30::/64',
    '--proxy6',
    'fd30:0:0:0::2',
  ]);
  t.equal(r.code, 0, r.err);
  t.equal(r.out, golden('docker.v4.rules') + golden('docker.v6.rules'), 'the same rules as the options spelled out');
  const side = render([
    '--mode',
    'sidecar',
    '--config',
    config,
    '--uid',
    '20001',
    '--workload-uid',
    '1000',
    '--ports',
    '3128',
    '--loopback-ports',
    '8080,5432',
  ]);
  t.equal(
    side.out,
    golden('sidecar-full.v4.rules') + golden('sidecar-full.v6.rules'),
    'explicit options win over the config',
  );
  t.equal(
    render(['--mode', 'sidecar', '--config', join(dir, 'missing.yaml')]).code,
    2,
    'an unreadable config renders nothing',
  );
});

t.test('bad options: every problem, exit 2, nothing rendered', async (t) => {
  const r = render(['--mode', 'sidecar', '--workload-uid', '10001', '--ports', 'http']);
  t.equal(r.code, 2);
  t.equal(r.out, '', 'nothing on stdout');
  t.match(r.err, /error: --workload-uid equals --uid \(10001\)/);
  t.match(r.err, /error: --ports "http"/);
  t.match(r.err, /invalid options \(nothing rendered\)/);
  t.equal(render(['--mode', 'sidecar', '--family', '5']).code, 2);
  t.equal(render(['--mode', 'sidecar', '--bogus']).code, 2, 'an unknown option is an error, not ignored');
});

t.test('the command compose/compose.yaml runs renders, with the compose sluice.yaml', async (t) => {
  const compose = parse(readFileSync(repoPath('compose/compose.yaml'), 'utf8')) as {
    services: { firewall: { command: string[] } };
  };
  const line = compose.services.firewall.command.join(' ');
  const args = /sluice firewall render (.*?) >/.exec(line)?.[1]?.trim().split(/\s+/);
  if (!args) throw new Error(`no render command in: ${line}`);
  const r = render(args.map((a) => (a === '/etc/sluice/sluice.yaml' ? repoPath('compose/sluice.yaml') : a)));
  t.equal(r.code, 0, r.err);
  t.match(
    r.out,
    /^# sluice-firewall family=4 mode=docker uid= proxy=172\.28\.250\.2:3128$/m,
    'the proxy address from the config',
  );
  t.match(
    r.out,
    /-d 172\.28\.250\.2\/32 -p tcp -m multiport --dports 3128,1080 -j RETURN/,
    'its HTTP and SOCKS5 ports',
  );
  t.match(r.out, /-d 172\.28\.250\.2\/32 -p udp -m udp --dport 53 -j RETURN/, 'and the DNS guard');
});
