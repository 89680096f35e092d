// The `inspection` section of sluice.yaml, and the checks on the files it names (`inspectionProblems`).
import { chmodSync, readFileSync, statSync } from 'node:fs';
import t from 'tap';
import { type SluiceConfig, validateConfig } from '../../settings/config.js';
import { createEphemeralCa } from '../../proxy/inspection/ephemeral.js';
import {
  type CaFileAccess,
  ephemeralCaProblem,
  inspectionProblems,
  loadInspectionCa,
} from '../../proxy/inspection/problems.js';
import { opensslCa } from './helpers.js';

const valid = (raw: unknown): SluiceConfig => {
  const r = validateConfig(raw);
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  return r.config;
};
const issuesOf = (raw: unknown) => {
  const r = validateConfig(raw);
  return r.ok ? r.warnings : r.issues;
};

t.test('absent: inspection is off', async (t) => {
  t.equal(valid({}).inspection, null);
});

t.test('the section, its defaults and its knobs', async (t) => {
  const c = valid({ inspection: { caCertFile: '/ca/ca.crt', caKeyFile: '/ca/ca.key' } });
  t.same(c.inspection, {
    caCertFile: '/ca/ca.crt',
    caKeyFile: '/ca/ca.key',
    leafValiditySeconds: 86400,
    leafCacheSize: 1024,
    opaque: [],
  });
  t.ok(Object.isFrozen(c.inspection));
  const d = valid({
    registries: ['registry.npmjs.org', '*.pythonhosted.org'],
    integrations: { gh: { hosts: ['api.github.com'], tunnel: true } },
    inspection: {
      caCertFile: 'a',
      caKeyFile: 'b',
      leafValidity: '12h',
      leafCacheSize: 100,
      opaque: ['Registry.NPMJS.org.', 'files.pythonhosted.org', 'api.github.com'],
    },
  });
  t.same(
    d.inspection,
    {
      caCertFile: 'a',
      caKeyFile: 'b',
      leafValiditySeconds: 43200,
      leafCacheSize: 100,
      opaque: ['registry.npmjs.org', 'files.pythonhosted.org', 'api.github.com'],
    },
    'opaque hosts are normalised',
  );
});

t.test('mistakes are reported with a path and a hint', async (t) => {
  const rows: [string, unknown, RegExp, RegExp | null][] = [
    ['a missing key file', { caCertFile: 'a' }, /^\/inspection$/, null],
    [
      'a typo',
      { caCertFile: 'a', caKeyFile: 'b', leafCacheSzie: 5 },
      /^\/inspection\/leafCacheSzie$/,
      /did you mean "leafCacheSize"/,
    ],
    [
      'a validity that is not a duration',
      { caCertFile: 'a', caKeyFile: 'b', leafValidity: 'a day' },
      /^\/inspection\/leafValidity$/,
      /"30m"/,
    ],
    [
      'a validity too long',
      { caCertFile: 'a', caKeyFile: 'b', leafValidity: '30d' },
      /^\/inspection\/leafValidity$/,
      /short-lived/,
    ],
    [
      'a validity too short',
      { caCertFile: 'a', caKeyFile: 'b', leafValidity: '10m' },
      /^\/inspection\/leafValidity$/,
      /short-lived/,
    ],
    ['a cache too small', { caCertFile: 'a', caKeyFile: 'b', leafCacheSize: 2 }, /^\/inspection\/leafCacheSize$/, null],
    [
      'a bad opaque pattern',
      { caCertFile: 'a', caKeyFile: 'b', opaque: ['registry.*'] },
      /^\/inspection\/opaque\/0$/,
      /leading "\*\."/,
    ],
    ['not a mapping', 'yes', /^\/inspection$/, null],
  ];
  for (const [name, inspection, path, hint] of rows) {
    const r = validateConfig({ inspection });
    t.notOk(r.ok, `${name}: refused`);
    const issues = r.ok ? [] : r.issues;
    const hit = issues.find((i) => path.test(i.path));
    t.ok(hit, `${name}: ${JSON.stringify(issues)}`);
    if (hint) t.match(hit?.hint, hint, `${name}: hint`);
  }
});

t.test('an opaque host that no tunnel may reach is a warning', async (t) => {
  const w = issuesOf({
    registries: ['pypi.org'],
    inspection: { caCertFile: 'a', caKeyFile: 'b', opaque: ['pypi.org', 'example.com'] },
  });
  t.match(w, [
    {
      severity: 'warning',
      path: '/inspection/opaque',
      message: /"example\.com" is neither a registry nor a tunnel: true integration host/,
    },
  ]);
  t.equal(w.length, 1);
  t.same(
    issuesOf({
      integrations: { x: { hosts: ['*.corp.example'], tunnel: true } },
      inspection: { caCertFile: 'a', caKeyFile: 'b', opaque: ['git.corp.example'] },
    }),
    [],
    'a wildcard tunnel host covers it',
  );
});

function realFiles(): CaFileAccess {
  return {
    read: (p) => {
      try {
        return readFileSync(p);
      } catch {
        return null;
      }
    },
    stat: (p) => {
      try {
        return { mode: statSync(p).mode };
      } catch {
        return null;
      }
    },
  };
}

t.test("inspectionProblems: the operator's files", async (t) => {
  const op = opensslCa('ec256');
  chmodSync(op.keyFile, 0o600);
  const config = valid({ inspection: { caCertFile: op.certFile, caKeyFile: op.keyFile } });
  t.same(inspectionProblems(valid({}), realFiles(), { production: true }), [], 'inspection off: nothing to check');
  t.same(inspectionProblems(config, realFiles(), { production: true }), []);
  const loaded = await loadInspectionCa(config.inspection!, realFiles(), { production: true });
  t.ok(loaded.ok && loaded.ca.keyType === 'ec-p256');

  chmodSync(op.keyFile, 0o640);
  t.match(
    inspectionProblems(config, realFiles(), { production: true }),
    [
      {
        severity: 'error',
        path: '/inspection/caKeyFile',
        message: /accessible to group or others \(mode 0640\)/,
        hint: /chmod 600/,
      },
    ],
    'production refuses a group-readable key',
  );
  t.match(
    inspectionProblems(config, realFiles(), { production: false }),
    [{ severity: 'warning', path: '/inspection/caKeyFile', message: /refused when SLUICE_ENV=production/ }],
    'development warns',
  );
  chmodSync(op.keyFile, 0o604);
  t.match(inspectionProblems(config, realFiles(), { production: true }), [{ severity: 'error', message: /mode 0604/ }]);
  const refused = await loadInspectionCa(config.inspection!, realFiles(), { production: true });
  t.notOk(refused.ok);

  const missing = valid({ inspection: { caCertFile: '/nonexistent/ca.crt', caKeyFile: '/nonexistent/ca.key' } });
  t.match(inspectionProblems(missing, realFiles(), { production: false }), [
    { severity: 'error', path: '/inspection/caCertFile', message: /cannot be read/, hint: /sluice ca init/ },
    { severity: 'error', path: '/inspection/caKeyFile', message: /cannot be read/ },
  ]);

  const notCa = opensslCa('ec256', { notCa: true });
  chmodSync(notCa.keyFile, 0o600);
  const leafAsCa = valid({ inspection: { caCertFile: notCa.certFile, caKeyFile: notCa.keyFile } });
  t.match(inspectionProblems(leafAsCa, realFiles(), { production: true }), [
    { severity: 'error', path: '/inspection/caCertFile', message: /is not a CA certificate/ },
  ]);

  // Injected files: no disk needed, and the clock is the caller's.
  const files: CaFileAccess = {
    read: (p) => Buffer.from(p === 'c' ? op.certPem : op.keyPem),
    stat: () => ({ mode: 0o100600 }),
  };
  const injected = valid({ inspection: { caCertFile: 'c', caKeyFile: 'k' } });
  t.same(inspectionProblems(injected, files, { production: true }), []);
  t.match(inspectionProblems(injected, files, { production: true, nowMs: Date.now() + 400 * 86_400_000 }), [
    { severity: 'error', path: '/inspection/caCertFile', message: /expired/ },
  ]);
});

t.test('an ephemeral CA: development only, in a fresh 0700 directory, key never written', async (t) => {
  t.match(ephemeralCaProblem(true), { severity: 'error', message: /development only/, hint: /sluice ca init/ });
  t.equal(ephemeralCaProblem(false), null);
  await t.rejects(createEphemeralCa({ production: true }), { code: 'SLUICE_ERR_CONFIG' });
  const e = await createEphemeralCa({ production: false });
  t.teardown(() => e.remove());
  t.equal(statSync(e.dir).mode & 0o777, 0o700);
  t.equal(statSync(e.certFile).mode & 0o777, 0o644);
  t.equal(readFileSync(e.certFile, 'utf8'), e.ca.certPem);
  const bundle = readFileSync(e.bundleFile, 'utf8');
  t.ok(bundle.trimEnd().endsWith(e.ca.certPem.trim()), 'the bundle ends with the CA');
  t.ok((bundle.match(/BEGIN CERTIFICATE/g)?.length ?? 0) > 50, 'after the public roots');
  t.notMatch(readFileSync(e.certFile, 'utf8') + bundle, /PRIVATE KEY/);
  t.equal(e.ca.ephemeral, true);
  t.same(e.trustLines, [
    `SSL_CERT_FILE=${e.bundleFile}`,
    `REQUESTS_CA_BUNDLE=${e.bundleFile}`,
    `PIP_CERT=${e.bundleFile}`,
    `CURL_CA_BUNDLE=${e.bundleFile}`,
    `GIT_SSL_CAINFO=${e.bundleFile}`,
    `NPM_CONFIG_CAFILE=${e.bundleFile}`,
    `NODE_EXTRA_CA_CERTS=${e.certFile}`,
  ]);
  e.remove();
  t.throws(() => statSync(e.dir), 'removed');
});
