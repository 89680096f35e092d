// The files a config refers to: the run-token key, the admin token, the extra CA bundle and the kill-switch
// path. `sluice check` and `sluice serve` inspect all of them before anything starts and report every problem
// at once as a ConfigIssue (path in the config, message naming the file, hint), never a bare ENOENT; the
// readers below are what the runtime uses at start and on reload.
import { X509Certificate } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { isLoopbackListen } from '../../firewall/config.js';
import type { ConfigIssue, SluiceConfig } from '../../settings/config.js';
import { MIN_KEY_BYTES } from '../auth/run-token.js';
import { SluiceError } from '../../firewall/errors.js';
import { refuseErrors } from './config-refusal.js';

export const MIN_ADMIN_TOKEN_BYTES = 24;
/** A CA bundle larger than this is not a CA bundle. */
const MAX_CA_BYTES = 4 * 1024 * 1024;

/** What is at a path: a readable file (with its bytes when asked for), something else, or nothing. */
export type FileState =
  | { readonly kind: 'file'; readonly mode: number; readonly bytes: Buffer | null }
  | { readonly kind: 'directory'; readonly mode: number }
  | { readonly kind: 'other' }
  | { readonly kind: 'missing' }
  | { readonly kind: 'unreadable'; readonly code: string };

/** Injected so tests can show states root cannot (EACCES) without real files. */
export type InspectFile = (path: string, read: boolean) => FileState;

export const inspectFile: InspectFile = (path, read) => {
  try {
    const st = statSync(path);
    if (st.isDirectory()) return { kind: 'directory', mode: st.mode };
    if (!st.isFile()) return { kind: 'other' };
    return { kind: 'file', mode: st.mode, bytes: read ? readFileSync(path) : null };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    return code === 'ENOENT' || code === 'ENOTDIR' ? { kind: 'missing' } : { kind: 'unreadable', code };
  }
};

/** A secret file's content without surrounding whitespace (files written with `echo` end in a newline). */
const secretOf = (bytes: Buffer): Buffer => Buffer.from(bytes.toString('utf8').trim(), 'utf8');

export function readSecretFile(path: string): Buffer | null {
  const f = inspectFile(path, true);
  return f.kind === 'file' && f.bytes ? secretOf(f.bytes) : null;
}

type Issues = ConfigIssue[];
const error = (out: Issues, path: string, message: string, hint?: string) =>
  out.push(hint ? { severity: 'error', path, message, hint } : { severity: 'error', path, message });
const warning = (out: Issues, path: string, message: string, hint?: string) =>
  out.push(hint ? { severity: 'warning', path, message, hint } : { severity: 'warning', path, message });

/** The problem with a path that must be a readable regular file, or null with its state. */
function requireFile(
  out: Issues,
  at: string,
  file: string,
  inspect: InspectFile,
  create: string,
): (FileState & { kind: 'file' }) | null {
  const f = inspect(file, true);
  if (f.kind === 'file') return f;
  if (f.kind === 'missing') error(out, at, `${file}: no such file`, create);
  else if (f.kind === 'unreadable')
    error(
      out,
      at,
      `${file}: cannot be read (${f.code})`,
      'make it readable by the user Sluice runs as (UID 10001 in the image)',
    );
  else error(out, at, `${file}: not a regular file`, 'point at the file itself, not a directory');
  return null;
}

/** A secret anyone else can write is a secret anyone else can choose: forged run tokens, a chosen admin token. */
function checkWritable(out: Issues, at: string, file: string, mode: number, production: boolean) {
  if ((mode & 0o022) === 0) return;
  const say = production ? error : warning;
  say(out, at, `${file}: writable by group or others (mode ${(mode & 0o777).toString(8)})`, `chmod go-w ${file}`);
}

export interface FileCheckOptions {
  /** SLUICE_ENV=production: permissions and token lengths are errors rather than warnings. */
  readonly production: boolean;
  readonly inspect?: InspectFile;
}

/** Every problem with the files `config` refers to. Errors stop `serve` (and fail `check`). */
export function fileIssues(config: SluiceConfig, opts: FileCheckOptions): ConfigIssue[] {
  const inspect = opts.inspect ?? inspectFile;
  const out: Issues = [];
  if (config.tokens) {
    const at = '/tokens/keyFile';
    const file = config.tokens.keyFile;
    const f = requireFile(out, at, file, inspect, `create it: head -c 48 /dev/urandom | base64 > ${file}`);
    if (f?.bytes) {
      const key = secretOf(f.bytes);
      if (key.length < MIN_KEY_BYTES)
        error(
          out,
          at,
          `${file}: holds ${key.length} bytes of key; at least ${MIN_KEY_BYTES} are required`,
          `head -c 48 /dev/urandom | base64 > ${file}`,
        );
      checkWritable(out, at, file, f.mode, opts.production);
    }
  }
  if (config.admin.tokenFile) {
    const at = '/admin/tokenFile';
    const file = config.admin.tokenFile;
    const f = requireFile(out, at, file, inspect, `create it: openssl rand -hex 32 > ${file}`);
    if (f?.bytes) {
      const token = secretOf(f.bytes);
      const exposed = config.listen.admin !== null && !isLoopbackListen(config.listen.admin);
      if (token.length === 0) error(out, at, `${file}: is empty`, `openssl rand -hex 32 > ${file}`);
      else if (token.length < MIN_ADMIN_TOKEN_BYTES) {
        (opts.production || exposed ? error : warning)(
          out,
          at,
          `${file}: holds ${token.length} bytes; at least ${MIN_ADMIN_TOKEN_BYTES} are required in production and beyond loopback`,
          `openssl rand -hex 32 > ${file}`,
        );
      }
      checkWritable(out, at, file, f.mode, opts.production);
    }
  }
  if (config.upstream.caFile) {
    const at = '/upstream/caFile';
    const file = config.upstream.caFile;
    const f = requireFile(
      out,
      at,
      file,
      inspect,
      'point it at a PEM bundle of the extra CAs upstream servers use, or remove upstream.caFile',
    );
    if (f?.bytes) {
      const problem =
        f.bytes.length > MAX_CA_BYTES ? `larger than ${MAX_CA_BYTES} bytes` : pemProblem(f.bytes.toString('utf8'));
      if (problem)
        error(out, at, `${file}: ${problem}`, 'it must hold one or more "-----BEGIN CERTIFICATE-----" blocks');
    }
  }
  if (config.killSwitch.file) {
    const at = '/killSwitch/file';
    const file = config.killSwitch.file;
    const dir = inspect(dirname(file), false);
    if (dir.kind === 'missing' || dir.kind === 'file' || dir.kind === 'other') {
      error(
        out,
        at,
        `${dirname(file)}: ${dir.kind === 'missing' ? 'no such directory' : 'not a directory'}, so the kill-switch file could never be created`,
        `mkdir -p ${dirname(file)}`,
      );
    } else if (dir.kind === 'unreadable') {
      warning(
        out,
        at,
        `${dirname(file)}: cannot be searched (${dir.code}); the kill switch counts as engaged while ${file} cannot be checked`,
      );
    } else {
      const f = inspect(file, false);
      if (f.kind === 'unreadable')
        warning(out, at, `${file}: cannot be checked (${f.code}); the kill switch counts as engaged`);
      else if (f.kind !== 'missing')
        warning(
          out,
          at,
          `${file} exists: the kill switch is engaged and every request will be denied`,
          `rm ${file} to disengage`,
        );
    }
  }
  return out;
}

/** Null when `pem` holds at least one certificate and every certificate block in it parses. */
function pemProblem(pem: string): string | null {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) return 'holds no PEM certificate';
  for (const [i, block] of blocks.entries()) {
    try {
      new X509Certificate(block);
    } catch (err) {
      return `certificate ${i + 1} does not parse (${(err as Error).message})`;
    }
  }
  return null;
}

/** Refuses with the issues (what the runtime says at start and on a reload that cannot use the files). */
const throwIfErrors = (issues: readonly ConfigIssue[]): void => refuseErrors(issues);

const only = (config: SluiceConfig, keep: 'tokens' | 'admin' | 'upstream'): SluiceConfig => ({
  ...config,
  tokens: keep === 'tokens' ? config.tokens : null,
  admin: keep === 'admin' ? config.admin : { ...config.admin, tokenFile: null },
  upstream: keep === 'upstream' ? config.upstream : { ...config.upstream, caFile: null },
  killSwitch: { file: null },
});

const vanished = (file: string): never => {
  throw new SluiceError('SLUICE_ERR_FILE_CHANGED', `${file}: disappeared while it was being read`);
};

export function readTokenKey(config: SluiceConfig): Buffer | null {
  if (!config.tokens) return null;
  throwIfErrors(fileIssues(only(config, 'tokens'), { production: false }));
  return readSecretFile(config.tokens.keyFile) ?? vanished(config.tokens.keyFile);
}

export function readAdminToken(config: SluiceConfig): Buffer | null {
  if (!config.admin.tokenFile) return null;
  throwIfErrors(fileIssues(only(config, 'admin'), { production: false }));
  return readSecretFile(config.admin.tokenFile) ?? vanished(config.admin.tokenFile);
}

/** The extra CA bundle (PEM), or null when none is configured. */
export function readCaFile(config: SluiceConfig): string | null {
  if (!config.upstream.caFile) return null;
  throwIfErrors(fileIssues(only(config, 'upstream'), { production: false }));
  return readFileSync(config.upstream.caFile, 'utf8');
}
