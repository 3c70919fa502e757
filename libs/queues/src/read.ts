/**
 * Gathers what project.ts needs, reading and never consuming: work queues are read item by
 * item with STREAM.MSG.GET (`next_by_subj`, from the stream leader) — a work-queue stream
 * admits no second consumer over its subjects, and acknowledging would take work away from
 * the workers. Counts per subject come from stream info (`subjects_filter`), so they are
 * exact even when only the first `limit` items are read.
 */
import { decode } from '@msgpack/msgpack';
import {
  STREAMS,
  SUBJECTS,
  foldMessage,
  loadMessageEvents,
  notFound,
  readHolds,
  scanStream,
  type Bus,
  type MessageEvent,
  type MessageState,
} from '@transit/bus';
import { decodeDeliveryItem, decodeEnvelope } from '@transit/envelope';
import { RATE_WINDOW_MS, type PendingItem, type QueueInputs, type RateSample } from './project.ts';

/** Items read per stream at most: beyond them Get-Message lists the first ones and Get-Queue still counts all. */
export const READ_LIMIT = 10_000;
/** How far back the Unreachable queue looks for recipients that could not be routed. */
export const UNREACHABLE_WINDOW_MS = 60 * 60 * 1000;

/** The items on `filter` in `stream` from its first sequence, in order, decoded (undecodable ones skipped). */
export async function readPending(bus: Bus, stream: string, filter: string, limit = READ_LIMIT): Promise<PendingItem[]> {
  const out: PendingItem[] = [];
  const { state } = await bus.jsm.streams.info(stream);
  if (state.messages === 0) return out;
  for (let seq = state.first_seq; out.length < limit && seq <= state.last_seq;) {
    // `next_by_subj` is in the server's STREAM.MSG.GET API (2.9+); the client's type lists only seq/last_by_subj.
    const m = await bus.jsm.streams.getMessage(stream, { seq, next_by_subj: filter } as unknown as { seq: number }).catch(notFound);
    if (!m) break;
    seq = m.seq + 1;
    const item = decodeItem(stream, m.seq, m.subject, m.data, m.header?.get('Transit-Poison-Subject'));
    if (item) out.push(item);
  }
  return out;
}

export function decodeItem(stream: string, seq: number, subject: string, data: Uint8Array, parkedFrom?: string): PendingItem | undefined {
  const origin = parkedFrom || subject;
  try {
    if (origin === SUBJECTS.submit) {
      const envelope = decodeEnvelope(data);
      return { stream, seq, subject, envelope, attempt: 0, notBefore: 0 };
    }
    const item = decodeDeliveryItem(data);
    return { stream, seq, subject, envelope: item.envelope, hop: item.hop, attempt: item.attempt, notBefore: item.notBefore };
  } catch {
    return undefined;
  }
}

/** Work-queue subjects and their message counts. */
async function subjectCounts(bus: Bus): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const [stream, filter] of [
    [STREAMS.submit, SUBJECTS.submit],
    [STREAMS.deliver, 'mail.deliver.>'],
  ] as const) {
    const info = await bus.jsm.streams.info(stream, { subjects_filter: filter });
    Object.assign(counts, info.state.subjects ?? {});
  }
  return counts;
}

/**
 * Messages with recipients the categorizer could not route (5.4.4: no send connector) in the
 * last `windowMs`. Transit bounces them at once instead of holding them as Exchange's
 * Unreachable queue does, so this queue lists them for the administrator to see, not to retry.
 */
async function readUnreachable(bus: Bus, since: Date): Promise<{ items: PendingItem[]; states: Map<string, MessageState> }> {
  const prefix = SUBJECTS.event('');
  const ids = new Set<string>();
  await scanStream(
    bus,
    STREAMS.events,
    (m) => {
      const e = decode(m.data) as MessageEvent;
      if (e.type === 'Failed' && e.hop === 'categorizer' && /5\.4\.4/.test(e.reason)) ids.add(m.subject.slice(prefix.length));
    },
    { since },
  );
  const items: PendingItem[] = [];
  const states = new Map<string, MessageState>();
  for (const id of ids) {
    const state = foldMessage(id, await loadMessageEvents(bus, id));
    states.set(id, state);
    const r = state.received;
    const unroutable = Object.values(state.recipients).filter(
      (x) => (x.hop === undefined || x.hop === 'categorizer') && x.status === 'Failed' && /5\.4\.4/.test(x.lastError ?? ''),
    );
    items.push({
      stream: STREAMS.events,
      seq: 0,
      subject: SUBJECTS.event(id),
      envelope: {
        id,
        messageId: r?.messageId ?? '',
        sender: r?.sender ?? '',
        recipients: unroutable.map((x) => ({ address: x.address })),
        size: r?.size ?? 0,
        receivedAt: r?.at ?? 0,
      },
      attempt: 0,
      notBefore: 0,
    });
  }
  return { items, states };
}

/**
 * The work-queue subject an event's `hop` names. The categorizer's Routed carries its group
 * key (`mailbox:<database>`, `smtp:<connector>:<domain or smart hosts>`); the outbound proxy
 * writes the subject itself and mailbox delivery `mailbox:<database>`. Anything else
 * (`categorizer`) is no queue.
 */
export function hopSubject(hop: string, connector?: string): string | undefined {
  if (hop.startsWith('mail.deliver.')) return hop;
  if (hop.startsWith('mailbox:')) return SUBJECTS.mailbox(hop.slice('mailbox:'.length));
  if (hop.startsWith('smtp:')) {
    const rest = hop.slice('smtp:'.length);
    // The connector's name when Routed gives it (a smart host may hold a colon: `host:port`), else up to the first colon.
    const name = connector !== undefined && rest.startsWith(`${connector}:`) ? connector : rest.slice(0, rest.indexOf(':'));
    return name ? SUBJECTS.remote(`${name}.${rest.slice(name.length + 1)}`) : undefined;
  }
  return undefined;
}

/**
 * The queue movements one event stands for: Received/Submitted for Submission (with the
 * Reception and routes Submitted carries, into Submission and their delivery queues), Routed/Delivered/Failed for delivery queues.
 */
export function rateSamples(e: MessageEvent, messageId: string, at: number): RateSample[] {
  const hop = (name: string, connector: string | undefined, direction: RateSample['direction']): RateSample[] => {
    const subject = hopSubject(name, connector);
    return subject ? [{ subject, direction, messageId, at }] : [];
  };
  switch (e.type) {
    case 'Received':
      return [{ subject: SUBJECTS.submit, direction: 'in', messageId, at }];
    case 'Submitted':
      return [
        // Recorded with Submitted by the hub: the message came into Submission when the queue took it.
        ...(e.received ? [{ subject: SUBJECTS.submit, direction: 'in' as const, messageId, at: e.received.queuedAt ?? at }] : []),
        { subject: SUBJECTS.submit, direction: 'out', messageId, at },
        ...(e.routes ?? []).flatMap((r) => hop(r.hop, r.connector, 'in')),
      ];
    case 'Routed':
      return hop(e.hop, e.connector, 'in');
    case 'Delivered':
    case 'Failed':
      return hop(e.hop, undefined, 'out');
    default:
      return [];
  }
}

/** The event log's last `windowMs`, as rate samples: a bounded scan from that time on. */
export async function readRates(bus: Bus, now: number, windowMs = RATE_WINDOW_MS): Promise<RateSample[]> {
  const prefix = SUBJECTS.event('');
  const out: RateSample[] = [];
  await scanStream(
    bus,
    STREAMS.events,
    (m) => {
      const e = decode(m.data) as MessageEvent & { at?: number };
      out.push(...rateSamples(e, m.subject.slice(prefix.length), e.at ?? m.info.timestampNanos / 1_000_000));
    },
    { since: new Date(now - windowMs) },
  );
  return out;
}

export type ReadOptions = { now?: number; limit?: number; unreachableSince?: Date; loadStates?: boolean; rates?: boolean };

/** Everything project.ts needs, read now. `rates` scans the event log's last minute (Get-Queue's IncomingRate/OutgoingRate). `loadStates` folds the event log of every listed message (Get-Message); otherwise only of the newest attempt per queue (Get-Queue's LastError). */
export async function readQueueInputs(bus: Bus, opts: ReadOptions = {}): Promise<QueueInputs> {
  const now = opts.now ?? Date.now();
  const limit = opts.limit ?? READ_LIMIT;
  const [submit, deliver, poison, counts, safetyNet, holds, unreachable, rates] = await Promise.all([
    readPending(bus, STREAMS.submit, SUBJECTS.submit, limit),
    readPending(bus, STREAMS.deliver, 'mail.deliver.>', limit),
    readPending(bus, STREAMS.poison, 'mail.poison.>', limit),
    subjectCounts(bus),
    bus.jsm.streams.info(STREAMS.safetyNet),
    readHolds(bus),
    readUnreachable(bus, opts.unreachableSince ?? new Date(now - UNREACHABLE_WINDOW_MS)),
    opts.rates ? readRates(bus, now) : undefined,
  ]);
  const states = new Map(unreachable.states);
  const wanted = new Set<string>();
  if (opts.loadStates) for (const i of [...submit, ...deliver, ...poison]) wanted.add(i.envelope.id);
  else {
    const newest = new Map<string, (typeof deliver)[number]>();
    for (const i of deliver) if (i.attempt > 0 && (newest.get(i.subject)?.attempt ?? -1) < i.attempt) newest.set(i.subject, i);
    for (const i of newest.values()) wanted.add(i.envelope.id);
  }
  for (const id of wanted) if (!states.has(id)) states.set(id, foldMessage(id, await loadMessageEvents(bus, id)));
  return {
    now,
    submit,
    deliver,
    poison,
    counts,
    safetyNetCount: safetyNet.state.messages,
    unreachable: unreachable.items,
    holds,
    states,
    ...(rates ? { rates } : {}),
  };
}
