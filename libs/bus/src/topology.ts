/**
 * The bus's shape: which streams hold which subjects, which durable consumers read them.
 * Created idempotently at start-up by every service (add, or update when it exists), so
 * any replica may start first and a restart never loses configuration.
 */
import { AckPolicy, DiscardPolicy, RetentionPolicy, StorageType, type JetStreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { Objm } from '@nats-io/obj';
import { environmentDefault } from '@transit/config';
import type { Bus } from './connection.ts';

export const STREAMS = { submit: 'MAIL_SUBMIT', deliver: 'MAIL_DELIVER', events: 'MAIL_EVENTS', safetyNet: 'SAFETY_NET', poison: 'MAIL_POISON' } as const;
export const CONSUMERS = { hub: 'hub', mailboxDelivery: 'mailbox-delivery', outboundProxy: 'outbound-proxy' } as const;
export const BODY_BUCKET = 'transit-bodies';
export const NODES_BUCKET = 'transit-nodes';
/** Markers of work items being handled right now (poison detection). */
export const INFLIGHT_BUCKET = 'transit-inflight';
/** Administrator holds: suspended queues and messages, removed messages (libs/bus/src/holds.ts). */
export const HOLDS_BUCKET = 'transit-suspended';
/** DKIM signing configurations, one per signing domain (libs/dkim), private keys sealed. */
export const DKIM_BUCKET = 'transit-dkim';

/** A NATS subject token from free text: dots, wildcards and spaces become `_`. */
export function subjectToken(text: string): string {
  const token = text.toLowerCase().replace(/[^a-z0-9-]/g, '_');
  return token === '' ? '_' : token;
}

export const SUBJECTS = {
  submit: 'mail.submit',
  mailbox: (database: string) => `mail.deliver.mailbox.${subjectToken(database)}`,
  remote: (hop: string) => `mail.deliver.remote.${subjectToken(hop)}`,
  event: (messageId: string) => `mail.evt.${messageId}`,
  safetyNet: (database: string) => `mail.safetynet.${subjectToken(database)}`,
} as const;

/** A consumer's max_ack_pending for "no limit". */
export const UNLIMITED_ACK_PENDING = -1;

/** JetStream durations are in nanoseconds. */
const NS_PER_MS = 1_000_000;

export type TopologyOptions = {
  replicas: number;
  /** Back pressure: the submit queue refuses new messages beyond these (-1: no limit). */
  submitMaxMessages?: number;
  submitMaxBytes?: number;
  /** How long delivered messages stay in the Safety Net (Exchange's SafetyNetHoldTime, 2 days). */
  safetyNetHoldSeconds?: number;
  /** How long a consumer waits for an acknowledgement before redelivering (seconds; 15 — workers extend it while they work). */
  ackWaitSeconds?: number;
  /** How long each message's event log is kept (seconds; 7 days). Must outlive MessageExpirationTimeout (libs/config settings.ts). */
  eventRetentionSeconds?: number;
  /** How long message bodies are kept in the object store (seconds; 7 days). The same rule. */
  bodyRetentionSeconds?: number;
  /** Every stream's duplicate window (seconds; TRANSIT_DUPLICATE_WINDOW_SECONDS, 120): a publish repeated under the same message id within it is stored once. */
  duplicateWindowSeconds?: number;
  /** How long MAIL_POISON keeps parked items (seconds; TRANSIT_POISON_RETENTION_SECONDS, 30 days). */
  poisonRetentionSeconds?: number;
  /** How long a poison marker lives (seconds; TRANSIT_POISON_MARKER_TTL_SECONDS, 600), at least 5 ack waits. */
  poisonMarkerTtlSeconds?: number;
  /** How long a process's heartbeat in the nodes bucket lives (ms; TRANSIT_NODE_TTL_MS, 15 s). */
  nodeTtlMs?: number;
};

async function ensureStream(jsm: JetStreamManager, name: string, config: Parameters<JetStreamManager['streams']['add']>[0]): Promise<void> {
  try {
    await jsm.streams.info(name);
    await jsm.streams.update(name, config);
  } catch (err) {
    if (!/stream not found/i.test((err as Error).message)) throw err;
    await jsm.streams.add({ ...config, name });
  }
}

/** The object store's stream behind the body bucket (nats.js names it `OBJ_<bucket>`). */
export const BODY_STREAM = `OBJ_${BODY_BUCKET}`;

/** The body bucket at this retention: Objm.create leaves an existing bucket as it is, so a changed retention is applied to its stream. */
async function ensureBodyBucket(bus: Bus, replicas: number, maxAgeNs: number): Promise<void> {
  await new Objm(bus.js).create(BODY_BUCKET, { storage: StorageType.File, replicas, ttl: maxAgeNs });
  const info = await bus.jsm.streams.info(BODY_STREAM);
  if (info.config.max_age !== maxAgeNs) await bus.jsm.streams.update(BODY_STREAM, { max_age: maxAgeNs });
}

/**
 * A KV bucket with this TTL: Kvm.create leaves an existing bucket as it is, so a changed TTL is
 * applied to its stream (`KV_<bucket>`), as the body bucket's retention is.
 */
async function ensureKvBucket(bus: Bus, bucket: string, opts: { replicas: number; history: number; ttlMs?: number }): Promise<void> {
  await new Kvm(bus.js).create(bucket, { replicas: opts.replicas, history: opts.history, ...(opts.ttlMs !== undefined ? { ttl: opts.ttlMs } : {}) });
  if (opts.ttlMs === undefined) return;
  const maxAgeNs = opts.ttlMs * NS_PER_MS;
  const stream = `KV_${bucket}`;
  const info = await bus.jsm.streams.info(stream);
  // A shorter TTL brings the bucket's duplicate window (at most its maximum age, as NATS requires) down with it.
  if (info.config.max_age !== maxAgeNs)
    await bus.jsm.streams.update(stream, { max_age: maxAgeNs, duplicate_window: Math.min(info.config.duplicate_window, maxAgeNs) });
}

export async function ensureTopology(bus: Bus, opts: TopologyOptions): Promise<void> {
  const { jsm } = bus;
  const duplicateWindowSeconds = opts.duplicateWindowSeconds ?? environmentDefault('duplicateWindowSeconds');
  const common = { storage: StorageType.File, num_replicas: opts.replicas, duplicate_window: duplicateWindowSeconds * 1000 * NS_PER_MS };
  // Work queues: a message leaves the stream when its consumer acknowledges it.
  await ensureStream(jsm, STREAMS.submit, {
    ...common,
    name: STREAMS.submit,
    subjects: [SUBJECTS.submit],
    retention: RetentionPolicy.Workqueue,
    discard: DiscardPolicy.New,
    max_msgs: opts.submitMaxMessages ?? -1,
    max_bytes: opts.submitMaxBytes ?? -1,
  });
  await ensureStream(jsm, STREAMS.deliver, {
    ...common,
    name: STREAMS.deliver,
    subjects: ['mail.deliver.>'],
    retention: RetentionPolicy.Workqueue,
    discard: DiscardPolicy.New,
  });
  // The per-message event log: each message's state (the fold of its events) and message tracking.
  await ensureStream(jsm, STREAMS.events, {
    ...common,
    name: STREAMS.events,
    subjects: ['mail.evt.>'],
    retention: RetentionPolicy.Limits,
    max_age: (opts.eventRetentionSeconds ?? 7 * 24 * 3600) * 1000 * NS_PER_MS,
  });

  // Safety Net: copies of delivered mailbox items, for resubmission after a mailbox store is lost.
  await ensureStream(jsm, STREAMS.safetyNet, {
    ...common,
    name: STREAMS.safetyNet,
    subjects: ['mail.safetynet.>'],
    retention: RetentionPolicy.Limits,
    max_age: (opts.safetyNetHoldSeconds ?? 2 * 24 * 3600) * 1000 * NS_PER_MS,
  });

  // Poison messages: parked here, never retried automatically, kept for the administrator (30 days by default).
  await ensureStream(jsm, STREAMS.poison, {
    ...common,
    name: STREAMS.poison,
    subjects: ['mail.poison.>'],
    retention: RetentionPolicy.Limits,
    max_age: (opts.poisonRetentionSeconds ?? environmentDefault('poisonRetentionSeconds')) * 1000 * NS_PER_MS,
  });

  const consumer = (durable: string, filter: string) => ({
    durable_name: durable,
    filter_subject: filter,
    ack_policy: AckPolicy.Explicit,
    ack_wait: (opts.ackWaitSeconds ?? 15) * 1000 * NS_PER_MS,
    // No limit on unacknowledged items (-1). A deferred item waits for its next attempt as an unacknowledged item put back
    // with a delay (libs/bus consume.ts), so a limit would cap the queue of deferred mail, and at the limit the consumer
    // would hand out nothing new: 1,000 messages waiting for one unreachable destination stopped all remote delivery.
    // How much a worker takes at a time is bounded by its own pulls (twice its concurrency).
    max_ack_pending: UNLIMITED_ACK_PENDING,
  });
  // Add, or bring an existing consumer to this ack wait and ack-pending limit (the settings that may change).
  const ensureConsumer = async (stream: string, config: ReturnType<typeof consumer>) => {
    try {
      await jsm.consumers.add(stream, config);
    } catch (err) {
      if (!/already (exists|in use)/i.test((err as Error).message)) throw err;
      await jsm.consumers.update(stream, config.durable_name, { ack_wait: config.ack_wait, max_ack_pending: config.max_ack_pending });
    }
  };
  await ensureConsumer(STREAMS.submit, consumer(CONSUMERS.hub, SUBJECTS.submit));
  await ensureConsumer(STREAMS.deliver, consumer(CONSUMERS.mailboxDelivery, 'mail.deliver.mailbox.>'));
  await ensureConsumer(STREAMS.deliver, consumer(CONSUMERS.outboundProxy, 'mail.deliver.remote.>'));

  await ensureBodyBucket(bus, opts.replicas, (opts.bodyRetentionSeconds ?? 7 * 24 * 3600) * 1000 * NS_PER_MS);
  await ensureKvBucket(bus, NODES_BUCKET, { replicas: opts.replicas, ttlMs: opts.nodeTtlMs ?? environmentDefault('nodeTtlMs'), history: 1 });
  // A marker outlives a redelivery (ack wait) so the next attempt can see that the last one died.
  const markerTtlSeconds = Math.max(opts.poisonMarkerTtlSeconds ?? environmentDefault('poisonMarkerTtlSeconds'), 5 * (opts.ackWaitSeconds ?? 15));
  await ensureKvBucket(bus, INFLIGHT_BUCKET, { replicas: opts.replicas, ttlMs: markerTtlSeconds * 1000, history: 1 });
  // No TTL: a suspended queue stays suspended until resumed; Removed markers are a few bytes per removed message.
  await new Kvm(bus.js).create(HOLDS_BUCKET, { replicas: opts.replicas, history: 1 });
  // A few earlier revisions of each domain's keys, for an administrator who rotated by mistake.
  await new Kvm(bus.js).create(DKIM_BUCKET, { replicas: opts.replicas, history: 5 });
}
