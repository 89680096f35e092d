// Keeping secrets out of logs. Structured fields that can hold credentials are redacted by path (pino
// `redact`); free text (error details, paths) goes through a scrubber for the token shapes that leak most
// often. The scrubber is pre-filtered: one cheap test decides whether any pattern can match at all.

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
const GATE = /eyJ|gh[pousr]_|github_pat_|sk-|AKIA|ASIA|xox[abposr]-|bearer|basic |:\/\/[^/\s]*@|sluice\.v1\./i;

const PATTERNS: readonly RegExp[] = [
  /eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*/g, // JWT
  /\bgh[pousr]_[A-Za-z0-9]{20,}/g, // GitHub tokens
  /\bgithub_pat_[A-Za-z0-9_]{20,}/g,
  /\bsk-[A-Za-z0-9_-]{16,}/g, // OpenAI-style and similar secret keys
  /\b(?:AKIA|ASIA)[A-Z0-9]{16}\b/g, // AWS access key ids
  /\bxox[abposr]-[A-Za-z0-9-]{10,}/g, // Slack
  /\bsluice\.v1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+/g, // our own run tokens
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

/** Path and query for the log: query values dropped (`/search?q=&page=`), then scrubbed, then capped. */
export function pathForLog(path: string, max = 256): string {
  const q = path.indexOf('?');
  let out = path;
  if (q !== -1) {
    const keys = path
      .slice(q + 1)
      .split('&')
      .map((pair) => pair.split('=')[0]!)
      .filter(Boolean);
    out = `${path.slice(0, q)}?${keys.map((k) => `${k}=`).join('&')}`;
  }
  out = scrubText(out);
  return out.length > max ? `${out.slice(0, max)}…` : out;
}
