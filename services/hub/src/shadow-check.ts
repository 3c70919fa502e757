/**
 * The hub's check of the shadows it keeps (libs/leases/src/shadow.ts): a delivery item that
 * vanished from MAIL_DELIVER while its recipients still wait was lost by the stream, and is
 * queued again from the shadow.
 *
 * For each message due for a check, and each of its shadowed items:
 * - every recipient of the item has an outcome (Delivered, Failed), or the message was
 *   poisoned or removed: the shadow is settled;
 * - the item is still in the stream (same sequence, same subject, same message): it waits
 *   for a worker, or is being delivered;
 * - recipients deferred to a later attempt are not looked for before that attempt is due;
 * - otherwise it is missing. A worker records the outcome before it acknowledges an item, so
 *   an item that is gone with recipients still waiting was either requeued (a stranded item,
 *   libs/bus consume.ts, which a worker handles within seconds) or lost. It is queued again
 *   only once it has been missing for `graceMs`, narrowed to the recipients still waiting,
 *   under a message id per reissue (two hubs checking at once queue it once), and marked as a
 *   copy of the original item (Transit-Requeued-From), like a requeued stranded item: a twin of
 *   the two is leased under the same sequence, and finds the recipients the other delivered.
 * Every hub replica runs the check; all of its steps may run twice.
 */
import { REQUEUED_FROM_HEADER, STREAMS, hasOutcome, loadMessage, notFound, publishDurable, type Bus, type MessageState } from '@transit/bus';
import { decodeDeliveryItem, encodeDeliveryItem, type DeliveryItem } from '@transit/envelope';
import type { DeliveryShadow, ShadowEntry } from '@transit/leases';

export type ShadowCheckOptions = {
  /** How long an item must have been missing before it is queued again. */
  graceMs: number;
  /** When a message with items still waiting is checked again: half the age of its oldest item, at least this... */
  recheckMs: number;
  /** ...and at most this. */
  maxRecheckMs: number;
  /** Messages per pass. */
  batch: number;
};

export type ShadowCheckDeps = {
  bus: Bus;
  shadow: DeliveryShadow;
  onReissued: (id: string, entry: ShadowEntry, recipients: string[]) => void;
  now?: () => number;
};

export type ShadowCheckResult = { checked: number; settled: number; missing: number; reissued: number };

/** The recipients of `item` still without an outcome in `state`. */
function waitingIn(state: MessageState, item: DeliveryItem) {
  return item.envelope.recipients.filter((r) => !hasOutcome(state.recipients[r.address.toLowerCase()]?.status));
}

async function inStream(bus: Bus, entry: ShadowEntry, messageId: string): Promise<boolean> {
  const stored = await bus.jsm.streams.getMessage(STREAMS.deliver, { seq: entry.seq }).catch(notFound);
  if (!stored || stored.subject !== entry.subject) return false;
  try {
    return decodeDeliveryItem(stored.data).envelope.id === messageId;
  } catch {
    return false;
  }
}

export async function checkShadows(deps: ShadowCheckDeps, opts: ShadowCheckOptions): Promise<ShadowCheckResult> {
  const now = deps.now ?? Date.now;
  const result: ShadowCheckResult = { checked: 0, settled: 0, missing: 0, reissued: 0 };
  for (const id of await deps.shadow.due(opts.batch, now())) {
    result.checked++;
    const entries = await deps.shadow.entries(id);
    if (entries.length === 0) {
      await deps.shadow.forget(id);
      continue;
    }
    // Read only when an item is not where its shadow says: an item waiting in a long queue costs one read per check.
    let state: MessageState | undefined;
    let oldest = now();
    let open = 0;
    for (const entry of entries) {
      oldest = Math.min(oldest, entry.since);
      if (await inStream(deps.bus, entry, id)) {
        open++;
        if (entry.missingSince !== undefined) await deps.shadow.replace(id, { ...entry, missingSince: undefined });
        continue;
      }
      state ??= await loadMessage(deps.bus, id);
      let item: DeliveryItem;
      try {
        item = decodeDeliveryItem(entry.item);
      } catch {
        // Not an item this version can queue again (never written so by the hub): nothing to keep it for.
        await deps.shadow.settle(id, entry.subject);
        result.settled++;
        continue;
      }
      const waiting = waitingIn(state, item);
      if (state.poisoned || state.removed || waiting.length === 0) {
        await deps.shadow.settle(id, entry.subject);
        result.settled++;
        continue;
      }
      open++;
      // Deferred recipients: their follow-up item is looked for once it is due (the shadow may not have followed it).
      const dueAt = Math.max(0, ...waiting.map((r) => state!.recipients[r.address.toLowerCase()]?.nextAttempt ?? 0));
      if (now() < dueAt + opts.graceMs) continue;
      result.missing++;
      if (entry.missingSince === undefined) {
        await deps.shadow.replace(id, { ...entry, missingSince: now() });
        continue;
      }
      if (now() - entry.missingSince < opts.graceMs) continue;
      const again = encodeDeliveryItem({ ...item, envelope: { ...item.envelope, recipients: waiting } });
      // Marked as a copy of the item the shadow was made for, as a requeued stranded item is: the outbound proxy leases it
      // under that item's sequence, so the copy and a requeued twin of the same item are never sent side by side.
      const origin = entry.origin ?? entry.seq;
      const ack = await publishDurable(deps.bus, entry.subject, again, {
        msgID: `${id}:${entry.subject}:reissue-${entry.reissues + 1}`,
        expectStream: STREAMS.deliver,
        headers: { [REQUEUED_FROM_HEADER]: `${STREAMS.deliver}:${origin}` },
      });
      const next: ShadowEntry = { subject: entry.subject, seq: ack.seq, origin, since: now(), reissues: entry.reissues + 1, item: again };
      await deps.shadow.replace(id, next);
      deps.onReissued(
        id,
        next,
        waiting.map((r) => r.address),
      );
      result.reissued++;
    }
    // Checked again sooner while the items are young, then less often: half their age, between recheckMs and maxRecheckMs.
    if (open > 0) await deps.shadow.later(id, Math.min(opts.maxRecheckMs, Math.max(opts.recheckMs, Math.floor((now() - oldest) / 2))));
  }
  return result;
}
