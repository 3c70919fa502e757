import { createServer } from 'node:net';
import { localClusterPorts, localServerPorts, type ClusterPorts, type ClusterShape } from '@transit/cluster';
import { DEFAULT_HTTP_PORTS } from '@transit/service';
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

/**
 * An offset such that every `port + offset` is free on `host` (for TRANSIT_PORT_OFFSET).
 * The ports stay below Linux's ephemeral range (32768+), where freePort() and every
 * outgoing connection take theirs: otherwise a client socket can hold a port a Transit
 * process is about to listen on (EADDRINUSE).
 */
export async function freePortOffset(ports: readonly number[], host = '127.0.0.1'): Promise<number> {
  // Test files running at the same time (vitest workers) draw from separate halves, so two
  // clusters starting together cannot pick overlapping port sets.
  const slice = (Number(process.env.VITEST_POOL_ID ?? 1) - 1) % 2;
  const sliceWidth = Math.floor((32_767 - 10_000) / 2);
  const highest = Math.max(...ports);
  const room = sliceWidth - highest;
  if (room <= 0) throw new TestkitError('NOT_READY', `ports up to ${highest} leave no offset below the ephemeral range`);
  for (let attempt = 0; attempt < 50; attempt++) {
    const offset = 10_000 + slice * sliceWidth + Math.floor(Math.random() * room);
    const checks = await Promise.all(ports.map((p) => portFree(p + offset, host)));
    if (checks.every(Boolean)) return offset;
  }
  throw new TestkitError('NOT_READY', `no port offset found with ${ports.join(', ')} all free on ${host}`);
}

/** The SMTP ports of config/examples/contoso.yaml's connectors (and 26, which tests add). */
const EXAMPLE_SMTP_PORTS = [25, 26, 465, 587, 717, 2525];

/**
 * Every port of a local cluster (libs/cluster/src/cluster.ts): each role's SMTP and HTTP
 * ports for each replica, NATS's client and route ports and Redis's, all at one offset that
 * leaves them free and below the ephemeral range. A nats-server whose route port an
 * outgoing connection took would exit after it had opened its client port.
 */
export async function freeClusterPorts(shape: ClusterShape = {}, host = '127.0.0.1'): Promise<ClusterPorts> {
  const rolePorts = [...EXAMPLE_SMTP_PORTS, ...Object.values(DEFAULT_HTTP_PORTS)];
  const replicaPorts = Array.from({ length: shape.replicas ?? 1 }, (_v, i) => rolePorts.map((p) => p + 100 * i)).flat();
  return localClusterPorts(await freePortOffset([...replicaPorts, ...localServerPorts(shape.natsNodes)], host), shape);
}
