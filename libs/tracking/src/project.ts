/**
 * Message tracking as a projection of the per-message event logs: events in, Exchange
 * tracking rows out. Pure and incremental, so a reader can walk MAIL_EVENTS once and keep
 * only the rows it wants.
 *
 * Every row carries its message's facts from the Received event (sender, Message-ID,
 * subject, size, InternalId), as Exchange's rows do, so filters work on every row. The
 * Received event is appended after the submit queue acknowledged the message, so the hub's
 * Submitted may come first in the log: a message's events are held until its Received
 * arrives, and RECEIVE is always its first row. Events of a message whose Received never
 * arrives (it was not recorded, or lies before the scanned range) come out at `flush()`
 * without those facts.
 *
 * Event → rows: Received → RECEIVE (source SMTP, PICKUP or DSN); Submitted → SUBMIT (QUEUE)
 * and RESOLVE (ROUTING: one row per address resolved to another, with the original as
 * RelatedRecipientAddress, and one for the rest); Routed, and the routes Submitted carries
 * → no row (they name the send connector of a later SEND); Delivered → DELIVER (STOREDRIVER) to a mailbox, SEND (SMTP)
 * to a remote hop; Deferred → DEFER; Failed → FAIL (ROUTING in the categorizer,
 * STOREDRIVER at a mailbox, SMTP remote); DsnGenerated → DSN (DSN; Reference: the
 * notification's NetworkMessageId); DuplicateSuppressed → DUPLICATEDELIVER (STOREDRIVER,
 * or REDUNDANCY for a remote hop); Poisoned → POISONMESSAGE; Resubmitted → RESUBMIT
 * (SAFETYNET); Removed (Remove-Message) → DROP (ADMIN). DsnSuppressed writes no row:
 * Exchange logs nothing for a notification it does not send; nor for Suspended and Resumed.
 */
import { expandEvent, type MessageEvent, type Route, type StoredEvent } from '@transit/bus';
import type { TrackingEventId, TrackingRow, TrackingSource } from './rows.ts';

type Received = Extract<MessageEvent, { type: 'Received' }>;

type MessageContext = {
  received?: StoredEvent & Received;
  /** Send connector by recipient (lower case), from Routed. */
  connectors: Map<string, string>;
  /** Events that arrived before the Received event. */
  held: StoredEvent[];
};

const isMailboxHop = (hop: string) => hop.startsWith('mailbox:');
const iso = (ms: number) => new Date(ms).toISOString();

export class TrackingProjection {
  readonly #messages = new Map<string, MessageContext>();

  /** Feeds the next event of message `id` (in log order); returns the rows it completes. */
  push(id: string, stored: StoredEvent): TrackingRow[] {
    // A Submitted that carries its Reception stands for the RECEIVE row too (libs/bus/src/events.ts).
    return expandEvent(stored).flatMap((event) => this.#push(id, event));
  }

  #push(id: string, event: StoredEvent): TrackingRow[] {
    let ctx = this.#messages.get(id);
    if (!ctx) {
      ctx = { connectors: new Map(), held: [] };
      this.#messages.set(id, ctx);
    }
    if (event.type === 'Received') {
      if (ctx.received) return []; // admit() records one; a second could only come from a hand-made log
      ctx.received = event;
      const held = ctx.held.splice(0);
      return [...this.#rows(id, ctx, event), ...held.flatMap((e) => this.#rows(id, ctx, e))];
    }
    if (!ctx.received) {
      ctx.held.push(event);
      return [];
    }
    return this.#rows(id, ctx, event);
  }

  /** The rows of events still held (their message's Received never came), in arrival order per message. */
  flush(): TrackingRow[] {
    const out: TrackingRow[] = [];
    for (const [id, ctx] of this.#messages) out.push(...ctx.held.splice(0).flatMap((e) => this.#rows(id, ctx, e)));
    return out;
  }

  #rows(id: string, ctx: MessageContext, event: StoredEvent): TrackingRow[] {
    const r = ctx.received;
    const row = (eventId: TrackingEventId, source: TrackingSource, recipients: readonly string[], extra: Partial<TrackingRow> = {}): TrackingRow => ({
      Timestamp: iso(event.at),
      ServerHostname: event.node,
      Source: source,
      EventId: eventId,
      ...(r?.internalId !== undefined ? { InternalMessageId: r.internalId } : {}),
      ...(r?.messageId !== undefined ? { MessageId: r.messageId } : {}),
      NetworkMessageId: id,
      Recipients: [...recipients],
      RecipientStatus: [],
      ...(r ? { TotalBytes: r.size } : {}),
      RecipientCount: recipients.length,
      ...(r?.subject !== undefined ? { MessageSubject: r.subject } : {}),
      // The envelope sender is both Sender and ReturnPath (Exchange shows <> as an empty sender).
      ...(r ? { Sender: r.sender, ReturnPath: r.sender } : {}),
      ...extra,
    });
    const status = (recipients: readonly string[], text: string) => recipients.map(() => text);
    /** A route's send connector, for its recipients' SEND rows. */
    const remember = (route: Route) => {
      if (route.connector) for (const a of route.recipients) ctx.connectors.set(a.toLowerCase(), route.connector);
    };
    switch (event.type) {
      case 'Received':
        return [
          row('RECEIVE', event.source, event.recipients, {
            Timestamp: iso(event.queuedAt ?? event.at),
            ...(event.clientIp !== undefined ? { ClientIp: event.clientIp } : {}),
            ...(event.clientHostname !== undefined ? { ClientHostname: event.clientHostname } : {}),
            // Exchange names a receive connector `Server\Connector`.
            ...(event.connector !== undefined ? { ConnectorId: `${event.node}\\${event.connector}` } : {}),
          }),
        ];
      case 'Submitted': {
        for (const route of event.routes ?? []) remember(route);
        const renamed = new Set(event.resolved.map((x) => x.address.toLowerCase()));
        const same = event.recipients.filter((a) => !renamed.has(a.toLowerCase()));
        return [
          row('SUBMIT', event.source, event.recipients),
          ...event.resolved.map((x) => row('RESOLVE', 'ROUTING', [x.address], { RelatedRecipientAddress: x.original })),
          ...(same.length ? [row('RESOLVE', 'ROUTING', same)] : []),
        ];
      }
      case 'Routed':
        remember(event);
        return [];
      case 'Delivered': {
        if (isMailboxHop(event.hop))
          return [row('DELIVER', 'STOREDRIVER', event.recipients, event.response ? { RecipientStatus: status(event.recipients, event.response) } : {})];
        const connector = event.recipients.map((a) => ctx.connectors.get(a.toLowerCase())).find((c) => c !== undefined);
        return [
          row('SEND', 'SMTP', event.recipients, {
            ...(connector ? { ConnectorId: connector } : {}),
            ...(event.response ? { RecipientStatus: status(event.recipients, event.response) } : {}),
          }),
        ];
      }
      case 'Deferred':
        return [row('DEFER', isMailboxHop(event.hop) ? 'STOREDRIVER' : 'SMTP', event.recipients, { RecipientStatus: status(event.recipients, event.reason) })];
      case 'Failed': {
        const source: TrackingSource = event.hop === 'categorizer' ? 'ROUTING' : isMailboxHop(event.hop) ? 'STOREDRIVER' : 'SMTP';
        return [row('FAIL', source, event.recipients, { RecipientStatus: status(event.recipients, event.reason) })];
      }
      case 'DsnGenerated':
        return [row('DSN', 'DSN', event.recipients, { Reference: [event.dsnId], MessageInfo: event.kind })];
      case 'DuplicateSuppressed':
        return [row('DUPLICATEDELIVER', isMailboxHop(event.hop) ? 'STOREDRIVER' : 'REDUNDANCY', event.recipients)];
      case 'Poisoned':
        return [row('POISONMESSAGE', 'POISONMESSAGE', r?.recipients ?? [], { MessageInfo: `${event.stage}; crashes=${event.crashes}` })];
      case 'Resubmitted':
        return [row('RESUBMIT', event.source, event.recipients)];
      case 'Removed':
        // Remove-Message: Exchange logs DROP with source ADMIN for the recipients it discarded.
        return [
          row('DROP', 'ADMIN', event.recipients, {
            RecipientStatus: status(event.recipients, event.reason),
            ...(event.actor !== undefined ? { MessageInfo: `removed by ${event.actor}${event.withNdr ? '; NDR sent' : '; no NDR'}` } : {}),
          }),
        ];
      case 'DsnSuppressed':
      case 'Suspended':
      case 'Resumed':
        // Exchange's tracking log has no event id for suspending or resuming: the event log keeps them (Get-Message shows the state).
        return [];
    }
  }
}

/** All rows of one message's events (in log order). */
export function projectMessage(id: string, events: readonly StoredEvent[]): TrackingRow[] {
  const projection = new TrackingProjection();
  return [...events.flatMap((e) => projection.push(id, e)), ...projection.flush()];
}
