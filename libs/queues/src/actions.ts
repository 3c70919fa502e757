/**
 * The queue cmdlets as functions, for transitctl and the admin API: reading (listQueues,
 * listMessages) and acting (retry, suspend, resume, remove, export). Holds are written to KV
 * `transit-suspended`, which every worker watches (libs/bus/src/holds.ts); each action on a
 * message is also recorded in its event log with source ADMIN, so tracking shows it.
 *
 * Retry-Queue re-publishes each waiting item of the queue with notBefore 0 and then deletes
 * the waiting copy by sequence: the item is handed out at once, instead of when the worker's
 * delay (up to a minute) for the old copy runs out. A crash between the two leaves both
 * copies; the outbound proxy's leases and shadow state deliver each recipient once anyway.
 */
import { hostname, userInfo } from 'node:os';
import {
  BodyStore,
  STREAMS,
  SUBJECTS,
  holdKey,
  loadMessage,
  openHolds,
  publishDurable,
  recordEvent,
  type Bus,
  type Hold,
  type MessageState,
  type Reception,
} from '@transit/bus';
import type { OrganizationConfig } from '@transit/config';
import { decodeDeliveryItem, decodeEnvelope, encodeDeliveryItem, encodeEnvelope, type Envelope } from '@transit/envelope';
import { receptionOf, submitDsn } from '@transit/ingest';
import {
  findQueue,
  matchesQueue,
  messageIdOf,
  projectMessages,
  projectQueues,
  type LeasedItem,
  type MessageFilter,
  type MessageRow,
  type PendingItem,
  type QueueFilter,
  type QueueRow,
} from './project.ts';
import { readPending, readQueueInputs, type ReadOptions } from './read.ts';

export type QueueDeps = {
  bus: Bus;
  /** Written into events as the node that acted. */
  node: string;
  /** Who acted, recorded with each event (default: the OS user and host). */
  actor?: string;
  /** The live configuration: needed by removeMessage with an NDR (the postmaster address, DSN limits). */
  config?: OrganizationConfig;
  log?: { warn(obj: object, msg: string): void };
  now?: () => number;
  /** The work items leased in Redis (libs/leases listLeases): given (and not undefined, Redis unread), Get-Queue and Get-Message show the Shadow queue. */
  leases?: () => Promise<readonly LeasedItem[] | undefined>;
};

export class QueueError extends Error {
  readonly code: 'NOT_FOUND' | 'NOT_SUPPORTED' | 'NO_CONFIG';
  constructor(code: QueueError['code'], message: string) {
    super(message);
    this.name = 'QueueError';
    this.code = code;
  }
}

/** The enhanced status and text of a message removed with an NDR: Exchange's QUEUE.Admin text, as a permanent failure. */
export const REMOVED_STATUS = '5.3.2';
export const REMOVED_DIAGNOSTIC = '550 5.3.2 QUEUE.Admin; message deleted by administrative action';

const actorOf = (deps: QueueDeps) => deps.actor ?? `${userInfo().username}@${hostname()}`;
const nowOf = (deps: QueueDeps) => (deps.now ? deps.now() : Date.now());

/** Get-Queue, with IncomingRate/OutgoingRate (unless `opts.rates` is false) and the Shadow queue when `deps.leases` is given. */
export async function listQueues(deps: QueueDeps, filter: QueueFilter = {}, opts: ReadOptions = {}): Promise<QueueRow[]> {
  const [inputs, leases] = await Promise.all([readQueueInputs(deps.bus, { now: nowOf(deps), rates: true, ...opts }), deps.leases?.()]);
  return projectQueues({ ...inputs, ...(leases ? { leases } : {}) }).filter((r) => matchesQueue(filter, r));
}

export async function listMessages(deps: QueueDeps, filter: MessageFilter = {}, opts: ReadOptions = {}): Promise<MessageRow[]> {
  const [inputs, leases] = await Promise.all([readQueueInputs(deps.bus, { now: nowOf(deps), loadStates: true, ...opts }), deps.leases?.()]);
  return projectMessages({ ...inputs, ...(leases ? { leases } : {}) }, filter);
}

/** The work-queue subject of a queue Identity, or a clear error for the queues that are not work queues. */
async function workQueueSubject(deps: QueueDeps, identity: string): Promise<string> {
  // Resolved against the queues that exist, so that a mistyped identity is an error rather than a hold on nothing.
  const row = findQueue(await listQueues(deps, {}, { rates: false }), identity);
  if (!row) throw new QueueError('NOT_FOUND', `there is no queue "${identity}" (see transitctl queue get)`);
  if (!row.Subject) throw new QueueError('NOT_SUPPORTED', `${row.Identity} is not a work queue: it cannot be retried, suspended or resumed`);
  return row.Subject;
}

export type RetryResult = { identity: string; retried: number };

/** Retry-Queue: the queue's deferred items go now. */
export async function retryQueue(deps: QueueDeps, identity: string, opts: { resubmit?: boolean } = {}): Promise<RetryResult> {
  const subject = await workQueueSubject(deps, identity);
  if (!subject.startsWith('mail.deliver.')) throw new QueueError('NOT_SUPPORTED', 'the Submission queue has no retries to bring forward');
  const now = nowOf(deps);
  let retried = 0;
  for (const item of await readPending(deps.bus, STREAMS.deliver, subject)) {
    // An item due already may be in a worker's hands right now: leave it alone.
    if (item.notBefore <= now) continue;
    const stored = await deps.bus.jsm.streams.getMessage(STREAMS.deliver, { seq: item.seq }).catch(() => null);
    if (!stored || stored.subject !== subject) continue; // settled meanwhile
    const waiting = decodeDeliveryItem(stored.data);
    if (opts.resubmit) {
      // -Resubmit: back through the categorizer, so a changed route (send connector, smart host)
      // applies. The hub names delivery items by its submit item's sequence, so this new submit
      // item is routed afresh instead of being taken for the first routing's duplicate.
      await publishDurable(deps.bus, SUBJECTS.submit, encodeEnvelope(waiting.envelope), {
        msgID: `${waiting.envelope.id}:resubmit-${item.seq}`,
        expectStream: STREAMS.submit,
      });
      await recordEvent(
        deps.bus,
        waiting.envelope.id,
        { type: 'Resubmitted', source: 'ADMIN', recipients: waiting.envelope.recipients.map((r) => r.address) },
        deps.node,
      );
    } else {
      const copy = { ...waiting, notBefore: 0 };
      await publishDurable(deps.bus, subject, encodeDeliveryItem(copy), {
        msgID: `${copy.envelope.id}:${subject}:retry-${item.seq}`,
        expectStream: STREAMS.deliver,
      });
    }
    await deps.bus.jsm.streams.deleteMessage(STREAMS.deliver, item.seq, false).catch(() => false);
    retried++;
  }
  return { identity: identityOf(subject), retried };
}

const identityOf = (subject: string) => `Transit\\${subject === 'mail.submit' ? 'Submission' : subject.replace(/^mail\.deliver\./, '')}`;

async function putHold(bus: Bus, key: string, hold: Hold): Promise<void> {
  await (await openHolds(bus)).put(key, JSON.stringify(hold));
}

async function dropHold(bus: Bus, key: string): Promise<boolean> {
  const kv = await openHolds(bus);
  const e = await kv.get(key);
  if (!e || e.operation !== 'PUT') return false;
  await kv.delete(key);
  return true;
}

export type HoldResult = { identity: string; changed: boolean };

/** Suspend-Queue: every worker leaves the queue's items waiting until it is resumed. */
export async function suspendQueue(deps: QueueDeps, identity: string): Promise<HoldResult> {
  const subject = await workQueueSubject(deps, identity);
  const kv = await openHolds(deps.bus);
  const had = await kv.get(holdKey.queue(subject));
  await putHold(deps.bus, holdKey.queue(subject), { state: 'Suspended', at: nowOf(deps), actor: actorOf(deps) });
  return { identity: identityOf(subject), changed: !(had && had.operation === 'PUT') };
}

/** Resume-Queue: its items go at their next attempt (within HOLD_RECHECK_MS for those that waited only for the hold). */
export async function resumeQueue(deps: QueueDeps, identity: string): Promise<HoldResult> {
  const subject = await workQueueSubject(deps, identity);
  return { identity: identityOf(subject), changed: await dropHold(deps.bus, holdKey.queue(subject)) };
}

/** The message's items waiting in the work queues (submission and delivery). */
async function pendingOf(bus: Bus, id: string): Promise<PendingItem[]> {
  const [submit, deliver] = await Promise.all([readPending(bus, STREAMS.submit, 'mail.submit'), readPending(bus, STREAMS.deliver, 'mail.deliver.>')]);
  return [...submit, ...deliver].filter((i) => i.envelope.id === id);
}

export type MessageActionResult = { id: string; changed: boolean };

/** Suspend-Message: its items wait in their queues, on every node, until resumed. */
export async function suspendMessage(deps: QueueDeps, written: string): Promise<MessageActionResult> {
  const id = messageIdOf(written);
  const items = await pendingOf(deps.bus, id);
  if (items.length === 0)
    throw new QueueError('NOT_FOUND', `message ${id} is in no queue (delivered, bounced, removed or unknown; see transitctl message get)`);
  await putHold(deps.bus, holdKey.message(id), { state: 'Suspended', at: nowOf(deps), actor: actorOf(deps) });
  const recorded = await recordEvent(deps.bus, id, { type: 'Suspended', source: 'ADMIN', actor: actorOf(deps) }, deps.node);
  return { id, changed: recorded !== undefined };
}

/** Resume-Message: its items go at their next attempt. */
export async function resumeMessage(deps: QueueDeps, written: string): Promise<MessageActionResult> {
  const id = messageIdOf(written);
  const kv = await openHolds(deps.bus);
  const e = await kv.get(holdKey.message(id));
  if (e?.operation === 'PUT' && e.json<Hold>().state === 'Removed') throw new QueueError('NOT_SUPPORTED', `message ${id} was removed; it cannot be resumed`);
  const dropped = await dropHold(deps.bus, holdKey.message(id));
  const recorded = await recordEvent(deps.bus, id, { type: 'Resumed', source: 'ADMIN', actor: actorOf(deps) }, deps.node);
  if (!dropped && !recorded) throw new QueueError('NOT_FOUND', `message ${id} is not suspended`);
  return { id, changed: true };
}

export type RemoveResult = { id: string; recipients: string[]; items: number; dsnId?: string };

/**
 * Remove-Message: the message's items are dropped from their queues (deleted now; a copy a
 * worker holds at this moment is dropped at its next look), its undelivered recipients become
 * final (a Removed event), and with `withNdr` (Exchange's default) the sender gets one
 * failure DSN. The DSN's id is derived from the message, so a repeated removal sends none.
 */
export async function removeMessage(deps: QueueDeps, written: string, opts: { withNdr: boolean }): Promise<RemoveResult> {
  const id = messageIdOf(written);
  if (opts.withNdr && !deps.config) throw new QueueError('NO_CONFIG', 'removing with an NDR needs the organisation configuration');
  const items = await pendingOf(deps.bus, id);
  if (items.length === 0)
    throw new QueueError('NOT_FOUND', `message ${id} is in no queue (delivered, bounced, removed or unknown; see transitctl message get)`);
  // The hold first: from here on no worker starts the message again, whatever follows.
  await putHold(deps.bus, holdKey.message(id), { state: 'Removed', at: nowOf(deps), actor: actorOf(deps) });
  // The full envelopes (bodies, NOTIFY, DSN options) of the items, before they are deleted.
  const envelopes: Envelope[] = [];
  let reception: Reception | undefined;
  for (const item of items) {
    const stored = await deps.bus.jsm.streams.getMessage(item.stream, { seq: item.seq }).catch(() => null);
    if (!stored) continue;
    const envelope = item.stream === STREAMS.submit ? decodeEnvelope(stored.data) : decodeDeliveryItem(stored.data).envelope;
    if (item.stream === STREAMS.submit) reception ??= receptionOf(envelope, { seq: stored.seq, storedAt: stored.time.getTime() });
    envelopes.push(envelope);
    await deps.bus.jsm.streams.deleteMessage(item.stream, item.seq, false).catch(() => false);
  }
  const known: { state?: MessageState } = {};
  // Removed before a hub took it: the hub records the Reception with Submitted, so nothing has yet; the DROP row gets its RECEIVE.
  if (reception) await recordEvent(deps.bus, id, { type: 'Received', ...reception }, deps.node, known);
  const state = known.state ?? (await loadMessage(deps.bus, id));
  const undelivered = [...new Set(envelopes.flatMap((e) => e.recipients.map((r) => r.address)))].filter((a) => {
    const s = state.recipients[a.toLowerCase()]?.status;
    return s !== 'Delivered' && s !== 'Failed';
  });
  const recorded = await recordEvent(
    deps.bus,
    id,
    { type: 'Removed', source: 'ADMIN', recipients: undelivered, withNdr: opts.withNdr, reason: REMOVED_DIAGNOSTIC, actor: actorOf(deps) },
    deps.node,
    known,
  );
  const removed = recorded?.type === 'Removed' ? recorded.recipients : [];
  let dsnId: string | undefined;
  const first = envelopes[0];
  if (opts.withNdr && deps.config && first && removed.length) {
    const envelope = {
      ...first,
      recipients: envelopes.flatMap((e) => e.recipients).filter((r, i, all) => all.findIndex((x) => x.address === r.address) === i),
    };
    const outcome = await submitDsn(
      { bus: deps.bus, bodies: new BodyStore(deps.bus), nodeName: deps.node, log: deps.log ?? { warn: () => undefined } },
      {
        envelope,
        kind: 'failure',
        tag: 'admin-remove',
        config: deps.config,
        fqdn: deps.node,
        recipients: removed.map((address) => ({ address, status: REMOVED_STATUS, diagnostic: REMOVED_DIAGNOSTIC })),
      },
    );
    dsnId = outcome.dsnId;
  }
  return { id, recipients: removed, items: envelopes.length, ...(dsnId !== undefined ? { dsnId } : {}) };
}

/**
 * Export-Message: the message as an .eml file for the replay directory: `X-Sender` and one
 * `X-Receiver` per recipient waiting in its queues, then the stored message (headers as
 * received, with the Received line Transit added, and the body from the body store).
 * Exchange exports only suspended messages, so that the copy is not delivered meanwhile;
 * so does this.
 */
export async function exportMessage(deps: QueueDeps, written: string): Promise<Buffer> {
  const id = messageIdOf(written);
  const items = await pendingOf(deps.bus, id);
  const kv = await openHolds(deps.bus);
  const hold = await kv.get(holdKey.message(id));
  if (items.length === 0) throw new QueueError('NOT_FOUND', `message ${id} is in no queue`);
  if (!(hold?.operation === 'PUT' && hold.json<Hold>().state === 'Suspended'))
    throw new QueueError('NOT_SUPPORTED', `message ${id} is not suspended: suspend it first (transitctl message suspend ${id})`);
  const stored = await deps.bus.jsm.streams.getMessage(items[0]!.stream, { seq: items[0]!.seq });
  if (!stored) throw new QueueError('NOT_FOUND', `message ${id} left its queue meanwhile`);
  const envelope = items[0]!.stream === STREAMS.submit ? decodeEnvelope(stored.data) : decodeDeliveryItem(stored.data).envelope;
  const recipients = [...new Set(items.flatMap((i) => i.envelope.recipients.map((r) => r.address)))];
  const envelopeHeaders = `X-Sender: <${envelope.sender}>\r\n` + recipients.map((r) => `X-Receiver: <${r}>\r\n`).join('');
  return Buffer.concat([Buffer.from(envelopeHeaders, 'latin1'), await new BodyStore(deps.bus).read(envelope.body)]);
}
