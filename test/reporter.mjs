// tap reporter: one line per test file, the details of every failure, and a last line that CI parses:
// `N passed, N failed`. N counts leaf assertions; a subtest that fails without a failing leaf (a crash,
// a timeout, a plan mismatch) counts as one failure so it can never hide.
import { Transform } from 'node:stream';
import { Parser } from 'tap-parser';

const indent = (text, pad) =>
  text
    .split('\n')
    .map((l) => pad + l)
    .join('\n');

export default class SummaryReporter extends Transform {
  #parser;
  #passed = 0;
  #failed = 0;
  #skipped = 0;
  #todo = 0;
  #bailout = null;

  constructor() {
    super();
    this.#parser = new Parser({ passes: true });
    this.#watch(this.#parser, [], true);
    this.#parser.on('bailout', (reason) => {
      this.#bailout = reason || 'bailed out';
    });
    this.#parser.on('complete', () => this.#finish());
  }

  // Count leaf assertions of a parser and its children; returns a getter of failures seen below.
  #watch(parser, path, top) {
    const stats = { failed: 0 };
    let pendingChild = null;
    parser.on('child', (child) => {
      pendingChild = this.#watch(child, path, false);
    });
    parser.on('assert', (res) => {
      if (pendingChild) {
        const child = pendingChild;
        pendingChild = null;
        if (!res.ok && !res.todo && !res.skip && child.failed === 0) {
          this.#failed++;
          stats.failed++;
          this.#printFailure(path, res);
        }
        stats.failed += child.failed;
        if (top) this.push(`${res.ok ? 'ok  ' : 'FAIL'} ${res.name}\n`);
        return;
      }
      if (res.skip) {
        this.#skipped++;
        if (top) this.push(`skip ${res.name}${typeof res.skip === 'string' ? ': ' + res.skip : ''}\n`);
        return;
      }
      if (res.todo) {
        this.#todo++;
        return;
      }
      if (res.ok) {
        this.#passed++;
      } else {
        this.#failed++;
        stats.failed++;
        this.#printFailure(path, res);
      }
      if (top) this.push(`${res.ok ? 'ok  ' : 'FAIL'} ${res.name}\n`);
    });
    parser.on('comment', (c) => {
      // Loud skips (no root, no iptables) are printed by tests as "# SKIP-REASON ..." comments.
      if (/^#\s*LOUD:/.test(c)) this.push(c);
    });
    return stats;
  }

  #printFailure(path, res) {
    const name = res.fullname || res.name;
    let out = `\n  not ok: ${name}\n`;
    if (res.diag && Object.keys(res.diag).length) {
      const diag = { ...res.diag };
      const lines = Object.entries(diag)
        .map(([k, v]) => `${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`)
        .join('\n');
      out += indent(lines, '    ') + '\n';
    }
    this.push(out + '\n');
  }

  #finish() {
    if (this.#bailout) this.push(`\nbailed out: ${this.#bailout}\n`);
    const extra = [];
    if (this.#skipped) extra.push(`${this.#skipped} skipped`);
    if (this.#todo) extra.push(`${this.#todo} todo`);
    if (extra.length) this.push(`\n${extra.join(', ')}\n`);
    const failed = this.#failed + (this.#bailout ? 1 : 0);
    this.push(`${this.#passed} passed, ${failed} failed\n`);
  }

  _transform(chunk, _enc, cb) {
    this.#parser.write(chunk);
    cb();
  }

  _flush(cb) {
    this.#parser.end();
    cb();
  }
}
