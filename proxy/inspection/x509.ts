// @peculiar/x509 over node:crypto's WebCrypto: every certificate Sluice makes is built by this library, never
// by hand-written ASN.1. Loaded on first use, not at start: the library and its ASN.1 schemas are ~60 ms of CPU
// and ~10 MiB of RSS that a sidecar which never inspects TLS would pay in every pod. It resolves its classes
// through tsyringe, which needs the Reflect metadata API, so the polyfill is required before the library.
import type * as X509 from '@peculiar/x509';
import { webcrypto } from 'node:crypto';
import { createRequire } from 'node:module';

export type { Extension, Name } from '@peculiar/x509';

let loaded: typeof X509 | null = null;

function load(): typeof X509 {
  if (loaded) return loaded;
  createRequire(import.meta.url)('reflect-metadata');
  const lib = createRequire(import.meta.url)('@peculiar/x509') as typeof X509;
  lib.cryptoProvider.set(webcrypto as unknown as Parameters<typeof lib.cryptoProvider.set>[0]);
  return (loaded = lib);
}

/** The library, loaded when a property is first read (a CA is read or made, a leaf minted). */
export const x509: typeof X509 = new Proxy({} as typeof X509, {
  get: (_target, key) => load()[key as keyof typeof X509],
});
export const subtle = webcrypto.subtle;
