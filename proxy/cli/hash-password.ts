// `sluice hash-password`: a password on stdin, a passwordHash for the config on stdout.
import { hashPassword } from '../auth/password-hash.js';
import { fail, out } from './output.js';

export async function hashPasswordCommand() {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  const password = Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
  if (password.length < 12) fail('password must be at least 12 characters');
  out(await hashPassword(password));
}
