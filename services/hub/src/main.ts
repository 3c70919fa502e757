/**
 * Hub Transport: the categorizer. Consumes `mail.submit` through the shared durable
 * consumer (any number of replicas), resolves and routes recipients, publishes one
 * delivery item per next hop and only then acknowledges the submit item — so a hub that
 * dies mid-way leaves the message in `mail.submit` for another. Delivery items are
 * de-duplicated by (message id, hop), so that redelivery never doubles a hop.
 * Also listens on 2525 ("Default", HubTransport) for trusted servers.
 */
import { CONSUMERS, STREAMS, ack, publishDurable, recordEvent, startWorker } from '@transit/bus';
import { decodeEnvelope, encodeDeliveryItem } from '@transit/envelope';
import { directoryFor } from '@transit/policy';
import { startListenersFor } from '@transit/receive';
import { runService } from '@transit/service';
import { categorize } from './categorize.ts';

await runService('hub', async (ctx) => {
  const worker = startWorker(ctx.bus, {
    stream: STREAMS.submit,
    consumer: CONSUMERS.hub,
    concurrency: 32,
    onError: (err, msg) => ctx.log.error({ err: (err as Error).message, seq: msg?.seq }, 'categorization failed'),
    decode: decodeEnvelope,
    handle: async (envelope, msg) => {
      const config = ctx.config;
      const result = categorize(config, directoryFor(config), { ...envelope, internalId: envelope.internalId ?? msg.seq });
      for (const group of result.groups) {
        const item = { v: 1 as const, envelope: { ...envelope, internalId: envelope.internalId ?? msg.seq, recipients: group.recipients }, hop: group.hop, attempt: 0, notBefore: 0 };
        await publishDurable(ctx.bus, group.subject, encodeDeliveryItem(item), { msgID: `${envelope.id}:${group.key}`, expectStream: STREAMS.deliver });
        await recordEvent(ctx.bus, envelope.id, { type: 'Routed', hop: group.key, recipients: group.recipients.map((r) => r.address) }, ctx.settings.nodeName);
      }
      if (result.unroutable.length) {
        // DSN generation arrives with the fault-tolerance issue; until then the failure is recorded.
        await recordEvent(ctx.bus, envelope.id, { type: 'Failed', hop: 'categorizer', recipients: result.unroutable.map((u) => u.recipient.address), reason: result.unroutable.map((u) => `${u.code} ${u.reason}`).join('; ') }, ctx.settings.nodeName);
        ctx.log.warn({ id: envelope.id, unroutable: result.unroutable.map((u) => `${u.recipient.address}: ${u.code} ${u.reason}`) }, 'recipients failed in categorization');
      }
      ctx.log.info({ id: envelope.id, hops: result.groups.map((g) => g.key) }, 'message routed');
      return ack;
    },
  });
  const engine = await startListenersFor('hub', ctx);
  return {
    stop: async () => {
      await engine.close();
      await worker.stop();
    },
  };
});
