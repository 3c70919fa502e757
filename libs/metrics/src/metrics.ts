/**
 * Every Prometheus metric Transit exports, defined once, in one registry per process. The
 * HTTP server of each role (libs/service) serves it at GET /metrics; the code paths that
 * count (receive engine, ingest, the delivery services) import the metric they move.
 *
 * Labels stay low-cardinality: connector names, next-hop keys without the destination
 * domain, enhanced status codes, stream names. Never addresses, message ids or client IPs:
 * each label value is a time series Prometheus keeps for weeks.
 *
 * Delivery counters count recipients, not messages: one message to three mailboxes is
 * three deliveries, as in Exchange's queue counters.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { NextHop } from '@transit/envelope';

export const registry = new Registry();
/**
 * Metrics only some roles have: defined here with the others, moved into `registry` by the
 * role that uses them. A gauge without labels is exported as 0 from the start, so a role
 * without Redis would otherwise claim "Redis down".
 */
const optional = new Registry();
const REDIS_UP = 'transit_redis_up';

let processMetrics = false;
/** Process metrics (CPU, memory, event-loop lag, GC, handles), once per process. */
export function collectProcessMetrics(): void {
  if (processMetrics) return;
  processMetrics = true;
  collectDefaultMetrics({ register: registry });
}

// Latencies from milliseconds (a local Maildir write) to hours (remote retries, 2-day expiry).
const ACCEPT_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15];
const DELIVERY_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600, 2 * 24 * 3600];

export const metrics = {
  roleInfo: new Gauge({
    name: 'transit_role_info',
    help: 'Always 1; names the Transit role of this process.',
    labelNames: ['role'] as const,
    registers: [registry],
  }),

  smtpSessions: new Counter({
    name: 'transit_smtp_sessions_total',
    help: 'SMTP sessions accepted, by receive connector.',
    labelNames: ['connector'] as const,
    registers: [registry],
  }),
  smtpSessionsOpen: new Gauge({
    name: 'transit_smtp_sessions_open',
    help: 'SMTP sessions open now, by receive connector.',
    labelNames: ['connector'] as const,
    registers: [registry],
  }),
  smtpRejections: new Counter({
    name: 'transit_smtp_rejections_total',
    help: 'Refusals the receive engine sent (connection, HELO, AUTH, MAIL, RCPT, DATA), by receive connector ("none" before one was chosen) and enhanced status code.',
    labelNames: ['connector', 'code'] as const,
    registers: [registry],
  }),

  messagesReceived: new Counter({
    name: 'transit_messages_received_total',
    help: 'Messages accepted into mail.submit (JetStream acknowledged), by receive connector and source (SMTP, PICKUP, DSN).',
    labelNames: ['connector', 'source'] as const,
    registers: [registry],
  }),
  messageAccept: new Histogram({
    name: 'transit_message_accept_seconds',
    help: 'From the end of the message data to the acceptance (the 250 after the JetStream acknowledgement), by source.',
    labelNames: ['source'] as const,
    buckets: ACCEPT_BUCKETS,
    registers: [registry],
  }),

  messagesRouted: new Counter({
    name: 'transit_messages_routed_total',
    help: 'Recipients the categorizer routed to a next hop, by hop kind (mailbox, remote).',
    labelNames: ['kind'] as const,
    registers: [registry],
  }),
  messagesDelivered: new Counter({
    name: 'transit_messages_delivered_total',
    help: 'Recipients delivered, by next hop.',
    labelNames: ['hop'] as const,
    registers: [registry],
  }),
  messagesDeferred: new Counter({
    name: 'transit_messages_deferred_total',
    help: 'Recipients deferred for a later retry (4xx, connection failure), by next hop.',
    labelNames: ['hop'] as const,
    registers: [registry],
  }),
  messagesFailed: new Counter({
    name: 'transit_messages_failed_total',
    help: 'Recipients failed for good (5xx, expiry, unroutable), by next hop ("categorizer" for unroutable).',
    labelNames: ['hop'] as const,
    registers: [registry],
  }),
  deliveryLatency: new Histogram({
    name: 'transit_delivery_latency_seconds',
    help: 'From acceptance (envelope receivedAt) to delivery of each recipient, by kind (mailbox, remote).',
    labelNames: ['kind'] as const,
    buckets: DELIVERY_BUCKETS,
    registers: [registry],
  }),

  queueMessages: new Gauge({
    name: 'transit_queue_messages',
    help: 'Messages waiting in a JetStream work queue, by stream (absent while JetStream does not answer).',
    labelNames: ['stream'] as const,
    registers: [registry],
  }),
  queueOldestAge: new Gauge({
    name: 'transit_queue_oldest_age_seconds',
    help: 'Age of the oldest message in a JetStream work queue, by stream (0 when empty).',
    labelNames: ['stream'] as const,
    registers: [registry],
  }),
  workItemsReissued: new Counter({
    name: 'transit_work_items_reissued_total',
    help: 'Delivery items the hub queued again from their shadow because the stream had lost them (services/hub/src/shadow-check.ts).',
    registers: [registry],
  }),
  // Progress of each worker (hub, mailbox-delivery, outbound-proxy): libs/bus startWorker's health, refreshed on a scrape.
  workerStalled: new Gauge({
    name: 'transit_worker_stalled',
    help: '1 while this worker makes no progress on work waiting for it (starved, busy, failing, frozen or stranded: /readyz names it), else 0; by consumer.',
    labelNames: ['consumer'] as const,
    registers: [registry],
  }),
  workerSinceAck: new Gauge({
    name: 'transit_worker_seconds_since_ack',
    help: 'Seconds since this worker last finished (acknowledged) a work item, by consumer.',
    labelNames: ['consumer'] as const,
    registers: [registry],
  }),
  consumerPending: new Gauge({
    name: 'transit_consumer_pending_messages',
    help: 'Work items not yet handed to any worker (num_pending of the durable consumer, as its workers last read it), by consumer.',
    labelNames: ['consumer'] as const,
    registers: [registry],
  }),
  consumerAckPending: new Gauge({
    name: 'transit_consumer_ack_pending_messages',
    help: 'Work items handed out and not yet acknowledged, deferred ones included (num_ack_pending), by consumer.',
    labelNames: ['consumer'] as const,
    registers: [registry],
  }),
  workerRequeued: new Counter({
    name: 'transit_worker_requeued_total',
    help: "Stranded work items (left in the work queue below the consumer's ack floor, which would never be handed out) this worker published again, by consumer.",
    labelNames: ['consumer'] as const,
    registers: [registry],
  }),
  workerPullRestarts: new Counter({
    name: 'transit_worker_pull_restarts_total',
    help: 'Times this worker restarted its pull loop because work waited on the consumer and nothing arrived, by consumer.',
    labelNames: ['consumer'] as const,
    registers: [registry],
  }),
  jetstreamUp: new Gauge({
    name: 'transit_jetstream_up',
    help: '1 when JetStream answered the last stream-info request within the scrape deadline, else 0.',
    registers: [registry],
  }),
  redisUp: new Gauge({
    name: REDIS_UP,
    help: '1 when Redis (shadow state) answered the last PING within the scrape deadline, else 0. Only roles that use Redis.',
    registers: [optional],
  }),
};

/**
 * The `hop` label of a next hop: `mailbox:<database>`, or `smtp:<send connector>`. A
 * DNS-routed connector has one next hop per destination domain, which would make a series
 * per domain ever mailed; the connector bounds it by configuration.
 */
export function hopLabel(hop: NextHop): string {
  return hop.type === 'mailbox' ? `mailbox:${hop.database}` : `smtp:${hop.connector}`;
}

/** Exports `transit_redis_up` from this process (a role that uses Redis). */
export function exportRedisUp(): void {
  if (!registry.getSingleMetric(REDIS_UP)) registry.registerMetric(metrics.redisUp);
}

/** Records delivered recipients and their end-to-end latency. */
export function countDelivered(kind: 'mailbox' | 'remote', hop: NextHop, recipients: number, receivedAt: number, now = Date.now()): void {
  if (recipients <= 0) return;
  metrics.messagesDelivered.inc({ hop: hopLabel(hop) }, recipients);
  const seconds = Math.max(0, (now - receivedAt) / 1000);
  for (let i = 0; i < recipients; i++) metrics.deliveryLatency.observe({ kind }, seconds);
}

/**
 * The names of the series this process exports (histograms as their _bucket, _sum and
 * _count series), so dashboards and alert rules can be checked against the code.
 */
export async function exportedSeriesNames(): Promise<string[]> {
  const names = new Set<string>();
  for (const m of [...(await registry.getMetricsAsJSON()), ...(await optional.getMetricsAsJSON())]) {
    // prom-client types `type` as a numeric enum, but its values are the exposition's type names.
    const type = String(m.type);
    if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(m.name + suffix);
    else if (type === 'summary') for (const suffix of ['', '_sum', '_count']) names.add(m.name + suffix);
    else names.add(m.name);
  }
  return [...names].sort();
}
