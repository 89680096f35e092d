// Joins a client connection and an upstream socket until either side is done. Shared by CONNECT/SOCKS5
// tunnels and HTTP upgrades. Counts bytes from the upstream socket (what actually left and came back).
//
// Memory per open tunnel is the figure that limits how many idle tunnels a replica holds, so the data path
// allocates nothing per tunnel: the two sides point at each other and share module-level handlers, where
// stream.pipe() would add nine closures per direction. Only the upstream socket carries the idle timer:
// every byte either way is a read or a write on it.
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';

export interface TunnelRegistry {
  /** Registers a way to close an open tunnel (the kill switch uses it); returns the unregister function. */
  add(close: () => void): () => void;
}

export interface Spliced {
  readonly bytesUp: number;
  readonly bytesDown: number;
}

const PEER = Symbol('splice.peer');
type Side = Duplex & { [PEER]?: Duplex };

function forward(this: Side, chunk: Buffer): void {
  if (!this[PEER]!.write(chunk)) this.pause();
}
function drained(this: Side): void {
  this[PEER]!.resume();
}

export function splice(client: Duplex, upstream: Socket, opts: { idleTimeoutMs?: number; registry?: TunnelRegistry | undefined } = {}): Promise<Spliced> {
  return new Promise((resolve) => {
    let open = 2;
    const kill = () => {
      client.destroy();
      upstream.destroy();
    };
    const unregister = opts.registry?.add(kill);
    const closed = () => {
      if (--open > 0) return;
      unregister?.();
      resolve({ bytesUp: upstream.bytesWritten, bytesDown: upstream.bytesRead });
    };
    client.on('error', kill);
    upstream.on('error', kill);
    client.once('close', () => {
      upstream.destroy();
      closed();
    });
    upstream.once('close', () => {
      // Upstream is gone both ways: flush what it sent to the client, then close (nothing can flow back).
      client.removeListener('data', forward);
      client.end(() => client.destroy());
      closed();
    });
    // The client's end of input is passed on as a half-close, as pipe() would.
    client.once('end', () => upstream.end());
    if (opts.idleTimeoutMs) {
      upstream.setTimeout(opts.idleTimeoutMs, kill);
      // A timer the HTTP server armed on the client socket has no listener left after CONNECT: disarm it.
      if (typeof (client as Socket).setTimeout === 'function') (client as Socket).setTimeout(0);
    }
    (client as Side)[PEER] = upstream;
    (upstream as Side)[PEER] = client;
    client.on('data', forward);
    upstream.on('data', forward);
    client.on('drain', drained);
    upstream.on('drain', drained);
    client.resume();
  });
}
