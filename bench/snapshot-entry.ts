// The start-up experiment with a V8 startup snapshot. A snapshot holds one CommonJS script (Node 20–24), so
// bench/snapshot-build.ts bundles this file and everything it imports (Sluice and its dependencies) into one
// script and builds the snapshot from it: module loading, ajv's and the rest's top-level work happen at build
// time. When run from the snapshot, it serves the config in $BENCH_SNAPSHOT_CONFIG as `sluice serve` does in one
// process (createSluice + start; the config-file reloader is not wired, which costs nothing at start-up).
// Without a snapshot (plain `node dist/bench/snapshot-entry.js`) it does the same, for comparison.
import { startupSnapshot } from 'node:v8';
import { formatIssue } from '../firewall/config.js';
import { loadConfigFile } from '../proxy/runtime/config-file.js';
import { createSluice } from '../proxy/runtime/sluice.js';

async function serve(): Promise<void> {
  const path = process.env.BENCH_SNAPSHOT_CONFIG;
  if (!path) {
    process.stderr.write('snapshot-entry: set BENCH_SNAPSHOT_CONFIG\n');
    process.exit(2);
  }
  const loaded = loadConfigFile(path);
  if (!loaded.ok) {
    for (const i of loaded.issues) process.stderr.write(formatIssue(i) + '\n');
    process.exit(2);
  }
  const sluice = createSluice({ config: loaded.config, version: 'bench-snapshot' });
  const bound = await sluice.start();
  process.stderr.write(`snapshot-entry listening on ${bound.http?.address}:${bound.http?.port}\n`);
  process.on('SIGTERM', () => {
    void sluice.stop().finally(() => {
      sluice.flushLogs();
      process.exit(0);
    });
  });
}

if (startupSnapshot?.isBuildingSnapshot()) startupSnapshot.setDeserializeMainFunction(() => void serve());
else void serve();
