/**
 * Mailbox Transport Delivery: consumes `mail.deliver.mailbox.*` and writes each message into
 * the recipient's Maildir. Acknowledges a work item only after every recipient's copy is
 * renamed into new/ and synced; a crash before that redelivers the item, and the
 * deterministic file names make the redelivery overwrite rather than duplicate.
 */
import { BodyStore, CONSUMERS, STREAMS, ack, recordEvent, startWorker } from '@transit/bus';
import { decodeDeliveryItem } from '@transit/envelope';
import { runService } from '@transit/service';
import { MaildirError, deliverToMaildir } from './maildir.ts';

await runService('mailbox-delivery', (ctx) => {
  const bodies = new BodyStore(ctx.bus);
  ctx.facts.mailDir = ctx.settings.mailDir;
  const worker = startWorker(ctx.bus, {
    stream: STREAMS.deliver,
    consumer: CONSUMERS.mailboxDelivery,
    concurrency: 16,
    onError: (err, msg) => ctx.log.error({ err: (err as Error).message, seq: msg?.seq }, 'mailbox delivery failed; will retry'),
    decode: decodeDeliveryItem,
    handle: async (item) => {
      const { envelope } = item;
      const delivered: string[] = [];
      for (const rcpt of envelope.recipients) {
        try {
          await deliverToMaildir({ base: ctx.settings.mailDir, recipient: rcpt.address, sender: envelope.sender, messageId: envelope.id, receivedAt: envelope.receivedAt, body: await bodies.open(envelope.body) });
          delivered.push(rcpt.address);
        } catch (err) {
          if (!(err instanceof MaildirError)) throw err;
          ctx.log.error({ id: envelope.id, rcpt: rcpt.address, err: err.message }, 'recipient cannot be delivered');
          await recordEvent(ctx.bus, envelope.id, { type: 'Failed', hop: `mailbox:${item.hop.type === 'mailbox' ? item.hop.database : '?'}`, recipients: [rcpt.address], reason: err.message }, ctx.settings.nodeName);
        }
      }
      await recordEvent(ctx.bus, envelope.id, { type: 'Delivered', hop: `mailbox:${item.hop.type === 'mailbox' ? item.hop.database : '?'}`, recipients: delivered }, ctx.settings.nodeName);
      ctx.log.info({ id: envelope.id, recipients: delivered }, 'delivered to mailbox');
      return ack;
    },
  });
  return Promise.resolve({ stop: () => worker.stop() });
});
