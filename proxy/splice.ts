// Joins a client connection and an upstream socket until either side is done. Shared by CONNECT/SOCKS5
// tunnels and HTTP upgrades. Counts bytes from the upstream socket (what actually left and came back).
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
      client.end(() => client.destroy());
      closed();
    });
    if (opts.idleTimeoutMs) {
      const idle = opts.idleTimeoutMs;
      upstream.setTimeout(idle, kill);
      if ('setTimeout' in client && typeof (client as Socket).setTimeout === 'function') (client as Socket).setTimeout(idle, kill);
    }
    client.pipe(upstream);
    upstream.pipe(client);
    client.resume();
  });
}
