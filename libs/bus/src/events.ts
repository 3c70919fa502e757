/**
 * The per-message event log, `mail.evt.<id>`: each message is an actor whose state is the
 * fold of its events. Every append names the last sequence it saw on the message's subject
 * (`Nats-Expected-Last-Subject-Sequence`), so two workers can never write conflicting
 * histories: the loser of a race re-reads, decides again on the new state and either
 * appends what is still true or nothing (a second Delivered for a recipient, a Failed after
 * a Delivered, a second Poisoned are never written). A retried append after a lost
 * acknowledgement is just another race, lost to itself, so appends are idempotent too.
 *
 * One caveat, from the server: nats-server before 2.10 checks the expected sequence of a
 * clustered (R3) stream before proposing the write, not as part of it (nats-server#4320), so
 * two appends racing within milliseconds can both be accepted. The fold is therefore
 * monotonic — a late Routed or Deferred never takes back an outcome, and a Delivered outlasts
 * a racing Failed — so such a pair costs a redundant event in the log, never a wrong state;
 * and a snapshot is trusted only when nothing landed between it and the event it followed.
 */
import { encode, decode } from '@msgpack/msgpack';
import { headers } from '@nats-io/transport-node';
import type { Bus } from './connection.ts';
import { STREAMS, SUBJECTS } from './topology.ts';

/** A next hop and the recipients routed to it. `connector`: the send connector of an SMTP hop (message tracking's ConnectorId of SEND). */
export type Route = { hop: string; recipients: string[]; connector?: string };

/**
 * What the accepting side knows of a message, for message tracking's RECEIVE row and
 * Get-Message: recorded by the hub inside its Submitted (one append for both, see
 * services/hub/src/main.ts), or as a Received event of its own (frontends before that, a
 * submit item parked as poison or removed before a hub took it).
 */
export type Reception = {
  connector?: string;
  source: 'SMTP' | 'PICKUP' | 'DSN';
  sender: string;
  recipients: string[];
  size: number;
  /** The RFC 5322 Message-ID (with angle brackets) and Subject, so tracking can be searched by them. Absent in events written before tracking. */
  messageId?: string;
  subject?: string;
  /** The submit stream's sequence, the InternalId of the 250 reply. */
  internalId?: number;
  clientIp?: string;
  clientHostname?: string;
  /** When the submit queue acknowledged it (the stream's timestamp of the submit item). */
  queuedAt?: number;
  /** The Transit node that accepted the message, when another node records it (the hub); else the event's node. */
  acceptedBy?: string;
};

export type MessageEvent =
  | ({ type: 'Received' } & Reception)
  /**
   * The categorizer took the message from the submission queue and resolved its recipients:
   * one event (two tracking rows, SUBMIT and RESOLVE) so categorization costs one append more.
   * `recipients` are the resolved addresses; `resolved` names those that differ from what the
   * sender wrote (an alias resolved to its mailbox's primary address).
   */
  | {
      type: 'Submitted';
      source: 'QUEUE';
      recipients: string[];
      resolved: Array<{ address: string; original: string }>;
      /**
       * Where the categorizer routed the recipients, recorded with Submitted in the same append:
       * each route counts as a Routed event would. Absent in events written before routes came
       * with Submitted (each hop then had its own Routed) and when nothing could be routed.
       */
      routes?: Route[];
      /** The message's Reception, recorded with Submitted in the same append (no Received event before it). Absent when a Received was written. */
      received?: Reception;
    }
  | ({ type: 'Routed' } & Route)
  | { type: 'Delivered'; hop: string; recipients: string[]; response?: string }
  | { type: 'Deferred'; hop: string; recipients: string[]; reason: string; nextAttempt: number }
  | { type: 'Failed'; hop: string; recipients: string[]; reason: string }
  /** A delivery status notification about these recipients went to the sender (or was suppressed, and why). */
  | { type: 'DsnGenerated'; kind: 'failure' | 'delay'; recipients: string[]; dsnId: string }
  /** A redelivered work item named recipients already delivered; they were not sent again. */
  | { type: 'DuplicateSuppressed'; hop: string; recipients: string[] }
  /** Its processing killed workers PoisonThreshold times: parked in MAIL_POISON, not retried. */
  | { type: 'Poisoned'; stage: string; crashes: number }
  /** Resubmitted by an administrator: from the Safety Net, or back through the categorizer (Retry-Queue -Resubmit). */
  | { type: 'Resubmitted'; source: 'SAFETYNET' | 'ADMIN'; recipients: string[] }
  | { type: 'DsnSuppressed'; kind: 'failure' | 'delay'; recipients: string[]; reason: string }
  /**
   * Administrator actions (Suspend-/Resume-Message, Remove-Message). The hold itself lives in
   * KV `transit-suspended`, which workers read; these events are the record (tracking, Get-Message).
   * `actor` names who acted (transitctl's user and host, or the admin API's caller).
   */
  | { type: 'Suspended'; source: 'ADMIN'; actor?: string }
  | { type: 'Resumed'; source: 'ADMIN'; actor?: string }
  /** Removed from its queues: the recipients still undelivered are final (a failure DSN follows when `withNdr`). */
  | { type: 'Removed'; source: 'ADMIN'; recipients: string[]; withNdr: boolean; reason: string; actor?: string };

/** An event as stored: the event, when and where it was written, and its stream sequence. */
export type StoredEvent = MessageEvent & { at: number; node: string; seq: number };

export type RecipientStatus = 'Pending' | 'Routed' | 'Deferred' | 'Delivered' | 'Failed' | 'Resubmitted';

export type RecipientState = {
  address: string;
  status: RecipientStatus;
  hop?: string;
  /** Deferrals so far. */
  deferrals: number;
  lastError?: string;
  nextAttempt?: number;
  /** Notifications generated (or suppressed) about this recipient, by kind. */
  dsn: Array<'failure' | 'delay'>;
};

export type MessageStatus = 'Unknown' | 'Active' | 'Retry' | 'Suspended' | 'Delivered' | 'Failed' | 'PartiallyFailed' | 'Poisoned';

export type MessageState = {
  id: string;
  /** The sequence of the last event on the message's subject (0: no events). */
  lastSeq: number;
  events: number;
  received?: { at: number; sender: string; connector?: string; source: string; size: number; node: string; messageId?: string; subject?: string };
  /** When a categorizer took the message from the submission queue (once per message). */
  submitted?: { at: number; node: string };
  /** Addresses the sender wrote that the categorizer resolved to another (alias → primary), lower case. */
  resolvedAliases: Record<string, string>;
  recipients: Record<string, RecipientState>;
  poisoned?: { stage: string; crashes: number; at: number };
  /** Suspended by an administrator and not resumed since. */
  suspended?: { at: number; actor?: string };
  /** Removed by an administrator (Remove-Message). */
  removed?: { at: number; withNdr: boolean; actor?: string };
  duplicatesSuppressed: number;
  resubmissions: number;
  status: MessageStatus;
};

const key = (address: string) => address.toLowerCase();
const TERMINAL: ReadonlySet<RecipientStatus> = new Set(['Delivered', 'Failed']);
/** Delivered or Failed: the recipient's outcome is final. */
export const hasOutcome = (status: RecipientStatus | undefined): boolean => status !== undefined && TERMINAL.has(status);
const TERMINAL_MESSAGE: ReadonlySet<MessageStatus> = new Set(['Delivered', 'Failed', 'PartiallyFailed']);

export function emptyState(id: string): MessageState {
  return { id, lastSeq: 0, events: 0, recipients: {}, resolvedAliases: {}, duplicatesSuppressed: 0, resubmissions: 0, status: 'Unknown' };
}

function recipient(state: MessageState, address: string): RecipientState {
  return (state.recipients[key(address)] ??= { address, status: 'Pending', deferrals: 0, dsn: [] });
}

function statusOf(state: MessageState): MessageStatus {
  if (state.poisoned) return 'Poisoned';
  const all = Object.values(state.recipients);
  if (all.length === 0) return state.events ? 'Active' : 'Unknown';
  if (all.every((r) => TERMINAL.has(r.status))) {
    if (all.every((r) => r.status === 'Delivered')) return 'Delivered';
    return all.every((r) => r.status === 'Failed') ? 'Failed' : 'PartiallyFailed';
  }
  if (state.suspended) return 'Suspended';
  return all.some((r) => r.status === 'Deferred') ? 'Retry' : 'Active';
}

/** A route taken: its Pending recipients are Routed. Monotonic: a late or racing route never takes back an outcome (see recordEvent on why races exist). */
function routed(state: MessageState, route: Route): void {
  for (const a of route.recipients) {
    const r = recipient(state, a);
    if (r.status === 'Pending') Object.assign(r, { status: 'Routed', hop: route.hop });
  }
}

/** The message was received: its facts, and its recipients as the sender wrote them. */
function received(state: MessageState, r: Reception, at: number, node: string): void {
  state.received = {
    at,
    sender: r.sender,
    connector: r.connector,
    source: r.source,
    size: r.size,
    node: r.acceptedBy ?? node,
    messageId: r.messageId,
    subject: r.subject,
  };
  // A Received event can land after Submitted (old frontends appended it once the submit queue acknowledged): an alias already resolved is not a recipient of its own.
  for (const a of r.recipients) if (!state.resolvedAliases[key(a)]) recipient(state, a);
}

/** The Reception an event records: a Received event's own facts, or those a Submitted carries; else undefined. */
export function receptionIn(event: MessageEvent): Reception | undefined {
  return event.type === 'Received' ? event : event.type === 'Submitted' ? event.received : undefined;
}

/**
 * The events one stored event stands for, for readers that project events one at a time
 * (message tracking): a Submitted that carries its Reception is a Received (dated when the
 * submit queue took the message, written by the node that accepted it) followed by the
 * Submitted itself; a Received recorded by another node than the one that accepted the
 * message is that node's; any other event is itself.
 */
export function expandEvent(event: StoredEvent): StoredEvent[] {
  if (event.type === 'Received' && event.acceptedBy !== undefined) {
    const { acceptedBy, ...rest } = event;
    return [{ ...rest, node: acceptedBy }];
  }
  if (event.type !== 'Submitted' || !event.received) return [event];
  const { received: r, ...submitted } = event;
  const { acceptedBy, ...facts } = r;
  return [{ type: 'Received', ...facts, at: r.queuedAt ?? event.at, node: acceptedBy ?? event.node, seq: event.seq }, submitted];
}

/** Applies one event to a state (pure; the state is copied). */
export function applyEvent(prev: MessageState, event: StoredEvent): MessageState {
  const state: MessageState = {
    ...prev,
    resolvedAliases: { ...prev.resolvedAliases },
    recipients: Object.fromEntries(Object.entries(prev.recipients).map(([k, r]) => [k, { ...r, dsn: [...r.dsn] }])),
  };
  state.lastSeq = Math.max(state.lastSeq, event.seq);
  state.events++;
  switch (event.type) {
    case 'Received':
      received(state, event, event.at, event.node);
      break;
    case 'Submitted':
      if (event.received && !state.received) received(state, event.received, event.received.queuedAt ?? event.at, event.node);
      state.submitted ??= { at: event.at, node: event.node };
      // From here on a resolved address stands for the alias the sender wrote: left in, the alias would stay Pending for ever.
      for (const { address, original } of event.resolved) {
        if (key(address) === key(original)) continue;
        state.resolvedAliases[key(original)] = address;
        if (state.recipients[key(original)]?.status === 'Pending') delete state.recipients[key(original)];
      }
      for (const a of event.recipients) recipient(state, a);
      for (const route of event.routes ?? []) routed(state, route);
      break;
    case 'Routed':
      routed(state, event);
      break;
    case 'Delivered':
      for (const a of event.recipients) Object.assign(recipient(state, a), { status: 'Delivered', hop: event.hop, nextAttempt: undefined });
      break;
    case 'Failed':
      // A delivery is the stronger fact: a Failed racing a Delivered does not undo it.
      for (const a of event.recipients) {
        const r = recipient(state, a);
        if (r.status !== 'Delivered') Object.assign(r, { status: 'Failed', hop: event.hop, lastError: event.reason, nextAttempt: undefined });
      }
      break;
    case 'Deferred':
      for (const a of event.recipients) {
        const r = recipient(state, a);
        if (!TERMINAL.has(r.status))
          Object.assign(r, { status: 'Deferred', hop: event.hop, lastError: event.reason, nextAttempt: event.nextAttempt, deferrals: r.deferrals + 1 });
      }
      break;
    case 'DsnGenerated':
    case 'DsnSuppressed':
      for (const a of event.recipients) recipient(state, a).dsn.push(event.kind);
      break;
    case 'DuplicateSuppressed':
      state.duplicatesSuppressed += event.recipients.length;
      // A redelivered item found them already delivered (e.g. the Delivered event was lost in a crash).
      for (const a of event.recipients) Object.assign(recipient(state, a), { status: 'Delivered', hop: event.hop });
      break;
    case 'Poisoned':
      state.poisoned ??= { stage: event.stage, crashes: event.crashes, at: event.at };
      break;
    case 'Resubmitted':
      state.resubmissions++;
      for (const a of event.recipients) Object.assign(recipient(state, a), { status: 'Resubmitted' });
      break;
    case 'Suspended':
      state.suspended = { at: event.at, ...(event.actor !== undefined ? { actor: event.actor } : {}) };
      break;
    case 'Resumed':
      state.suspended = undefined;
      break;
    case 'Removed':
      state.removed ??= { at: event.at, withNdr: event.withNdr, ...(event.actor !== undefined ? { actor: event.actor } : {}) };
      // Final like a bounce: a delivery racing the removal can no longer be recorded as Delivered.
      for (const a of event.recipients) {
        const r = recipient(state, a);
        if (r.status !== 'Delivered') Object.assign(r, { status: 'Failed', lastError: event.reason, nextAttempt: undefined });
      }
      // Nothing is held any more: the message is gone from its queues.
      state.suspended = undefined;
      break;
  }
  state.status = statusOf(state);
  return state;
}

export function foldMessage(id: string, events: readonly StoredEvent[]): MessageState {
  return events.reduce(applyEvent, emptyState(id));
}

/**
 * What of `event` is still true to record on `state`, or undefined for nothing: the rule that
 * keeps histories free of conflicts. Outcomes are recorded once per recipient (until the
 * Safety Net resubmits it), a notification once per recipient and kind, Received, Submitted
 * and Poisoned once.
 */
export function admit(state: MessageState, event: MessageEvent): MessageEvent | undefined {
  const current = (a: string) => state.recipients[key(a)];
  const keep = (recipients: string[], ok: (r: RecipientState | undefined) => boolean) => recipients.filter((a) => ok(current(a)));
  const trimmed = (recipients: string[]) => (recipients.length ? ({ ...event, recipients } as MessageEvent) : undefined);
  switch (event.type) {
    case 'Received':
      return state.received ? undefined : event;
    case 'Submitted': {
      // Once per message: a submit item redelivered after a hub crash is categorized again, but was submitted once.
      if (state.submitted) return undefined;
      // Received once: a Reception already recorded (a Received event) is not recorded again.
      if (!event.received || !state.received) return event;
      const { received: _already, ...rest } = event;
      return rest;
    }
    case 'Routed':
      return trimmed(keep(event.recipients, (r) => !r || r.status === 'Pending'));
    case 'Delivered':
    case 'Failed':
    case 'Deferred':
      return trimmed(keep(event.recipients, (r) => !r || !TERMINAL.has(r.status)));
    case 'DsnGenerated':
    case 'DsnSuppressed':
      return trimmed(keep(event.recipients, (r) => !r?.dsn.includes(event.kind)));
    case 'Poisoned':
      return state.poisoned ? undefined : event;
    case 'DuplicateSuppressed':
    case 'Resubmitted':
      return event;
    case 'Suspended':
      // A finished or removed message has nothing left to hold; a second suspension says nothing new.
      return state.suspended || state.removed || TERMINAL_MESSAGE.has(state.status) ? undefined : event;
    case 'Resumed':
      return state.suspended ? event : undefined;
    case 'Removed':
      // Recipients already delivered or bounced keep their outcome; removal applies to the rest, once.
      return state.removed ? undefined : trimmed(keep(event.recipients, (r) => !r || !TERMINAL.has(r.status)));
  }
}

/**
 * Each event carries the message's state after it (a snapshot), so reading a message is one
 * request for its last event. A state larger than this is left out (thousands of
 * recipients) and readers fold the whole log instead.
 */
const SNAPSHOT_MAX_BYTES = 64 * 1024;
type Snapshot = Omit<MessageState, 'id' | 'lastSeq'>;
/** `prev`: the subject sequence the appender expected to follow (its snapshot folds everything up to there). */
type Written = MessageEvent & { at: number; node: string; state?: Snapshot; prev?: number };

/** A `getMessage(...).catch(notFound)`: null when the stream has no such message, the error otherwise. */
export const notFound = (err: Error) => {
  if (/no message found|not found/i.test(err.message)) return null;
  throw err;
};

/** Reads a message's events in order (a few per message, read by subject from the stream leader). */
export async function loadMessageEvents(bus: Bus, messageId: string): Promise<StoredEvent[]> {
  const subject = SUBJECTS.event(messageId);
  const out: StoredEvent[] = [];
  for (let seq = 1; ;) {
    // `next_by_subj` is in the server's STREAM.MSG.GET API (2.9+); the client's type lists only seq/last_by_subj.
    const m = await bus.jsm.streams.getMessage(STREAMS.events, { seq, next_by_subj: subject } as unknown as { seq: number }).catch(notFound);
    if (!m || m.subject !== subject) return out;
    const { state: _snapshot, prev: _prev, ...event } = decode(m.data) as Written;
    out.push({ ...event, seq: m.seq });
    seq = m.seq + 1;
  }
}

/**
 * The message's state: the snapshot in its last event when nothing was appended between the
 * event it followed and it (two requests), else the fold of its whole log. The check matters
 * on nats-server before 2.10, whose clustered streams can accept two appends that expected
 * the same sequence (nats-server#4320): the later snapshot would miss the other event.
 */
export async function loadMessage(bus: Bus, messageId: string): Promise<MessageState> {
  const subject = SUBJECTS.event(messageId);
  const last = await bus.jsm.streams.getMessage(STREAMS.events, { last_by_subj: subject }).catch(notFound);
  if (!last) return emptyState(messageId);
  const written = decode(last.data) as Written;
  if (written.state && written.prev !== undefined) {
    const next = await bus.jsm.streams
      .getMessage(STREAMS.events, { seq: written.prev + 1, next_by_subj: subject } as unknown as { seq: number })
      .catch(notFound);
    if (next?.seq === last.seq) return { ...written.state, id: messageId, lastSeq: last.seq };
  }
  return foldMessage(messageId, await loadMessageEvents(bus, messageId));
}

const WRONG_LAST_SEQUENCE = 10071;
const MAX_RACES = 20;

/**
 * Appends `event` to the message's log if (and as far as) it is still true on the current
 * state, with the expected last subject sequence; on a lost race, reads again and retries.
 * Returns the event as recorded, or undefined when nothing was left to record.
 *
 * `known` saves the read: a caller that knows the state (it appended the last event itself,
 * or expects to be first) passes it, and finds the state after its append there. A wrong
 * guess costs one refused append, never a wrong history.
 */
export async function recordEvent(
  bus: Bus,
  messageId: string,
  event: MessageEvent,
  node: string,
  known?: { state?: MessageState },
): Promise<MessageEvent | undefined> {
  const subject = SUBJECTS.event(messageId);
  let assumed = known?.state;
  for (let race = 0; ; race++) {
    const state = assumed ?? (await loadMessage(bus, messageId));
    assumed = undefined;
    const admitted = admit(state, event);
    if (!admitted) {
      if (known) known.state = state;
      return undefined;
    }
    const at = Date.now();
    const next = applyEvent(state, { ...admitted, at, node, seq: state.lastSeq + 1 });
    const { id: _id, lastSeq: _lastSeq, ...snapshot } = next;
    const packed = encode(snapshot, { ignoreUndefined: true });
    const hdrs = headers();
    // Set by hand: the client's `expect.lastSubjectSequence` leaves out 0 ("no events yet").
    hdrs.set('Nats-Expected-Last-Subject-Sequence', String(state.lastSeq));
    try {
      const ack = await bus.js.publish(
        subject,
        encode(
          { ...admitted, at, node, ...(packed.byteLength <= SNAPSHOT_MAX_BYTES ? { state: snapshot, prev: state.lastSeq } : {}) },
          { ignoreUndefined: true },
        ),
        { headers: hdrs, expect: { streamName: STREAMS.events } },
      );
      if (known) known.state = { ...next, lastSeq: ack.seq };
      return admitted;
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      const lost = code === WRONG_LAST_SEQUENCE || code === String(WRONG_LAST_SEQUENCE) || /wrong last sequence/i.test((err as Error).message);
      if (!lost || race >= MAX_RACES) throw err;
      await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 5 * (race + 1))));
    }
  }
}
