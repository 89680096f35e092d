// The brands hold only if tsc refuses the forgeries in brands.ts for the right reason. Compiled twice: as
// written (each @ts-expect-error meets an error, nothing else fails) and with the directives removed (each
// marked line fails, and with the error the brand causes, not some typo).
import { readFileSync } from 'node:fs';
import t from 'tap';
import ts from 'typescript';
import { repoPath } from '../helpers/repo.js';

const file = repoPath('test/lint/brands.ts');
const tsconfig = repoPath('tsconfig.json');

t.test('AddressPass and DialPlan can be made only by their owners, and the Agent stays in the dialer', async (t) => {
  const parsed = ts.getParsedCommandLineOfConfigFile(
    tsconfig,
    {},
    {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (d) => {
        throw new Error(ts.flattenDiagnosticMessageText(d.messageText, '\n'));
      },
    },
  );
  if (!parsed) throw new Error('tsconfig.json did not parse');
  const options = { ...parsed.options, noEmit: true };
  const lines = (diagnostics: readonly ts.Diagnostic[]) =>
    diagnostics.map((d) => ({
      line: d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start).line + 1 : 0,
      code: d.code,
      text: ts.flattenDiagnosticMessageText(d.messageText, ' '),
    }));

  const asWritten = ts.createProgram({ rootNames: [file], options });
  t.same(lines(ts.getPreEmitDiagnostics(asWritten)), [], 'compiles: every @ts-expect-error meets its error');

  const source = readFileSync(file, 'utf8');
  const marked = source.split('\n').flatMap((l, i) => (/^\s*\/\/ @ts-expect-error/.test(l) ? [i + 2] : []));
  t.equal(marked.length, 4);
  const host = ts.createCompilerHost(options);
  const read = host.getSourceFile.bind(host);
  host.getSourceFile = (name, language, ...rest) =>
    name === file
      ? ts.createSourceFile(name, source.replace(/\/\/ @ts-expect-error/g, '//'), language)
      : read(name, language, ...rest);
  const stripped = lines(
    ts.getPreEmitDiagnostics(ts.createProgram({ rootNames: [file], options, host, oldProgram: asWritten })),
  );
  t.same([...new Set(stripped.map((d) => d.line))], marked, 'without the directives, exactly the marked lines fail');
  const why = (line: number) =>
    stripped
      .filter((d) => d.line === line)
      .map((d) => d.text)
      .join(' ');
  const [pass, plan, widened, agent] = marked as [number, number, number, number];
  t.match(why(pass), /\[checkedByGuard\]/, "a literal AddressPass lacks the guard's brand");
  t.match(why(plan), /\[preparedByDialer\]/, "a literal DialPlan lacks the dialer's brand");
  t.match(why(widened), /\[checkedByGuard\]/, "an address added to a real plan lacks the guard's brand");
  t.match(why(agent), /Property 'agent' does not exist on type 'Dialer'/);
});
