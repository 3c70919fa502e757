/**
 * `npm start`: a single-node Transit cluster on this machine with the example organisation.
 * Data and logs under var/. Ctrl-C or SIGTERM stops every process it started.
 *
 *   TRANSIT_PORT_OFFSET  added to every Transit port (25 → 25+offset, ...); default 0
 *   TRANSIT_CONFIG       organisation file; default config/examples/contoso.yaml
 *   TRANSIT_VAR_DIR      data, Maildirs, pickup directory, logs; default var/
 */
import { resolve } from 'node:path';
import { startLocalCluster } from '@transit/cluster';
import { loadOrganizationConfig } from '@transit/config';
import { planEndpoints, receiveConnectorsFor } from '@transit/receive';
import { ROLES } from '@transit/service';

const offset = Number(process.env.TRANSIT_PORT_OFFSET ?? 0);
if (!Number.isInteger(offset) || offset < 0) throw new Error('TRANSIT_PORT_OFFSET must be a non-negative integer');
const configPath = resolve(process.env.TRANSIT_CONFIG ?? 'config/examples/contoso.yaml');
const varDir = resolve(process.env.TRANSIT_VAR_DIR ?? 'var');
const config = await loadOrganizationConfig(configPath);

console.log(`Starting Transit (organisation ${config.Organization.Name}, data in ${varDir}) ...`);
const cluster = await startLocalCluster({ varDir, configPath, portOffset: offset, natsPort: 4222 + offset, redisPort: 6379 + offset, persistRedis: true });

const rows: string[][] = [
  ['nats-server (JetStream)', cluster.natsUrl, ''],
  ['redis-server', cluster.redisUrl, ''],
];
for (const role of ['frontend', 'hub', 'outbound-proxy'] as const) {
  for (const e of planEndpoints(receiveConnectorsFor(role, config.ReceiveConnectors), { listenHost: cluster.host, portOffset: offset })) {
    rows.push([`${role} SMTP`, `${e.host}:${e.port}`, e.connectors.map((c) => c.Name).join(', ')]);
  }
}
for (const role of ROLES) rows.push([`${role} HTTP`, `http://${cluster.host}:${cluster.httpPort(role)}`, role === 'admin' ? '/api/health' : '/healthz /readyz']);
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
  void cluster.roleProcess(role)?.exited.then((code) => {
    if (!stopping) console.error(`${role} exited unexpectedly (code ${code}); see ${varDir}/log/${role}.log`);
  });
}
