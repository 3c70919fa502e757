/**
 * `npm start`: a single-node Transit cluster on this machine with the example organisation.
 * `npm run cluster`: the same with three NATS nodes (routes on loopback, JetStream R3) and
 * two replicas of every role, for fault tests and demos.
 * Data and logs under var/. Ctrl-C or SIGTERM stops every process it started.
 *
 *   TRANSIT_PORT_OFFSET    added to every Transit port (25 → 25+offset, ...); default 0
 *   TRANSIT_CONFIG         organisation file; default config/examples/contoso.yaml
 *   TRANSIT_VAR_DIR        data, Maildirs, pickup directory, logs; default var/
 *   TRANSIT_LOCAL_NODES    NATS nodes: 1 (default) or 3
 *   TRANSIT_LOCAL_REPLICAS processes per role (default 1); replica n listens on ports + 100·n
 */
import { resolve } from 'node:path';
import { localClusterPorts, startLocalCluster } from '@transit/cluster';
import { loadOrganizationConfig } from '@transit/config';
import { planEndpoints, receiveConnectorsFor } from '@transit/receive';
import { ROLES } from '@transit/service';

const offset = Number(process.env.TRANSIT_PORT_OFFSET ?? 0);
if (!Number.isInteger(offset) || offset < 0) throw new Error('TRANSIT_PORT_OFFSET must be a non-negative integer');
const configPath = resolve(process.env.TRANSIT_CONFIG ?? 'config/examples/contoso.yaml');
const varDir = resolve(process.env.TRANSIT_VAR_DIR ?? 'var');
const config = await loadOrganizationConfig(configPath);

console.log(`Starting Transit (organisation ${config.Organization.Name}, data in ${varDir}) ...`);
const nodes = Number(process.env.TRANSIT_LOCAL_NODES ?? 1);
const replicas = Number(process.env.TRANSIT_LOCAL_REPLICAS ?? 1);
if (nodes !== 1 && nodes !== 3) throw new Error('TRANSIT_LOCAL_NODES must be 1 or 3');
if (!Number.isInteger(replicas) || replicas < 1 || replicas > 5) throw new Error('TRANSIT_LOCAL_REPLICAS must be 1 to 5');
const cluster = await startLocalCluster({
  varDir,
  configPath,
  ...localClusterPorts(offset, { replicas, natsNodes: nodes }),
  persistRedis: true,
});

const rows: string[][] = [
  [`nats-server (JetStream${nodes === 3 ? ', 3 nodes, R3' : ''})`, cluster.natsUrl, ''],
  ['redis-server', cluster.redisUrl, ''],
];
// The admin API and dashboard stay shut without a password (never open by default).
const adminNote =
  process.env.TRANSIT_ADMIN_PASSWORD || process.env.TRANSIT_ADMIN_PASSWORD_FILE
    ? 'dashboard and /api (user admin)'
    : 'dashboard and /api disabled: set TRANSIT_ADMIN_PASSWORD';
for (let replica = 0; replica < cluster.replicas; replica++) {
  const suffix = replica === 0 ? '' : ` #${replica}`;
  for (const role of ['frontend', 'hub', 'outbound-proxy'] as const) {
    for (const e of planEndpoints(receiveConnectorsFor(role, config.ReceiveConnectors), { listenHost: cluster.host, portOffset: cluster.port(0, replica) })) {
      rows.push([`${role}${suffix} SMTP`, `${e.host}:${e.port}`, e.connectors.map((c) => c.Name).join(', ')]);
    }
  }
  for (const role of ROLES)
    rows.push([`${role}${suffix} HTTP`, `http://${cluster.host}:${cluster.httpPort(role, replica)}`, role === 'admin' ? adminNote : '/healthz /readyz']);
}
rows.push(['pickup directory', cluster.pickupDir, '.eml files are submitted']);
rows.push(['mailboxes (Maildir)', cluster.mailDir, '<domain>/<user>/new']);
rows.push(['logs', `${varDir}/log`, 'one file per process']);
const w = [0, 1].map((i) => Math.max(...rows.map((r) => r[i]!.length)));
console.log('\nTransit is running:\n');
for (const r of rows) console.log(`  ${r[0]!.padEnd(w[0]!)}  ${r[1]!.padEnd(w[1]!)}  ${r[2]}`);
console.log(`\nTry: swaks --server ${cluster.host}:${cluster.port(25)} --from x@example.org --to alice@contoso.test\nPress Ctrl-C to stop.`);

let stopping = false;
const stop = async (signal: string) => {
  if (stopping) return;
  stopping = true;
  console.log(`\n${signal}: stopping Transit ...`);
  await cluster.stop();
  console.log('stopped.');
  process.exit(0);
};
process.on('SIGINT', () => void stop('SIGINT'));
process.on('SIGTERM', () => void stop('SIGTERM'));
for (const role of ROLES) {
  for (let replica = 0; replica < cluster.replicas; replica++) {
    void cluster.roleProcess(role, replica)?.exited.then((code) => {
      if (!stopping) console.error(`${role}${replica ? `-${replica}` : ''} exited unexpectedly (code ${code}); see ${varDir}/log/`);
    });
  }
}
