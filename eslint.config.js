// Lint for what tsc cannot say: promises that nobody awaits, and the module boundaries behind two promises of
// the contract (docs/ARCHITECTURE.md "Boundaries"): only the dialer opens outbound sockets, and `firewall/` is
// pure. Imports are judged by name, so `import net from 'net'`, `import * as tls from 'node:tls'`, deep
// `undici/lib/...` paths, `import()` and `createRequire` are caught as well as the named import.
// test/lint/boundaries.test.ts runs this file on fixtures that must fail.
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

// Node modules that can open a socket, run a process or load one by name. Each lists the value exports any
// file may import: pure functions and constants. Types are always allowed (a type opens nothing).
const IO_MODULES = {
  net: ['isIP', 'isIPv4', 'isIPv6'],
  tls: ['rootCertificates'],
  http: ['STATUS_CODES', 'METHODS'],
  https: [],
  http2: [],
  dgram: [],
  dns: [],
  'dns/promises': [],
  child_process: [],
  // A worker may be forked only as this very program (the process models below).
  cluster: [],
  worker_threads: [],
  // createRequire loads a module by a string: the way around every rule here.
  module: [],
};

// The files that hold a socket (or a process) of their own, and the one thing each may import for it.
// `'*'`: the whole module.
const HOLDERS = {
  // The choke point: resolve → validate → connect, and the undici Agent whose connect hook goes through it.
  'proxy/egress/dialer.ts': { net: '*', tls: '*', module: ['createRequire'], undici: '*' },
  // The resolver the dialer owns: DNS queries to the configured servers (never dns.lookup).
  'proxy/egress/resolver.ts': { 'dns/promises': ['Resolver'] },
  // Inbound listeners: a server accepts, it never connects.
  'proxy/edge/http-listener.ts': { http: ['createServer'] },
  'proxy/edge/socks5-listener.ts': { net: ['createServer'] },
  'proxy/ops/admin.ts': { http: ['createServer'] },
  'proxy/webhook/server.ts': { https: ['createServer'] },
  // TLS inspection: an in-process HTTP server fed the client's own socket, wrapped server-side.
  'proxy/inspection/session.ts': { http: ['createServer'], tls: ['TLSSocket'] },
  'proxy/inspection/leaves.ts': { tls: ['createSecureContext'] },
  // Certificates: @peculiar/x509 is loaded on first use (no socket; it is heavy to load at start).
  'proxy/inspection/x509.ts': { module: ['createRequire'] },
  // The DNS guard: an inbound UDP listener that only answers REFUSED (CONTRACT §8).
  'proxy/ops/dns-guard.ts': { dgram: ['createSocket'] },
  // The two process models: serve picks one, the primary forks the workers.
  'proxy/cli/serve.ts': { cluster: '*' },
  'proxy/runtime/primary.ts': { cluster: '*' },
  // The containment probe: the one connection that must NOT go through Sluice, made by a child as another UID.
  'proxy/ops/containment-probe.ts': { child_process: ['spawn'] },
};

const WHY = 'only proxy/egress/dialer.ts opens outbound sockets (docs/ARCHITECTURE.md "Boundaries")';

/** no-restricted-imports options for one file: every I/O module, less what the file holds. */
function boundaryImports(holds = {}) {
  const paths = [];
  for (const [mod, everywhere] of Object.entries(IO_MODULES)) {
    const own = holds[mod];
    if (own === '*') continue;
    const allowImportNames = [...everywhere, ...(own ?? [])];
    for (const name of [mod, `node:${mod}`]) {
      paths.push(
        allowImportNames.length > 0
          ? { name, allowImportNames, allowTypeImports: true, message: WHY }
          : { name, allowTypeImports: true, message: WHY },
      );
    }
  }
  const patterns = [];
  if (holds.undici !== '*') {
    paths.push({ name: 'undici', allowTypeImports: true, message: WHY });
    patterns.push({ group: ['undici/*'], allowTypeImports: true, message: WHY });
  }
  return ['error', { paths, patterns }];
}

// Dynamic import() takes any string at run time, so no rule on import declarations could see what it loads.
// A literal relative path is one of this repository's own modules, linted like any other, so loading it late
// (the CLI loads only the command it runs) reaches nothing new.
const NO_DYNAMIC_IMPORT = {
  selector: "ImportExpression:not([source.type='Literal'][source.value=/^\\.\\.?\\//])",
  message: `dynamic import() of a package or a computed name escapes the import boundaries; import statically (${WHY})`,
};
const NO_REQUIRE = {
  selector: "CallExpression[callee.name='require']",
  message: `require() escapes the import boundaries (${WHY})`,
};

// AddressPass and DialPlan carry a type-only brand (firewall/address-guard.ts, proxy/egress/dialer.ts): no
// other module can write one as a literal. A cast, or a renamed import to hide one, is the way left.
const forged = (type, owner) => ({
  selector:
    `:matches(TSAsExpression, TSTypeAssertion) :matches(TSTypeReference[typeName.name='${type}'], ` +
    `TSTypeReference[typeName.right.name='${type}']), ImportSpecifier[imported.name='${type}'][local.name!='${type}']`,
  message: `only ${owner} makes ${type} values; a cast would stand for a check that never ran`,
});
const FORGE_ADDRESS_PASS = forged('AddressPass', 'the address guard (firewall/address-guard.ts)');
const FORGE_DIAL_PLAN = forged('DialPlan', 'the dialer (proxy/egress/dialer.ts)');
// What Sluice throws carries a stable code (firewall/errors.ts): callers tell a refused boot from a bug by `.code`.
const NO_BARE_ERROR = {
  selector: 'ThrowStatement > NewExpression[callee.name=/^(Error|TypeError|RangeError)$/]',
  message: 'throw a SluiceError with a stable code (firewall/errors.ts), not a bare Error',
};
const SYNTAX = [NO_DYNAMIC_IMPORT, NO_REQUIRE, FORGE_ADDRESS_PASS, FORGE_DIAL_PLAN, NO_BARE_ERROR];

// Globals that reach the network without an import, and the bindings beneath `net` itself.
const NETWORK_GLOBALS = ['fetch', 'WebSocket', 'EventSource'].map((name) => ({ name, message: WHY }));
const NETWORK_PROPERTIES = [
  ...['fetch', 'WebSocket', 'EventSource'].map((property) => ({ object: 'globalThis', property, message: WHY })),
  ...['binding', '_linkedBinding', 'dlopen'].map((property) => ({ object: 'process', property, message: WHY })),
];

// firewall/ decides; it does no I/O, reads no clock, logs nothing and knows nothing of proxy/ (CONTRACT §3).
const PURE = 'firewall/ is pure: no I/O, clock, logger, environment or proxy/ (docs/ARCHITECTURE.md "Boundaries")';
const FIREWALL_SYNTAX = [
  ...SYNTAX,
  { selector: "NewExpression[callee.name='Date'][arguments.length=0]", message: PURE },
];
const firewallImportsHolding = (holds) => {
  const [, { paths, patterns }] = boundaryImports(holds);
  const banned = [
    'fs',
    'fs/promises',
    'os',
    'perf_hooks',
    'timers',
    'timers/promises',
    'process',
    'readline',
    'stream',
    'vm',
  ];
  for (const mod of banned)
    for (const name of [mod, `node:${mod}`]) paths.push({ name, allowTypeImports: true, message: PURE });
  for (const name of ['pino', 'prom-client', 'undici']) paths.push({ name, allowTypeImports: true, message: PURE });
  // firewall/ is one flat folder: any `../` leaves it.
  patterns.push({ regex: '^\\.\\./', message: PURE });
  return ['error', { paths, patterns }];
};
const firewallImports = firewallImportsHolding();

export default defineConfig(
  { ignores: ['dist/**', 'node_modules/**', 'test/lint/fixtures/**', 'bench/.work/**', '.tap/**'] },
  {
    files: ['firewall/**/*.ts', 'settings/**/*.ts', 'proxy/**/*.ts', 'iptables/**/*.ts'],
    languageOptions: {
      parser: tseslint.parser,
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    plugins: { '@typescript-eslint': tseslint.plugin },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
    },
  },
  {
    files: ['firewall/**/*.ts', 'proxy/**/*.ts', 'iptables/**/*.ts'],
    rules: {
      'no-restricted-imports': boundaryImports(),
      'no-restricted-syntax': ['error', ...SYNTAX],
      'no-restricted-globals': ['error', ...NETWORK_GLOBALS],
      'no-restricted-properties': ['error', ...NETWORK_PROPERTIES],
    },
  },
  ...Object.entries(HOLDERS).map(([file, holds]) => ({
    files: [file],
    rules: { 'no-restricted-imports': boundaryImports(holds) },
  })),
  // settings/ reads the runtime settings as firewall/ reads the policy: pure, under the same rules (its imports
  // are set below: it may also use firewall/).
  {
    files: ['firewall/**/*.ts', 'settings/**/*.ts'],
    rules: {
      'no-restricted-imports': firewallImports,
      'no-restricted-globals': [
        'error',
        ...NETWORK_GLOBALS,
        ...['setTimeout', 'setInterval', 'setImmediate', 'queueMicrotask', 'performance', 'process', 'console'].map(
          (name) => ({ name, message: PURE }),
        ),
      ],
      'no-restricted-properties': ['error', ...NETWORK_PROPERTIES, { object: 'Date', property: 'now', message: PURE }],
      'no-restricted-syntax': ['error', ...FIREWALL_SYNTAX],
    },
  },
  // The config validator: ajv's precompiled output is CommonJS and validation is synchronous, so this one module
  // loads it with createRequire — literal specifiers only (the validator file next to it, and ajv).
  {
    files: ['firewall/config-validator.ts'],
    rules: {
      'no-restricted-imports': firewallImportsHolding({ module: ['createRequire'] }),
      'no-restricted-syntax': [
        'error',
        ...FIREWALL_SYNTAX.filter((s) => s !== NO_REQUIRE),
        {
          selector: "CallExpression[callee.name='require'][arguments.0.type!='Literal']",
          message: `require() of a computed name escapes the import boundaries (${PURE})`,
        },
      ],
    },
  },
  // settings/ may import firewall/, the one folder outside it.
  {
    files: ['settings/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: firewallImports[1].paths,
          patterns: [
            ...firewallImports[1].patterns.filter((p) => p.regex !== '^\\.\\./'),
            { regex: '^\\.\\./(?!firewall/)', message: PURE },
          ],
        },
      ],
    },
  },
  // Tests and benchmarks: no `any`, so a test says the shape it reads (test/README.md). Untyped on purpose: tsc
  // already checks these files, typed rules would be slow here and flag tap's un-awaited `t.test` calls.
  {
    files: ['test/**/*.ts', 'bench/**/*.ts'],
    languageOptions: { parser: tseslint.parser },
    plugins: { '@typescript-eslint': tseslint.plugin },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: { '@typescript-eslint/no-explicit-any': 'error' },
  },
  // One line width for code and comments (Prettier formats code to it; comments are wrapped by hand). Strings,
  // templates, regular expressions and URLs may run over: breaking an error message or a hint hurts grep.
  {
    files: ['**/*.ts', '**/*.js', '**/*.mjs', '**/*.cjs'],
    rules: {
      'max-len': [
        'error',
        {
          code: 120,
          tabWidth: 2,
          ignoreStrings: true,
          ignoreTemplateLiterals: true,
          ignoreRegExpLiterals: true,
          ignoreUrls: true,
        },
      ],
    },
  },
  // The owners of the brands.
  {
    files: ['firewall/address-guard.ts'],
    rules: { 'no-restricted-syntax': ['error', ...FIREWALL_SYNTAX.filter((s) => s !== FORGE_ADDRESS_PASS)] },
  },
  {
    files: ['proxy/egress/dialer.ts'],
    rules: { 'no-restricted-syntax': ['error', ...SYNTAX.filter((s) => s !== FORGE_DIAL_PLAN)] },
  },
);
