// undici's request() wants a Dispatcher; the dialer lends only its dispatch (its Agent never leaves it).
import { Dispatcher } from 'undici';
import type { Dialer } from '../../proxy/egress/dialer.js';

export function viaDialer(dialer: Dialer): Dispatcher {
  return new (class extends Dispatcher {
    override dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
      return dialer.dispatch(options, handler);
    }
  })();
}
