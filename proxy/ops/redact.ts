// Keeping secrets out of logs. Structured fields that can hold credentials are redacted by path (pino
// `redact`); free text (error details, paths) goes through a scrubber for the token shapes that leak most
// often. The scrubber is pre-filtered: one cheap test decides whether any pattern can match at all.
import { HANDLE_TEXT, SEALED_TEXT } from '../broker/audit-fields.js';

/** pino redact paths: credential-bearing headers and config secrets, wherever an object is logged. */
export const REDACT_PATHS = Object.freeze([
  'headers.authorization',
  'headers["proxy-authorization"]',
  'headers.cookie',
  'headers["set-cookie"]',
  'headers["x-api-key"]',
  '*.headers.authorization',
  '*.headers["proxy-authorization"]',
  '*.headers.cookie',
  '*.headers["set-cookie"]',
  '*.headers["x-api-key"]',
  'password',
  'passwordHash',
  'token',
  '*.password',
  '*.passwordHash',
  '*.token',
]);

export const REDACTED = '[redacted]';

// Cheap gate: every pattern below contains one of these fragments (case-insensitively).
const GATE =
  /eyJ|gh[pousr]_|github_pat_|sk-|AKIA|ASIA|xox[abposr]-|bearer|basic |:\/\/[^/\s]*@|sluice\.v1\.|sluice_h1_|sluice-sealed\.v1\./i;

const PATTERNS: readonly RegExp[] = [
  /eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*/g, // JWT
  /\bgh[pousr]_[A-Za-z0-9]{20,}/g, // GitHub tokens
  /\bgithub_pat_[A-Za-z0-9_]{20,}/g,
  /\bsk-[A-Za-z0-9_-]{16,}/g, // OpenAI-style and similar secret keys
  /\b(?:AKIA|ASIA)[A-Z0-9]{16}\b/g, // AWS access key ids
  /\bxox[abposr]-[A-Za-z0-9-]{10,}/g, // Slack
  /\bsluice\.v1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+/g, // our own run tokens
  HANDLE_TEXT, // credential handles: a capability, logged only as handleId()
  SEALED_TEXT, // sealed secrets
  /\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}/gi, // Authorization values
  /(:\/\/)[^/\s@]*@/g, // URL userinfo
];

export function scrubText(text: string): string {
  if (!GATE.test(text)) return text;
  let out = text;
  for (const re of PATTERNS) {
    out = out.replace(re, (m, ...groups) => {
      if (re.source.startsWith('(:\\/\\/)')) return `${groups[0] as string}${REDACTED}@`;
      if (/^(bearer|basic)\s/i.test(m)) return `${m.split(/\s+/)[0]} ${REDACTED}`;
      return REDACTED;
    });
  }
  return out;
}

// --- Paths -------------------------------------------------------------------------------------------------
// A URL path is where many services put the secret itself: webhook paths (`/services/T…/B…/<secret>`), bot
// tokens (`/bot<id>:<token>/…`), matrix parameters (`;jsessionid=…`), key-only queries (`?<secret>`). The audit
// record keeps the path readable and drops what has the shape of a secret:
//   - query values and matrix-parameter values are dropped, names kept (`?q=&page=`, `;jsessionid=`);
//   - a path segment, query name or key-only member with a known token shape (the patterns above) or that
//     looks random is replaced by `[redacted]` (see `randomLooking`);
//   - a key-only query member is kept only when it is a short word (`?raw`, `?download`): anything with a
//     digit, or longer than 32 characters, is a value with no name;
//   - operator patterns (`log.redactPaths`, checked for ReDoS by config validation) replace what they match.
// Cheap on the hot path: a segment shorter than SECRET_MIN_LENGTH is never examined further, which is every
// segment of most paths; the rest is one pass over the characters.

/** Segments shorter than this are never secret-like (every known token shape is at least this long). */
export const SECRET_MIN_LENGTH = 20;
/** Minimum class changes per alphanumeric character (see `randomLooking`). */
const RATIO_MIXED_WITH_DIGITS = 0.3;
const RATIO_MIXED_LETTERS = 0.3;
const RATIO_ONE_CASE_WITH_DIGITS = 0.15;
const MAX_KEY_ONLY = 32;
/** How much of a path is examined and logged. */
export const PATH_LOG_MAX = 256;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const KNOWN_SHAPES: readonly RegExp[] = PATTERNS.map((re) => new RegExp(re.source, re.flags.replace('g', '')));
const WORD = /^[A-Za-z_][A-Za-z_.-]*$/;

/**
 * Whether a run of characters (no `.`, `:`, `@` or `,` in it) looks like a random token: at least
 * SECRET_MIN_LENGTH letters and digits, and many changes of character class (upper, lower, digit) between
 * adjacent characters. Random tokens change class at most positions (base62: ~0.6 per character); names and
 * versions change it at word and number boundaries, which separators (`-`, `_`) usually mark and which do not
 * count here: `manylinux_2_17_x86_64` has 1 change in 17, `TypeScript-Handbook2020` 5 in 22. Letters alone
 * must also have upper case next to upper case at least twice, which camelCase names rarely do. UUIDs and
 * numbers are kept (resource ids). Hex of 32+ characters (keys, also digests and commit ids) is redacted.
 */
export function randomLooking(run: string): boolean {
  return randomRun(run, 0, run.length);
}

// Character classes by code (ASCII): 1 upper, 2 lower, 3 digit, 4 ends a run (`.` of names, versions and
// extensions; `:` `@` `,` `;` `=` `+` `~` `/` and space), 0 anything else (a separator inside a run: `-`, `_`).
const CLASS = new Uint8Array(128);
for (let c = 65; c <= 90; c++) CLASS[c] = 1;
for (let c = 97; c <= 122; c++) CLASS[c] = 2;
for (let c = 48; c <= 57; c++) CLASS[c] = 3;
for (const ch of '.:@,;=+/~ ') CLASS[ch.charCodeAt(0)] = 4;

function randomRun(s: string, start: number, end: number): boolean {
  if (end - start < SECRET_MIN_LENGTH) return false;
  if (end - start === 36 && UUID.test(s.slice(start, end))) return false;
  let n = 0;
  let upper = 0;
  let lower = 0;
  let digit = 0;
  let changes = 0;
  // Upper case next to upper case: common in random letters, rare in camelCase (`listOrgMembersForUser`).
  let upperPairs = 0;
  let prev = 0; // 0: separator, 1: upper, 2: lower, 3: digit
  for (let i = start; i < end; i++) {
    const c = s.charCodeAt(i);
    const cls = c < 128 ? CLASS[c]! : 0;
    if (cls === 0 || cls === 4) {
      prev = 0;
      continue;
    }
    n++;
    if (cls === 1) upper++;
    else if (cls === 2) lower++;
    else digit++;
    if (prev !== 0 && prev !== cls) changes++;
    else if (cls === 1 && prev === 1) upperPairs++;
    prev = cls;
  }
  if (n < SECRET_MIN_LENGTH || digit === n) return false;
  const ratio = changes / n;
  if (upper && lower) return digit ? ratio >= RATIO_MIXED_WITH_DIGITS : ratio >= RATIO_MIXED_LETTERS && upperPairs >= 2;
  return digit > 0 && ratio >= RATIO_ONE_CASE_WITH_DIGITS;
}

/** Whether a path segment, query name or parameter name has the shape of a secret. */
export function secretLike(text: string): boolean {
  if (text.length < SECRET_MIN_LENGTH) return false;
  let s = text;
  if (s.includes('%')) {
    try {
      s = decodeURIComponent(s);
    } catch {
      // Not valid percent-encoding: judge it as written.
    }
  }
  if (GATE.test(s)) {
    for (const re of KNOWN_SHAPES) if (re.test(s)) return true;
  }
  let start = 0;
  for (let i = 0; i <= s.length; i++) {
    const c = i < s.length ? s.charCodeAt(i) : 32;
    if (c < 128 && CLASS[c] === 4) {
      if (randomRun(s, start, i)) return true;
      start = i + 1;
    }
  }
  return false;
}

/** `name=value` → `name=` (the name itself redacted when it looks secret); used for query and matrix members. */
function nameOnly(member: string): string {
  const eq = member.indexOf('=');
  if (eq === -1) {
    // A key-only member is a value without a name unless it is a short word.
    return member.length <= MAX_KEY_ONLY && WORD.test(member) ? `${member}=` : REDACTED;
  }
  const name = member.slice(0, eq);
  return `${secretLike(name) ? REDACTED : name}=`;
}

function segmentForLog(seg: string): string {
  const semi = seg.indexOf(';');
  if (semi === -1) return secretLike(seg) ? REDACTED : seg;
  // RFC 3986 §3.3 matrix parameters: `name;param=value;param2=value2`.
  const head = seg.slice(0, semi);
  const params = seg
    .slice(semi + 1)
    .split(';')
    .filter(Boolean)
    .map(nameOnly);
  return [secretLike(head) ? REDACTED : head, ...params].join(';');
}

const compiled = new WeakMap<readonly string[], readonly RegExp[]>();

/** Operator patterns, compiled once per config (validation has already compiled and ReDoS-checked them). */
function operatorPatterns(sources: readonly string[]): readonly RegExp[] {
  let out = compiled.get(sources);
  if (!out) {
    out = sources.map((s) => new RegExp(s, 'gd'));
    compiled.set(sources, out);
  }
  return out;
}

/** Replaces each match (or, when the pattern has groups, each group that took part) with `[redacted]`. */
function applyOperatorPatterns(path: string, sources: readonly string[]): string {
  let out = path;
  for (const re of operatorPatterns(sources)) {
    re.lastIndex = 0;
    const spans: [number, number][] = [];
    for (let m = re.exec(out); m !== null; m = re.exec(out)) {
      if (m[0] === '') {
        re.lastIndex++;
        continue;
      }
      const groups = (m.indices ?? []).slice(1).filter((g): g is [number, number] => g !== undefined);
      spans.push(...(groups.length ? groups : [m.indices![0]!]));
    }
    for (const [a, b] of spans.sort((x, y) => y[0] - x[0])) out = out.slice(0, a) + REDACTED + out.slice(b);
  }
  return out;
}

/** Path and query for the log (see above), then capped at `max` characters. */
export function pathForLog(path: string, operator: readonly string[] = [], max = PATH_LOG_MAX): string {
  // Judge a bounded prefix: the rest is cut from the log anyway, and cost stays bounded per request.
  const cut = path.length > max * 2;
  let work = cut ? path.slice(0, max * 2) : path;
  const q = work.indexOf('?');
  let p = q === -1 ? work : work.slice(0, q);
  if (operator.length) p = applyOperatorPatterns(p, operator);
  // Fast path: no segment long enough to be a secret and no matrix parameters.
  if (p.includes(';') || longSegment(p)) p = p.split('/').map(segmentForLog).join('/');
  work =
    q === -1
      ? p
      : `${p}?${work
          .slice(q + 1)
          .split('&')
          .filter(Boolean)
          .map(nameOnly)
          .join('&')}`;
  work = scrubText(work);
  return work.length > max || cut ? `${work.slice(0, max)}…` : work;
}

function longSegment(p: string): boolean {
  let start = 0;
  for (;;) {
    const slash = p.indexOf('/', start);
    const end = slash === -1 ? p.length : slash;
    if (end - start >= SECRET_MIN_LENGTH) return true;
    if (slash === -1) return false;
    start = slash + 1;
  }
}
