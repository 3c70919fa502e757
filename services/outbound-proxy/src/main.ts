/**
 * Outbound proxy: consumes `mail.deliver.remote.*` and delivers over SMTP to the send
 * connector's smart hosts or the recipient domain's MX. Per recipient: delivered, failed
 * (5xx) or deferred (4xx, connection failure) — deferred recipients are re-queued as a new
 * work item with a later notBefore, so a partial failure never resends to those already
 * delivered. Each item is delivered under a lease in Redis (libs/leases/src/leases.ts): a
 * copy JetStream hands out again while its worker is still alive waits, and the items of a
 * worker whose heartbeat stopped are taken over by a survivor within seconds. Also listens
 * on 717 ("Outbound Proxy Frontend") for trusted internal senders.
 */
import { join } from 'node:path';
import {
  BodyStore,
  CONSUMERS,
  REQUEUED_FROM_HEADER,
  STREAMS,
  SpanKind,
  ack,
  ackBySequence,
  annotate,
  inSpan,
  loadMessage,
  notYet,
  publishDurable,
  recordEvent,
  retry,
  startWorker,
  type Outcome,
} from '@transit/bus';
import { DkimSigner, DkimStore, withSignature, type Signature } from '@transit/dkim';
import { decodeDeliveryItem, encodeDeliveryItem, type DeliveryItem } from '@transit/envelope';
import { retrySchedule, type SendConnector } from '@transit/config';
import { submitDsn } from '@transit/ingest';
import { ProtocolLog } from '@transit/logs';
import { countDelivered, hopLabel, metrics, watchRedis } from '@transit/metrics';
import { DeliveryShadow, LeaseStore, rebuildShadowFromEvents, type Claim, type WorkRef } from '@transit/leases';
import { startListenersFor } from '@transit/receive';
import { adminHolds, poisonGuard, runService } from '@transit/service';
import { classifyFailure, classifyReport, sendGroups, type RecipientResult, type SendGroup } from './outcome.ts';
import { planOutcome, planSend, type OutcomeStep } from './plan.ts';
import { SmtpSender, ThrottledError, lookUpDestinations, type Destination, type Shaping } from './sender.ts';
import { DestinationShaper } from './shaping.ts';

await runService('outbound-proxy', async (ctx) => {
  const bodies = new BodyStore(ctx.bus);
  const shadow = new LeaseStore(ctx.settings.redisUrl, ctx.settings.deliveredTtlSeconds);
  await shadow.connect();
  const shaper = new DestinationShaper(shadow.redis);
  const sender = new SmtpSender(ctx.settings.nodeName, ctx.settings, shaper);
  const itemShadow = new DeliveryShadow(shadow.redis, ctx.settings.deliveredTtlSeconds);
  // Commands fail at once while Redis is down (no offline queue), so the PING answers or fails fast.
  watchRedis(() => shadow.redis.ping());
  let rebuilding: Promise<unknown> | undefined;
  /** Redis came back empty (or never had the projection): replay the event log once, whoever asks first. */
  const rebuild = () => {
    rebuilding ??= rebuildShadowFromEvents(ctx.bus, shadow)
      .then((r) => ctx.log.info(r, 'shadow state rebuilt from the event log'))
      .finally(() => (rebuilding = undefined));
    return rebuilding;
  };
  // DKIM: every signing configuration, kept current by a KV watch; nothing is read from NATS per message.
  const dkimConfigs = (await DkimStore.open(ctx.bus)).watch((err) => ctx.log.error({ err: (err as Error).message }, 'DKIM configuration watch ended'));
  const dkim = new DkimSigner(dkimConfigs, ctx.settings.clusterSecret);
  const sendLog = new ProtocolLog({
    dir: join(ctx.settings.protocolLogDir, 'OutboundProxy', 'SmtpSend'),
    kind: 'Send',
    onError: (err) => ctx.log.error({ err: err.message }, 'protocol log write failed'),
  });

  /**
   * One attempt at `item`: one SMTP transaction per group of recipients that share their DSN
   * parameters (sendGroups, outcome.ts; one for all of them in the common case), each tried at
   * the destinations in order. A failure that is not the next hop's answer for these recipients
   * (DNS, connection, TLS, logon) is the outcome of the groups not yet tried as well: they would
   * meet it again.
   */
  async function attempt(item: DeliveryItem, hopName: string): Promise<RecipientResult[]> {
    const hop = item.hop;
    if (hop.type !== 'smtp') throw new Error('outbound proxy received a non-SMTP hop');
    const connector = ctx.config.SendConnectors.find((c) => c.Name === hop.connector);
    const settings = ctx.config.TransportSettings;
    // The next hop's queue is its key in Redis: every outbound proxy counts its connections and messages together.
    const shaping: Shaping = {
      hop: hopName,
      limits: {
        maxConnections: connector?.MaxPerDomainOutboundConnections ?? settings.MaxPerDomainOutboundConnections,
        messagesPerMinute: connector?.MaxPerDomainOutboundMessagesPerMinute ?? settings.MaxPerDomainOutboundMessagesPerMinute,
      },
    };
    const groups = sendGroups(item.envelope.recipients, item.envelope.dsn);
    const found = await lookUpDestinations(hop);
    // Signed once per attempt, after every change Transit makes to the message (not when there is nowhere to send it); a key
    // that cannot be used fails the attempt.
    let signature: Signature | undefined;
    try {
      if (!('failure' in found)) signature = await dkim.signature(() => bodies.open(item.envelope.body));
    } catch (err) {
      const reason = `451 4.7.0 DKIM signing failed: ${(err as Error).message}`;
      ctx.log.error({ id: item.envelope.id, err: (err as Error).message }, 'DKIM signing failed; the attempt is deferred');
      return classifyFailure(
        item.envelope.recipients.map((r) => r.address),
        undefined,
        reason,
      );
    }
    if (signature) annotate({ 'transit.dkim_domain': signature.domain, 'transit.dkim_selector': signature.selector });
    const results: RecipientResult[] = [];
    for (const [i, group] of groups.entries()) {
      let tried: { results: RecipientResult[]; unreachable: boolean };
      try {
        const wait = await shaper.takeMessage(hopName, shaping.limits.messagesPerMinute);
        if (wait > 0)
          throw new ThrottledError(`${hopName}: ${shaping.limits.messagesPerMinute} messages a minute (MaxPerDomainOutboundMessagesPerMinute) sent`, wait);
        tried =
          'failure' in found
            ? { results: classifyFailure(group.recipients, undefined, found.failure), unreachable: true }
            : await attemptGroup(item, hop, connector, group, found.destinations, signature, shaping);
      } catch (err) {
        // Held back before anything was sent: the item waits its turn (handleClaimed), no attempt spent. After a first
        // transaction, the rest are deferred as any transient failure is.
        if (!(err instanceof ThrottledError) || i === 0) throw err;
        tried = { results: classifyFailure(group.recipients, undefined, `451 4.4.2 ${err.message}`), unreachable: true };
      }
      results.push(...tried.results);
      if (tried.unreachable) {
        const last = tried.results[0]!;
        for (const rest of groups.slice(i + 1))
          results.push(...classifyFailure(rest.recipients, undefined, last.response).map((r) => (last.remoteMta ? { ...r, remoteMta: last.remoteMta } : r)));
        break;
      }
    }
    return results;
  }

  /** One transaction for `group`, at each destination in turn until one answers; `unreachable` when none did. */
  async function attemptGroup(
    item: DeliveryItem,
    hop: Extract<DeliveryItem['hop'], { type: 'smtp' }>,
    connector: SendConnector | undefined,
    group: SendGroup,
    destinations: Destination[],
    signature: Signature | undefined,
    shaping: Shaping,
  ): Promise<{ results: RecipientResult[]; unreachable: boolean }> {
    const { recipients } = group;
    const logging = connector?.ProtocolLoggingLevel === 'Verbose' ? { log: sendLog, connectorId: `${ctx.settings.nodeName}\\${connector.Name}` } : undefined;
    let last: RecipientResult[] = classifyFailure(recipients, undefined, 'no destination');
    for (const dest of destinations) {
      try {
        // One client span per destination tried, with the remote server's answer.
        const report = await inSpan(
          'SMTP send',
          {
            kind: SpanKind.CLIENT,
            attributes: {
              'server.address': dest.host,
              'server.port': dest.port,
              'transit.send_connector': hop.connector,
              'smtp.recipient_count': recipients.length,
            },
          },
          async (span) => {
            const body = withSignature(signature, await bodies.open(item.envelope.body));
            try {
              return await sender.send(dest, item.envelope.sender, recipients, body, logging, connector, group.dsn, shaping);
            } catch (err) {
              const code = (err as { responseCode?: number }).responseCode;
              if (code) span.setAttribute('smtp.reply_code', code);
              throw err;
            } finally {
              // A transaction that failed part way leaves the body unread: this ends its object-store consumer.
              body.destroy();
            }
          },
        );
        return { results: classifyReport(recipients, report).map((r) => ({ ...r, remoteMta: dest.host })), unreachable: false };
      } catch (err) {
        const e = err as Error & { responseCode?: number; response?: string; code?: string; retryInMs?: number };
        if (e.code === 'ESHAPED') throw err instanceof ThrottledError ? err : new ThrottledError(e.message, e.retryInMs ?? 5_000);
        // 421: the next hop has too many connections (or is going away): one at a time to it for a while, on every proxy.
        if (e.responseCode === 421) void shaper.backOff(shaping.hop).catch(() => undefined);
        if (e.code === 'ETLS' || e.code === 'EAUTH') {
          // TLS the connector requires could not be set up (no STARTTLS, or a certificate its TlsAuthLevel refuses), or the smart
          // host refused its logon: transient, as for Exchange, even when the answer was a 5xx (535 5.7.8): the connector's
          // settings are wrong, not the message, so it is retried (an administrator can fix them) and reported at expiry.
          const answer = e.response ? ` (the next hop answered ${JSON.stringify(e.response)})` : '';
          last = classifyFailure(recipients, undefined, `${dest.host}:${dest.port}: ${e.message}${answer}`).map((r) => ({ ...r, remoteMta: dest.host }));
          continue;
        }
        last = classifyFailure(recipients, e.responseCode, e.response ?? `${dest.host}:${dest.port}: ${e.message}`).map((r) => ({
          ...r,
          remoteMta: dest.host,
        }));
        // A definite answer to this transaction (MAIL FROM or DATA refused); do not try the next MX.
        if (e.responseCode !== undefined && e.responseCode >= 500) return { results: last, unreachable: false };
      }
    }
    return { results: last, unreachable: true };
  }

  const node = ctx.settings.nodeName;
  const leases = shadow.leases(`${node}/${process.pid}`, {
    leaseTtlMs: ctx.settings.shadowLeaseTtlMs,
    heartbeatTtlMs: ctx.settings.shadowHeartbeatTtlMs,
  });

  const deps = { bus: ctx.bus, bodies, nodeName: node, log: ctx.log };

  /**
   * Carries out one step of an attempt's plan (plan.ts) for `item`, the item as sent. A failure
   * to record deliveries in Redis is logged (the Delivered event records them, and a rebuild
   * restores the projection); any other failure throws, and the work item is retried.
   */
  async function carryOut(step: OutcomeStep, item: DeliveryItem, release: (delivered: string[]) => Promise<void>): Promise<void> {
    const { envelope } = item;
    switch (step.kind) {
      case 'delivered':
        // Recorded at once, in Redis (with the lease released) and in the event log: the window for a second copy is these writes.
        await Promise.all([
          release(step.recipients).catch((err: Error) => ctx.log.error({ err: err.message, id: envelope.id }, 'could not record delivery in the shadow state')),
          step.event ? recordEvent(ctx.bus, envelope.id, step.event, node) : undefined,
        ]);
        countDelivered('remote', item.hop, step.recipients.length, envelope.receivedAt);
        return;
      case 'event':
        await recordEvent(ctx.bus, envelope.id, step.event, node);
        if (step.event.type === 'Failed') metrics.messagesFailed.inc({ hop: hopLabel(item.hop) }, step.event.recipients.length);
        if (step.event.type === 'Deferred') metrics.messagesDeferred.inc({ hop: hopLabel(item.hop) }, step.event.recipients.length);
        return;
      case 'notify':
        await submitDsn(deps, { ...step.notification, envelope, config: ctx.config, fqdn: node });
        return;
      case 'follow-up': {
        const bytes = encodeDeliveryItem(step.item);
        const queued = await publishDurable(ctx.bus, step.subject, bytes, { msgID: step.msgID, expectStream: STREAMS.deliver });
        // The hub's shadow of this hop follows the item (without Redis it keeps the old one; the hub's check then waits for the
        // deferred recipients' next attempt before it looks).
        await itemShadow
          .replace(envelope.id, { subject: step.subject, seq: queued.seq, since: Date.now(), reissues: 0, item: bytes })
          .catch((err: Error) => ctx.log.warn({ id: envelope.id, err: err.message }, 'shadow not moved to the follow-up item'));
        return;
      }
    }
  }

  /** Work items (stream:sequence) a handler of this process is delivering right now. */
  const handling = new Set<string>();

  /**
   * Delivers one work item under its lease: claim, then planSend, the send, planOutcome, and
   * each step of that plan in order (plan.ts decides; this does the I/O). `ref` names the item
   * in JetStream; `redelivered` says a worker may have handled it before (then the folded event
   * log is consulted as well as Redis, whose projection may have missed a delivery another
   * worker recorded only in the log).
   */
  async function handleItem(work: DeliveryItem, ref: WorkRef, redelivered: boolean): Promise<Outcome> {
    const wait = work.notBefore - Date.now();
    // Its next attempt is scheduled: waiting, not failing (the worker caps how long it is put back for).
    if (wait > 0) return notYet(Math.min(wait, 60_000));
    // The lease is this process's, so it cannot keep two of this process's handlers apart: an item taken over from a dead
    // worker and JetStream's redelivery of it (or its requeued copy) reach this process together. The second waits.
    const key = `${ref.stream}:${ref.seq}`;
    if (handling.has(key)) {
      ctx.log.info({ id: work.envelope.id, seq: ref.seq }, 'work item already being delivered by this process; waiting');
      return retry(leases.leaseTtlMs);
    }
    handling.add(key);
    try {
      return await handleClaimed(work, ref, redelivered);
    } finally {
      handling.delete(key);
    }
  }

  /** handleItem, once no other handler of this process holds the item. */
  async function handleClaimed(work: DeliveryItem, ref: WorkRef, redelivered: boolean): Promise<Outcome> {
    const hopName = ref.subject;
    const id = work.envelope.id;
    annotate({ 'transit.message_id': id, 'transit.next_hop': hopName, 'transit.attempt': work.attempt });
    // Exactly once per recipient: claim the item, learning who already has it.
    let claim: Claim;
    try {
      if (!(await shadow.complete())) await rebuild();
      claim = await leases.claim(
        ref,
        work.envelope.recipients.map((r) => r.address),
      );
    } catch (err) {
      ctx.log.warn({ err: (err as Error).message, id }, 'shadow state unavailable; delivery waits');
      return retry(2000);
    }
    if (!claim.ok && 'settled' in claim) {
      // A survivor took it over from a dead worker and settled it; this is JetStream's redelivery of it.
      ctx.log.info({ id, seq: ref.seq }, 'work item already settled by the worker that took it over');
      return ack;
    }
    if (!claim.ok) {
      // JetStream handed it out again while a live worker still delivers it: that one finishes it.
      ctx.log.warn({ id, holder: claim.holder }, 'work item leased by another live worker; waiting');
      return retry(leases.leaseTtlMs);
    }
    let released = false;
    const release = async (delivered: string[]) => {
      if (released) return;
      released = true;
      await leases.release(ref, delivered);
    };
    const renewal = setInterval(() => void leases.renew(ref).catch(() => undefined), Math.floor(leases.leaseTtlMs / 3));
    try {
      const before = planSend({ item: work, hop: hopName, claimed: claim.alreadyDelivered, state: redelivered ? await loadMessage(ctx.bus, id) : undefined });
      for (const event of before.events) {
        await recordEvent(ctx.bus, id, event, node);
        ctx.log.warn({ id, recipients: event.recipients }, 'recipients already delivered; not sent again');
      }
      if (before.final.length) ctx.log.warn({ id, recipients: before.final }, 'recipients already failed or removed; not sent');
      const item = before.send;
      if (!item) return ack;
      // A process paused past its heartbeat may have been taken over: check just before sending.
      if (!(await leases.renew(ref))) {
        released = true;
        ctx.log.warn({ id }, 'lease taken over by another worker; not sending');
        return retry(leases.leaseTtlMs);
      }
      const settings = ctx.config.TransportSettings;
      let results: RecipientResult[];
      try {
        results = await attempt(item, hopName);
      } catch (err) {
        if (!(err instanceof ThrottledError)) throw err;
        ctx.log.info({ id, hop: hopName, err: err.message }, 'next hop at its limit; the item waits');
        return notYet(err.retryInMs);
      }
      const plan = planOutcome({
        item,
        hop: hopName,
        results,
        settings: {
          schedule: retrySchedule(settings),
          MessageExpirationTimeout: settings.MessageExpirationTimeout,
          DelayNotificationTimeout: settings.DelayNotificationTimeout,
        },
        now: Date.now(),
      });
      for (const step of plan.steps) await carryOut(step, item, release);
      ctx.log.info({ id, hop: hopName, ...plan.summary, attempt: item.attempt }, 'outbound attempt finished');
      return plan.outcome;
    } finally {
      clearInterval(renewal);
      await release([]).catch(() => undefined);
    }
  }

  const holds = adminHolds(ctx, (i: DeliveryItem) => i.envelope.id);
  const worker = startWorker(ctx.bus, {
    stream: STREAMS.deliver,
    consumer: CONSUMERS.outboundProxy,
    concurrency: ctx.settings.outboundConcurrency,
    onError: (err, msg) => ctx.log.error({ err: (err as Error).message, seq: msg?.seq }, 'outbound delivery error; will retry'),
    decode: decodeDeliveryItem,
    // A deferred item comes back on its schedule (or sooner, capped by the worker): until then it is put back without a poison marker.
    dueIn: (i: DeliveryItem) => i.notBefore - Date.now(),
    poison: poisonGuard(ctx, 'outbound-proxy', (i: DeliveryItem) => i.envelope.id),
    holds,
    // A requeued item (a stranded original published again, libs/bus consume.ts) may have been worked on before: it is treated
    // as redelivered, and leased under its original's sequence, so that it waits while a worker may still be sending the original.
    handle: (item, msg) => {
      const original = /^[^:]+:(\d+)$/.exec(msg.headers?.get(REQUEUED_FROM_HEADER) ?? '')?.[1];
      const seq = original ? Number(original) : msg.seq;
      return handleItem(
        item,
        { stream: STREAMS.deliver, seq, subject: msg.subject, messageId: item.envelope.id },
        msg.info.redelivered || original !== undefined,
      );
    },
  });

  /**
   * Orphans: the items an owner held when its heartbeat stopped (a process killed mid-delivery)
   * are fetched from the stream by sequence and delivered here, so they do not wait out
   * JetStream's ack wait. An item that is no longer in the stream was settled already. A
   * settled item is acknowledged through the consumer on the dead worker's behalf, which
   * takes it out of the work queue, and marked settled in Redis, so that a redelivery (the
   * acknowledgement lost) is acknowledged at once. It is not deleted by sequence: that goes
   * through the stream's Raft log, nats-server 2.9 resets a replica that applies it without
   * having the message (nats-server#7308), and those resets stranded and lost other work
   * items in the chaos runs (see libs/bus consume.ts).
   */
  const adopting = new Set<Promise<void>>();
  const adopt = async (ref: WorkRef) => {
    try {
      const stored = await ctx.bus.jsm.streams.getMessage(ref.stream, { seq: ref.seq }).catch(() => null);
      // A stream whose replica reset can give a sequence to another item: only this message's item is taken over (and acknowledged).
      const item =
        stored && stored.subject === ref.subject
          ? (() => {
              try {
                return decodeDeliveryItem(stored.data);
              } catch {
                return undefined;
              }
            })()
          : undefined;
      if (!item || item.envelope.id !== ref.messageId) return await leases.release(ref, []);
      ctx.log.warn({ id: ref.messageId, seq: ref.seq, subject: ref.subject }, 'taking over a work item whose worker stopped');
      // Administrator holds bind a taken-over item too: it is left to JetStream's redelivery, where the worker drops a removed message's item and holds a held one.
      const hold = await holds.watcher.check(ref.subject, ref.messageId);
      if (hold) return await leases.release(ref, []);
      if ((await handleItem(item, ref, true)).kind === 'ack') {
        await leases.settle(ref);
        // Out of the work queue at once, acknowledged through the consumer for the dead worker.
        await ackBySequence(ctx.bus, ref.stream, CONSUMERS.outboundProxy, ref.seq);
      }
      // Otherwise JetStream hands it out again after its ack wait, as it would have.
    } catch (err) {
      ctx.log.error({ err: (err as Error).message, id: ref.messageId }, 'taking over an orphaned work item failed; JetStream redelivers it');
      await leases.release(ref, []).catch(() => undefined);
    }
  };
  let stopping = false;
  const beat = setInterval(
    () => void leases.heartbeat().catch((err: Error) => ctx.log.warn({ err: err.message }, 'shadow heartbeat failed')),
    Math.floor(leases.heartbeatTtlMs / 3),
  );
  void leases.heartbeat().catch(() => undefined);
  const sweep = setInterval(() => {
    if (stopping || adopting.size > 0) return;
    void leases.adoptOrphans().then(
      (refs) => {
        for (const ref of refs) {
          const p = adopt(ref).finally(() => adopting.delete(p));
          adopting.add(p);
        }
      },
      () => undefined, // Redis away: JetStream's ack wait still brings the items back.
    );
  }, 1000);

  const engine = await startListenersFor('outbound-proxy', ctx, bodies);
  return {
    stop: async () => {
      stopping = true;
      clearInterval(sweep);
      await engine.close(ctx.settings.drainTimeoutMs);
      await worker.stop();
      await Promise.allSettled([...adopting]);
      clearInterval(beat);
      sender.close();
      dkimConfigs.stop();
      await sendLog.close();
      await shadow.close();
    },
  };
});
