// How a credential's secret enters a request, one implementation per `inject.type`. An injector owns one
// header (its slot): it recognises a handle there in the form it accepts, and renders what goes upstream in
// its place. Anything else — a handle in another form, in another header, anywhere in the URL or body — is
// the request check's business, and a denial.
//
// Extension point: a signing processor (HMAC request signing, AWS SigV4) is one more `inject.type` in
// firewall/credential-config.ts and one more case in createInjector(). Its render() gets the method, path
// and headers in InjectContext and may return several header pairs (a signature and the headers it signs).
// A processor that signs the body needs the whole body before the headers leave, which the streaming
// forwarder does not hold; such a processor must declare `needsBody` and the pipeline must buffer (bounded)
// for it — the two built-in types need neither.
import type { InjectConfig } from '../../firewall/credential-config.js';
import { SECRET_PLACEHOLDER } from '../../firewall/credential-config.js';
import { HANDLE_PREFIX, handleAt } from './handle.js';
import type { SecretValue } from './secret-value.js';
import { SluiceError } from '../../firewall/errors.js';

export interface SlotHandle {
  readonly handle: string;
  /** Basic only: the username the client sent. */
  readonly user: string | null;
}

export interface InjectContext {
  readonly slot: SlotHandle;
  readonly secret: SecretValue;
  readonly method: string;
  readonly path: string;
  /** The request's headers as the client sent them (flat name/value list). */
  readonly rawHeaders: readonly string[];
}

export interface Injector {
  readonly type: InjectConfig['type'];
  /** Lower-case name of the header this injector owns. */
  readonly slot: string;
  /** The handle in a slot value of the accepted form; null when the value holds none in that form. */
  parse(value: string): SlotHandle | null;
  /** Header pairs that replace the slot header upstream. */
  render(ctx: InjectContext): readonly (readonly [name: string, value: string])[];
}

// The whole value is one handle, or an auth scheme and one handle: `Bearer h`, `token h`, `h`.
const SCHEME = /^[A-Za-z][A-Za-z0-9._~+/-]* +$/;

function wholeHandle(value: string, from = 0): { handle: string; before: string; after: string } | null {
  const at = value.indexOf(HANDLE_PREFIX, from);
  if (at === -1) return null;
  const handle = handleAt(value, at);
  if (!handle) return null;
  return { handle, before: value.slice(from, at), after: value.slice(at + handle.length) };
}

function headerInjector(name: string, template: string): Injector {
  const [tplBefore, tplAfter] = template.split(SECRET_PLACEHOLDER) as [string, string];
  const lb = tplBefore.toLowerCase();
  const la = tplAfter.toLowerCase();
  return {
    type: 'header',
    slot: name,
    parse(value) {
      const w = wholeHandle(value);
      if (!w) return null;
      const asTemplate = w.before.toLowerCase() === lb && w.after.toLowerCase() === la;
      const asScheme = w.after === '' && (w.before === '' || SCHEME.test(w.before));
      return asTemplate || asScheme ? { handle: w.handle, user: null } : null;
    },
    // The operator's template decides the form upstream, whatever scheme the client used.
    render: (ctx) => [[name, tplBefore + ctx.secret.revealText() + tplAfter]],
  };
}

const BASIC = /^basic +([A-Za-z0-9+/]+={0,2})$/i;

function basicInjector(username: string | null): Injector {
  return {
    type: 'basic',
    slot: 'authorization',
    parse(value) {
      const m = BASIC.exec(value);
      if (!m) return null;
      const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon === -1) return null;
      const pass = decoded.slice(colon + 1);
      const w = wholeHandle(pass);
      return w && w.before === '' && w.after === '' ? { handle: w.handle, user: decoded.slice(0, colon) } : null;
    },
    render(ctx) {
      const user = username ?? ctx.slot.user ?? '';
      return [
        ['authorization', `Basic ${Buffer.from(`${user}:${ctx.secret.revealText()}`, 'utf8').toString('base64')}`],
      ];
    },
  };
}

export function createInjector(config: InjectConfig): Injector {
  switch (config.type) {
    case 'header':
      return headerInjector(config.name, config.template);
    case 'basic':
      return basicInjector(config.username);
    default:
      throw new SluiceError(
        'SLUICE_ERR_INVARIANT',
        `unknown inject type ${(config satisfies never as { type: string }).type}`,
      );
  }
}
