/**
 * The register of Transit's settings: every tunable, with its name, type, default, unit,
 * meaning, and where it is set.
 *
 * - `organisation`: the TransportSettings of the organisation's configuration (NATS KV),
 *   changed live with transitctl (Set-TransportConfig, Set-TransportService). Their
 *   validation and defaults are the zod schema's (schema.ts); this register adds what the
 *   schema does not say: unit, meaning, and the cmdlet that sets each.
 * - `environment`: process settings, read from the environment once at start. They are a
 *   zod struct here (one field per variable, with its default and description), so types,
 *   validation messages and the documented defaults come from one place.
 *
 * Cross-checks between settings (RULES) are stated here once, with the reason, and applied
 * by runtimeSettings (environment against environment) and by retentionProblems
 * (environment against the organisation's MessageExpirationTimeout).
 * docs/configuration.md's tables are generated from this file (npm run docs:config).
 */
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { z } from 'zod';
import { transportSettingsSchema, type TransportSettings } from './schema.ts';

export type SettingScope = 'organisation' | 'environment';
export type SettingSource = 'default' | 'environment' | 'organisation';
export type Unit = 'ms' | 's' | 'bytes' | 'count' | '';

/** How an environment variable's text becomes a value, and how the docs and error messages name what it must be. */
type Kind<T> = { schema: z.ZodType<T, string>; type: string; expected: string };

const MAX = Number.MAX_SAFE_INTEGER;

function integer(min: number, max = MAX): Kind<number> {
  return {
    schema: z
      .string()
      .trim()
      .regex(/^-?\d+$/)
      .transform(Number)
      .pipe(z.number().int().min(min).max(max)),
    type: max === MAX ? `integer ≥ ${min}` : `integer ${min}–${max}`,
    expected: max === MAX ? `a whole number ≥ ${min}` : `a whole number from ${min} to ${max}`,
  };
}

/** TRANSIT_STALL_SECONDS: any positive number; below 10 s every short outage would read as a stall, so 10 is the floor. */
const stallSeconds: Kind<number> = {
  schema: z
    .string()
    .trim()
    .regex(/^\d+(\.\d+)?$/)
    .transform(Number)
    .pipe(z.number().positive())
    .transform((n) => Math.max(10, n)),
  type: 'number > 0 (below 10 counts as 10)',
  expected: 'a positive number of seconds',
};

const text: Kind<string> = { schema: z.string().min(1), type: 'text', expected: 'a non-empty text' };
const path: Kind<string> = { schema: z.string().min(1), type: 'path', expected: 'a path' };
const urls: Kind<string[]> = {
  schema: z
    .string()
    .transform((s) =>
      s
        .split(',')
        .map((u) => u.trim())
        .filter(Boolean),
    )
    .pipe(z.array(z.string()).min(1)),
  type: 'URLs, comma separated',
  expected: 'one or more URLs, comma separated',
};
const oneOf = <const T extends readonly [string, ...string[]]>(values: T): Kind<T[number]> => ({
  schema: z.enum(values),
  type: values.join(' | '),
  expected: `one of ${values.join(', ')}`,
});

export type EnvironmentMeta = {
  variable: string;
  /** The text the variable takes when unset (parsed like a set value); absent: unset has its own meaning (defaultText). */
  default?: string;
  /** What unset means, for the docs, when there is no default text or it is derived (the host name, a path under TRANSIT_VAR_DIR). */
  defaultText?: string;
  unit: Unit;
  /** Which processes read it. */
  readBy: string;
  meaning: string;
  /** Its value is never shown (Get-TransportConfig prints "(set)"). */
  secret?: boolean;
  type: string;
  expected: string;
};

export const ENVIRONMENT_REGISTRY = z.registry<EnvironmentMeta>();

type Meta = Omit<EnvironmentMeta, 'type' | 'expected'>;

function env<T>(kind: Kind<T>, meta: Meta & { default: string }): z.ZodPrefault<z.ZodType<T, string>>;
function env<T>(kind: Kind<T>, meta: Meta & { default?: undefined }): z.ZodOptional<z.ZodType<T, string>>;
function env<T>(kind: Kind<T>, meta: Meta): z.ZodType {
  const schema = meta.default !== undefined ? kind.schema.prefault(meta.default) : kind.schema.optional();
  return schema.describe(meta.meaning).register(ENVIRONMENT_REGISTRY, { ...meta, type: kind.type, expected: kind.expected });
}

const EVERY = 'every role';
/** The roles with SMTP listeners. */
const SMTP_ROLES = 'frontend, hub, outbound-proxy';
/** The roles with workers on a JetStream consumer (libs/bus consume.ts). */
const WORKERS = 'hub, mailbox-delivery, outbound-proxy';
const DAY = 86_400;

/**
 * The environment, as a typed struct: one field per variable. Keys are the names code uses
 * (`settings.drainTimeoutMs`); the variable is in each field's metadata. Input values are
 * the variables' texts; an empty text counts as unset.
 */
export const environmentSchema = z.object({
  // Where things are.
  configPath: env(path, {
    variable: 'TRANSIT_CONFIG',
    default: 'config/examples/contoso.yaml',
    unit: '',
    readBy: EVERY,
    meaning: 'the organisation file; it seeds an empty cluster, after which the configuration in NATS KV is the truth',
  }),
  natsServers: env(urls, {
    variable: 'NATS_URL',
    default: 'nats://127.0.0.1:4222',
    unit: '',
    readBy: `${EVERY}, transitctl`,
    meaning: 'NATS servers, comma separated',
  }),
  redisUrl: env(text, {
    variable: 'REDIS_URL',
    default: 'redis://127.0.0.1:6379',
    unit: '',
    readBy: 'outbound-proxy, transitctl',
    meaning: 'Redis: shadow state (outbound leases and heartbeats, recipients already delivered), rebuilt from the event log when lost',
  }),
  nodeName: env(text, {
    variable: 'TRANSIT_NODE_NAME',
    defaultText: '(the host name)',
    unit: '',
    readBy: EVERY,
    meaning: 'node name, and the default FQDN in banners and Received headers',
  }),
  listenHost: env(text, {
    variable: 'TRANSIT_LISTEN_HOST',
    defaultText: '(unset: as bound in the connector)',
    unit: '',
    readBy: EVERY,
    meaning: 'replaces wildcard bindings (0.0.0.0, [::]) and is where the HTTP port listens; `npm start` sets 127.0.0.1',
  }),
  portOffset: env(integer(0, 65_535), {
    variable: 'TRANSIT_PORT_OFFSET',
    default: '0',
    unit: '',
    readBy: EVERY,
    meaning: 'added to every listener port (SMTP, and the default HTTP ports)',
  }),
  httpPort: env(integer(0, 65_535), {
    variable: 'TRANSIT_HTTP_PORT',
    defaultText: 'per role, 8080–8085 (+ offset)',
    unit: '',
    readBy: EVERY,
    meaning: 'the health, metrics (and, for admin, API) HTTP port',
  }),
  varDir: env(path, {
    variable: 'TRANSIT_VAR_DIR',
    default: 'var',
    unit: '',
    readBy: EVERY,
    meaning: 'base for `mail/`, `pickup/`, `replay/`, TLS material and logs',
  }),
  mailDir: env(path, {
    variable: 'TRANSIT_MAIL_DIR',
    defaultText: '`$TRANSIT_VAR_DIR/mail`',
    unit: '',
    readBy: 'mailbox-delivery',
    meaning: 'Maildir base (`<domain>/<local part>/new`)',
  }),
  pickupDir: env(path, {
    variable: 'TRANSIT_PICKUP_DIR',
    defaultText: '`$TRANSIT_VAR_DIR/pickup`',
    unit: '',
    readBy: 'submission',
    meaning: 'the pickup directory (.eml files)',
  }),
  replayDir: env(path, {
    variable: 'TRANSIT_REPLAY_DIR',
    defaultText: '`$TRANSIT_VAR_DIR/replay`',
    unit: '',
    readBy: 'submission',
    meaning: 'the replay directory (.eml files with X-Sender / X-Receiver headers)',
  }),
  protocolLogDir: env(path, {
    variable: 'TRANSIT_PROTOCOL_LOG_DIR',
    defaultText: '`$TRANSIT_VAR_DIR/logs/ProtocolLog`',
    unit: '',
    readBy: SMTP_ROLES,
    meaning: 'SMTP Receive and Send protocol logs of Verbose connectors',
  }),
  tlsCertPath: env(path, {
    variable: 'TRANSIT_TLS_CERT',
    defaultText: '(unset: a self-signed pair made under `$TRANSIT_VAR_DIR/tls`)',
    unit: '',
    readBy: SMTP_ROLES,
    meaning: 'PEM certificate for STARTTLS (with TRANSIT_TLS_KEY)',
  }),
  tlsKeyPath: env(path, {
    variable: 'TRANSIT_TLS_KEY',
    defaultText: '(unset: as TRANSIT_TLS_CERT)',
    unit: '',
    readBy: SMTP_ROLES,
    meaning: 'PEM private key of TRANSIT_TLS_CERT',
  }),
  logLevel: env(oneOf(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']), {
    variable: 'TRANSIT_LOG_LEVEL',
    default: 'info',
    unit: '',
    readBy: EVERY,
    meaning: 'pino log level',
  }),

  // The bus.
  streamReplicas: env(integer(1, 5), {
    variable: 'TRANSIT_STREAM_REPLICAS',
    default: '1',
    unit: 'count',
    readBy: EVERY,
    meaning: 'JetStream replicas of every stream and bucket (3 in a cluster)',
  }),
  ackWaitSeconds: env(integer(1), {
    variable: 'TRANSIT_ACK_WAIT_SECONDS',
    default: '15',
    unit: 's',
    readBy: EVERY,
    meaning:
      'a worker that stops extending its claim (it died) loses its work items to a survivor after this long; live workers extend it every third of it (set the same on every role)',
  }),
  safetyNetHoldSeconds: env(integer(1), {
    variable: 'TRANSIT_SAFETY_NET_HOLD_SECONDS',
    default: String(2 * DAY),
    unit: 's',
    readBy: EVERY,
    meaning: "Exchange's SafetyNetHoldTime: how long delivered mailbox items can be resubmitted (set the same on every role)",
  }),
  eventRetentionSeconds: env(integer(DAY), {
    variable: 'TRANSIT_EVENT_RETENTION_SECONDS',
    default: String(7 * DAY),
    unit: 's',
    readBy: EVERY,
    meaning:
      "how long each message's event log (its state, and message tracking) is kept; at least MessageExpirationTimeout plus a day (set the same on every role)",
  }),
  bodyRetentionSeconds: env(integer(DAY), {
    variable: 'TRANSIT_BODY_RETENTION_SECONDS',
    default: String(7 * DAY),
    unit: 's',
    readBy: EVERY,
    meaning: 'how long message bodies in the object store are kept; at least MessageExpirationTimeout plus a day (set the same on every role)',
  }),
  submitQueueMaxMessages: env(integer(-1), {
    variable: 'TRANSIT_SUBMIT_QUEUE_MAX_MESSAGES',
    default: '-1',
    unit: 'count',
    readBy: EVERY,
    meaning:
      'back pressure: beyond this many waiting messages frontends answer `452 4.3.1 Insufficient system resources` (-1: no limit; set the same on every role)',
  }),
  submitQueueMaxBytes: env(integer(-1), {
    variable: 'TRANSIT_SUBMIT_QUEUE_MAX_BYTES',
    default: '-1',
    unit: 'bytes',
    readBy: EVERY,
    meaning: 'the same limit in bytes (-1: no limit)',
  }),
  duplicateWindowSeconds: env(integer(1, DAY), {
    variable: 'TRANSIT_DUPLICATE_WINDOW_SECONDS',
    default: '120',
    unit: 's',
    readBy: EVERY,
    meaning:
      "JetStream's duplicate window on every stream: a publish repeated under the same message id within it is stored once (a frontend's retries, a hub's successor queuing the same delivery items again; set the same on every role)",
  }),
  poisonRetentionSeconds: env(integer(DAY), {
    variable: 'TRANSIT_POISON_RETENTION_SECONDS',
    default: String(30 * DAY),
    unit: 's',
    readBy: EVERY,
    meaning: 'how long poison messages parked in MAIL_POISON are kept for the administrator (set the same on every role)',
  }),
  poisonMarkerTtlSeconds: env(integer(60), {
    variable: 'TRANSIT_POISON_MARKER_TTL_SECONDS',
    default: '600',
    unit: 's',
    readBy: EVERY,
    meaning:
      "how long the journal of the work items a worker process is handling (poison detection, KV `transit-inflight`) outlives the process when it dies; at least 5 × TRANSIT_ACK_WAIT_SECONDS is used, so the item's redelivery still finds it (set the same on every role)",
  }),
  nodeTtlMs: env(integer(10_000), {
    variable: 'TRANSIT_NODE_TTL_MS',
    default: '15000',
    unit: 'ms',
    readBy: EVERY,
    meaning:
      "each process's heartbeat in KV `transit-nodes` (written every 5 s) lives this long: a process that died without removing it is listed, and counted live by the admin's health, until then (set the same on every role)",
  }),

  // Receiving.
  publishBudgetMs: env(integer(0), {
    variable: 'TRANSIT_PUBLISH_BUDGET_MS',
    default: '15000',
    unit: 'ms',
    readBy: `${SMTP_ROLES}, submission`,
    meaning: 'how long a frontend keeps retrying (same message id, so never twice) to make an accepted message durable before answering 4xx',
  }),
  backPressureHoldMs: env(integer(0), {
    variable: 'TRANSIT_BACK_PRESSURE_HOLD_MS',
    default: '5000',
    unit: 'ms',
    readBy: SMTP_ROLES,
    meaning: 'after the submit queue refused a message for lack of room, new transactions are answered `452 4.3.1` at MAIL FROM for this long, without trying',
  }),
  proxyHeaderTimeoutMs: env(integer(100), {
    variable: 'TRANSIT_PROXY_HEADER_TIMEOUT_MS',
    default: '5000',
    unit: 'ms',
    readBy: SMTP_ROLES,
    meaning: 'a connection from a load balancer (LoadBalancers) without a complete PROXY protocol header within this long is refused with `421 4.7.0`',
  }),

  // Workers.
  hubConcurrency: env(integer(1, 500), {
    variable: 'TRANSIT_HUB_CONCURRENCY',
    default: '32',
    unit: 'count',
    readBy: 'hub',
    meaning: 'messages a hub categorises at once',
  }),
  mailboxDeliveryConcurrency: env(integer(1, 500), {
    variable: 'TRANSIT_MAILBOX_DELIVERY_CONCURRENCY',
    default: '16',
    unit: 'count',
    readBy: 'mailbox-delivery',
    meaning: 'work items a mailbox-delivery process writes at once',
  }),
  outboundConcurrency: env(integer(1, 500), {
    variable: 'TRANSIT_OUTBOUND_CONCURRENCY',
    default: '32',
    unit: 'count',
    readBy: 'outbound-proxy',
    meaning: 'work items an outbound proxy delivers at once',
  }),
  stallSeconds: env(stallSeconds, {
    variable: 'TRANSIT_STALL_SECONDS',
    default: '120',
    unit: 's',
    readBy: WORKERS,
    meaning: 'a worker with work waiting and no progress for this long is stalled: `/readyz` fails and `transit_worker_stalled` is 1',
  }),
  pullExpiresMs: env(integer(2000), {
    variable: 'TRANSIT_PULL_EXPIRES_MS',
    default: '10000',
    unit: 'ms',
    readBy: WORKERS,
    meaning:
      "a worker's pull request on its consumer lasts this long and is then renewed; NATS sends an idle heartbeat every quarter of it (2.5 s), and two missed ones make the worker pull again",
  }),
  workerCheckMs: env(integer(100), {
    variable: 'TRANSIT_WORKER_CHECK_MS',
    default: '5000',
    unit: 'ms',
    readBy: WORKERS,
    meaning: "how often each worker reads its consumer's state, for the pull watchdog, the stall check and the stranded-item sweep",
  }),
  pullRestartAfterMs: env(integer(1000), {
    variable: 'TRANSIT_PULL_RESTART_AFTER_MS',
    default: '10000',
    unit: 'ms',
    readBy: WORKERS,
    meaning: 'the pull watchdog: a worker with a free slot that receives nothing for this long while work waits on its consumer restarts its pull loop',
  }),
  strandedGraceMs: env(integer(1000), {
    variable: 'TRANSIT_STRANDED_GRACE_MS',
    default: '10000',
    unit: 'ms',
    readBy: WORKERS,
    meaning:
      "a work item still in the stream this long after its consumer's ack floor passed it (a replica reset) is published again and the original acknowledged",
  }),
  shadowCheckAfterMs: env(integer(1000), {
    variable: 'TRANSIT_SHADOW_CHECK_AFTER_MS',
    default: '10000',
    unit: 'ms',
    readBy: 'hub',
    meaning: 'shadow redundancy: a delivery item the hub queued is first looked for in the stream this long after, and at least this long apart afterwards',
  }),
  shadowMaxRecheckMs: env(integer(1000), {
    variable: 'TRANSIT_SHADOW_MAX_RECHECK_MS',
    default: '300000',
    unit: 'ms',
    readBy: 'hub',
    meaning: 'shadow redundancy: the longest wait between two looks at an item still queued (the wait grows to half its age)',
  }),
  shadowMissingGraceMs: env(integer(1000), {
    variable: 'TRANSIT_SHADOW_MISSING_GRACE_MS',
    default: '10000',
    unit: 'ms',
    readBy: 'hub',
    meaning:
      'shadow redundancy: a delivery item gone from the stream while its recipients still wait is queued again from its shadow once it has been missing this long (a requeued stranded item moves to a new sequence; the copy is leased under the original sequence, so a twin is never sent beside it)',
  }),

  // Sending.
  outboundMaxConnections: env(integer(1, 1000), {
    variable: 'TRANSIT_OUTBOUND_MAX_CONNECTIONS',
    default: '5',
    unit: 'count',
    readBy: 'outbound-proxy',
    meaning:
      'SMTP connections one outbound proxy opens to one destination host for one next hop; across all proxies a next hop gets at most MaxPerDomainOutboundConnections (TransportSettings or its send connector)',
  }),
  outboundMaxMessagesPerConnection: env(integer(1), {
    variable: 'TRANSIT_OUTBOUND_MAX_MESSAGES_PER_CONNECTION',
    default: '1000',
    unit: 'count',
    readBy: 'outbound-proxy',
    meaning: 'messages sent over one connection before it is replaced',
  }),
  outboundConnectionTimeoutMs: env(integer(1000), {
    variable: 'TRANSIT_OUTBOUND_CONNECTION_TIMEOUT_MS',
    default: '30000',
    unit: 'ms',
    readBy: 'outbound-proxy',
    meaning: 'how long to wait for the TCP connection to a next hop',
  }),
  outboundGreetingTimeoutMs: env(integer(1000), {
    variable: 'TRANSIT_OUTBOUND_GREETING_TIMEOUT_MS',
    default: '30000',
    unit: 'ms',
    readBy: 'outbound-proxy',
    meaning: "how long to wait for the next hop's 220 greeting once connected",
  }),
  outboundSocketTimeoutMs: env(integer(1000), {
    variable: 'TRANSIT_OUTBOUND_SOCKET_TIMEOUT_MS',
    default: '600000',
    unit: 'ms',
    readBy: 'outbound-proxy',
    meaning: "how long a connection may be silent before it is given up (Exchange's send connector ConnectionInactivityTimeOut, 10 min)",
  }),
  shadowLeaseTtlMs: env(integer(1000), {
    variable: 'TRANSIT_SHADOW_LEASE_TTL_MS',
    default: '15000',
    unit: 'ms',
    readBy: 'outbound-proxy',
    meaning: 'the Redis lease on a work item being delivered lives this long unless renewed (at a third of it); a copy JetStream hands out meanwhile waits',
  }),
  shadowHeartbeatTtlMs: env(integer(300), {
    variable: 'TRANSIT_SHADOW_HEARTBEAT_TTL_MS',
    default: '3000',
    unit: 'ms',
    readBy: 'outbound-proxy',
    meaning:
      "an outbound proxy's heartbeat in Redis lives this long unless renewed (at a third of it); when it is gone, survivors take over that proxy's leased items",
  }),
  deliveredTtlSeconds: env(integer(DAY), {
    variable: 'TRANSIT_DELIVERED_TTL_SECONDS',
    default: String(9 * DAY),
    unit: 's',
    readBy: 'outbound-proxy, transitctl',
    meaning:
      'how long Redis keeps the recipients of a message already delivered remotely (the guard against sending to them twice); at least MessageExpirationTimeout plus a day',
  }),

  // Stopping.
  drainTimeoutMs: env(integer(0), {
    variable: 'TRANSIT_DRAIN_TIMEOUT_MS',
    default: '20000',
    unit: 'ms',
    readBy: SMTP_ROLES,
    meaning: 'on SIGTERM: new SMTP sessions get `421 4.3.2`, `/readyz` fails, open transactions get this long to finish',
  }),
  stopTimeoutMs: env(integer(1000), {
    variable: 'TRANSIT_STOP_TIMEOUT_MS',
    default: '30000',
    unit: 'ms',
    readBy: EVERY,
    meaning: 'on SIGTERM, a process that has not stopped after this long (drain, in-flight work items, closing the bus) exits with status 1',
  }),

  // Secrets.
  clusterSecret: env(text, {
    variable: 'TRANSIT_CLUSTER_SECRET',
    defaultText: '(unset: ExchangeServer authentication and DKIM signing off)',
    unit: '',
    readBy: `${SMTP_ROLES}, transitctl`,
    secret: true,
    meaning:
      "password Transit's own nodes use with logon `NODE$` on ExchangeServer connectors; DKIM private keys are sealed with a key derived from it (`transitctl dkim`, the outbound proxies)",
  }),
  adminPassword: env(text, {
    variable: 'TRANSIT_ADMIN_PASSWORD',
    defaultText: '(unset: admin API and dashboard disabled)',
    unit: '',
    readBy: 'admin',
    secret: true,
    meaning: 'password of user `admin` for the dashboard and `/api/` (a short one keeps them disabled)',
  }),
  adminPasswordFile: env(path, {
    variable: 'TRANSIT_ADMIN_PASSWORD_FILE',
    defaultText: '(unset)',
    unit: '',
    readBy: 'admin',
    meaning: 'a file holding that password (for mounted secrets); wins over TRANSIT_ADMIN_PASSWORD',
  }),
});

export type EnvironmentSettings = z.output<typeof environmentSchema>;
export type EnvironmentKey = keyof EnvironmentSettings;

export const ENVIRONMENT_KEYS = Object.keys(environmentSchema.shape) as EnvironmentKey[];

export function environmentMeta(key: EnvironmentKey): EnvironmentMeta {
  const meta = ENVIRONMENT_REGISTRY.get(environmentSchema.shape[key]);
  if (!meta) throw new Error(`environment setting ${key} has no metadata`);
  return meta;
}

/**
 * A setting's default as the register states it (what an unset variable gives), without
 * reading the environment: the fallback of constructors and options whose callers normally
 * pass the process's value (ctx.settings), so tests can leave them out.
 */
export function environmentDefault<K extends EnvironmentKey>(key: K): EnvironmentSettings[K] {
  return environmentSchema.shape[key].parse(undefined) as EnvironmentSettings[K];
}

/** The variables' texts under the struct's keys; unset and empty ones are left out (their default applies). */
function rawEnvironment(env: NodeJS.ProcessEnv): Partial<Record<EnvironmentKey, string>> {
  const raw: Partial<Record<EnvironmentKey, string>> = {};
  for (const key of ENVIRONMENT_KEYS) {
    const value = env[environmentMeta(key).variable];
    if (value !== undefined && value !== '') raw[key] = value;
  }
  return raw;
}

/** "TRANSIT_DRAIN_TIMEOUT_MS must be a whole number ≥ 0 (ms), not "20s"". */
function invalidVariable(key: EnvironmentKey, raw: string | undefined): string {
  const meta = environmentMeta(key);
  const unit = meta.unit && meta.unit !== 'count' ? ` (${meta.unit})` : '';
  return `${meta.variable} must be ${meta.expected}${unit}, not ${meta.secret ? 'the value given' : JSON.stringify(raw)}`;
}

export type EnvironmentReading = { values: EnvironmentSettings; problems: string[] };

/** Every variable read and validated; the problems name the variables (a field in trouble keeps its default). */
export function readEnvironment(env: NodeJS.ProcessEnv): EnvironmentReading {
  const raw = rawEnvironment(env);
  const result = environmentSchema.safeParse(raw);
  if (result.success) return { values: result.data, problems: [] };
  const bad = [...new Set(result.error.issues.map((i) => i.path[0] as EnvironmentKey))];
  const problems = bad.map((key) => invalidVariable(key, raw[key]));
  const valid = Object.fromEntries(Object.entries(raw).filter(([k]) => !bad.includes(k as EnvironmentKey)));
  return { values: environmentSchema.parse(valid), problems };
}

/** One value read as it would be at start: its own variable only (a mistake elsewhere does not stop it). */
export function readEnvironmentSetting<K extends EnvironmentKey>(env: NodeJS.ProcessEnv, key: K): EnvironmentSettings[K] {
  const raw = env[environmentMeta(key).variable];
  const result = environmentSchema.shape[key].safeParse(raw === '' ? undefined : raw);
  if (!result.success) throw new Error(invalidVariable(key, raw));
  return result.data as EnvironmentSettings[K];
}

/** MessageExpirationTimeout plus this must fit in the event and body retention: the last attempt, its failure report, and a day's outage or hold. */
export const RETENTION_MARGIN_SECONDS = DAY;

/** A rule between settings: what must hold, and why. The docs list them; runtimeSettings and retentionProblems apply them. */
export type SettingRule = { rule: string; why: string };

export const RULES: readonly SettingRule[] = [
  {
    rule: 'TRANSIT_DRAIN_TIMEOUT_MS < TRANSIT_STOP_TIMEOUT_MS',
    why: 'the forced exit would otherwise cut the drain short, and after the SMTP sessions drain a process still finishes its in-flight work items and closes the bus',
  },
  {
    rule: '3 × TRANSIT_SHADOW_HEARTBEAT_TTL_MS ≤ 2 × TRANSIT_SHADOW_LEASE_TTL_MS',
    why:
      'both are renewed every third of their TTL, so after a pause a lease lapses at the earliest at two thirds of its TTL and a heartbeat at the latest after its whole TTL. ' +
      'The heartbeat must be gone first: then an outbound proxy that still counts as alive always holds its leases, and a copy of its work item that JetStream hands out meanwhile waits instead of being sent again',
  },
  {
    rule: 'TRANSIT_ACK_WAIT_SECONDS and TRANSIT_SHADOW_LEASE_TTL_MS: neither must be larger',
    why:
      'the ack wait decides when JetStream hands a work item out again (libs/bus consume.ts extends it every third); the lease, renewed on its own through Redis, decides whether that copy waits. ' +
      'A live owner keeps both, and a stalled one loses its heartbeat first (the rule above), so exactly-once does not depend on their order. ' +
      "An ack wait shorter than the lease only means that a dead owner's item handed out again waits for its lease or for a survivor to take it over (within the heartbeat TTL and a second); a longer one delays hub and mailbox-delivery items of a dead worker",
  },
  {
    rule: `TRANSIT_EVENT_RETENTION_SECONDS and TRANSIT_BODY_RETENTION_SECONDS ≥ MessageExpirationTimeout + ${RETENTION_MARGIN_SECONDS / DAY} day`,
    why:
      'a message is retried for up to MessageExpirationTimeout and then reported with its body or headers; its body and its event log (its state and its duplicate guard) must outlive it, with a day to spare for an outage or a suspended queue. ' +
      'A service refuses to start when the organisation asks for more, and a configuration write (transitctl, the admin API) is refused when the cluster keeps bodies or events for less',
  },
  {
    rule: `TRANSIT_DELIVERED_TTL_SECONDS ≥ MessageExpirationTimeout + ${RETENTION_MARGIN_SECONDS / DAY} day`,
    why:
      'an outbound proxy checks a work item it is handed for the first time (a copy queued again by a hub that died, a queue retry) against Redis only, not the event log, for recipients already delivered; ' +
      "that record must outlive every attempt at the message. An outbound proxy refuses to start when the organisation asks for more; a configuration write is not checked against it (the cluster's streams do not know the TTL in Redis)",
  },
  {
    rule: 'TRANSIT_PUBLISH_BUDGET_MS ≤ TRANSIT_DUPLICATE_WINDOW_SECONDS',
    why: 'a frontend retries making an accepted message durable under the same message id for up to its budget, and JetStream stores a repeated id once only within its duplicate window: a longer budget could queue the message twice',
  },
  {
    rule: 'TRANSIT_DUPLICATE_WINDOW_SECONDS ≤ TRANSIT_SAFETY_NET_HOLD_SECONDS',
    why: "JetStream refuses a stream whose duplicate window is longer than its maximum age, and the Safety Net's is the hold time (the other streams keep messages for a day or more); the process would otherwise retry creating the streams forever",
  },
];

function formatDuration(seconds: number): string {
  const d = Math.floor(seconds / DAY);
  const hms = [Math.floor(seconds / 3600) % 24, Math.floor(seconds / 60) % 60, Math.floor(seconds) % 60].map((v) => String(v).padStart(2, '0')).join(':');
  return d > 0 ? `${d}.${hms}` : hms;
}

/** The cross-checks between environment settings (RULES: drain and stop, heartbeat and lease, publish budget and duplicate window, duplicate window and Safety Net). */
export function environmentRuleProblems(v: EnvironmentSettings): string[] {
  const problems: string[] = [];
  if (v.drainTimeoutMs >= v.stopTimeoutMs) {
    problems.push(
      `TRANSIT_DRAIN_TIMEOUT_MS (${v.drainTimeoutMs} ms) must be shorter than TRANSIT_STOP_TIMEOUT_MS (${v.stopTimeoutMs} ms): ${RULES[0]!.why}; raise TRANSIT_STOP_TIMEOUT_MS too`,
    );
  }
  if (3 * v.shadowHeartbeatTtlMs > 2 * v.shadowLeaseTtlMs) {
    problems.push(
      `TRANSIT_SHADOW_HEARTBEAT_TTL_MS (${v.shadowHeartbeatTtlMs} ms) must be at most two thirds of TRANSIT_SHADOW_LEASE_TTL_MS (${v.shadowLeaseTtlMs} ms): an outbound proxy must lose its heartbeat (and its items to a survivor) before any of its leases can lapse`,
    );
  }
  if (v.publishBudgetMs > v.duplicateWindowSeconds * 1000) {
    problems.push(
      `TRANSIT_PUBLISH_BUDGET_MS (${v.publishBudgetMs} ms) must not be longer than TRANSIT_DUPLICATE_WINDOW_SECONDS (${v.duplicateWindowSeconds} s): a frontend's retries under the same message id are stored once only within the duplicate window`,
    );
  }
  if (v.duplicateWindowSeconds > v.safetyNetHoldSeconds) {
    problems.push(
      `TRANSIT_DUPLICATE_WINDOW_SECONDS (${v.duplicateWindowSeconds} s) must not be longer than TRANSIT_SAFETY_NET_HOLD_SECONDS (${v.safetyNetHoldSeconds} s): JetStream refuses a stream whose duplicate window is longer than its maximum age`,
    );
  }
  return problems;
}

export type Retention = { eventRetentionSeconds: number; bodyRetentionSeconds: number; deliveredTtlSeconds: number };

/**
 * RULES on MessageExpirationTimeout: whether it fits in what is kept (bodies, event logs, the
 * delivered recipients in Redis). `where` says where the retention came from (this process's
 * environment, or the cluster's streams), so the message points at what to change; what is
 * not known there (left out) is not checked.
 */
export function retentionProblems(
  retention: Partial<Retention>,
  transport: Pick<TransportSettings, 'MessageExpirationTimeout'>,
  where = 'in this environment',
): string[] {
  const expiry = transport.MessageExpirationTimeout;
  const needed = expiry + RETENTION_MARGIN_SECONDS;
  const problems: string[] = [];
  const check = (variable: string, kept: number | undefined, what: string, on = 'every role') => {
    if (kept === undefined || kept >= needed) return;
    const lower =
      kept > RETENTION_MARGIN_SECONDS
        ? `Lower MessageExpirationTimeout (Set-TransportService -MessageExpirationTimeout ${formatDuration(kept - RETENTION_MARGIN_SECONDS)}) or raise`
        : 'Raise';
    problems.push(
      `MessageExpirationTimeout (${formatDuration(expiry)}) is too long for ${variable} ${where} (${kept} s = ${formatDuration(kept)}): ${what} must outlive every message by a day, so it needs at least ${needed} s (${formatDuration(needed)}). ` +
        `${lower} ${variable} on ${on}`,
    );
  };
  check('TRANSIT_BODY_RETENTION_SECONDS', retention.bodyRetentionSeconds, 'a message body');
  check('TRANSIT_EVENT_RETENTION_SECONDS', retention.eventRetentionSeconds, "a message's event log");
  check('TRANSIT_DELIVERED_TTL_SECONDS', retention.deliveredTtlSeconds, 'the record of its delivered recipients', 'every outbound proxy');
  return problems;
}

/** The organisation's settings: TransportSettings, with the cmdlet that sets each and what the schema does not say. */
export type OrganisationMeta = {
  unit: Unit;
  /** Exchange's cmdlet for it: Set-TransportService (per server in Exchange, organisation-wide here) or Set-TransportConfig. */
  cmdlet: 'Set-TransportService' | 'Set-TransportConfig';
  /** Exchange has a setting of this name (else it is Transit's own, or Exchange keeps it elsewhere: `note`). */
  exchange: boolean;
  meaning: string;
  note?: string;
};

export const ORGANISATION: { readonly [K in keyof TransportSettings]-?: OrganisationMeta } = {
  InlineBodyMaxBytes: {
    unit: 'bytes',
    cmdlet: 'Set-TransportConfig',
    exchange: false,
    meaning: 'bodies up to this size travel inline in the envelope; larger ones go to the object store',
  },
  GlitchRetryCount: {
    unit: 'count',
    cmdlet: 'Set-TransportConfig',
    exchange: false,
    meaning: 'quick retries after a connection failure, GlitchRetryInterval apart',
    note: 'Exchange: QueueGlitchRetryCount in EdgeTransport.exe.config',
  },
  GlitchRetryInterval: {
    unit: 's',
    cmdlet: 'Set-TransportConfig',
    exchange: false,
    meaning: 'time between the quick retries',
    note: 'Exchange: QueueGlitchRetryInterval in EdgeTransport.exe.config',
  },
  TransientFailureRetryCount: {
    unit: 'count',
    cmdlet: 'Set-TransportService',
    exchange: true,
    meaning: 'then this many retries, TransientFailureRetryInterval apart',
  },
  TransientFailureRetryInterval: { unit: 's', cmdlet: 'Set-TransportService', exchange: true, meaning: 'time between those retries' },
  OutboundConnectionFailureRetryInterval: {
    unit: 's',
    cmdlet: 'Set-TransportService',
    exchange: true,
    meaning: 'after them, the time between retries until MessageExpirationTimeout',
  },
  TransientRetrySchedule: {
    unit: 's',
    cmdlet: 'Set-TransportConfig',
    exchange: false,
    meaning: "an explicit schedule (seconds between attempts, the last one repeating) instead of the intervals above; unset: Exchange's intervals",
  },
  MessageExpirationTimeout: {
    unit: 's',
    cmdlet: 'Set-TransportService',
    exchange: true,
    meaning: 'a message still undelivered after this long is failed with 4.4.7 and reported to its sender',
  },
  DelayNotificationTimeout: {
    unit: 's',
    cmdlet: 'Set-TransportService',
    exchange: true,
    meaning: 'a message still undelivered after this long gets its sender one delay notification',
  },
  DsnMaxReturnedMessageBytes: {
    unit: 'bytes',
    cmdlet: 'Set-TransportConfig',
    exchange: false,
    meaning: 'with RET=FULL a failure report returns the whole message up to this size, beyond it the headers',
    note: 'Exchange: ExternalDsnMaxMessageAttachSize and InternalDsnMaxMessageAttachSize',
  },
  PickupDirectoryPollInterval: {
    unit: 'ms',
    cmdlet: 'Set-TransportConfig',
    exchange: false,
    meaning: 'how often the pickup and replay directories are scanned',
  },
  PickupDirectoryMaxRecipientsPerMessage: {
    unit: 'count',
    cmdlet: 'Set-TransportService',
    exchange: true,
    meaning: 'a pickup file with more recipients is refused (a .bad file)',
  },
  PickupDirectoryMaxHeaderSize: {
    unit: 'bytes',
    cmdlet: 'Set-TransportService',
    exchange: true,
    meaning: 'a pickup file with a larger header is refused (a .bad file)',
  },
  MaxPerDomainOutboundConnections: {
    unit: 'count',
    cmdlet: 'Set-TransportService',
    exchange: true,
    meaning:
      'SMTP connections open at once to one next hop (a domain, or a send connector with smart hosts), counted across every outbound proxy through Redis; a send connector may set its own',
  },
  MaxPerDomainOutboundMessagesPerMinute: {
    unit: 'count',
    cmdlet: 'Set-TransportService',
    exchange: false,
    meaning: 'messages per minute to one next hop, across every outbound proxy (0: no limit); a send connector may set its own',
  },
};

export const ORGANISATION_KEYS = Object.keys(ORGANISATION) as Array<keyof TransportSettings>;

/** The schema's default of a TransportSettings field (undefined when it has none). */
export function organisationDefault<K extends keyof TransportSettings>(key: K): TransportSettings[K] {
  return transportSettingsSchema.shape[key].parse(undefined) as TransportSettings[K];
}

/** "integer 1–3600", "list of integers ≥ 1", from the schema's own bounds. */
export function organisationType(key: keyof TransportSettings): string {
  const json = z.toJSONSchema(transportSettingsSchema.shape[key], { io: 'input', unrepresentable: 'any' }) as {
    type?: string;
    minimum?: number;
    maximum?: number;
    items?: { minimum?: number; maximum?: number };
  };
  const unit = ORGANISATION[key].unit;
  const show = (n: number) => (unit === 's' ? `${n} s` : String(n));
  const bounds = (min?: number, max?: number) => (max === undefined || max >= MAX ? `≥ ${show(min ?? 0)}` : `${show(min ?? 0)}–${show(max)}`);
  if (json.type === 'array') return `list of integers ${bounds(json.items?.minimum, json.items?.maximum)}`;
  const kind = unit === 's' ? 'time span (seconds or d.hh:mm:ss)' : unit === 'bytes' ? 'size (bytes, KB, MB)' : 'integer';
  return `${kind} ${bounds(json.minimum, json.maximum)}`;
}

/** One row of Get-TransportConfig and `transitctl get transportconfig`: a setting, its value right now, and where that came from. */
export type SettingRow = {
  Name: string;
  Value: unknown;
  Unit: Unit;
  Source: SettingSource;
  Scope: SettingScope;
  Default: unknown;
  SetWith: string;
  Meaning: string;
};

/**
 * Every setting's value: organisation ones from `transport` (the live configuration; a value
 * equal to the schema's default reads as "default", because the stored document keeps every
 * field), environment ones as a process with `env` would read them at start.
 */
export function settingRows(transport: TransportSettings | undefined, env: NodeJS.ProcessEnv): SettingRow[] {
  const rows: SettingRow[] = ORGANISATION_KEYS.map((key) => {
    const meta = ORGANISATION[key];
    const fallback = organisationDefault(key);
    const value = transport ? transport[key] : fallback;
    return {
      Name: key,
      Value: value,
      Unit: meta.unit,
      Source: transport && JSON.stringify(value) !== JSON.stringify(fallback) ? 'organisation' : 'default',
      Scope: 'organisation',
      Default: fallback,
      SetWith: `${meta.cmdlet} -${key}`,
      Meaning: meta.meaning,
    };
  });
  const reading = readEnvironment(env);
  const derived = deriveRuntime(reading.values);
  for (const key of ENVIRONMENT_KEYS) {
    const meta = environmentMeta(key);
    const raw = env[meta.variable];
    const set = raw !== undefined && raw !== '';
    const problem = set ? reading.problems.find((p) => p.startsWith(`${meta.variable} `)) : undefined;
    const value = derived[key];
    rows.push({
      Name: meta.variable,
      Value: problem ? `invalid: ${problem}` : meta.secret ? (set ? '(set)' : '(unset)') : value,
      Unit: meta.unit,
      Source: set ? 'environment' : 'default',
      Scope: 'environment',
      Default: meta.default ?? meta.defaultText,
      SetWith: 'environment, read at start',
      Meaning: meta.meaning,
    });
  }
  return rows;
}

/**
 * What each process runs with: the environment's values, with the derived defaults filled in
 * (the host name, directories under TRANSIT_VAR_DIR) and paths made absolute.
 */
export type RuntimeSettings = Omit<EnvironmentSettings, 'nodeName' | 'mailDir' | 'pickupDir' | 'replayDir' | 'protocolLogDir'> & {
  nodeName: string;
  mailDir: string;
  pickupDir: string;
  replayDir: string;
  protocolLogDir: string;
};

/** The environment's values with the derived defaults filled in (the host name, directories under TRANSIT_VAR_DIR) and paths made absolute. */
export function deriveRuntime(v: EnvironmentSettings): RuntimeSettings {
  const varDir = resolve(v.varDir);
  return {
    ...v,
    configPath: resolve(v.configPath),
    nodeName: v.nodeName ?? hostname(),
    varDir,
    mailDir: resolve(v.mailDir ?? `${varDir}/mail`),
    pickupDir: resolve(v.pickupDir ?? `${varDir}/pickup`),
    replayDir: resolve(v.replayDir ?? `${varDir}/replay`),
    protocolLogDir: resolve(v.protocolLogDir ?? `${varDir}/logs/ProtocolLog`),
    tlsCertPath: v.tlsCertPath === undefined ? undefined : resolve(v.tlsCertPath),
    tlsKeyPath: v.tlsKeyPath === undefined ? undefined : resolve(v.tlsKeyPath),
    adminPasswordFile: v.adminPasswordFile === undefined ? undefined : resolve(v.adminPasswordFile),
  };
}
