/**
 * The imperative shell every role shares: settings, configuration, the bus and its
 * topology, health endpoints, a heartbeat in the nodes bucket, and an orderly stop on
 * SIGTERM/SIGINT. A role's main.ts only supplies what it starts and how it stops.
 */
import type { Server } from 'node:http';
import { hostname } from 'node:os';
import { Kvm, type KV } from '@nats-io/kv';
import { ConfigStore, connectBus, ensureTopology, NODES_BUCKET, type Bus } from '@transit/bus';
import {
  ConfigError,
  LiveConfig,
  loadOrganizationConfig,
  processSettings,
  retentionProblems,
  type ConfigSnapshot,
  type OrganizationConfig,
  type RuntimeSettings,
} from '@transit/config';
import { collectProcessMetrics, metrics, onScrape } from '@transit/metrics';
import { startHttpServer, type HttpRoute } from './health.ts';
import { createLogger, type Logger } from './logger.ts';
import { startTracing } from './tracing.ts';
import { jetStreamProbe } from './metrics.ts';
import { configureProgress, stalledSummary, workerHealth, workerProbe } from './progress.ts';

export const ROLES = ['frontend', 'hub', 'mailbox-delivery', 'submission', 'outbound-proxy', 'admin'] as const;
export type Role = (typeof ROLES)[number];

/** Default health/HTTP port per role (plus TRANSIT_PORT_OFFSET); TRANSIT_HTTP_PORT overrides. */
export const DEFAULT_HTTP_PORTS: Record<Role, number> = {
  admin: 8080,
  frontend: 8081,
  hub: 8082,
  'mailbox-delivery': 8083,
  submission: 8084,
  'outbound-proxy': 8085,
};

/** How often each process writes its heartbeat to the nodes bucket; TRANSIT_NODE_TTL_MS is at least two of these (libs/config settings.ts). */
const NODE_HEARTBEAT_MS = 5000;

export type ServiceContext = {
  role: Role;
  settings: RuntimeSettings;
  /** The configuration right now (changes live); keep one snapshot per unit of work. */
  readonly config: OrganizationConfig;
  live: LiveConfig;
  bus: Bus;
  log: Logger;
  /** Facts shown in /healthz and the heartbeat, e.g. listeners. */
  facts: Record<string, unknown>;
};

export type RunningService = { stop(): Promise<void>; ready?(): boolean; routes?: HttpRoute[] };

export type NodeHeartbeat = {
  role: Role;
  node: string;
  pid: number;
  startedAt: number;
  at: number;
  ready: boolean;
  http: string;
  facts: Record<string, unknown>;
};

async function untilTopology(bus: Bus, settings: RuntimeSettings, log: Logger): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await ensureTopology(bus, {
        replicas: settings.streamReplicas,
        submitMaxMessages: settings.submitQueueMaxMessages,
        submitMaxBytes: settings.submitQueueMaxBytes,
        safetyNetHoldSeconds: settings.safetyNetHoldSeconds,
        ackWaitSeconds: settings.ackWaitSeconds,
        eventRetentionSeconds: settings.eventRetentionSeconds,
        bodyRetentionSeconds: settings.bodyRetentionSeconds,
        duplicateWindowSeconds: settings.duplicateWindowSeconds,
        poisonRetentionSeconds: settings.poisonRetentionSeconds,
        poisonMarkerTtlSeconds: settings.poisonMarkerTtlSeconds,
        nodeTtlMs: settings.nodeTtlMs,
      });
      return;
    } catch (err) {
      if (attempt % 10 === 1) log.warn({ err: (err as Error).message, attempt }, 'JetStream not ready; retrying');
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

/** Settings this process cannot run with: logged, and the process exits with EX_CONFIG (78) before it touches anything. */
function refuse(log: Logger, err: unknown): never {
  log.fatal({ err: (err as Error).message }, 'configuration refused');
  process.exit(78); // EX_CONFIG
}

export async function runService(role: Role, start: (ctx: ServiceContext) => Promise<RunningService>): Promise<void> {
  let settings: RuntimeSettings;
  try {
    // Read once, here; the roles get them as ctx.settings and pass them on (libraries read no environment themselves).
    settings = processSettings();
  } catch (err) {
    refuse(createLogger(role, hostname()), err);
  }
  const log = createLogger(role, settings.nodeName, settings.logLevel);
  configureProgress(log, settings);
  const tracing = startTracing(role, settings.nodeName);
  const bus = await connectBus(settings.natsServers, `${role}@${settings.nodeName}`);
  let store: ConfigStore | undefined;
  let stored: ConfigSnapshot | undefined;
  let config: OrganizationConfig | undefined;
  for (let attempt = 1; !config; attempt++) {
    try {
      store ??= await ConfigStore.open(bus, settings.streamReplicas);
      // The file seeds an empty cluster; after that the store (transitctl) is the truth.
      stored = await store.read();
      config = stored?.config ?? (await loadOrganizationConfig(settings.configPath));
    } catch (err) {
      // An invalid or unreadable organisation file will not get better by waiting.
      if (err instanceof ConfigError || (err as NodeJS.ErrnoException).syscall !== undefined) refuse(log, err);
      // A fresh cluster may still be electing the configuration bucket's leader.
      if (attempt % 10 === 1) log.warn({ err: (err as Error).message, attempt }, 'configuration store not ready; retrying');
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  // Before the topology applies this process's retention to the streams: a retention shorter than the organisation's expiry would drop bodies of live messages.
  // The delivered recipients' TTL in Redis is the outbound proxy's alone.
  const kept = { eventRetentionSeconds: settings.eventRetentionSeconds, bodyRetentionSeconds: settings.bodyRetentionSeconds };
  const problems = retentionProblems(
    role === 'outbound-proxy' ? { ...kept, deliveredTtlSeconds: settings.deliveredTtlSeconds } : kept,
    config.TransportSettings,
  );
  if (problems.length)
    refuse(
      log,
      new ConfigError(
        `${stored ? 'the stored configuration' : settings.configPath} does not fit this environment:\n${problems.map((p) => `  ${p}`).join('\n')}`,
      ),
    );
  await untilTopology(bus, settings, log);
  let initial = stored;
  for (let attempt = 1; !initial; attempt++) {
    try {
      initial = await store!.seed(config);
    } catch (err) {
      if (err instanceof ConfigError) refuse(log, err);
      if (attempt % 10 === 1) log.warn({ err: (err as Error).message, attempt }, 'configuration store not ready; retrying');
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  const live = new LiveConfig(initial);
  const unwatch = await store!.watch(
    (snapshot) => {
      if (live.update(snapshot)) log.info({ revision: snapshot.revision }, 'configuration applied');
    },
    (err) => log.error({ err: err.message }, 'configuration revision refused; keeping the previous one'),
  );
  log.info({ revision: initial.revision }, 'configuration loaded');

  const ctx: ServiceContext = {
    role,
    settings,
    get config() {
      return live.current.config;
    },
    live,
    bus,
    log,
    facts: {},
  };
  const service = await start(ctx);
  collectProcessMetrics();
  metrics.roleInfo.set({ role }, 1);
  onScrape(jetStreamProbe(bus));
  onScrape(workerProbe());
  const startedAt = Date.now();
  const httpHost = settings.listenHost ?? '0.0.0.0';
  const httpPort = settings.httpPort ?? DEFAULT_HTTP_PORTS[role] + settings.portOffset;
  // A worker with work waiting and no progress for TRANSIT_STALL_SECONDS is not ready either (progress.ts).
  const ready = () => bus.connected() && (service.ready?.() ?? true) && !workerHealth().some((h) => h.stalled);
  const details = () => {
    const workers = workerHealth();
    const stalled = stalledSummary(workers);
    return {
      role,
      node: settings.nodeName,
      pid: process.pid,
      nats: bus.connected() ? 'connected' : 'disconnected',
      ...ctx.facts,
      ...(stalled ? { stalled } : {}),
      ...(workers.length ? { workers } : {}),
    };
  };
  const http: Server = await startHttpServer(httpHost, httpPort, { ready, details }, service.routes);

  const kv: KV = await new Kvm(bus.js).open(NODES_BUCKET);
  const key = `${role}.${settings.nodeName.replace(/[^A-Za-z0-9_-]/g, '_')}.${process.pid}`;
  const beat = async () => {
    // The dashboard reads readiness (and why not) from here.
    const stalled = stalledSummary(workerHealth());
    const hb: NodeHeartbeat = {
      role,
      node: settings.nodeName,
      pid: process.pid,
      startedAt,
      at: Date.now(),
      ready: ready(),
      http: `${httpHost}:${httpPort}`,
      facts: stalled ? { ...ctx.facts, stalled } : ctx.facts,
    };
    await kv.put(key, JSON.stringify(hb)).catch(() => undefined);
  };
  await beat();
  const heartbeat = setInterval(() => void beat(), NODE_HEARTBEAT_MS);
  log.info({ http: `${httpHost}:${httpPort}`, ...ctx.facts }, `${role} started`);

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, `${role} stopping`);
    clearInterval(heartbeat);
    const force = setTimeout(() => {
      log.error({ stopTimeoutMs: settings.stopTimeoutMs }, 'graceful stop timed out (TRANSIT_STOP_TIMEOUT_MS); exiting');
      process.exit(1);
    }, settings.stopTimeoutMs);
    force.unref();
    let code = 0;
    try {
      await service.stop();
      unwatch();
      await kv.delete(key).catch(() => undefined);
      http.close();
      await bus.close();
      // Spans still batched go out before the process ends.
      await tracing?.shutdown().catch(() => undefined);
      log.info(`${role} stopped`);
    } catch (err) {
      code = 1;
      log.error({ err: (err as Error).message }, `${role} did not stop cleanly`);
    }
    process.exit(code);
  };
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));
}
