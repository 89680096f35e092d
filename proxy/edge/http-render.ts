// How the HTTP listener renders a denial: status from the codes table, RFC 9209 Proxy-Status naming the code,
// Proxy-Authenticate only on 407, Retry-After on 429, and a one-line body. Never any request data.
import type { ServerResponse } from 'node:http';
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { CODES, type Deny, denyMessage, proxyStatusValue } from '../../firewall/codes.js';

export const PROXY_AUTHENTICATE = 'Basic realm="sluice", charset="UTF-8"';

function denyHeaders(d: Deny, body: string, close: boolean): [string, string][] {
  const c = CODES[d.code];
  const h: [string, string][] = [
    ['Content-Type', 'text/plain; charset=utf-8'],
    ['Content-Length', String(Buffer.byteLength(body))],
    ['Cache-Control', 'no-store'],
    ['Proxy-Status', proxyStatusValue(d.code)],
  ];
  if (c.status === 407) h.push(['Proxy-Authenticate', PROXY_AUTHENTICATE]);
  if (c.status === 429) h.push(['Retry-After', String(Math.max(1, Math.ceil(d.retryAfterS ?? 1)))]);
  if (close) h.push(['Connection', 'close']);
  return h;
}

// Malformed input leaves the connection state unknown: close it rather than parse what follows.
const mustClose = (d: Deny) => CODES[d.code].kind === 'request' || d.code === 'EGR_INTERNAL';

export function renderDeny(res: ServerResponse, d: Deny, requestId: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = denyMessage(d.code, requestId) + '\n';
  const close = mustClose(d);
  res.shouldKeepAlive = res.shouldKeepAlive && !close;
  res.writeHead(CODES[d.code].status, denyHeaders(d, body, close).flat());
  res.end(body);
}

/** For CONNECT and parse errors, where the listener holds a raw socket rather than a response object. */
export function renderDenyRaw(socket: Duplex, d: Deny, requestId: string | null): void {
  if (socket.destroyed || !socket.writable) {
    socket.destroy();
    return;
  }
  const status = CODES[d.code].status;
  const body = denyMessage(d.code, requestId ?? undefined) + '\n';
  let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n`;
  for (const [k, v] of denyHeaders(d, body, true)) head += `${k}: ${v}\r\n`;
  socket.end(`${head}\r\n${body}`);
}
