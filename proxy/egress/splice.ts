// Joins a client connection and an upstream socket until either side is done. Shared by CONNECT/SOCKS5
// tunnels and HTTP upgrades. Counts bytes from the upstream socket (what actually left and came back).
//
// Memory per open tunnel is the figure that limits how many idle tunnels a replica holds, so the data path
// allocates nothing per tunnel: the two sides point at each other and share module-level handlers, where
// stream.pipe() would add nine closures per direction. Only the upstream socket carries the idle timer:
// every byte either way is a read or a write on it.
//
// Downloads are the bulk of tunnel traffic, and Node's default read path allocates a fresh 64 KiB buffer for
// every read and runs each chunk through the Readable machinery; for a busy tunnel that was half the proxy's
// CPU (allocation, page faults and GC). An upstream socket dialled with SPLICE_READS (net's `onread`) reads
// into buffers this module hands out instead — see onUpstreamRead for why that is safe.
import type { OnReadOpts, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Deny } from '../../firewall/codes.js';

/** A flow's entry in the flow registry (proxy/runtime/flows.ts), as the code that carries its bytes sees it. */
export interface FlowLink {
  /** Hands over how to close the flow now (kill switch, expiry, revocation), given the denial that applies
   * (null for idle); a later bind replaces an earlier one, and a flow already closed is closed at once. */
  bind(close: (why: Deny | null) => void): void;
  /** The carrier saw nothing move for the idle timeout: close the flow, recording why. */
  idle(): void;
  /** Report mode let a denial found after decide() through (a tunnel's SNI check): enforced again if a reload
   * ends report mode. */
  liftedByReport(d: Deny): void;
}

export interface Spliced {
  readonly bytesUp: number;
  readonly bytesDown: number;
}

const PEER = Symbol('splice.peer');
/** Bytes an upstream socket read (into SPLICE_READS buffers) before splice() gave it a peer. */
const EARLY = Symbol('splice.early');
/** What both sides of one tunnel share: the only per-tunnel object the handlers below need. */
interface Link {
  readonly client: Duplex;
  readonly upstream: Socket;
  open: number;
  flow: FlowLink | undefined;
  resolve: (r: Spliced) => void;
}
const LINK = Symbol('splice.link');
type Side = Duplex & { [PEER]?: Duplex; [EARLY]?: Buffer[]; [LINK]?: Link };

function forward(this: Side, chunk: Buffer): void {
  if (!this[PEER]!.write(chunk)) this.pause();
}
function drained(this: Side): void {
  this[PEER]!.resume();
}

const READ_BYTES = 64 * 1024;
/** A read at least this large marks a busy tunnel, which then reads into a buffer of its own. */
const BUSY_READ = 16 * 1024;
/** Quiet tunnels (most of them: idle, or in their handshake) all read into this one buffer. */
const shared = Buffer.allocUnsafeSlow(READ_BYTES);
/** The buffer for the next read of the socket whose read callback just ran (Node asks right after it). */
let nextBuffer: Buffer = shared;

/**
 * A write may hold on to the buffer it is given until the peer drains (a partial write keeps a reference,
 * it does not copy), and Node fixes each socket's next read buffer when its previous read ends. So:
 * - the shared buffer is never handed to a write: what lands there is copied out (small reads, cheap);
 * - a busy tunnel reads into a 64 KiB buffer of its own and writes it without copying; if the write keeps
 *   it, the next read gets a fresh one;
 * - a read smaller than BUSY_READ sends the tunnel back to the shared buffer, so an idle tunnel holds no
 *   buffer of its own (the idle-tunnel memory figure is unchanged).
 */
function onUpstreamRead(this: Side, nread: number, buf: Buffer): boolean {
  const busy = nread >= BUSY_READ;
  let chunk: Buffer;
  if (buf === shared) {
    chunk = Buffer.from(buf.subarray(0, nread));
    nextBuffer = busy ? Buffer.allocUnsafeSlow(READ_BYTES) : shared;
  } else {
    chunk = buf.subarray(0, nread);
    nextBuffer = busy ? buf : shared;
  }
  const peer = this[PEER];
  if (!peer) {
    // Nothing to write to yet: keep the chunk (a copy, or a view of a buffer no later read may reuse).
    (this[EARLY] ??= []).push(chunk);
    if (nextBuffer === buf) nextBuffer = Buffer.allocUnsafeSlow(READ_BYTES);
    return true;
  }
  const ok = peer.write(chunk);
  // The peer still holds (part of) the chunk: `buf` is not free for the next read.
  if (nextBuffer === buf && peer.writableLength > 0) nextBuffer = Buffer.allocUnsafeSlow(READ_BYTES);
  if (!ok) this.pause();
  return ok;
}

/** `onread` options for an upstream socket that will be spliced (read the module comment). */
export const SPLICE_READS: OnReadOpts = Object.freeze({ buffer: () => nextBuffer, callback: onUpstreamRead });

// Tunnel lifecycle handlers, shared by every tunnel like forward() and drained(): `this` is either side, and
// the Link holds the rest. once() would add a wrapper and a closure per event per tunnel, and idle tunnels
// are what limits a replica's memory.
function kill(this: Side): void {
  const l = this[LINK]!;
  l.client.destroy();
  l.upstream.destroy();
}
/** The idle timer: through the flow (so its record says why), or directly without one. */
function timedOut(this: Side): void {
  const l = this[LINK]!;
  if (l.flow) l.flow.idle();
  else kill.call(this);
}
function closed(l: Link): void {
  if (--l.open > 0) return;
  l.flow = undefined;
  l.resolve({ bytesUp: l.upstream.bytesWritten, bytesDown: l.upstream.bytesRead });
}
function clientClosed(this: Side): void {
  const l = this[LINK]!;
  l.upstream.destroy();
  closed(l);
}
function upstreamClosed(this: Side): void {
  // Upstream is gone both ways: flush what it sent to the client, then close (nothing can flow back).
  const { client } = this[LINK]!;
  client.removeListener('data', forward);
  client.end(() => client.destroy());
  closed(this[LINK]!);
}
/** The client's end of input is passed on as a half-close, as pipe() would. */
function clientEnded(this: Side): void {
  this[LINK]!.upstream.end();
}

export function splice(
  client: Duplex,
  upstream: Socket,
  opts: { idleTimeoutMs?: number; flow?: FlowLink | undefined; upstreamReads?: typeof SPLICE_READS } = {},
): Promise<Spliced> {
  return new Promise((resolve) => {
    const up = upstream as Side;
    const link: Link = { client, upstream, open: 2, flow: opts.flow, resolve };
    (client as Side)[LINK] = link;
    up[LINK] = link;
    // Closing events are emitted later, so a flow closed already (bind closes at once) still resolves below.
    opts.flow?.bind(() => kill.call(up));
    client.on('error', kill);
    upstream.on('error', kill);
    client.on('close', clientClosed);
    upstream.on('close', upstreamClosed);
    client.on('end', clientEnded);
    if (opts.idleTimeoutMs) {
      upstream.setTimeout(opts.idleTimeoutMs);
      upstream.on('timeout', timedOut);
      // A timer the HTTP server armed on the client socket has no listener left after CONNECT: disarm it.
      if (typeof (client as Socket).setTimeout === 'function') (client as Socket).setTimeout(0);
    }
    (client as Side)[PEER] = upstream;
    up[PEER] = client;
    if (up[EARLY]) {
      for (const chunk of up[EARLY]) client.write(chunk);
      delete up[EARLY];
    }
    client.on('data', forward);
    if (opts.upstreamReads !== SPLICE_READS) upstream.on('data', forward);
    client.on('drain', drained);
    upstream.on('drain', drained);
    client.resume();
  });
}
