// Strict base64url (RFC 4648 §5, unpadded): Node's decoder skips characters it does not know and ignores
// non-zero trailing bits, so two different strings can decode to the same bytes. For a format we
// authenticate, only the one canonical spelling of a byte string is accepted.
const ALPHABET = /^[A-Za-z0-9_-]*$/;

export function decodeBase64urlStrict(text: string): Buffer | null {
  if (!ALPHABET.test(text) || text.length % 4 === 1) return null;
  const bytes = Buffer.from(text, 'base64url');
  return bytes.toString('base64url') === text ? bytes : null;
}
