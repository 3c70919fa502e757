/**
 * Process settings from the environment: where the bus is, where files go, how listeners
 * are placed on this machine. One place, so every service and the README agree.
 */
import { hostname } from 'node:os';
import { resolve } from 'node:path';

export type RuntimeSettings = {
  natsServers: string[];
  redisUrl: string;
  configPath: string;
  nodeName: string;
  /** Replaces wildcard bindings (0.0.0.0 / [::]) when set: 127.0.0.1 in the local profile. */
  listenHost: string | undefined;
  /** Added to every SMTP listener port (and to the default health ports). */
  portOffset: number;
  varDir: string;
  mailDir: string;
  pickupDir: string;
  /** The replay directory: .eml files with X-Sender / X-Receiver envelope headers (Export-Message's output). */
  replayDir: string;
  streamReplicas: number;
  httpPort: number | undefined;
  /** PEM certificate and key for STARTTLS; without them a self-signed pair is made under varDir. */
  tlsCertPath: string | undefined;
  tlsKeyPath: string | undefined;
  /** Where SMTP protocol logs go (connectors with ProtocolLoggingLevel Verbose). */
  protocolLogDir: string;
  /** The shared secret Transit's own nodes authenticate with (AuthMechanism ExchangeServer). */
  clusterSecret: string | undefined;
  /** Back pressure: limits of the submit queue (-1: none); beyond them frontends answer 452 4.3.1. */
  submitQueueMaxMessages: number;
  submitQueueMaxBytes: number;
  /** On SIGTERM, how long SMTP sessions may take to finish before they are cut (ms). */
  drainTimeoutMs: number;
  /** SafetyNetHoldTime: how long delivered messages can be resubmitted (seconds). */
  safetyNetHoldSeconds: number;
  /** How long JetStream waits for a worker's acknowledgement before redelivering (seconds). */
  ackWaitSeconds: number;
  /** How long a frontend keeps trying to make an accepted message durable before answering 4xx (ms). */
  publishBudgetMs: number;
};

function intFrom(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must be a non-negative integer (got "${raw}")`);
  return n;
}

export function runtimeSettings(env: NodeJS.ProcessEnv = process.env): RuntimeSettings {
  const varDir = resolve(env.TRANSIT_VAR_DIR ?? 'var');
  const httpPort = env.TRANSIT_HTTP_PORT ? intFrom(env, 'TRANSIT_HTTP_PORT', 0) : undefined;
  return {
    natsServers: (env.NATS_URL ?? 'nats://127.0.0.1:4222').split(',').map((s) => s.trim()).filter(Boolean),
    redisUrl: env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    configPath: resolve(env.TRANSIT_CONFIG ?? 'config/examples/contoso.yaml'),
    nodeName: env.TRANSIT_NODE_NAME ?? hostname(),
    listenHost: env.TRANSIT_LISTEN_HOST || undefined,
    portOffset: intFrom(env, 'TRANSIT_PORT_OFFSET', 0),
    varDir,
    mailDir: resolve(env.TRANSIT_MAIL_DIR ?? `${varDir}/mail`),
    pickupDir: resolve(env.TRANSIT_PICKUP_DIR ?? `${varDir}/pickup`),
    replayDir: resolve(env.TRANSIT_REPLAY_DIR ?? `${varDir}/replay`),
    streamReplicas: intFrom(env, 'TRANSIT_STREAM_REPLICAS', 1),
    httpPort,
    tlsCertPath: env.TRANSIT_TLS_CERT ? resolve(env.TRANSIT_TLS_CERT) : undefined,
    tlsKeyPath: env.TRANSIT_TLS_KEY ? resolve(env.TRANSIT_TLS_KEY) : undefined,
    protocolLogDir: resolve(env.TRANSIT_PROTOCOL_LOG_DIR ?? `${varDir}/logs/ProtocolLog`),
    clusterSecret: env.TRANSIT_CLUSTER_SECRET || undefined,
    submitQueueMaxMessages: env.TRANSIT_SUBMIT_QUEUE_MAX_MESSAGES ? intFrom(env, 'TRANSIT_SUBMIT_QUEUE_MAX_MESSAGES', -1) : -1,
    submitQueueMaxBytes: env.TRANSIT_SUBMIT_QUEUE_MAX_BYTES ? intFrom(env, 'TRANSIT_SUBMIT_QUEUE_MAX_BYTES', -1) : -1,
    drainTimeoutMs: intFrom(env, 'TRANSIT_DRAIN_TIMEOUT_MS', 20_000),
    safetyNetHoldSeconds: intFrom(env, 'TRANSIT_SAFETY_NET_HOLD_SECONDS', 2 * 24 * 3600),
    ackWaitSeconds: intFrom(env, 'TRANSIT_ACK_WAIT_SECONDS', 15),
    publishBudgetMs: intFrom(env, 'TRANSIT_PUBLISH_BUDGET_MS', 15_000),
  };
}
