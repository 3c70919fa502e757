/**
 * A single-node Transit cluster on this machine: one nats-server with JetStream, one
 * redis-server, and one process per role. Used by `npm start`, the integration tests and
 * the benchmark, so all three run exactly what a user runs.
 */
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { DEFAULT_HTTP_PORTS, ROLES, type Role } from '@transit/service';
import { findBinary, killProcess, startProcess, stopProcess, waitForPort, type Supervised } from './processes.ts';

const repoRoot = resolve(import.meta.dirname, '../../..');

export type ClusterOptions = {
  varDir: string;
  configPath: string;
  /** Added to every Transit port (SMTP and HTTP); NATS and Redis ports are separate. */
  portOffset: number;
  natsPort: number;
  redisPort: number;
  host?: string;
  roles?: readonly Role[];
  /** Keep Redis data (AOF) under varDir; tests use a throwaway instance. */
  persistRedis?: boolean;
  env?: NodeJS.ProcessEnv;
};

export type LocalCluster = {
  natsUrl: string;
  redisUrl: string;
  host: string;
  varDir: string;
  mailDir: string;
  pickupDir: string;
  port(configured: number): number;
  httpPort(role: Role): number;
  startRole(role: Role): Promise<void>;
  stopRole(role: Role): Promise<void>;
  killRole(role: Role): Promise<void>;
  stopNats(): Promise<void>;
  startNats(): Promise<void>;
  roleProcess(role: Role): Supervised | undefined;
  stop(): Promise<void>;
};

export async function startLocalCluster(opts: ClusterOptions): Promise<LocalCluster> {
  const host = opts.host ?? '127.0.0.1';
  const varDir = resolve(opts.varDir);
  const logDir = join(varDir, 'log');
  await Promise.all([logDir, join(varDir, 'nats'), join(varDir, 'redis')].map((d) => mkdir(d, { recursive: true })));
  const natsUrl = `nats://${host}:${opts.natsPort}`;
  const redisUrl = `redis://${host}:${opts.redisPort}`;
  const roles = new Map<Role, Supervised>();

  let nats: Supervised | undefined;
  const startNats = async () => {
    const bin = findBinary('nats-server', ['/usr/sbin/nats-server', '/usr/bin/nats-server']);
    nats = startProcess('nats-server', bin, ['-a', host, '-p', String(opts.natsPort), '-js', '-sd', join(varDir, 'nats')], { logFile: join(logDir, 'nats-server.log') });
    const p = nats;
    await waitForPort(host, opts.natsPort, 15_000, 'nats-server', () => p.alive());
  };
  await startNats();

  const redisBin = findBinary('redis-server', ['/usr/bin/redis-server', '/usr/sbin/redis-server']);
  const redisArgs = ['--port', String(opts.redisPort), '--bind', host, '--dir', join(varDir, 'redis'), '--save', ''];
  redisArgs.push('--appendonly', opts.persistRedis ? 'yes' : 'no');
  const redis = startProcess('redis-server', redisBin, redisArgs, { logFile: join(logDir, 'redis-server.log') });
  await waitForPort(host, opts.redisPort, 15_000, 'redis-server', () => redis.alive());

  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ...opts.env,
    NATS_URL: natsUrl,
    REDIS_URL: redisUrl,
    TRANSIT_CONFIG: resolve(opts.configPath),
    TRANSIT_LISTEN_HOST: host,
    TRANSIT_PORT_OFFSET: String(opts.portOffset),
    TRANSIT_VAR_DIR: varDir,
  };
  const httpPort = (role: Role) => DEFAULT_HTTP_PORTS[role] + opts.portOffset;

  const startRole = async (role: Role) => {
    const p = startProcess(role, process.execPath, [join(repoRoot, 'services', role, 'src', 'main.ts')], { env, cwd: repoRoot, logFile: join(logDir, `${role}.log`) });
    roles.set(role, p);
    await waitForReady(host, httpPort(role), role, () => p.alive(), join(logDir, `${role}.log`));
  };

  const cluster: LocalCluster = {
    natsUrl,
    redisUrl,
    host,
    varDir,
    mailDir: join(varDir, 'mail'),
    pickupDir: join(varDir, 'pickup'),
    port: (configured) => configured + opts.portOffset,
    httpPort,
    startRole,
    stopRole: async (role) => {
      const p = roles.get(role);
      if (p) await stopProcess(p, 35_000);
    },
    killRole: async (role) => {
      const p = roles.get(role);
      if (p) await killProcess(p);
    },
    stopNats: async () => {
      if (nats) await stopProcess(nats);
    },
    startNats,
    roleProcess: (role) => roles.get(role),
    stop: async () => {
      await Promise.all([...roles.values()].map((p) => stopProcess(p, 35_000)));
      if (nats) await stopProcess(nats);
      await stopProcess(redis);
    },
  };
  try {
    await Promise.all((opts.roles ?? ROLES).map(startRole));
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  return cluster;
}

async function waitForReady(host: string, port: number, role: string, alive: () => boolean, logFile: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      const res = await fetch(`http://${host}:${port}/readyz`);
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    if (!alive()) throw new Error(`${role} exited during start-up; see ${logFile}`);
    if (Date.now() > deadline) throw new Error(`${role} not ready after 30s; see ${logFile}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
