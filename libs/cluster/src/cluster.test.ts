import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freeClusterPorts } from '@transit/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import { localClusterPorts, startLocalCluster } from './cluster.ts';

const listening = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });

describe('local cluster ports', () => {
  it('puts every server of a three-node, two-replica cluster at one offset', () => {
    expect(localClusterPorts(1000, { replicas: 3, natsNodes: 3 })).toEqual({
      portOffset: 1000,
      replicaPortOffsets: [1100, 1200],
      natsPort: 5222,
      redisPort: 7379,
      natsCluster: { clientPorts: [5223, 5224], routePorts: [7222, 7223, 7224] },
    });
    expect(localClusterPorts(7, {})).toEqual({ portOffset: 7, natsPort: 4229, redisPort: 6386 });
  });

  it('finds distinct free ports below the ephemeral range', async () => {
    const ports = await freeClusterPorts({ replicas: 2, natsNodes: 3 });
    const servers = [ports.natsPort, ports.redisPort, ...(ports.natsCluster?.clientPorts ?? []), ...(ports.natsCluster?.routePorts ?? [])];
    expect(new Set(servers).size).toBe(7);
    for (const port of servers) expect(port).toBeLessThan(32_768);
    expect(await Promise.all(servers.map(listening))).toEqual(servers.map(() => false));
  });
});

describe('startLocalCluster', () => {
  let dir: string | undefined;
  let blocker: Server | undefined;
  afterEach(async () => {
    await new Promise<void>((resolve) => (blocker ? blocker.close(() => resolve()) : resolve()));
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it.each(['client', 'route'] as const)("fails, and stops the servers it started, when another process holds a NATS node's %s port", async (which) => {
    dir = await mkdtemp(join(tmpdir(), 'transit-cluster-'));
    await writeFile(join(dir, 'org.yaml'), '');
    const ports = await freeClusterPorts({ natsNodes: 3 });
    const taken = which === 'client' ? ports.natsPort : ports.natsCluster!.routePorts[0];
    // Node 0 cannot bind the port and exits; the listener there accepts (and drops) every
    // connection, the other nodes' routes included.
    blocker = createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => blocker!.listen(taken, '127.0.0.1', resolve));
    await expect(startLocalCluster({ varDir: join(dir, 'var'), configPath: join(dir, 'org.yaml'), ...ports, roles: [] })).rejects.toThrow(
      /nats-server-0( \(route port\))? exited before listening/,
    );
    const otherClients = ports.natsCluster!.clientPorts;
    expect(await Promise.all(otherClients.map(listening))).toEqual([false, false]);
  });

  it("fails when another process answers on a single NATS node's client port", async () => {
    dir = await mkdtemp(join(tmpdir(), 'transit-cluster-'));
    await writeFile(join(dir, 'org.yaml'), '');
    const ports = await freeClusterPorts();
    blocker = createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => blocker!.listen(ports.natsPort, '127.0.0.1', resolve));
    await expect(startLocalCluster({ varDir: join(dir, 'var'), configPath: join(dir, 'org.yaml'), ...ports, roles: [] })).rejects.toThrow(
      /nats-server-0 exited before listening/,
    );
  });
});
