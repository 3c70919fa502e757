/**
 * Transit as the benchmarks run it: the example organisation with a relay connector for the
 * load generator's address and one send connector to a sink, started as one node (one NATS,
 * streams R1) or as the local three-node cluster (NATS R3, two processes of every role), on
 * free loopback ports, the roles logging at BENCH_LOG_LEVEL (default warn). Used by
 * `npm run bench:compare` and `npm run bench:large`.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { startLocalCluster, type LocalCluster } from '@transit/cluster';
import { freeClusterPorts } from '@transit/testkit';

export type TransitShape = 'transit' | 'cluster';

/** The example organisation, relaying everything outside its accepted domains to `smartHost`; written to `<dir>/org.yaml`. */
export async function benchOrg(dir: string, smartHost: { host: string; port: number }): Promise<string> {
  const base = parse(await readFile(new URL('../../config/examples/contoso.yaml', import.meta.url), 'utf8')) as Record<string, unknown>;
  const org = {
    ...base,
    ReceiveConnectors: [
      ...(base.ReceiveConnectors as unknown[]),
      // smtp-source cannot choose its source address, so this relay connector covers
      // 127.0.0.1 (the example's "Application Relay" covers 127.0.0.2 only). Every session
      // comes from that one address: the per-source connection limit is lifted.
      {
        Name: 'Bench Relay',
        TransportRole: 'FrontendTransport',
        Bindings: ['0.0.0.0:25'],
        RemoteIPRanges: ['127.0.0.1'],
        AuthMechanism: ['ExternalAuthoritative'],
        PermissionGroups: ['ExchangeServers'],
        MaxInboundConnectionPerSource: 5000,
      },
    ],
    SendConnectors: [{ Name: 'Sink', AddressSpaces: ['*'], DNSRoutingEnabled: false, SmartHosts: [`${smartHost.host}:${smartHost.port}`] }],
  };
  const path = join(dir, 'org.yaml');
  await writeFile(path, stringify(org));
  return path;
}

/** One node or the three-node cluster, under `<dir>/<shape>`, with the organisation file `configPath`. */
export async function startBenchTransit(shape: TransitShape, dir: string, configPath: string): Promise<LocalCluster> {
  const multi = shape === 'cluster';
  return startLocalCluster({
    varDir: join(dir, shape),
    configPath,
    ...(await freeClusterPorts(multi ? { replicas: 2, natsNodes: 3 } : {})),
    readyTimeoutMs: 90_000, // a busy machine (or a fresh three-node cluster electing its leaders) starts slowly
    env: { TRANSIT_LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'warn' },
  });
}
