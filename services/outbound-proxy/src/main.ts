/**
 * Outbound proxy: consumes `mail.deliver.remote.*` and delivers over SMTP to the send
 * connector's smart hosts or the recipient domain's MX. Per recipient: delivered, failed
 * (5xx) or deferred (4xx, connection failure) — deferred recipients are re-queued as a new
 * work item with a later notBefore, so a partial failure never resends to those already
 * delivered. Also listens on 717 ("Outbound Proxy Frontend") for trusted internal senders.
 */
import { join } from 'node:path';
import { BodyStore, CONSUMERS, STREAMS, ack, publishDurable, recordEvent, retry, startWorker } from '@transit/bus';
import { decodeDeliveryItem, encodeDeliveryItem, type DeliveryItem } from '@transit/envelope';
import { ProtocolLog } from '@transit/logs';
import { startListenersFor } from '@transit/receive';
import { runService } from '@transit/service';
import { classifyFailure, classifyReport, nextAttempt, type RecipientResult } from './outcome.ts';
import { SmtpSender, destinationsFor } from './sender.ts';

await runService('outbound-proxy', async (ctx) => {
  const bodies = new BodyStore(ctx.bus);
  const sender = new SmtpSender(ctx.settings.nodeName);
  const sendLog = new ProtocolLog({ dir: join(ctx.settings.protocolLogDir, 'OutboundProxy', 'SmtpSend'), kind: 'Send', onError: (err) => ctx.log.error({ err: err.message }, 'protocol log write failed') });

  async function attempt(item: DeliveryItem): Promise<RecipientResult[]> {
    const hop = item.hop;
    if (hop.type !== 'smtp') throw new Error('outbound proxy received a non-SMTP hop');
    const recipients = item.envelope.recipients.map((r) => r.address);
    const connector = ctx.config.SendConnectors.find((c) => c.Name === hop.connector);
    const logging = connector?.ProtocolLoggingLevel === 'Verbose' ? { log: sendLog, connectorId: `${ctx.settings.nodeName}\\${connector.Name}` } : undefined;
    let last: RecipientResult[] = classifyFailure(recipients, undefined, 'no destination');
    for (const dest of await destinationsFor(hop)) {
      try {
        return classifyReport(recipients, await sender.send(dest, item.envelope.sender, recipients, await bodies.open(item.envelope.body), logging));
      } catch (err) {
        const e = err as Error & { responseCode?: number; response?: string };
        last = classifyFailure(recipients, e.responseCode, `${dest.host}:${dest.port}: ${e.response ?? e.message}`);
        if (e.responseCode !== undefined && e.responseCode >= 500) return last; // a definite answer; do not try the next MX
      }
    }
    return last;
  }

  const worker = startWorker(ctx.bus, {
    stream: STREAMS.deliver,
    consumer: CONSUMERS.outboundProxy,
    concurrency: 32,
    onError: (err, msg) => ctx.log.error({ err: (err as Error).message, seq: msg?.seq }, 'outbound delivery error; will retry'),
    decode: decodeDeliveryItem,
    handle: async (item, msg) => {
      const wait = item.notBefore - Date.now();
      if (wait > 0) return retry(Math.min(wait, 60_000));
      const { envelope } = item;
      const hopName = msg.subject;
      const settings = ctx.config.TransportSettings;
      const results = await attempt(item);
      const node = ctx.settings.nodeName;
      const of = (status: RecipientResult['status']) => results.filter((r) => r.status === status);

      const delivered = of('delivered');
      if (delivered.length) await recordEvent(ctx.bus, envelope.id, { type: 'Delivered', hop: hopName, recipients: delivered.map((r) => r.address) }, node);
      const permanent = of('permanent');
      if (permanent.length) await recordEvent(ctx.bus, envelope.id, { type: 'Failed', hop: hopName, recipients: permanent.map((r) => r.address), reason: permanent[0]!.response }, node);
      const transient = of('transient');
      if (transient.length) {
        const decision = nextAttempt(settings.TransientRetrySchedule, item.attempt, envelope.receivedAt, Date.now(), settings.MessageExpirationTimeout);
        const addresses = new Set(transient.map((r) => r.address));
        if (decision.kind === 'expire') {
          await recordEvent(ctx.bus, envelope.id, { type: 'Failed', hop: hopName, recipients: [...addresses], reason: `4.4.7 Message expired: ${transient[0]!.response}` }, node);
        } else {
          const next: DeliveryItem = { ...item, envelope: { ...envelope, recipients: envelope.recipients.filter((r) => addresses.has(r.address)) }, attempt: item.attempt + 1, notBefore: decision.notBefore };
          await publishDurable(ctx.bus, msg.subject, encodeDeliveryItem(next), { msgID: `${envelope.id}:${msg.subject}:attempt-${next.attempt}`, expectStream: STREAMS.deliver });
          await recordEvent(ctx.bus, envelope.id, { type: 'Deferred', hop: hopName, recipients: [...addresses], reason: transient[0]!.response, nextAttempt: decision.notBefore }, node);
        }
      }
      ctx.log.info({ id: envelope.id, hop: hopName, delivered: delivered.length, failed: permanent.length, deferred: transient.length, attempt: item.attempt }, 'outbound attempt finished');
      return ack;
    },
  });

  const engine = await startListenersFor('outbound-proxy', ctx, bodies);
  return {
    stop: async () => {
      await engine.close();
      await worker.stop();
      sender.close();
      await sendLog.close();
    },
  };
});
