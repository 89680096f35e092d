// A real TLS ClientHello from Node's own client, captured by a loopback server that reads the first bytes.
import { createServer } from 'node:net';
import { connect as tlsConnect } from 'node:tls';

export function realHello(servername?: string): Promise<Buffer> {
  return new Promise((resolve) => {
    const server = createServer((s) => {
      s.once('data', (d: Buffer) => {
        resolve(d);
        s.destroy();
        server.close();
      });
    });
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      const c = tlsConnect({
        host: '127.0.0.1',
        port,
        ...(servername ? { servername } : {}),
        rejectUnauthorized: false,
      });
      c.on('error', () => undefined);
    });
  });
}
