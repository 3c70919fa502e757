/**
 * Mailbox Transport Delivery: consumes `mail.deliver.mailbox.*` and writes each message into
 * the recipient's Maildir. Acknowledges a work item only after every recipient's copy is
 * renamed into new/ and synced and a copy of the item is in the Safety Net; a crash before
 * that redelivers the item, and a copy already in the mailbox (same message id) is not
 * written again (DuplicateSuppressed) — which is also what makes Safety Net resubmission safe.
 * A recipient the store refuses for good (an address that cannot name a mailbox, a full
 * mailbox) fails: one Failed event per reason and one failure DSN to the sender, both durable
 * before the ack (the DSN's id is fixed by the item's attempt, so a redelivery sends no
 * second one). A store error that may pass (full disk, I/O) retries the item instead.
 */
import { BodyStore, CONSUMERS, STREAMS, SUBJECTS, ack, annotate, publishDurable, recordEvent, startWorker } from '@transit/bus';
import { decodeDeliveryItem, encodeDeliveryItem, type DeliveryItem } from '@transit/envelope';
import { byReason, type DsnRecipient } from '@transit/dsn';
import { submitDsn } from '@transit/ingest';
import { countDelivered, hopLabel, metrics } from '@transit/metrics';
import { adminHolds, poisonGuard, runService } from '@transit/service';
import { MaildirError, alreadyInMailbox, deliverToMaildir } from './maildir.ts';

await runService('mailbox-delivery', (ctx) => {
  const bodies = new BodyStore(ctx.bus);
  const node = ctx.settings.nodeName;
  const deps = { bus: ctx.bus, bodies, nodeName: node, log: ctx.log };
  ctx.facts.mailDir = ctx.settings.mailDir;
  const worker = startWorker(ctx.bus, {
    stream: STREAMS.deliver,
    consumer: CONSUMERS.mailboxDelivery,
    concurrency: ctx.settings.mailboxDeliveryConcurrency,
    onError: (err, msg) => ctx.log.error({ err: (err as Error).message, seq: msg?.seq }, 'mailbox delivery failed; will retry'),
    decode: decodeDeliveryItem,
    poison: poisonGuard(ctx, 'mailbox-delivery', (i: DeliveryItem) => i.envelope.id),
    holds: adminHolds(ctx, (i: DeliveryItem) => i.envelope.id),
    handle: async (item) => {
      const { envelope } = item;
      const database = item.hop.type === 'mailbox' ? item.hop.database : '?';
      annotate({ 'transit.message_id': envelope.id, 'transit.next_hop': `mailbox:${database}`, 'transit.recipient_count': envelope.recipients.length });
      const delivered: string[] = [];
      const duplicates: string[] = [];
      const failed: DsnRecipient[] = [];
      for (const rcpt of envelope.recipients) {
        try {
          if (await alreadyInMailbox(ctx.settings.mailDir, rcpt.address, envelope.id, envelope.receivedAt, item.resubmitted === true)) {
            duplicates.push(rcpt.address);
            continue;
          }
          await deliverToMaildir({
            base: ctx.settings.mailDir,
            recipient: rcpt.address,
            sender: envelope.sender,
            messageId: envelope.id,
            receivedAt: envelope.receivedAt,
            body: await bodies.open(envelope.body),
          });
          delivered.push(rcpt.address);
        } catch (err) {
          if (!(err instanceof MaildirError)) throw err;
          ctx.log.error({ id: envelope.id, rcpt: rcpt.address, err: err.message }, 'recipient cannot be delivered');
          failed.push({ address: rcpt.address, status: err.status, diagnostic: err.reply });
        }
      }
      if (failed.length) {
        for (const [reason, group] of byReason(failed, (r) => r.diagnostic ?? r.status))
          await recordEvent(ctx.bus, envelope.id, { type: 'Failed', hop: `mailbox:${database}`, recipients: group.map((r) => r.address), reason }, node);
        metrics.messagesFailed.inc({ hop: hopLabel(item.hop) }, failed.length);
        await submitDsn(deps, { envelope, kind: 'failure', recipients: failed, tag: `mailbox-${database}-${item.attempt}`, config: ctx.config, fqdn: node });
      }
      if (duplicates.length) {
        await recordEvent(ctx.bus, envelope.id, { type: 'DuplicateSuppressed', hop: `mailbox:${database}`, recipients: duplicates }, node);
        ctx.log.info({ id: envelope.id, recipients: duplicates }, 'already in the mailbox; not delivered again');
      }
      if (delivered.length) {
        // The Safety Net keeps what was delivered, for resubmission after a mailbox store is lost.
        const { resubmitted: _resubmitted, ...original } = item;
        const copy = { ...original, envelope: { ...envelope, recipients: envelope.recipients.filter((r) => delivered.includes(r.address)) } };
        // Both before the ack, in parallel: two round trips cost one.
        await Promise.all([
          publishDurable(ctx.bus, SUBJECTS.safetyNet(database), encodeDeliveryItem(copy), {
            msgID: `${envelope.id}:safetynet:${database}:${delivered.join(',')}`,
            expectStream: STREAMS.safetyNet,
          }),
          recordEvent(ctx.bus, envelope.id, { type: 'Delivered', hop: `mailbox:${database}`, recipients: delivered }, node),
        ]);
        countDelivered('mailbox', item.hop, delivered.length, envelope.receivedAt);
      }
      ctx.log.info({ id: envelope.id, recipients: delivered }, 'delivered to mailbox');
      return ack;
    },
  });
  return Promise.resolve({ stop: () => worker.stop() });
});
