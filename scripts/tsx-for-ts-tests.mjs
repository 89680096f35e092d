// tap's --import for every test process. `npm test` runs the tests compiled into dist/test, which need no loader;
// a TypeScript source named on the command line (`npx tap test/x.test.ts`) is loaded through tsx instead.
// The file a process runs is argv[1], also for the copies that isolate() re-runs inside a namespace.
if (/\.[cm]?tsx?$/.test(process.argv[1] ?? '')) await import('tsx');
