// What every command prints and how it fails: results on stdout, diagnostics on stderr, exit 2 for usage
// and start-up errors (exit 1 is kept for "the answer is no": check found problems, explain denied).
export const out = (s: string) => process.stdout.write(s + '\n');
export const err = (s: string) => process.stderr.write(s + '\n');

export function fail(message: string, code = 2): never {
  err(`sluice: ${message}`);
  process.exit(code);
}
