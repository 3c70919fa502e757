/**
 * A Transit cluster on this machine: nats-server with JetStream (one node, or three with
 * routes and R3 streams), one redis-server, and one or more processes per role. Used by
 * `npm start`, `npm run cluster`, the integration tests and the benchmark, so all of them
 * run exactly what a user runs. Every process is a child ended by its own PID.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { DEFAULT_HTTP_PORTS, ROLES, type Role } from '@transit/service';
import { findBinary, killProcess, natsServerNamed, startProcess, stopProcess, waitForPort, type Supervised } from './processes.ts';

const repoRoot = resolve(import.meta.dirname, '../../..');

/**
 * Node flags of every role process (deploy/docker/entrypoint.sh passes the same). A young
 * generation of 2 MiB per semi-space is collected often enough that the Buffers a large
 * message leaves behind on its way through do not pile up: `npm run bench:large` measured the
 * RSS growth of a role for 35 MiB messages at 19 to 46 MiB with it and 55 to 80 MiB with
 * Node's default, with no difference in small-message throughput beyond the spread between
 * runs (docs/performance.md, "Large messages").
 */
export const ROLE_NODE_FLAGS = ['--max-semi-space-size=2'] as const;

export type ClusterOptions = {
  varDir: string;
  configPath: string;
  /** Added to every Transit port (SMTP and HTTP) of the first replica of each role. */
  portOffset: number;
  natsPort: number;
  /** A three-node NATS cluster: the other two client ports and the three route ports. */
  natsCluster?: { clientPorts: [number, number]; routePorts: [number, number, number] };
  /** Port offsets of further replicas of every role (replica 1, 2, ...): each has its own ports. */
  replicaPortOffsets?: number[];
  /** The roles that get those further replicas at start (default: every role started). */
  replicaRoles?: readonly Role[];
  redisPort: number;
  host?: string;
  roles?: readonly Role[];
  /** Keep Redis data (AOF) under varDir; tests use a throwaway instance. */
  persistRedis?: boolean;
  env?: NodeJS.ProcessEnv;
  /** How long a role may take to report ready (a fresh three-node cluster elects its leaders first; a loaded machine starts Node slowly); default 60 s. */
  readyTimeoutMs?: number;
};

export type LocalCluster = {
  natsUrl: string;
  redisUrl: string;
  host: string;
  varDir: string;
  mailDir: string;
  pickupDir: string;
  /** Replicas of each role (1 unless replicaPortOffsets was given). */
  replicas: number;
  natsNodes: number;
  port(configured: number, replica?: number): number;
  httpPort(role: Role, replica?: number): number;
  startRole(role: Role, replica?: number): Promise<void>;
  /**
   * Starts a role without waiting for it to report ready: for a process the caller expects
   * to die soon (a fault test's crash), which startRole would report as a start-up failure.
   */
  spawnRole(role: Role, replica?: number): Supervised;
  stopRole(role: Role, replica?: number): Promise<void>;
  killRole(role: Role, replica?: number): Promise<void>;
  /** SIGTERM (or SIGKILL with kill) one NATS node; node 0 when there is one. */
  stopNats(node?: number, kill?: boolean): Promise<void>;
  startNats(node?: number): Promise<void>;
  /** Stops redis-server (SIGKILL with kill); started again it is empty unless persistRedis. */
  stopRedis(kill?: boolean): Promise<void>;
  startRedis(): Promise<void>;
  roleProcess(role: Role, replica?: number): Supervised | undefined;
  stop(): Promise<void>;
};

/** Where a local cluster's servers listen before the port offset is added (`npm run cluster` uses these). */
const SERVER_PORTS = { nats: 4222, natsClients: [4223, 4224], natsRoutes: [6222, 6223, 6224], redis: 6379 } as const;

export type ClusterShape = { replicas?: number; natsNodes?: 1 | 3 };
export type ClusterPorts = Pick<ClusterOptions, 'portOffset' | 'replicaPortOffsets' | 'natsPort' | 'natsCluster' | 'redisPort'>;

/**
 * Every port of a local cluster at one offset: the roles' ports plus `offset` (replica i's
 * plus `offset + 100 * i`), NATS and Redis at their usual ports plus `offset`.
 */
export function localClusterPorts(offset: number, shape: ClusterShape = {}): ClusterPorts {
  const replicas = shape.replicas ?? 1;
  const [c1, c2] = SERVER_PORTS.natsClients;
  const [r0, r1, r2] = SERVER_PORTS.natsRoutes;
  return {
    portOffset: offset,
    natsPort: SERVER_PORTS.nats + offset,
    redisPort: SERVER_PORTS.redis + offset,
    ...(replicas > 1 ? { replicaPortOffsets: Array.from({ length: replicas - 1 }, (_v, i) => offset + 100 * (i + 1)) } : {}),
    ...(shape.natsNodes === 3 ? { natsCluster: { clientPorts: [c1 + offset, c2 + offset], routePorts: [r0 + offset, r1 + offset, r2 + offset] } } : {}),
  };
}

/** The ports (before the offset) NATS and Redis of a cluster of this shape listen on. */
export function localServerPorts(natsNodes: 1 | 3 = 1): number[] {
  return natsNodes === 3
    ? [SERVER_PORTS.nats, ...SERVER_PORTS.natsClients, ...SERVER_PORTS.natsRoutes, SERVER_PORTS.redis]
    : [SERVER_PORTS.nats, SERVER_PORTS.redis];
}

export async function startLocalCluster(opts: ClusterOptions): Promise<LocalCluster> {
  const host = opts.host ?? '127.0.0.1';
  const varDir = resolve(opts.varDir);
  const logDir = join(varDir, 'log');
  await Promise.all([logDir, join(varDir, 'redis')].map((d) => mkdir(d, { recursive: true })));
  const clientPorts = opts.natsCluster ? [opts.natsPort, ...opts.natsCluster.clientPorts] : [opts.natsPort];
  const natsUrl = clientPorts.map((p) => `nats://${host}:${p}`).join(',');
  const redisUrl = `redis://${host}:${opts.redisPort}`;
  const roles = new Map<string, Supervised>();
  const natsNodes: Array<Supervised | undefined> = clientPorts.map(() => undefined);
  const offsets = [opts.portOffset, ...(opts.replicaPortOffsets ?? [])];
  // Names of this cluster's own, the same on every start from this var directory: a NATS node of another local cluster (a test
  // running beside this one, or one left behind) whose routes reach these ports is refused for its cluster name, and cannot
  // pass for one of these nodes in the start check below by answering with the same server name.
  const clusterId = createHash('sha256').update(varDir).digest('hex').slice(0, 8);

  const startNats = async (node = 0) => {
    const bin = findBinary('nats-server', ['/usr/sbin/nats-server', '/usr/bin/nats-server']);
    const dir = join(varDir, natsNodes.length > 1 ? `nats-${node}` : 'nats');
    await mkdir(dir, { recursive: true });
    const serverName = `t${clusterId}-n${node}`;
    const args = ['-a', host, '-p', String(clientPorts[node]), '-js', '-sd', dir, '--server_name', serverName];
    if (opts.natsCluster) {
      const routes = opts.natsCluster.routePorts;
      args.push(
        '--cluster_name',
        `transit-${clusterId}`,
        '--cluster',
        `nats://${host}:${routes[node]}`,
        '--routes',
        routes
          .filter((_r, i) => i !== node)
          .map((r) => `nats://${host}:${r}`)
          .join(','),
      );
    }
    // A node started again (a restart in a fault run) replaces its process: the earlier one must not live on unknown to stop().
    const earlier = natsNodes[node];
    if (earlier?.alive()) await killProcess(earlier);
    const p = startProcess(`nats-server-${node}`, bin, args, { logFile: join(logDir, natsNodes.length > 1 ? `nats-server-${node}.log` : 'nats-server.log') });
    natsNodes[node] = p;
    // Each port must answer with this server's INFO: a port another process holds accepts
    // connections too, and nats-server binds its route port after its client port and exits
    // if either bind fails, which would leave the cluster short of the peers R3 needs.
    const named = natsServerNamed(serverName);
    try {
      await waitForPort(host, clientPorts[node]!, 15_000, `nats-server-${node}`, () => p.alive(), named);
      const routePort = opts.natsCluster?.routePorts[node];
      if (routePort !== undefined) await waitForPort(host, routePort, 15_000, `nats-server-${node} (route port)`, () => p.alive(), named);
    } catch (err) {
      // Not started is stopped: a half-started node would go on routing to the others' ports after the caller gave up.
      await killProcess(p);
      throw err;
    }
  };
  const redisBin = findBinary('redis-server', ['/usr/bin/redis-server', '/usr/sbin/redis-server']);
  const redisArgs = ['--port', String(opts.redisPort), '--bind', host, '--dir', join(varDir, 'redis'), '--save', ''];
  redisArgs.push('--appendonly', opts.persistRedis ? 'yes' : 'no');
  let redis: Supervised | undefined;
  const startRedis = async () => {
    const p = startProcess('redis-server', redisBin, redisArgs, { logFile: join(logDir, 'redis-server.log') });
    redis = p;
    await waitForPort(host, opts.redisPort, 15_000, 'redis-server', () => p.alive());
  };
  const stopServers = async () => {
    await Promise.all(natsNodes.filter((p): p is Supervised => p !== undefined).map((p) => stopProcess(p)));
    if (redis) await stopProcess(redis);
  };
  try {
    await Promise.all(clientPorts.map((_p, node) => startNats(node)));
    await startRedis();
  } catch (err) {
    // A server that did start is not left behind by a start that failed.
    await stopServers();
    throw err;
  }

  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ...opts.env,
    NATS_URL: natsUrl,
    REDIS_URL: redisUrl,
    TRANSIT_CONFIG: resolve(opts.configPath),
    TRANSIT_LISTEN_HOST: host,
    TRANSIT_PORT_OFFSET: String(opts.portOffset),
    TRANSIT_VAR_DIR: varDir,
    ...(opts.natsCluster ? { TRANSIT_STREAM_REPLICAS: '3' } : {}),
  };
  const offsetOf = (replica: number) => {
    const offset = offsets[replica];
    if (offset === undefined) throw new Error(`replica ${replica} does not exist (the cluster has ${offsets.length})`);
    return offset;
  };
  const httpPort = (role: Role, replica = 0) => DEFAULT_HTTP_PORTS[role] + offsetOf(replica);
  const key = (role: Role, replica: number) => `${role}#${replica}`;

  const processName = (role: Role, replica: number) => (replica === 0 ? role : `${role}-${replica}`);
  const spawnRole = (role: Role, replica = 0): Supervised => {
    const name = processName(role, replica);
    const replicaEnv: NodeJS.ProcessEnv =
      replica === 0
        ? env
        : {
            ...env,
            TRANSIT_PORT_OFFSET: String(offsetOf(replica)),
            TRANSIT_NODE_NAME: `${env.TRANSIT_NODE_NAME ?? 'node'}-${replica}`,
            TRANSIT_PROTOCOL_LOG_DIR: join(varDir, 'logs', `replica-${replica}`, 'ProtocolLog'),
          };
    const p = startProcess(name, process.execPath, [...ROLE_NODE_FLAGS, join(repoRoot, 'services', role, 'src', 'main.ts')], {
      env: replicaEnv,
      cwd: repoRoot,
      logFile: join(logDir, `${name}.log`),
    });
    roles.set(key(role, replica), p);
    return p;
  };
  const startRole = async (role: Role, replica = 0) => {
    const p = spawnRole(role, replica);
    const name = processName(role, replica);
    await waitForReady(host, httpPort(role, replica), name, () => p.alive(), join(logDir, `${name}.log`), opts.readyTimeoutMs ?? 60_000);
  };

  const cluster: LocalCluster = {
    natsUrl,
    redisUrl,
    host,
    varDir,
    mailDir: join(varDir, 'mail'),
    pickupDir: join(varDir, 'pickup'),
    replicas: offsets.length,
    natsNodes: clientPorts.length,
    port: (configured, replica = 0) => configured + offsetOf(replica),
    httpPort,
    startRole,
    spawnRole,
    stopRole: async (role, replica = 0) => {
      const p = roles.get(key(role, replica));
      if (p) await stopProcess(p, 35_000);
    },
    killRole: async (role, replica = 0) => {
      const p = roles.get(key(role, replica));
      if (p) await killProcess(p);
    },
    stopNats: async (node = 0, kill = false) => {
      const p = natsNodes[node];
      if (p) await (kill ? killProcess(p) : stopProcess(p));
    },
    startNats,
    stopRedis: async (kill = false) => {
      if (redis) await (kill ? killProcess(redis) : stopProcess(redis));
    },
    startRedis,
    roleProcess: (role, replica = 0) => roles.get(key(role, replica)),
    stop: async () => {
      await Promise.all([...roles.values()].map((p) => stopProcess(p, 35_000)));
      await stopServers();
    },
  };
  try {
    const replicated = (role: Role, replica: number) => replica === 0 || !opts.replicaRoles || opts.replicaRoles.includes(role);
    await Promise.all(
      (opts.roles ?? ROLES).flatMap((role) =>
        offsets
          .map((_o, replica) => replica)
          .filter((replica) => replicated(role, replica))
          .map((replica) => startRole(role, replica)),
      ),
    );
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  return cluster;
}

/** The end of a role's log, for the error: tests remove their directories, and the cause would go with them. */
async function logTail(logFile: string): Promise<string> {
  const text = await readFile(logFile, 'utf8').catch(() => '');
  return text ? `; its log ends:\n${text.slice(-2000)}` : '';
}

async function waitForReady(host: string, port: number, role: string, alive: () => boolean, logFile: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const res = await fetch(`http://${host}:${port}/readyz`);
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    if (!alive()) throw new Error(`${role} exited during start-up; see ${logFile}${await logTail(logFile)}`);
    if (Date.now() > deadline) throw new Error(`${role} not ready after ${timeoutMs / 1000}s; see ${logFile}${await logTail(logFile)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
