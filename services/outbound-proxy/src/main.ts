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
import { retrySchedule } from '@transit/config';
import { dsnStatus } from '@transit/dsn';
import { submitDsn } from '@transit/ingest';
import { ProtocolLog } from '@transit/logs';
import { ShadowStore, rebuildShadowFromEvents } from '@transit/shadow';
import { startListenersFor } from '@transit/receive';
import { poisonGuard, runService } from '@transit/service';
import { classifyFailure, classifyReport, nextAttempt, type RecipientResult } from './outcome.ts';
import { SmtpSender, destinationsFor } from './sender.ts';

await runService('outbound-proxy', async (ctx) => {
  const bodies = new BodyStore(ctx.bus);
  const sender = new SmtpSender(ctx.settings.nodeName);
  const shadow = new ShadowStore(ctx.settings.redisUrl);
  await shadow.connect();
  let rebuilding: Promise<unknown> | undefined;
  /** Redis came back empty (or never had the projection): replay the event log once, whoever asks first. */
  const rebuild = () => {
    rebuilding ??= rebuildShadowFromEvents(ctx.bus, shadow)
      .then((r) => ctx.log.info(r, 'shadow state rebuilt from the event log'))
      .finally(() => (rebuilding = undefined));
    return rebuilding;
  };
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
        const report = await sender.send(dest, item.envelope.sender, recipients, await bodies.open(item.envelope.body), logging);
        return classifyReport(recipients, report).map((r) => ({ ...r, remoteMta: dest.host }));
      } catch (err) {
        const e = err as Error & { responseCode?: number; response?: string };
        last = classifyFailure(recipients, e.responseCode, e.response ?? `${dest.host}:${dest.port}: ${e.message}`).map((r) => ({ ...r, remoteMta: dest.host }));
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
    poison: poisonGuard(ctx, 'outbound-proxy', (i: DeliveryItem) => i.envelope.id),
    handle: async (work, msg) => {
      let item = work;
      const wait = item.notBefore - Date.now();
      if (wait > 0) return retry(Math.min(wait, 60_000));
      const hopName = msg.subject;
      const node = ctx.settings.nodeName;
      // Exactly once per recipient: a redelivered item (after a crash) skips those already delivered.
      let already: Set<string>;
      try {
        if (!(await shadow.complete())) await rebuild();
        already = await shadow.delivered(item.envelope.id, item.envelope.recipients.map((r) => r.address));
      } catch (err) {
        ctx.log.warn({ err: (err as Error).message, id: item.envelope.id }, 'shadow state unavailable; delivery waits');
        return retry(2000);
      }
      if (already.size) {
        await recordEvent(ctx.bus, item.envelope.id, { type: 'DuplicateSuppressed', hop: hopName, recipients: [...already] }, node);
        ctx.log.warn({ id: item.envelope.id, recipients: [...already] }, 'recipients already delivered; not sent again');
        const remaining = item.envelope.recipients.filter((r) => !already.has(r.address));
        if (remaining.length === 0) return ack;
        item = { ...item, envelope: { ...item.envelope, recipients: remaining } };
      }
      const { envelope } = item;
      const settings = ctx.config.TransportSettings;
      const results = await attempt(item);
      const of = (status: RecipientResult['status']) => results.filter((r) => r.status === status);

      const config = ctx.config;
      const deps = { bus: ctx.bus, bodies, nodeName: node, log: ctx.log };
      const tag = `${hopName}-${item.attempt}`;
      const dsnRecipient = (r: RecipientResult, status: string) => ({ address: r.address, status, diagnostic: r.response, remoteMta: r.remoteMta });

      const delivered = of('delivered');
      if (delivered.length) {
        await Promise.all([
          shadow.markDelivered(envelope.id, delivered.map((r) => r.address)).catch((err: Error) => ctx.log.error({ err: err.message, id: envelope.id }, 'could not record delivery in the shadow state')),
          recordEvent(ctx.bus, envelope.id, { type: 'Delivered', hop: hopName, recipients: delivered.map((r) => r.address) }, node),
        ]);
      }
      const failed = of('permanent').map((r) => dsnRecipient(r, dsnStatus(r.response, 5)));
      const transient = of('transient');
      const decision = transient.length ? nextAttempt(retrySchedule(settings), item.attempt, envelope.receivedAt, Date.now(), settings.MessageExpirationTimeout) : undefined;
      if (decision?.kind === 'expire') {
        // Exchange: the message expired in the queue; the NDR carries 4.4.7 and the last error.
        failed.push(...transient.map((r) => ({ ...dsnRecipient(r, '4.4.7'), diagnostic: `550 4.4.7 Message expired: ${r.response}` })));
      }
      if (failed.length) {
        await recordEvent(ctx.bus, envelope.id, { type: 'Failed', hop: hopName, recipients: failed.map((r) => r.address), reason: failed[0]!.diagnostic }, node);
        await submitDsn(deps, { envelope, kind: 'failure', tag, config, fqdn: node, recipients: failed });
      }
      if (decision?.kind === 'retry') {
        const addresses = new Set(transient.map((r) => r.address));
        // One delay notice per recipient, once the message is older than DelayNotificationTimeout.
        const late = !item.delayNotified && Date.now() - envelope.receivedAt >= settings.DelayNotificationTimeout * 1000;
        if (late) {
          await submitDsn(deps, {
            envelope,
            kind: 'delay',
            tag,
            config,
            fqdn: node,
            recipients: transient.map((r) => dsnRecipient(r, dsnStatus(r.response, 4))),
            willRetryUntil: new Date(envelope.receivedAt + settings.MessageExpirationTimeout * 1000),
          });
        }
        const next: DeliveryItem = { ...item, envelope: { ...envelope, recipients: envelope.recipients.filter((r) => addresses.has(r.address)) }, attempt: item.attempt + 1, notBefore: decision.notBefore, delayNotified: item.delayNotified || late };
        await publishDurable(ctx.bus, msg.subject, encodeDeliveryItem(next), { msgID: `${envelope.id}:${msg.subject}:attempt-${next.attempt}`, expectStream: STREAMS.deliver });
        await recordEvent(ctx.bus, envelope.id, { type: 'Deferred', hop: hopName, recipients: [...addresses], reason: transient[0]!.response, nextAttempt: decision.notBefore }, node);
      }
      ctx.log.info({ id: envelope.id, hop: hopName, delivered: delivered.length, failed: failed.length, deferred: decision?.kind === 'retry' ? transient.length : 0, attempt: item.attempt }, 'outbound attempt finished');
      return ack;
    },
  });

  const engine = await startListenersFor('outbound-proxy', ctx, bodies);
  return {
    stop: async () => {
      await engine.close(ctx.settings.drainTimeoutMs);
      await worker.stop();
      sender.close();
      await sendLog.close();
      await shadow.close();
    },
  };
});
