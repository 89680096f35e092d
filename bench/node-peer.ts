// The Node peer: a minimal forward proxy on http-proxy with a keep-alive agent, the way a team would write
// one in an afternoon. Absolute-form requests go through http-proxy; CONNECT is a plain socket pipe (http-proxy
// has no CONNECT support). No authentication, no policy, no logging: it is the floor a Node proxy costs.
import { readFileSync } from 'node:fs';
import { Agent, createServer } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { connect } from 'node:net';
import httpProxy from 'http-proxy';

// argv: HOST:PORT [CA-FILE] — the CA is trusted for https:// targets (absolute-form https reads and writes).
const [host, portText] = (process.argv[2] ?? '127.0.0.1:0').split(':');
const agent = new Agent({ keepAlive: true, maxSockets: 1024, maxFreeSockets: 1024 });
const httpsAgent = new HttpsAgent({
  keepAlive: true,
  maxSockets: 1024,
  maxFreeSockets: 1024,
  ...(process.argv[3] ? { ca: readFileSync(process.argv[3]) } : {}),
});
const proxy = httpProxy.createProxyServer({ agent, changeOrigin: true, xfwd: false });
proxy.on('error', (_err, _req, res) => {
  if ('writeHead' in res && !res.headersSent) {
    res.writeHead(502);
    res.end();
  } else {
    res.destroy();
  }
});

const server = createServer((req, res) => {
  let target: URL;
  try {
    target = new URL(req.url ?? '');
  } catch {
    res.writeHead(400);
    res.end();
    return;
  }
  proxy.web(
    req,
    res,
    target.protocol === 'https:'
      ? { target: target.origin, agent: httpsAgent, secure: true }
      : { target: target.origin },
  );
});

server.on('connect', (req, client, head) => {
  const url = req.url ?? '';
  const colon = url.lastIndexOf(':');
  const upstream = connect(Number(url.slice(colon + 1)), url.slice(0, colon), () => {
    client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    if (head.length) upstream.write(head);
    upstream.pipe(client);
    client.pipe(upstream);
  });
  upstream.on('error', () => client.destroy());
  client.on('error', () => upstream.destroy());
  client.on('close', () => upstream.destroy());
  upstream.on('close', () => client.destroy());
});

server.listen(Number(portText), host, () => process.stderr.write(`node-peer listening on ${host}:${portText}\n`));
process.on('SIGTERM', () => process.exit(0));
