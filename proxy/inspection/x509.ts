// @peculiar/x509 over node:crypto's WebCrypto: every certificate Sluice makes is built by this library, never
// by hand-written ASN.1. It resolves its classes through tsyringe, which needs the Reflect metadata API, so the
// polyfill must be evaluated before the library (ES modules evaluate imports in order).
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { webcrypto } from 'node:crypto';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

export { x509 };
export const subtle = webcrypto.subtle;
