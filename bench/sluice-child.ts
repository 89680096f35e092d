// Sluice as the benchmark runs it: from the compiled dist, configured from a file exactly as
// `sluice serve --config FILE` is, with the normal pino destination (stdout, which the benchmark sends to a
// file) and metrics on. SIGHUP re-reads the file and swaps the config in, which is what the "hot reload
// 10/s under load" workload drives. When `sluice serve` handles SIGHUP itself, the benchmark can start the
// CLI instead (`--sluice cli`) and send it the same signal.
import { join } from 'node:path';
import { writeHeapSnapshot } from 'node:v8';
import { formatIssue } from '../firewall/config.js';
import { loadConfigFile } from '../proxy/runtime/config-file.js';
import { createSluice } from '../proxy/runtime/sluice.js';

await serve();

async function serve(): Promise<void> {
  const path = process.argv[2];
  if (!path) {
    process.stderr.write('usage: sluice-child CONFIG\n');
    process.exit(2);
  }
  const first = loadConfigFile(path);
  if (!first.ok) {
    for (const i of first.issues) process.stderr.write(formatIssue(i) + '\n');
    process.exit(2);
  }
  const sluice = createSluice({ config: first.config, version: 'bench' });
  const { http } = await sluice.start();
  process.stderr.write(`sluice-child listening on ${http?.address}:${http?.port}\n`);

  let reloads = 0;
  let failures = 0;
  process.on('SIGHUP', () => {
    const next = loadConfigFile(path);
    if (!next.ok) {
      failures++;
      sluice.metrics.reload('error');
      return;
    }
    sluice.state.swap(next.config);
    sluice.metrics.reload('success');
    reloads++;
  });

  // Memory diagnosis: SIGUSR2 prints process.memoryUsage() (after a full GC when run with --expose-gc), and
  // writes a heap snapshot into $BENCH_HEAP_SNAPSHOTS when that is set.
  process.on('SIGUSR2', () => {
    (globalThis as { gc?: () => void }).gc?.();
    process.stderr.write(`sluice-child memory ${JSON.stringify(process.memoryUsage())}\n`);
    if (process.env.BENCH_HEAP_SNAPSHOTS)
      process.stderr.write(
        `sluice-child snapshot ${writeHeapSnapshot(join(process.env.BENCH_HEAP_SNAPSHOTS, `${Date.now()}.heapsnapshot`))}\n`,
      );
  });

  let stopping = false;
  process.on('SIGTERM', () => {
    if (stopping) return;
    stopping = true;
    // Exit even if a tunnel lingers: --cpu-prof writes its profile on exit.
    const force = setTimeout(() => process.exit(0), 3000);
    void sluice.stop().finally(() => {
      clearTimeout(force);
      sluice.logger.flush?.();
      process.stderr.write(`sluice-child reloads=${reloads} failed=${failures}\n`);
      process.exit(0);
    });
  });
}
