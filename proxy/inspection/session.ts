// The inspected session: Sluice completes the client's TLS handshake with a leaf for the tunnel's host, then
// reads HTTP/1.1 requests inside with Node's own parser and hands each one, unjudged, to the caller. What
// this module refuses by itself is what no policy could allow: a ClientHello that does not name the tunnel's
// host, TLS below 1.2, renegotiation, broken framing, an HTTP/2 preface, CONNECT inside the tunnel.
//
// One internal http.Server (never listening) serves every session of an inspector: each decrypted socket is
// handed to it with `emit('connection')`, so keep-alive, pipelining, chunked bodies and the strict parser are
// Node's, configured like the HTTP listener's.
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { TLSSocket } from 'node:tls';
import { type Deny, deny } from '../../firewall/codes.js';
import { normaliseHost, parseAbsoluteTarget, parseAuthority } from '../../firewall/normalise.js';
import { renderDenyRaw } from '../edge/http-render.js';
import { parseClientHello } from '../edge/tls-client-hello.js';
import { type ClientTlsFailure, classifyClientTlsError } from './client-tls.js';
import type { Leaf } from './leaves.js';
import { NO_OBSERVER, type InspectionObserver } from './observer.js';

export interface SessionFacts {
  /** The tunnel's host: normalised, what the CONNECT / SOCKS5 request named and the leaf was minted for. */
  readonly host: string;
  readonly port: number;
  readonly tunnelId: string;
}

/** Whether a request inside names the tunnel's host. Not ok → the caller answers 421 (EGR_MISDIRECTED). */
export type AuthorityCheck =
  { readonly ok: true } | { readonly ok: false; readonly reason: 'missing' | 'multiple' | 'invalid' | 'other-host' };

export interface InnerRequest {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly session: SessionFacts;
  /** 1 for the session's first request. */
  readonly index: number;
  /** What the pipeline judges: `https://host[:port]` of the tunnel, then `path`. Never built from `Host`. */
  readonly url: string;
  /** Origin-form path and query (an absolute-form target inside is reduced to its path). */
  readonly path: string;
  readonly authority: AuthorityCheck;
}

export interface InnerUpgrade extends Omit<InnerRequest, 'res'> {
  /** The decrypted client stream; the handler owns it from here on. */
  readonly socket: Duplex;
  readonly head: Buffer;
}

export interface SessionHandlers {
  /** Every request inside, headers read, body not yet. The handler judges it and answers through `res`. */
  request(r: InnerRequest): void;
  /** A request with `Upgrade:` (WebSocket). Without this handler such a request is refused (EGR_UNSUPPORTED). */
  upgrade?(u: InnerUpgrade): void;
  /** Something this module refused by itself inside the session (the answer is already on its way; the
   * connection then closes). Returns the request id to print in the answer, for the audit record. */
  refused?(d: Deny, session: SessionFacts): string | null;
}

export type HandshakeOutcome =
  | { readonly ok: true; readonly protocol: string; readonly cipher: string; readonly alpn: string | false }
  | ClientTlsFailure;

export interface SessionSummary {
  readonly handshake: HandshakeOutcome;
  /** Requests read inside (upgrades included). */
  readonly requests: number;
}

export interface InspectedSession {
  /**
   * Settles once: the handshake completed, or the client's failure (EGR_CLIENT_TLS with reason and alert). Never
   * rejects.
   */
  readonly handshake: Promise<HandshakeOutcome>;
  /** Settles when the session is over, whoever ended it. Never rejects. */
  readonly closed: Promise<SessionSummary>;
  readonly requests: number;
  /** Ends the session now (kill switch, idle, run-token expiry, reload): both the TLS layer and the client socket. */
  destroy(): void;
}

export interface InspectOptions {
  /** The client's connection after the proxy sent its 200 / SOCKS5 success. No 'data' listener may remain on it. */
  readonly socket: Duplex;
  /** Every byte already read from the socket: the ClientHello (and anything after it). Replayed first. */
  readonly head: Buffer;
  readonly leaf: Leaf;
  readonly facts: SessionFacts;
  readonly handlers: SessionHandlers;
}

export interface InspectionLimits {
  /** Time for the client to finish its handshake. */
  readonly handshakeTimeoutMs: number;
  /** Time for the next request's headers, from the handshake or the end of the previous response. */
  readonly headersTimeoutMs: number;
  /** A session with no bytes either way for this long is closed. */
  readonly idleTimeoutMs: number;
  readonly maxHeaderBytes: number;
}

export interface Inspector {
  /**
   * Terminates TLS on `socket` and serves the requests inside. A Deny instead of a session means the inputs
   * contradict each other (the ClientHello does not name `facts.host` as its one SNI, or the leaf is for
   * another host): the socket is destroyed, nothing is minted or served, and the caller audits the Deny.
   */
  inspect(o: InspectOptions): InspectedSession | Deny;
  /** Sessions open now. */
  readonly sessions: number;
  /** Graceful shutdown: sessions with no request in flight end now, the others once their last answer is sent
   * (with `Connection: close`). */
  drain(): void;
  /** Ends every session and stops the internal server. */
  close(): void;
}

const RULE = 'inspection.session';
export const ALPN = Object.freeze(['http/1.1']);

interface Live {
  readonly facts: SessionFacts;
  readonly handlers: SessionHandlers;
  readonly tls: TLSSocket;
  requests: number;
  inFlight: number;
  /** Answers not yet finished (a graceful shutdown marks them Connection: close). */
  readonly answering: Set<ServerResponse>;
  upgraded: boolean;
  headersTimer: NodeJS.Timeout | null;
  armHeaders(): void;
}

/** Host (or an absolute-form target) against the tunnel: same normalised name, same port (443 unless said). */
export function checkAuthority(req: IncomingMessage, facts: SessionFacts): { authority: AuthorityCheck; path: string } {
  const raw = req.url ?? '/';
  if (!raw.startsWith('/')) {
    // Absolute-form (RFC 9112 §3.2.2): the target carries the authority and Host is ignored.
    const t = parseAbsoluteTarget(raw);
    if ('verdict' in t || t.scheme !== 'https') return { authority: { ok: false, reason: 'invalid' }, path: '/' };
    const same = t.target.host === facts.host && t.target.port === facts.port;
    return { authority: same ? { ok: true } : { ok: false, reason: 'other-host' }, path: t.path };
  }
  let hosts = 0;
  for (let i = 0; i < req.rawHeaders.length; i += 2) if (req.rawHeaders[i]!.toLowerCase() === 'host') hosts++;
  if (hosts === 0) return { authority: { ok: false, reason: 'missing' }, path: raw };
  if (hosts > 1) return { authority: { ok: false, reason: 'multiple' }, path: raw };
  const a = parseAuthority(req.headers.host ?? '', 443);
  if ('verdict' in a) return { authority: { ok: false, reason: 'invalid' }, path: raw };
  const same = a.target.host === facts.host && a.target.port === facts.port;
  return { authority: same ? { ok: true } : { ok: false, reason: 'other-host' }, path: raw };
}

const originOf = (f: SessionFacts) => (f.port === 443 ? `https://${f.host}` : `https://${f.host}:${f.port}`);

export function createInspector(opts: {
  readonly limits: InspectionLimits;
  readonly observer?: InspectionObserver;
}): Inspector {
  const { limits } = opts;
  const observer = opts.observer ?? NO_OBSERVER;
  const live = new WeakMap<object, Live>();
  const open = new Set<Live>();
  let draining = false;

  const server: Server = createServer({
    // Host is checked against the tunnel here (checkAuthority), so that a missing one is a 421 the caller
    // renders and audits rather than a bare 400 from Node.
    requireHostHeader: false,
    maxHeaderSize: limits.maxHeaderBytes,
    insecureHTTPParser: false,
    requestTimeout: 0,
    // Node's own headers timer runs only for a listening server; this one never listens (see armHeaders).
    headersTimeout: 0,
    keepAliveTimeout: limits.headersTimeoutMs,
  });
  server.timeout = limits.idleTimeoutMs;

  const refuse = (s: Live | undefined, socket: Duplex, d: Deny) => {
    const id = s?.handlers.refused?.(d, s.facts) ?? null;
    renderDenyRaw(socket, d, id);
  };

  const track = (s: Live) => {
    s.requests++;
    observer.requestInside();
    if (s.headersTimer) clearTimeout(s.headersTimer);
    s.headersTimer = null;
  };

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const s = live.get(req.socket);
    if (!s) {
      req.socket.destroy();
      return;
    }
    track(s);
    // llhttp accepts HTTP/0.9 lines and reads "PRI * HTTP/2.0" (the h2 preface) as a request: only 1.x here.
    if (req.httpVersionMajor !== 1 || req.method === 'PRI') {
      const d =
        req.method === 'PRI'
          ? deny('EGR_UNSUPPORTED', RULE, 'HTTP/2 preface in an HTTP/1.1 session')
          : deny('EGR_BAD_REQUEST', RULE, 'not HTTP/1.x');
      return refuse(s, req.socket, d);
    }
    s.inFlight++;
    s.answering.add(res);
    if (draining) res.shouldKeepAlive = false;
    res.once('close', () => {
      s.inFlight--;
      s.answering.delete(res);
      if (s.inFlight === 0) {
        if (draining && !s.upgraded) s.tls.destroy();
        else s.armHeaders();
      }
    });
    const { authority, path } = checkAuthority(req, s.facts);
    try {
      s.handlers.request({
        req,
        res,
        session: s.facts,
        index: s.requests,
        url: originOf(s.facts) + path,
        path,
        authority,
      });
    } catch (e) {
      // A bug in the handler is a denial of this request, never a crash of every session.
      refuse(s, req.socket, deny('EGR_INTERNAL', RULE, `request handler threw: ${(e as Error)?.message ?? String(e)}`));
    }
  });

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const s = live.get(socket);
    if (!s) {
      socket.destroy();
      return;
    }
    track(s);
    s.upgraded = true;
    if (req.httpVersionMajor !== 1) return refuse(s, socket, deny('EGR_BAD_REQUEST', RULE, 'not HTTP/1.x'));
    if (!s.handlers.upgrade)
      return refuse(s, socket, deny('EGR_UNSUPPORTED', RULE, 'upgrade inside an inspected session'));
    const { authority, path } = checkAuthority(req, s.facts);
    try {
      s.handlers.upgrade({
        req,
        socket,
        head,
        session: s.facts,
        index: s.requests,
        url: originOf(s.facts) + path,
        path,
        authority,
      });
    } catch (e) {
      refuse(s, socket, deny('EGR_INTERNAL', RULE, `upgrade handler threw: ${(e as Error)?.message ?? String(e)}`));
    }
  });

  server.on('connect', (req: IncomingMessage, socket: Duplex) => {
    const s = live.get(socket);
    if (s) track(s);
    refuse(s, socket, deny('EGR_UNSUPPORTED', RULE, 'CONNECT inside an inspected session'));
  });

  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    const s = live.get(socket);
    const code = err.code ?? '';
    // Resets, TLS errors and stalls get no answer: there is no request to answer, or no channel to answer on.
    if (!code.startsWith('HPE_') || !socket.writable) {
      socket.destroy();
      return;
    }
    // llhttp stops at the h2 preface ("PRI * HTTP/2.0") with a pause of its own.
    const d =
      code === 'HPE_PAUSED_H2_UPGRADE'
        ? deny('EGR_UNSUPPORTED', RULE, 'HTTP/2 preface in an HTTP/1.1 session')
        : deny('EGR_BAD_REQUEST', RULE, code);
    refuse(s, socket, d);
  });

  function refuseInputs(socket: Duplex, d: Deny): Deny {
    socket.destroy();
    return d;
  }

  return {
    inspect(o) {
      const { socket, facts, leaf, handlers } = o;
      // The caller checked this already; a leaf is never served for a name the client did not ask for.
      const hello = parseClientHello(o.head);
      if (hello.state !== 'ok') return refuseInputs(socket, deny('EGR_BAD_REQUEST', RULE, 'no complete ClientHello'));
      const sni = hello.sni === null ? null : normaliseHost(hello.sni);
      if (hello.sniCount !== 1 || hello.ech || sni === null || 'verdict' in sni || sni.host !== facts.host) {
        return refuseInputs(socket, deny('EGR_DENY_SNI_MISMATCH', RULE, 'ClientHello does not name the tunnel host'));
      }
      if (leaf.host !== facts.host)
        return refuseInputs(socket, deny('EGR_INTERNAL', RULE, 'leaf minted for another host'));

      socket.unshift(o.head);
      const tls = new TLSSocket(socket as Socket, {
        isServer: true,
        secureContext: leaf.secureContext,
        ALPNProtocols: [...ALPN],
        requestCert: false,
        rejectUnauthorized: false,
      });

      let settleHandshake!: (h: HandshakeOutcome) => void;
      let settleClosed!: (s: SessionSummary) => void;
      const handshake = new Promise<HandshakeOutcome>((r) => (settleHandshake = r));
      const closed = new Promise<SessionSummary>((r) => (settleClosed = r));
      let outcome: HandshakeOutcome | null = null;
      const s: Live = {
        facts,
        handlers,
        tls,
        requests: 0,
        inFlight: 0,
        answering: new Set(),
        upgraded: false,
        headersTimer: null,
        armHeaders() {
          if (this.headersTimer) clearTimeout(this.headersTimer);
          this.headersTimer = null;
          if (this.upgraded || tls.destroyed) return;
          // A client that opens a session (or finishes a request) and then trickles header bytes is cut off.
          this.headersTimer = setTimeout(() => tls.destroy(), limits.headersTimeoutMs);
          this.headersTimer.unref();
        },
      };

      const fail = (f: ClientTlsFailure) => {
        if (outcome) return;
        outcome = f;
        observer.clientHandshakeFailed(f.reason);
        settleHandshake(f);
        tls.destroy();
        socket.destroy();
      };
      const handshakeTimer = setTimeout(() => fail(classifyClientTlsError(null, 'timeout')), limits.handshakeTimeoutMs);
      handshakeTimer.unref();

      // Before the handshake completes, OpenSSL's errors are the client's failure; afterwards they belong to
      // the HTTP server (clientError).
      const onHandshakeError = (e: NodeJS.ErrnoException) => fail(classifyClientTlsError(e));
      tls.on('error', onHandshakeError);
      tls.once('secure', () => {
        clearTimeout(handshakeTimer);
        tls.off('error', onHandshakeError);
        // From here the HTTP server listens for errors too; this one outlives an upgrade or a refusal.
        tls.on('error', () => tls.destroy());
        const protocol = tls.getProtocol() ?? '';
        // minVersion in the leaf's context already refuses these; checked again because it is the promise.
        if (protocol !== 'TLSv1.2' && protocol !== 'TLSv1.3')
          return fail(classifyClientTlsError({ code: 'ERR_SSL_UNSUPPORTED_PROTOCOL' }));
        outcome = { ok: true, protocol, cipher: tls.getCipher()?.name ?? '', alpn: tls.alpnProtocol ?? false };
        observer.sessionStarted();
        live.set(tls, s);
        open.add(s);
        settleHandshake(outcome);
        server.emit('connection', tls);
        s.armHeaders();
      });
      tls.once('close', () => {
        clearTimeout(handshakeTimer);
        if (s.headersTimer) clearTimeout(s.headersTimer);
        open.delete(s);
        if (!outcome) fail(classifyClientTlsError(null, 'closed'));
        socket.destroy();
        settleClosed({ handshake: outcome!, requests: s.requests });
      });
      socket.once('close', () => tls.destroy());
      // The client may have gone while the leaf was minted.
      if (socket.destroyed) fail(classifyClientTlsError(null, 'closed'));
      // A reset of the client's socket surfaces on the TLS socket; nothing more to do with it here.
      socket.on('error', () => tls.destroy());

      return {
        handshake,
        closed,
        get requests() {
          return s.requests;
        },
        destroy() {
          tls.destroy();
          socket.destroy();
        },
      };
    },
    get sessions() {
      return open.size;
    },
    drain() {
      draining = true;
      for (const s of open) {
        if (s.inFlight === 0 && !s.upgraded) s.tls.destroy();
        else for (const res of s.answering) if (!res.headersSent) res.shouldKeepAlive = false;
      }
    },
    close() {
      for (const s of open) s.tls.destroy();
      open.clear();
      server.close();
    },
  };
}
