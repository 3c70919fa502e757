import { createServer } from 'node:net';
import { TestkitError } from './errors.ts';

/**
 * A port the kernel just handed out on `host`. Another process may take it before the
 * caller binds it; that window is accepted in exchange for letting servers bind their own port.
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const address = srv.address();
      srv.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new TestkitError('NOT_READY', `no port assigned on ${host}`))));
    });
  });
}

async function portFree(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, host, () => srv.close(() => resolve(true)));
  });
}

/** An offset such that every `port + offset` is free on `host` (for TRANSIT_PORT_OFFSET). */
export async function freePortOffset(ports: readonly number[], host = '127.0.0.1'): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const offset = 20_000 + Math.floor(Math.random() * 20_000);
    const checks = await Promise.all(ports.map((p) => portFree(p + offset, host)));
    if (checks.every(Boolean)) return offset;
  }
  throw new TestkitError('NOT_READY', `no port offset found with ${ports.join(', ')} all free on ${host}`);
}
