/**
 * Queues as Exchange shows them (docs/exchange-behaviour.md §9), projected from what the cluster holds: the
 * work items waiting in MAIL_SUBMIT and MAIL_DELIVER, the parked MAIL_POISON items, the
 * SAFETY_NET count, the recipients the categorizer could not route, the administrator holds
 * in KV and the folded event logs. Pure (time is passed in), so it is tested on fixtures;
 * read.ts gathers the inputs. Transit's queues are the cluster's, not a server's: every
 * Identity is `Transit\<name>`, the name of a delivery queue being its subject's tail
 * (`Transit\remote.internet_fabrikam_test`, `Transit\mailbox.db01`).
 */
import type { Hold, MessageState } from '@transit/bus';
import type { NextHop } from '@transit/envelope';

export const QUEUE_SERVER = 'Transit';
export const QUEUE_NAMES = { submission: 'Submission', unreachable: 'Unreachable', poison: 'Poison', safetyNet: 'SafetyNet', shadow: 'Shadow' } as const;
/** The window IncomingRate and OutgoingRate are measured over. */
export const RATE_WINDOW_MS = 60_000;

export const DELIVERY_TYPES = ['Undefined', 'SmtpDeliveryToMailbox', 'DnsConnectorDelivery', 'SmartHostConnectorDelivery', 'ShadowRedundancy'] as const;
export type DeliveryType = (typeof DELIVERY_TYPES)[number];
export const QUEUE_STATUSES = ['Active', 'Ready', 'Retry', 'Suspended'] as const;
export type QueueStatus = (typeof QUEUE_STATUSES)[number];
export const MESSAGE_STATUSES = ['Active', 'Ready', 'Retry', 'Suspended', 'PendingRemove'] as const;
export type QueueMessageStatus = (typeof MESSAGE_STATUSES)[number];

/** Get-Queue's object. Times are ISO 8601 UTC. Velocity is not kept (see docs/operations.md). */
export type QueueRow = {
  Identity: string;
  DeliveryType: DeliveryType;
  NextHopDomain: string;
  NextHopConnector?: string;
  Status: QueueStatus;
  MessageCount: number;
  LastError?: string;
  NextRetryTime?: string;
  /** Messages per second that entered / left the queue over the last RATE_WINDOW_MS (Submission and delivery queues, when read). */
  IncomingRate?: number;
  OutgoingRate?: number;
  /** The work queue's NATS subject (absent for Poison, SafetyNet, Unreachable, Shadow). */
  Subject?: string;
};

/** Get-Message's object: one per message per queue. */
export type MessageRow = {
  Identity: string;
  /** Transit's message id (tracking's NetworkMessageId): what `message suspend|resume|remove|export` take. */
  MessageId: string;
  InternetMessageId: string;
  FromAddress: string;
  Recipients: string[];
  Status: QueueMessageStatus;
  Size: number;
  Subject?: string;
  DateReceived: string;
  Queue: string;
  LastError?: string;
  RetryCount: number;
  NextRetryTime?: string;
  /** Shadow queue only: the outbound proxy process (`node/pid`) holding the work item's lease, and since when. */
  LeaseOwner?: string;
  LeasedSince?: string;
};

/** A work item waiting in MAIL_SUBMIT or MAIL_DELIVER (or parked in MAIL_POISON), as read.ts decodes it. */
export type PendingItem = {
  stream: string;
  seq: number;
  subject: string;
  /** `subject`: the Subject header, carried by envelopes since the hub records the Reception (older ones: from the event log). */
  envelope: { id: string; messageId: string; subject?: string; sender: string; recipients: Array<{ address: string }>; size: number; receivedAt: number };
  /** Absent in the submission queue (not routed yet). */
  hop?: NextHop;
  attempt: number;
  notBefore: number;
};

/** A message entering (`in`) or leaving (`out`) a work queue, from the event log (read.ts maps each event's hop to its subject). */
export type RateSample = { subject: string; direction: 'in' | 'out'; messageId: string; at: number };

/** A work item leased right now by an outbound proxy in Redis (libs/leases listLeases): Exchange's shadow redundancy. */
export type LeasedItem = { owner: string; messageId: string; stream: string; seq: number; subject?: string; since?: number };

export type QueueInputs = {
  now: number;
  submit: PendingItem[];
  deliver: PendingItem[];
  poison: PendingItem[];
  /** Exact message counts per work-queue subject (stream info), which stay right when not every item was read. */
  counts: Record<string, number>;
  safetyNetCount: number;
  /** Messages with recipients the categorizer could not route (no send connector, 5.4.4), in the window read. */
  unreachable: PendingItem[];
  holds: ReadonlyMap<string, Hold>;
  /** Folded event logs of (some of) the messages: the last error and the subject come from there. */
  states: ReadonlyMap<string, MessageState>;
  /** Events of the last RATE_WINDOW_MS, for IncomingRate/OutgoingRate (absent: the rates are not shown). */
  rates?: readonly RateSample[];
  /** The leased work items (absent when Redis was not read: no Shadow queue). */
  leases?: readonly LeasedItem[];
};

export type QueueFilter = { identity?: string; deliveryType?: DeliveryType; status?: QueueStatus; nextHopDomain?: string; minMessageCount?: number };
export type MessageFilter = { queue?: string; sender?: string; status?: QueueMessageStatus; id?: string; resultSize?: number };

const identity = (name: string) => `${QUEUE_SERVER}\\${name}`;
const iso = (ms: number) => new Date(ms).toISOString();
const SUBJECT_ROOT = /^mail\.deliver\./;

/** A delivery queue's Identity from its subject: `mail.deliver.remote.x` → `Transit\remote.x`. */
export function queueIdentity(subject: string): string {
  if (subject === 'mail.submit') return identity(QUEUE_NAMES.submission);
  return identity(subject.replace(SUBJECT_ROOT, ''));
}

/** The name an administrator typed (`Transit\remote.x`, `remote.x`, `Submission`, any case) as a queue's Identity, if it is one of `rows`. */
export function findQueue(rows: readonly QueueRow[], written: string): QueueRow | undefined {
  const w = written.trim().toLowerCase();
  const name = w.includes('\\') ? w : `${QUEUE_SERVER.toLowerCase()}\\${w}`;
  return rows.find((r) => r.Identity.toLowerCase() === name) ?? rows.filter((r) => r.NextHopDomain.toLowerCase() === w).at(0);
}

/** The subject a queue Identity stands for, without reading the cluster (delivery queues and Submission only). */
export function subjectOfIdentity(written: string): string | undefined {
  const w = written.trim();
  const name = (w.includes('\\') ? w.slice(w.lastIndexOf('\\') + 1) : w).toLowerCase();
  if (name === QUEUE_NAMES.submission.toLowerCase()) return 'mail.submit';
  return /^(remote|mailbox)\.[a-z0-9_-]+$/.test(name) ? `mail.deliver.${name}` : undefined;
}

/** A message id as typed: Transit's id alone, or Exchange's `Server\Queue\Id` form. */
export const messageIdOf = (written: string) => written.trim().slice(written.trim().lastIndexOf('\\') + 1);

function deliveryType(hop: NextHop | undefined): DeliveryType {
  if (!hop) return 'Undefined';
  if (hop.type === 'mailbox') return 'SmtpDeliveryToMailbox';
  return hop.smartHosts?.length ? 'SmartHostConnectorDelivery' : 'DnsConnectorDelivery';
}

function nextHopDomain(hop: NextHop | undefined, fallback: string): string {
  if (!hop) return fallback;
  if (hop.type === 'mailbox') return hop.database;
  return hop.smartHosts?.length ? hop.smartHosts.join(',') : hop.domain;
}

/** The last error of an item's recipients, from its message's folded log. */
function lastErrorOf(item: PendingItem, states: ReadonlyMap<string, MessageState>): string | undefined {
  const state = states.get(item.envelope.id);
  if (!state) return undefined;
  for (const r of item.envelope.recipients) {
    const e = state.recipients[r.address.toLowerCase()]?.lastError;
    if (e) return e;
  }
  return undefined;
}

function messageStatus(item: PendingItem, holds: ReadonlyMap<string, Hold>, now: number): QueueMessageStatus {
  const hold = holds.get(`message.${item.envelope.id.replace(/[^A-Za-z0-9_-]/g, '_')}`);
  if (hold?.state === 'Removed') return 'PendingRemove';
  if (hold?.state === 'Suspended') return 'Suspended';
  return item.notBefore > now ? 'Retry' : 'Ready';
}

function deliveryQueue(subject: string, items: readonly PendingItem[], inputs: QueueInputs): QueueRow {
  const { now, holds, states } = inputs;
  const hop = items.find((i) => i.hop)?.hop;
  const waiting = items.filter((i) => i.notBefore > now);
  const suspended = holds.has(`queue.${subject}`);
  const count = inputs.counts[subject] ?? items.length;
  // The newest attempt carries the freshest error.
  const latest = [...items].sort((a, b) => b.attempt - a.attempt || b.seq - a.seq).find((i) => i.attempt > 0);
  const lastError = latest ? lastErrorOf(latest, states) : undefined;
  const nextRetry = waiting.length ? Math.min(...waiting.map((i) => i.notBefore)) : undefined;
  const status: QueueStatus = suspended ? 'Suspended' : count === 0 ? 'Ready' : items.length > 0 && waiting.length === items.length ? 'Retry' : 'Active';
  return {
    Identity: queueIdentity(subject),
    DeliveryType: subject === 'mail.submit' ? 'Undefined' : deliveryType(hop),
    NextHopDomain: subject === 'mail.submit' ? QUEUE_NAMES.submission : nextHopDomain(hop, subject.replace(SUBJECT_ROOT, '')),
    ...(hop?.type === 'smtp' ? { NextHopConnector: hop.connector } : {}),
    Status: status,
    MessageCount: count,
    ...(lastError !== undefined ? { LastError: lastError } : {}),
    ...(nextRetry !== undefined ? { NextRetryTime: iso(nextRetry) } : {}),
    Subject: subject,
  };
}

export type Rates = { IncomingRate: number; OutgoingRate: number };

/**
 * IncomingRate and OutgoingRate per subject: distinct messages that entered (routed to it)
 * or left (delivered or failed there) the queue in the `windowMs` before `now`, per second.
 * A message counts once per direction, however many of its recipients' events there are.
 */
export function queueRates(samples: readonly RateSample[], now: number, windowMs = RATE_WINDOW_MS): Map<string, Rates> {
  const seen = new Map<string, { in: Set<string>; out: Set<string> }>();
  for (const s of samples) {
    if (s.at > now || s.at <= now - windowMs) continue;
    const sets = seen.get(s.subject) ?? { in: new Set<string>(), out: new Set<string>() };
    sets[s.direction].add(s.messageId);
    seen.set(s.subject, sets);
  }
  const perSecond = (n: number) => Math.round((n / (windowMs / 1000)) * 1000) / 1000;
  return new Map([...seen].map(([subject, sets]) => [subject, { IncomingRate: perSecond(sets.in.size), OutgoingRate: perSecond(sets.out.size) }]));
}

function groupBySubject(items: readonly PendingItem[]): Map<string, PendingItem[]> {
  const out = new Map<string, PendingItem[]>();
  for (const i of items) out.set(i.subject, [...(out.get(i.subject) ?? []), i]);
  return out;
}

/** Get-Queue: Submission, one queue per next hop with items (or suspended), Unreachable, Poison, SafetyNet. */
export function projectQueues(inputs: QueueInputs): QueueRow[] {
  const submission = deliveryQueue('mail.submit', inputs.submit, inputs);
  const bySubject = groupBySubject(inputs.deliver);
  // A queue exists while it has items; a suspended one stays visible (Exchange removes idle queues, but not a suspended one).
  for (const subject of Object.keys(inputs.counts))
    if (SUBJECT_ROOT.test(subject) && inputs.counts[subject]! > 0 && !bySubject.has(subject)) bySubject.set(subject, []);
  for (const key of inputs.holds.keys()) {
    const subject = key.startsWith('queue.mail.deliver.') ? key.slice('queue.'.length) : undefined;
    if (subject && !bySubject.has(subject)) bySubject.set(subject, []);
  }
  const delivery = [...bySubject].map(([subject, items]) => deliveryQueue(subject, items, inputs)).sort((a, b) => a.Identity.localeCompare(b.Identity));
  if (inputs.rates) {
    const rates = queueRates(inputs.rates, inputs.now);
    for (const row of [submission, ...delivery]) Object.assign(row, rates.get(row.Subject!) ?? { IncomingRate: 0, OutgoingRate: 0 });
  }
  const fixed = (name: string, count: number, lastError?: string): QueueRow => ({
    Identity: identity(name),
    DeliveryType: 'Undefined',
    NextHopDomain: name,
    // Poison and Unreachable hold messages that wait for an administrator: Exchange shows them Ready.
    Status: 'Ready',
    MessageCount: count,
    ...(lastError !== undefined ? { LastError: lastError } : {}),
  });
  const unreachableError = inputs.unreachable.map((i) => lastErrorOf(i, inputs.states)).find((e) => e !== undefined);
  return [
    submission,
    ...delivery,
    fixed(QUEUE_NAMES.unreachable, new Set(inputs.unreachable.map((i) => i.envelope.id)).size, unreachableError),
    fixed(QUEUE_NAMES.poison, inputs.poison.length),
    fixed(QUEUE_NAMES.safetyNet, inputs.safetyNetCount),
    ...(inputs.leases ? [shadowQueue(inputs.leases)] : []),
  ];
}

/** Shadow: the work items outbound proxies hold leases on right now (Exchange's shadow redundancy queue). */
function shadowQueue(leases: readonly LeasedItem[]): QueueRow {
  return {
    Identity: identity(QUEUE_NAMES.shadow),
    DeliveryType: 'ShadowRedundancy',
    NextHopDomain: QUEUE_NAMES.shadow,
    Status: leases.length > 0 ? 'Active' : 'Ready',
    MessageCount: leases.length,
  };
}

export function matchesQueue(filter: QueueFilter, row: QueueRow): boolean {
  if (filter.identity !== undefined && findQueue([row], filter.identity) === undefined) return false;
  if (filter.deliveryType !== undefined && row.DeliveryType !== filter.deliveryType) return false;
  if (filter.status !== undefined && row.Status !== filter.status) return false;
  if (filter.nextHopDomain !== undefined && !wildcard(filter.nextHopDomain).test(row.NextHopDomain)) return false;
  if (filter.minMessageCount !== undefined && row.MessageCount < filter.minMessageCount) return false;
  return true;
}

/** PowerShell's -like: `*` any run, `?` one character, no case. */
function wildcard(pattern: string): RegExp {
  return new RegExp(
    `^${pattern
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.')}$`,
    'i',
  );
}

/** Get-Message: one row per message per queue, filtered. */
export function projectMessages(inputs: QueueInputs, filter: MessageFilter = {}): MessageRow[] {
  const { now, holds, states } = inputs;
  const queues = projectQueues(inputs);
  const wantQueue = filter.queue !== undefined ? findQueue(queues, filter.queue) : undefined;
  if (filter.queue !== undefined && !wantQueue) return [];
  const row = (item: PendingItem, queue: string, status: QueueMessageStatus): MessageRow => {
    const state = states.get(item.envelope.id);
    const lastError = lastErrorOf(item, states);
    const subject = item.envelope.subject ?? state?.received?.subject;
    return {
      Identity: `${queue}\\${item.envelope.id}`,
      MessageId: item.envelope.id,
      InternetMessageId: item.envelope.messageId,
      FromAddress: item.envelope.sender || '<>',
      Recipients: item.envelope.recipients.map((r) => r.address),
      Status: status,
      Size: item.envelope.size,
      ...(subject !== undefined ? { Subject: subject } : {}),
      DateReceived: iso(item.envelope.receivedAt),
      Queue: queue,
      ...(lastError !== undefined ? { LastError: lastError } : {}),
      RetryCount: item.attempt,
      ...(item.notBefore > now ? { NextRetryTime: iso(item.notBefore) } : {}),
    };
  };
  const rows = [
    ...[...inputs.submit, ...inputs.deliver].map((i) => row(i, queueIdentity(i.subject), messageStatus(i, holds, now))),
    ...inputs.unreachable.map((i) => row(i, identity(QUEUE_NAMES.unreachable), 'Ready')),
    // Exchange: messages in the poison queue are always suspended.
    ...inputs.poison.map((i) => row(i, identity(QUEUE_NAMES.poison), 'Suspended')),
    // Shadow: each leased work item, being delivered right now (its envelope from its delivery queue when read).
    ...(inputs.leases ?? []).map((l) => {
      const pending = inputs.deliver.find((i) => i.stream === l.stream && i.seq === l.seq);
      const r = states.get(l.messageId)?.received;
      const envelope = {
        id: l.messageId,
        messageId: r?.messageId ?? '',
        sender: r?.sender ?? '',
        recipients: [],
        size: r?.size ?? 0,
        receivedAt: r?.at ?? l.since ?? 0,
      };
      const item: PendingItem = pending ?? { stream: l.stream, seq: l.seq, subject: l.subject ?? '', envelope, attempt: 0, notBefore: 0 };
      return { ...row(item, identity(QUEUE_NAMES.shadow), 'Active'), LeaseOwner: l.owner, ...(l.since !== undefined ? { LeasedSince: iso(l.since) } : {}) };
    }),
  ];
  const out = rows.filter(
    (r) =>
      (!wantQueue || r.Queue === wantQueue.Identity) &&
      (filter.sender === undefined || wildcard(filter.sender).test(r.FromAddress)) &&
      (filter.status === undefined || r.Status === filter.status) &&
      (filter.id === undefined || r.MessageId === messageIdOf(filter.id)),
  );
  return filter.resultSize !== undefined ? out.slice(0, filter.resultSize) : out;
}

/** One queue cmdlet, bound and checked (by transitctl's verbs or libs/ems), for the caller to run against the cluster. */
export type QueueRequest =
  | { action: 'get-queue'; filter: QueueFilter }
  | { action: 'get-message'; filter: MessageFilter }
  | { action: 'retry-queue'; identity: string; resubmit: boolean }
  | { action: 'suspend-queue' | 'resume-queue'; identity: string }
  | { action: 'suspend-message' | 'resume-message'; id: string }
  | { action: 'remove-message'; id: string; withNdr: boolean }
  | { action: 'export-message'; id: string; path: string };
