/**
 * Hub Transport: the categorizer. Consumes `mail.submit` through the shared durable
 * consumer (any number of replicas), resolves and routes recipients, publishes one
 * delivery item per next hop and only then acknowledges the submit item — so a hub that
 * dies mid-way leaves the message in `mail.submit` for another. Delivery items are
 * de-duplicated by (message id, hop), so that redelivery never doubles a hop.
 * Recipients that cannot be routed get a failure DSN (RFC 3464) to the sender.
 * The submit item is acknowledged only once the delivery items' shadow is in Redis: while
 * Redis does not answer, the item stays in `mail.submit` (the delivery items are already
 * queued and flow; see docs/operations.md, Shadow redundancy).
 * Also listens on 2525 ("Default", HubTransport) for trusted servers.
 */
import {
  BodyStore,
  CONSUMERS,
  STREAMS,
  ack,
  annotate,
  emptyState,
  publishDurable,
  recordEvent,
  startWorker,
  type MessageState,
  type Route,
} from '@transit/bus';
import type { JsMsg } from '@nats-io/jetstream';
import { decodeEnvelope, encodeDeliveryItem, type Envelope } from '@transit/envelope';
import { receptionOf, submitDsn } from '@transit/ingest';
import { metrics } from '@transit/metrics';
import { directoryFor } from '@transit/policy';
import { startListenersFor } from '@transit/receive';
import { DeliveryShadow, LeaseStore, RecentShadows } from '@transit/leases';
import { adminHolds, poisonGuard, runService } from '@transit/service';
import { categorize } from './categorize.ts';
import { checkShadows } from './shadow-check.ts';

/** How long, and how many bytes of items, the hub remembers the shadows it kept (see RecentShadows). */
const RECENT_SHADOWS_MS = 60_000;
const RECENT_SHADOWS_BYTES = 32 * 1024 * 1024;

/** The Reception of a message, from its submit item: the 250's InternalId is the item's sequence, queued when the stream stored it. */
const receptionFromSubmit = (envelope: Envelope, msg: JsMsg) =>
  receptionOf(envelope, { seq: msg.seq, storedAt: Math.floor(msg.info.timestampNanos / 1_000_000) });

await runService('hub', async (ctx) => {
  const bodies = new BodyStore(ctx.bus);
  // Shadow redundancy (libs/leases/src/shadow.ts): a copy of each delivery item until its recipients have an outcome.
  const redis = new LeaseStore(ctx.settings.redisUrl);
  await redis.connect();
  const shadow = new DeliveryShadow(redis.redis, ctx.settings.deliveredTtlSeconds);
  // What this hub kept lately, kept again if Redis comes back without its data (libs/leases/src/shadow.ts): a replica reset
  // can drop delivery items seconds after they were queued, and an empty Redis would leave nothing to queue them again from.
  const recent = new RecentShadows(RECENT_SHADOWS_MS, RECENT_SHADOWS_BYTES);
  // Unknown when Redis dropped the connection just after connecting (the hub exited on that in a bench run): nothing is
  // remembered yet, so the first 'ready' only learns it.
  let epoch: string | undefined = await shadow.epoch().catch((err: Error) => {
    ctx.log.warn({ err: err.message }, 'could not read the shadow data-set identity from Redis; read at the next connection');
    return undefined;
  });
  let rekeeping: Promise<void> | undefined;
  redis.redis.on('ready', () => {
    rekeeping ??= (async () => {
      const now = await shadow.epoch();
      if (epoch !== undefined && now !== epoch) {
        const again = recent.recent();
        for (const { messageId, items } of again) await shadow.keep(messageId, items, ctx.settings.shadowCheckAfterMs);
        ctx.log.warn({ messages: again.length }, 'Redis came back without its data; the shadows this hub kept lately are kept again');
      }
      epoch = now;
    })()
      .catch((err: Error) => ctx.log.warn({ err: err.message }, 'could not keep the recent shadows again; tried at the next reconnection'))
      .finally(() => (rekeeping = undefined));
  });
  const worker = startWorker(ctx.bus, {
    stream: STREAMS.submit,
    consumer: CONSUMERS.hub,
    concurrency: ctx.settings.hubConcurrency,
    onError: (err, msg) => ctx.log.error({ err: (err as Error).message, seq: msg?.seq }, 'categorization failed'),
    decode: decodeEnvelope,
    poison: poisonGuard(ctx, 'categorizer', (e: Envelope) => e.id, receptionFromSubmit),
    holds: adminHolds(ctx, (e: Envelope) => e.id),
    handle: async (envelope, msg) => {
      annotate({ 'transit.message_id': envelope.id, 'transit.recipient_count': envelope.recipients.length });
      // Handed out again (its shadow could not be kept, or its hub died): while Redis does not answer, queue nothing again;
      // a long outage would otherwise queue the items a second time once JetStream's duplicate window has passed.
      if (msg.info.deliveryCount > 1) await redis.redis.ping();
      const config = ctx.config;
      const result = categorize(config, directoryFor(config), { ...envelope, internalId: envelope.internalId ?? msg.seq });
      // Message tracking's SUBMIT and RESOLVE rows and the routes, in one append; before the delivery items, so they precede
      // DELIVER/SEND in the log.
      const resolvedRecipients = result.groups.flatMap((g) => g.recipients.map((r) => r.address));
      const routes: Route[] = result.groups.map((group) => ({
        hop: group.key,
        recipients: group.recipients.map((r) => r.address),
        ...(group.hop.type === 'smtp' ? { connector: group.hop.connector } : {}),
      }));
      // This handler appends several events in a row: each append knows the state the last one left. The first look at a
      // message expects an empty log (the frontend writes none; the hub records the Reception here), so it reads nothing: a
      // log that is not empty (a Received from an older frontend, a resubmission) costs one refused append and a read.
      const history: { state?: MessageState } = msg.info.deliveryCount === 1 ? { state: emptyState(envelope.id) } : {};
      const received = receptionFromSubmit(envelope, msg);
      const submitted = await recordEvent(
        ctx.bus,
        envelope.id,
        { type: 'Submitted', source: 'QUEUE', recipients: resolvedRecipients, resolved: result.resolved, ...(routes.length ? { routes } : {}), received },
        ctx.settings.nodeName,
        history,
      );
      // Every event this handler writes lands before the first delivery item is queued: no worker can append a Delivered while
      // the hub still appends, so the hub's chained appends (history) never race one (nats-server 2.9 can accept two appends
      // that expected the same sequence, and a snapshot that missed the other event would then be inherited; see libs/bus/src/events.ts).
      // A hub that dies between these appends and the publishes leaves the submit item; its successor publishes (the appends are
      // then no longer admitted, the publishes are de-duplicated by msgID).
      if (!submitted) {
        // Submitted is written once per message. Handed out again, the item's routes were recorded with it, unless a hub from
        // before routes came with Submitted wrote it (a rolling upgrade): recipients still Pending get their Routed (none
        // is written for the others).
        for (const route of routes) await recordEvent(ctx.bus, envelope.id, { type: 'Routed', ...route }, ctx.settings.nodeName, history);
      }
      for (const group of result.groups) metrics.messagesRouted.inc({ kind: group.hop.type === 'mailbox' ? 'mailbox' : 'remote' }, group.recipients.length);
      if (result.unroutable.length) {
        await recordEvent(
          ctx.bus,
          envelope.id,
          {
            type: 'Failed',
            hop: 'categorizer',
            recipients: result.unroutable.map((u) => u.recipient.address),
            reason: result.unroutable.map((u) => `${u.code} ${u.reason}`).join('; '),
          },
          ctx.settings.nodeName,
          history,
        );
        metrics.messagesFailed.inc({ hop: 'categorizer' }, result.unroutable.length);
        ctx.log.warn(
          { id: envelope.id, unroutable: result.unroutable.map((u) => `${u.recipient.address}: ${u.code} ${u.reason}`) },
          'recipients failed in categorization',
        );
        // Durable before the ack: a redelivered submit item re-submits the same DSN id, which JetStream drops.
        await submitDsn(
          { bus: ctx.bus, bodies, nodeName: ctx.settings.nodeName, log: ctx.log },
          {
            envelope,
            kind: 'failure',
            tag: 'categorizer',
            config,
            fqdn: ctx.settings.nodeName,
            recipients: result.unroutable.map((u) => ({ address: u.recipient.address, status: u.code, diagnostic: `550 ${u.code} ${u.reason}` })),
          },
        );
      }
      const queued: Array<{ subject: string; seq: number; item: Uint8Array }> = [];
      for (const group of result.groups) {
        const item = encodeDeliveryItem({
          v: 1 as const,
          envelope: { ...envelope, internalId: envelope.internalId ?? msg.seq, recipients: group.recipients },
          hop: group.hop,
          attempt: 0,
          notBefore: 0,
        });
        const queuedAck = await publishDurable(ctx.bus, group.subject, item, {
          msgID: `${envelope.id}:${group.key}:${msg.seq}`,
          expectStream: STREAMS.deliver,
        });
        queued.push({ subject: group.subject, seq: queuedAck.seq, item });
      }
      // No ack without the shadow: the submit item is the copy that stands for it until Redis answers. A replica reset that
      // dropped the delivery items while Redis was away lost acknowledged mail for good (seed 31337, 3,000 messages, 12).
      // Handed out again, the item queues the same delivery items (de-duplicated by msgID, so keep() gets their sequences).
      await shadow.keep(envelope.id, queued, ctx.settings.shadowCheckAfterMs).catch((err: Error) => {
        ctx.log.warn({ id: envelope.id, err: err.message }, 'no shadow kept for the delivery items; the submit item waits for Redis');
        throw err;
      });
      recent.remember(envelope.id, queued);
      ctx.log.info({ id: envelope.id, hops: result.groups.map((g) => g.key) }, 'message routed');
      return ack;
    },
  });
  let checking: Promise<unknown> | undefined;
  const check = setInterval(() => {
    checking ??= checkShadows(
      {
        bus: ctx.bus,
        shadow,
        onReissued: (id, entry, recipients) => {
          metrics.workItemsReissued.inc();
          ctx.log.warn(
            { id, subject: entry.subject, seq: entry.seq, recipients, reissues: entry.reissues },
            'delivery item lost by the stream; queued again from its shadow',
          );
        },
      },
      {
        graceMs: ctx.settings.shadowMissingGraceMs,
        recheckMs: ctx.settings.shadowCheckAfterMs,
        maxRecheckMs: ctx.settings.shadowMaxRecheckMs,
        batch: 200,
      },
    )
      .catch((err: Error) => ctx.log.warn({ err: err.message }, 'shadow check failed; tried again shortly'))
      .finally(() => (checking = undefined));
  }, 5000);
  const engine = await startListenersFor('hub', ctx);
  return {
    stop: async () => {
      clearInterval(check);
      await engine.close(ctx.settings.drainTimeoutMs);
      await worker.stop();
      await checking;
      redis.redis.disconnect();
    },
  };
});
