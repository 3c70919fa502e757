/**
 * The outbound proxy's decisions about one work item, as plans the worker carries out
 * (services/outbound-proxy/src/main.ts does the I/O and nothing else). Pure: no Redis, NATS,
 * sockets or clock; the caller passes `now`.
 *
 * - planSend: before sending, the recipients already delivered (the lease's claim, and the
 *   folded event log when the item may have been worked on before) are not sent again; they
 *   are recorded as DuplicateSuppressed. Recipients the log shows failed (bounced, expired or
 *   removed by an administrator) are not sent either: their outcome and DSN are final. An
 *   item with nobody left is acknowledged.
 * - planOutcome: after one attempt, what each recipient's answer (outcome.ts) means.
 *   Delivered recipients are recorded first, in the shadow state as the lease is released
 *   and as a Delivered event, at once. Permanent failures (5xx), and transient ones once the
 *   next attempt would fall past MessageExpirationTimeout (as 4.4.7, "Message expired"), are
 *   recorded as Failed (one event per distinct reason, so each recipient's row quotes its own
 *   answer), then a failure DSN is asked for. Other transient failures get, once
 *   the message is older than DelayNotificationTimeout and the item has not had one, a delay
 *   DSN; then a follow-up work item with only them, the next attempt number and its
 *   notBefore from the retry schedule; then a Deferred event. The item is then acknowledged.
 *
 * The steps are in the order they must happen: an event is appended only after what it
 * announces is durable (a Deferred after its follow-up item), and a crash between two steps
 * redelivers the item, whose DSNs and follow-up carry ids derived from the hop and attempt,
 * so JetStream keeps one of each. Which recipients' NOTIFY parameters (or a null sender)
 * exclude a notification is decided where every DSN is submitted, libs/ingest's submitDsn
 * (with libs/dsn's wantsNotification), which records DsnSuppressed for them; a plan asks for
 * the notification about every recipient concerned.
 */
import { ack, type MessageEvent, type MessageState, type Outcome } from '@transit/bus';
import { byReason, dsnStatus, type DsnKind, type DsnRecipient } from '@transit/dsn';
import type { DeliveryItem } from '@transit/envelope';
import { nextAttempt, type RecipientResult } from './outcome.ts';

export type SendInput = {
  item: DeliveryItem;
  /** The work queue subject the item came from: the hop named in events. */
  hop: string;
  /** Recipients of the item the shadow state says already have the message (the lease's claim). */
  claimed: Iterable<string>;
  /** The message's folded event log, when the item may have been handled before (redelivered or requeued). */
  state?: MessageState | undefined;
};

export type SendPlan = {
  /** DuplicateSuppressed, when some recipients already have the message. */
  events: Array<Extract<MessageEvent, { type: 'DuplicateSuppressed' }>>;
  /** The item narrowed to the recipients to send to, or none: nothing left to send, acknowledge it. */
  send: DeliveryItem | undefined;
  /** Recipients left out because the log shows them failed already (nothing is recorded for them again). */
  final: string[];
};

export function planSend({ item, hop, claimed, state }: SendInput): SendPlan {
  const already = new Set(claimed);
  const final = new Set<string>();
  if (state)
    for (const r of item.envelope.recipients) {
      const status = state.recipients[r.address.toLowerCase()]?.status;
      if (status === 'Delivered') already.add(r.address);
      else if (status === 'Failed' && !already.has(r.address)) final.add(r.address);
    }
  if (already.size === 0 && final.size === 0) return { events: [], send: item, final: [] };
  const remaining = item.envelope.recipients.filter((r) => !already.has(r.address) && !final.has(r.address));
  return {
    events: already.size ? [{ type: 'DuplicateSuppressed', hop, recipients: [...already] }] : [],
    send: remaining.length ? { ...item, envelope: { ...item.envelope, recipients: remaining } } : undefined,
    final: [...final],
  };
}

export type OutcomeSettings = {
  /** Seconds before each retry, the last one repeating (libs/config's retrySchedule). */
  schedule: readonly number[];
  /** Seconds. */
  MessageExpirationTimeout: number;
  /** Seconds. */
  DelayNotificationTimeout: number;
};

export type OutcomeInput = {
  /** The item as sent (planSend's `send`). */
  item: DeliveryItem;
  hop: string;
  results: RecipientResult[];
  settings: OutcomeSettings;
  now: number;
};

/** A DSN to submit about some recipients of the item's message (submitDsn leaves out those whose NOTIFY excludes it). */
export type Notification = {
  kind: DsnKind;
  recipients: DsnRecipient[];
  /** Distinguishes this message's notifications: the hop and the attempt. */
  tag: string;
  /** Delay notices: until when Transit keeps trying. */
  willRetryUntil?: Date;
};

export type OutcomeStep =
  /** Release the lease recording these recipients as delivered, and append the Delivered event (when any) at the same time. */
  | { kind: 'delivered'; recipients: string[]; event: Extract<MessageEvent, { type: 'Delivered' }> | undefined }
  | { kind: 'event'; event: MessageEvent }
  | { kind: 'notify'; notification: Notification }
  /** Publish the follow-up work item to `subject` (the hop's), with `msgID` for JetStream's de-duplication. */
  | { kind: 'follow-up'; subject: string; item: DeliveryItem; msgID: string };

export type OutcomePlan = {
  /** In order; each starts when the one before it is durable. The first is always `delivered`. */
  steps: OutcomeStep[];
  /** What the worker answers once every step is done. */
  outcome: Outcome;
  /** Recipient counts, for the log line. */
  summary: { delivered: number; failed: number; deferred: number };
};

export function planOutcome({ item, hop, results, settings, now }: OutcomeInput): OutcomePlan {
  const { envelope } = item;
  const of = (status: RecipientResult['status']) => results.filter((r) => r.status === status);
  const tag = `${hop}-${item.attempt}`;
  const dsnRecipient = (r: RecipientResult, status: string) => ({ address: r.address, status, diagnostic: r.response, remoteMta: r.remoteMta });

  const delivered = of('delivered').map((r) => r.address);
  const steps: OutcomeStep[] = [
    { kind: 'delivered', recipients: delivered, event: delivered.length ? { type: 'Delivered', hop, recipients: delivered } : undefined },
  ];

  const failed = of('permanent').map((r) => dsnRecipient(r, dsnStatus(r.response, 5)));
  const transient = of('transient');
  const decision = transient.length ? nextAttempt(settings.schedule, item.attempt, envelope.receivedAt, now, settings.MessageExpirationTimeout) : undefined;
  if (decision?.kind === 'expire') {
    // Exchange: the message expired in the queue; the NDR carries 4.4.7 and the last error.
    failed.push(...transient.map((r) => ({ ...dsnRecipient(r, '4.4.7'), diagnostic: `550 4.4.7 Message expired: ${r.response}` })));
  }
  if (failed.length) {
    for (const [reason, group] of byReason(failed, (r) => r.diagnostic))
      steps.push({ kind: 'event', event: { type: 'Failed', hop, recipients: group.map((r) => r.address), reason } });
    steps.push({ kind: 'notify', notification: { kind: 'failure', recipients: failed, tag } });
  }
  if (decision?.kind === 'retry') {
    const addresses = new Set(transient.map((r) => r.address));
    // One delay notice per recipient, once the message is older than DelayNotificationTimeout.
    const late = !item.delayNotified && now - envelope.receivedAt >= settings.DelayNotificationTimeout * 1000;
    if (late) {
      const willRetryUntil = new Date(envelope.receivedAt + settings.MessageExpirationTimeout * 1000);
      steps.push({
        kind: 'notify',
        notification: { kind: 'delay', recipients: transient.map((r) => dsnRecipient(r, dsnStatus(r.response, 4))), tag, willRetryUntil },
      });
    }
    const next: DeliveryItem = {
      ...item,
      envelope: { ...envelope, recipients: envelope.recipients.filter((r) => addresses.has(r.address)) },
      attempt: item.attempt + 1,
      notBefore: decision.notBefore,
      delayNotified: item.delayNotified || late,
    };
    steps.push({ kind: 'follow-up', subject: hop, item: next, msgID: `${envelope.id}:${hop}:attempt-${next.attempt}` });
    for (const [reason, group] of byReason(transient, (r) => r.response))
      steps.push({ kind: 'event', event: { type: 'Deferred', hop, recipients: group.map((r) => r.address), reason, nextAttempt: decision.notBefore } });
  }
  return { steps, outcome: ack, summary: { delivered: delivered.length, failed: failed.length, deferred: decision?.kind === 'retry' ? transient.length : 0 } };
}
