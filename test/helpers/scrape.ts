// Reads a Prometheus text exposition into samples, so that tests match series by their labels rather than by
// the order prom-client happens to print them in.

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function parseExposition(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = LINE.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(LABEL))
      labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

/** Samples of `name` whose labels include every one in `want`. */
export function series(
  samples: readonly Sample[],
  name: string,
  want: Readonly<Record<string, string>> = {},
): Sample[] {
  return samples.filter((s) => s.name === name && Object.entries(want).every(([k, v]) => s.labels[k] === v));
}

/** The sum of the matching samples' values (0 when none match). */
export function total(samples: readonly Sample[], name: string, want: Readonly<Record<string, string>> = {}): number {
  return series(samples, name, want).reduce((a, s) => a + s.value, 0);
}
