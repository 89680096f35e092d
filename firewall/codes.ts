// The one table of every outcome code Sluice can give. It is the contract with operators and clients:
// the HTTP status, the SOCKS5 REP byte, the RFC 9209 Proxy-Status error type, the README table and the
// metric label all come from here. Tests match on `.code`, never on message text.

export type CodeKind = 'auth' | 'request' | 'policy' | 'address' | 'upstream' | 'limit' | 'internal';

export interface CodeSpec {
  readonly status: number;
  /** RFC 1928 REP byte. */
  readonly socks: number;
  /** RFC 9209 §2.3 proxy error type. */
  readonly proxyStatus: string;
  readonly kind: CodeKind;
  /** One sentence for the client and the README; never contains request data. */
  readonly summary: string;
}

// RFC 1928 §6 reply codes.
export const SOCKS_REP = {
  succeeded: 0x00,
  generalFailure: 0x01,
  notAllowed: 0x02,
  networkUnreachable: 0x03,
  hostUnreachable: 0x04,
  connectionRefused: 0x05,
  ttlExpired: 0x06,
  commandNotSupported: 0x07,
  addressTypeNotSupported: 0x08,
} as const;

const R = SOCKS_REP;

const table = {
  EGR_AUTH_REQUIRED: {
    status: 407,
    socks: R.notAllowed,
    proxyStatus: 'http_request_denied',
    kind: 'auth',
    summary: 'proxy credentials are required',
  },
  EGR_AUTH_INVALID: {
    status: 407,
    socks: R.notAllowed,
    proxyStatus: 'http_request_denied',
    kind: 'auth',
    summary: 'the proxy credentials are not valid',
  },
  EGR_AUTH_EXPIRED: {
    status: 407,
    socks: R.notAllowed,
    proxyStatus: 'http_request_denied',
    kind: 'auth',
    summary: 'the run token has expired; ask the orchestrator for a new one',
  },

  EGR_BAD_REQUEST: {
    status: 400,
    socks: R.generalFailure,
    proxyStatus: 'http_request_error',
    kind: 'request',
    summary: 'the request is malformed or ambiguous',
  },
  EGR_INVALID_TARGET: {
    status: 400,
    socks: R.hostUnreachable,
    proxyStatus: 'http_request_error',
    kind: 'request',
    summary: 'the target is not a valid host and port',
  },
  EGR_UNSUPPORTED: {
    status: 501,
    socks: R.commandNotSupported,
    proxyStatus: 'http_request_error',
    kind: 'request',
    summary: 'this kind of request is not supported by the proxy',
  },
  EGR_UNSUPPORTED_ADDRESS_TYPE: {
    status: 501,
    socks: R.addressTypeNotSupported,
    proxyStatus: 'http_request_error',
    kind: 'request',
    summary: 'this SOCKS5 address type is not supported (use IPv4, IPv6 or a domain name)',
  },
  // TLS inspection: the client's side of an inspected tunnel. EGR_CLIENT_TLS is only ever an audit record and a
  // metric: the client ended the handshake, so there is no HTTP response or SOCKS reply left to carry it.
  EGR_CLIENT_TLS: {
    status: 400,
    socks: R.generalFailure,
    proxyStatus: 'http_request_error',
    kind: 'request',
    summary:
      'the client ended the TLS handshake with Sluice: it does not trust the inspection CA, pins certificates, or offered only TLS below 1.2 or only h2',
  },
  EGR_MISDIRECTED: {
    status: 421,
    socks: R.generalFailure,
    proxyStatus: 'http_request_error',
    kind: 'request',
    summary: 'a request inside an inspected tunnel must name the tunnel host (Host or target)',
  },

  EGR_DENY_KILL_SWITCH: {
    status: 403,
    socks: R.notAllowed,
    proxyStatus: 'http_request_denied',
    kind: 'policy',
    summary: 'all egress is stopped by the kill switch',
  },
  EGR_DENY_GLOBAL: {
    status: 403,
    socks: R.notAllowed,
    proxyStatus: 'http_request_denied',
    kind: 'policy',
    summary: 'the destination is on the global deny list',
  },
  EGR_DENY_IP_LITERAL: {
    status: 403,
    socks: R.notAllowed,
    proxyStatus: 'http_request_denied',
    kind: 'policy',
    summary: 'IP address targets are not allowed; use a host name',
  },
  EGR_DENY_READ: {
    status: 403,
    socks: R.notAllowed,
    proxyStatus: 'http_request_denied',
    kind: 'policy',
    summary: 'this identity may not read from public hosts',
  },
  EGR_DENY_WRITE: {
    status: 403,
    socks: R.notAllowed,
    proxyStatus: 'http_request_denied',
    kind: 'policy',
    summary: 'writes are allowed only to the integrations granted to this identity',
  },
  EGR_DENY_DISGUISED_WRITE: {
    status: 403,
    socks: R.notAllowed,
    proxyStatus: 'http_request_denied',
    kind: 'policy',
    summary:
      'a read carrying a body, an Upgrade or a method override is a write, and the host is not a granted integration',
  },
  EGR_DENY_METHOD: {
    status: 403,
    socks: R.notAllowed,
    proxyStatus: 'http_request_denied',
    kind: 'policy',
    summary: 'this method is not allowed for this destination',
  },
  EGR_DENY_TUNNEL: {
    status: 403,
    socks: R.notAllowed,
    proxyStatus: 'http_request_denied',
    kind: 'policy',
    summary: 'tunnels may reach only package registries and integrations granted with tunnel: true',
  },
  EGR_DENY_PORT: {
    status: 403,
    socks: R.notAllowed,
    proxyStatus: 'http_request_denied',
    kind: 'policy',
    summary: 'this port is not allowed for this kind of request',
  },
  EGR_DENY_SNI_MISMATCH: {
    status: 403,
    socks: R.notAllowed,
    proxyStatus: 'http_request_denied',
    kind: 'policy',
    summary: 'the TLS ClientHello must name the tunnel host in its SNI (no ECH or draft ESNI, no missing SNI)',
  },
  EGR_DENY_UPGRADE: {
    status: 403,
    socks: R.notAllowed,
    proxyStatus: 'http_request_denied',
    kind: 'policy',
    summary:
      'an Upgrade opens an opaque channel, allowed only to an integration that lists the protocol in its upgrade setting',
  },

  // The credential broker (proxy/broker/): a handle out of its scope is an exfiltration attempt.
  EGR_DENY_CREDENTIAL_SCOPE: {
    status: 403,
    socks: R.notAllowed,
    proxyStatus: 'http_request_denied',
    kind: 'policy',
    summary:
      "a credential handle may be sent only by its own run, in the header its credential names, to that credential's integration over TLS",
  },
  EGR_DENY_CREDENTIAL_EXPIRED: {
    status: 403,
    socks: R.notAllowed,
    proxyStatus: 'http_request_denied',
    kind: 'policy',
    summary: 'the credential handle has expired; ask the orchestrator for a new one',
  },
  EGR_DENY_CREDENTIAL_REVOKED: {
    status: 403,
    socks: R.notAllowed,
    proxyStatus: 'http_request_denied',
    kind: 'policy',
    summary: 'the credential handle belongs to a run that has been revoked',
  },
  EGR_DENY_CREDENTIAL_FOREIGN: {
    status: 403,
    socks: R.notAllowed,
    proxyStatus: 'http_request_denied',
    kind: 'policy',
    summary:
      'Sluice injects the credential for this integration; send the handle you were given, not a token of your own',
  },

  EGR_DENY_ADDRESS_PRIVATE: {
    status: 403,
    socks: R.notAllowed,
    proxyStatus: 'destination_ip_prohibited',
    kind: 'address',
    summary: 'the destination resolves to a private address',
  },
  EGR_DENY_ADDRESS_LOOPBACK: {
    status: 403,
    socks: R.notAllowed,
    proxyStatus: 'destination_ip_prohibited',
    kind: 'address',
    summary: 'the destination resolves to a loopback address',
  },
  EGR_DENY_ADDRESS_LINK_LOCAL: {
    status: 403,
    socks: R.notAllowed,
    proxyStatus: 'destination_ip_prohibited',
    kind: 'address',
    summary: 'the destination resolves to a link-local or metadata address',
  },
  EGR_DENY_ADDRESS_RESERVED: {
    status: 403,
    socks: R.notAllowed,
    proxyStatus: 'destination_ip_prohibited',
    kind: 'address',
    summary: 'the destination resolves to a reserved or special-purpose address',
  },
  EGR_DENY_ADDRESS_EMBEDDED: {
    status: 403,
    socks: R.notAllowed,
    proxyStatus: 'destination_ip_prohibited',
    kind: 'address',
    summary: 'the destination is an IPv6 address that embeds an IPv4 one (NAT64, 6to4, Teredo, compatible)',
  },
  EGR_DENY_ADDRESS_SELF: {
    status: 403,
    socks: R.notAllowed,
    proxyStatus: 'proxy_loop_detected',
    kind: 'address',
    summary: 'the destination is the proxy itself',
  },
  EGR_DENY_ADDRESS_RULE: {
    status: 403,
    socks: R.notAllowed,
    proxyStatus: 'destination_ip_prohibited',
    kind: 'address',
    summary: 'the destination address is denied by the address guard rules',
  },

  EGR_FAIL_DNS: {
    status: 502,
    socks: R.hostUnreachable,
    proxyStatus: 'dns_error',
    kind: 'upstream',
    summary: 'the destination name could not be resolved',
  },
  EGR_FAIL_DNS_TIMEOUT: {
    status: 504,
    socks: R.hostUnreachable,
    proxyStatus: 'dns_timeout',
    kind: 'upstream',
    summary: 'resolving the destination name timed out',
  },
  EGR_FAIL_CONNECT_REFUSED: {
    status: 502,
    socks: R.connectionRefused,
    proxyStatus: 'connection_refused',
    kind: 'upstream',
    summary: 'the destination refused the connection',
  },
  EGR_FAIL_CONNECT_UNREACHABLE: {
    status: 502,
    socks: R.networkUnreachable,
    proxyStatus: 'destination_ip_unroutable',
    kind: 'upstream',
    summary: 'the destination is unreachable',
  },
  EGR_FAIL_CONNECT_TIMEOUT: {
    status: 504,
    socks: R.ttlExpired,
    proxyStatus: 'connection_timeout',
    kind: 'upstream',
    summary: 'connecting to the destination timed out',
  },
  EGR_FAIL_UPSTREAM: {
    status: 502,
    socks: R.generalFailure,
    proxyStatus: 'destination_unavailable',
    kind: 'upstream',
    summary: 'the destination failed (TLS verification, reset, or a broken response)',
  },
  // TLS inspection and every TLS Sluice originates: the origin's certificate did not verify (or it offered
  // TLS below 1.2). Never a downgrade: the request is not sent.
  EGR_UPSTREAM_TLS: {
    status: 502,
    socks: R.generalFailure,
    proxyStatus: 'tls_certificate_error',
    kind: 'upstream',
    summary: "the destination's TLS certificate did not verify for its name, or it offered TLS below 1.2",
  },

  EGR_LIMIT_RATE: {
    status: 429,
    socks: R.notAllowed,
    proxyStatus: 'http_request_denied',
    kind: 'limit',
    summary: 'too many requests for this identity; retry after the given delay',
  },
  EGR_LIMIT_CONCURRENCY: {
    status: 429,
    socks: R.notAllowed,
    proxyStatus: 'connection_limit_reached',
    kind: 'limit',
    summary: 'too many concurrent connections; retry after the given delay',
  },

  EGR_INTERNAL: {
    status: 500,
    socks: R.generalFailure,
    proxyStatus: 'proxy_internal_error',
    kind: 'internal',
    summary: 'the proxy failed internally and denied the request',
  },
} as const satisfies Record<string, CodeSpec>;

export type Code = keyof typeof table;
export const CODES: Readonly<Record<Code, CodeSpec>> = table;
export const ALL_CODES = Object.freeze(Object.keys(table) as Code[]);

export const isCode = (value: string): value is Code => Object.hasOwn(table, value);

/** A denial is a value: stages return `T | Deny`. `rule` names what decided (a config path or a built-in). */
export interface Deny {
  readonly verdict: 'deny';
  readonly code: Code;
  readonly rule: string;
  /** Free text for the audit log only; never rendered to the client. */
  readonly detail?: string;
  /** For EGR_LIMIT_*: seconds until a retry can succeed (Retry-After). */
  readonly retryAfterS?: number;
}

export const deny = (code: Code, rule: string, detail?: string): Deny =>
  detail === undefined ? { verdict: 'deny', code, rule } : { verdict: 'deny', code, rule, detail };

const LEAD: Record<CodeKind, string> = {
  auth: 'Sluice proxy authentication failed',
  request: 'Sluice refused the request',
  policy: 'Sluice blocked this request by egress policy; do not retry around it',
  address: 'Sluice blocked this request by egress policy; do not retry around it',
  upstream: 'Sluice could not complete the request',
  limit: 'Sluice limited this request',
  internal: 'Sluice failed internally and denied the request',
};

/** The one-line explanation sent to clients: code, meaning, and for policy denials that it is deliberate. */
export function denyMessage(code: Code, requestId?: string): string {
  const c = CODES[code];
  return `${LEAD[c.kind]}: ${code}: ${c.summary}.${requestId ? ` (request ${requestId})` : ''}`;
}

/** RFC 9209 Proxy-Status value. */
export const proxyStatusValue = (code: Code): string => `sluice; error=${CODES[code].proxyStatus}; details="${code}"`;

export const isDeny = (value: unknown): value is Deny =>
  typeof value === 'object' && value !== null && (value as { verdict?: unknown }).verdict === 'deny';

/** The README's table, generated so that docs and code cannot drift (a test compares them). */
export function renderCodesMarkdown(): string {
  const rows = ALL_CODES.map((code) => {
    const c = CODES[code];
    const rep = `0x${c.socks.toString(16).padStart(2, '0')}`;
    return `| \`${code}\` | ${c.status} | ${rep} | \`${c.proxyStatus}\` | ${c.summary} |`;
  });
  return ['| code | HTTP | SOCKS5 REP | Proxy-Status error | meaning |', '|---|---|---|---|---|', ...rows].join('\n');
}
