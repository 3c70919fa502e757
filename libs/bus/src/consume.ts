/**
 * A worker loop over a durable pull consumer with bounded concurrency. Workers are
 * stateless: the outcome of a handler decides the message's fate — ack (done) or nak with a
 * delay (try again later). A payload that cannot be decoded is terminated: it never will be.
 *
 * The loop also keeps itself honest about progress, because the consumer it reads can go
 * wrong under it (nats-server 2.9 and nats.js 3, seen in the chaos run):
 * - **Lost pulls.** Pull requests live on the consumer's leader. When the leader moves (a NATS
 *   node dies, an election), the waiting pulls are gone and nats.js only notices after two
 *   missed idle heartbeats; with its defaults that is 30 to 45 s without a message. The loop
 *   makes short pulls (TRANSIT_PULL_EXPIRES_MS, 10 s) and asks for heartbeats every quarter of
 *   them (2.5 s), and a watchdog that sees work waiting on the consumer (num_pending) while
 *   this worker has free slots and gets nothing for TRANSIT_PULL_RESTART_AFTER_MS (10 s)
 *   restarts the pull loop.
 * - **Stranded items.** A stream replica that resets its state ("Error applying entries ...
 *   stream store EOF", "Resetting stream cluster state") can leave work items in the work
 *   queue below the consumer's ack floor: the consumer counts them as done and never hands
 *   them out, while they stay in the stream (nats-server#4736, #7308). Every few seconds the
 *   worker looks for items on its filter at or below the ack floor; one still there after a
 *   grace period is published again (same data and headers, `Transit-Requeued-From` naming
 *   the original), and the original is acknowledged through the consumer (`ackBySequence`),
 *   which removes it from the work queue on every replica. It is not deleted by sequence:
 *   that goes through the stream's Raft log, and nats-server 2.9 resets a replica that
 *   applies it without having the message, which in the chaos runs stranded and lost other
 *   work items (nats-server#7308).
 * - **A stream that went back in time.** When every replica of a stream resets at once (two
 *   nodes killed within seconds of each other), nats-server 2.9 can bring the stream back at
 *   a last sequence below what its consumers have already handed out, while the consumers
 *   keep their state. New items then get sequences the consumer believes it delivered: it
 *   never hands them out, reports nothing pending, and the ack-floor sweep above does not
 *   see them either (they lie between the ack floor and the delivered position). In a
 *   3,000-message chaos run (seed 4242) this stopped all delivery for the rest of the run.
 *   The worker notices it in two ways: the consumer's delivered position is past the
 *   stream's last sequence, or the stream's last sequence fell below the highest this
 *   worker saw for the same consumer. Held for two checks and seen again on fresh state, it
 *   deletes and re-adds the consumer (same configuration, delivering from the start): a work
 *   queue holds only unacknowledged items, so the new consumer hands out exactly the work
 *   left. Items in flight at that moment come again, which the handlers' duplicate checks
 *   already absorb (a requeued or redelivered item is the same case). One replica in the
 *   cluster does it: it first creates a key named after the consumer's creation time in
 *   the in-flight bucket, which only one creator wins.
 * - **Items the consumer no longer sees.** The same resets can leave a consumer that reports
 *   nothing pending and nothing in flight while the stream holds items on its filter above
 *   its ack floor (seed 99, 3,000 messages: 35 items, already delivered once, whose acks were
 *   lost with the consumer's state; a fetch returned none of them, a new consumer all). A
 *   work queue keeps only unacknowledged items, so an idle consumer with such an item is
 *   broken: seen with the same first item for the stranded-item grace (strandedGraceMs, and
 *   at least two checks), the consumer is re-created the same way, and the handlers'
 *   duplicate checks absorb what had already been done.
 * - **Stalls.** `health()` says whether the worker makes progress on the work waiting for it
 *   (see WorkerHealth); libs/service puts it in /readyz and the metrics. An item that is
 *   put back because it is not due yet (`notYet`, an administrator's hold) is waiting, not
 *   stalled.
 */
import { DeliverPolicy, type ConsumerInfo, type JsMsg, type StoredMsg, type StreamInfo } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { headers as natsHeaders } from '@nats-io/transport-node';
import { environmentDefault } from '@transit/config';
import type { Bus } from './connection.ts';
import type { HoldWatcher } from './holds.ts';
import type { PoisonTracker } from './poison.ts';
import { INFLIGHT_BUCKET } from './topology.ts';
import { SpanKind, extractTrace, inSpan } from './trace.ts';

/** `scheduled`: the item is not due yet (a retry time in the future); putting it back is not a failure. */
export type Outcome = { kind: 'ack' } | { kind: 'retry'; delayMs: number; scheduled?: boolean };
export const ack: Outcome = { kind: 'ack' };
/** Try again after `delayMs`: something failed (the bus, Redis, a lease held elsewhere). */
export const retry = (delayMs: number): Outcome => ({ kind: 'retry', delayMs });
/** Not due for `delayMs` yet (its next attempt is scheduled): put back, and the worker is waiting rather than failing. */
export const notYet = (delayMs: number): Outcome => ({ kind: 'retry', delayMs, scheduled: true });

/** The header a requeued work item carries: the stream and sequence of the stranded original (`MAIL_DELIVER:1234`). */
export const REQUEUED_FROM_HEADER = 'Transit-Requeued-From';

/**
 * Whether a worker makes progress, from its own bookkeeping and its consumer's state (read
 * at most every `checkEveryMs`). `stalled` when, for `stallAfterMs`:
 * - `starved`: the consumer has undelivered work (num_pending > 0) and this worker has a free
 *   slot but receives nothing (its pulls are lost and restarting them did not help);
 * - `busy`: every slot is taken, work waits, and no item is finished;
 * - `failing`: items arrive but every attempt ends in a retry (nothing acknowledged);
 * - `frozen`: the consumer holds unacknowledged items this worker does not account for (in
 *   its slots or put back as not due) and nothing was delivered, redelivered or acknowledged
 *   by any worker;
 * - `stranded`: items below the consumer's ack floor that could not be requeued.
 * Deferred items are put back for at most half of `stallAfterMs`, so one another replica
 * holds comes back (a redelivery) well within it and never reads as `frozen`.
 */
export type WorkerHealth = {
  stream: string;
  consumer: string;
  stalled: boolean;
  reason?: 'starved' | 'busy' | 'failing' | 'frozen' | 'stranded';
  /** How long the stall condition has held (ms), or 0. */
  stalledForMs: number;
  /** From the last consumer info: undelivered, and delivered but unacknowledged (cluster-wide). */
  pending?: number;
  ackPending?: number;
  inFlight: number;
  /** Items this worker put back as not due yet (or held), whose time has not come. */
  scheduled: number;
  /** Items seen below the consumer's ack floor in the last sweep (stranded). */
  stranded: number;
  /** Stranded items published again since start. */
  requeued: number;
  /** Times the watchdog restarted the pull loop since start. */
  restarts: number;
  /** Times this worker re-created its consumer after the stream went back in time. */
  recreated: number;
  sinceLastAckMs: number;
  sinceLastReceivedMs: number;
  /** Age of the consumer info this is based on (undefined: never read). */
  checkedAgoMs?: number;
};

type Reason = NonNullable<WorkerHealth['reason']>;

export type Worker = { stop(): Promise<void>; inFlight(): number; health(now?: number): WorkerHealth };

export type WorkerOptions<T> = {
  stream: string;
  consumer: string;
  concurrency: number;
  /** Turns the payload into a work item; a payload it refuses can never succeed, so it is terminated. */
  decode: (data: Uint8Array) => T;
  handle: (item: T, msg: JsMsg) => Promise<Outcome>;
  onError: (err: unknown, msg: JsMsg | undefined) => void;
  /** How often a handler still at work extends its claim; default a third of the consumer's ack wait. */
  keepAliveMs?: number;
  /** Poison detection: an item whose handling killed the worker PoisonThreshold times is parked. */
  poison?: { tracker: PoisonTracker; threshold: number; onParked: (item: T, msg: JsMsg, crashes: number) => Promise<void> };
  /**
   * Milliseconds until the item is due (its next attempt is scheduled; 0 or less: due now). An item not due yet is put back
   * before the poison marker is written: waiting is not an attempt, and a deferred queue then costs no marker writes per pass.
   */
  dueIn?: (item: T) => number;
  /** Administrator holds: an item of a suspended queue or message waits `recheckMs`, a removed message's item is dropped. */
  holds?: { watcher: HoldWatcher; messageIdOf: (item: T) => string; recheckMs: number; onDropped: (item: T, msg: JsMsg) => void };
  /** No progress for this long is a stall (default: configureWorkers, TRANSIT_STALL_SECONDS, 120 s). */
  stallAfterMs?: number;
  /** How often the consumer's state is read for the watchdog, the stall check and the stranded sweep (default: configureWorkers, TRANSIT_WORKER_CHECK_MS, 5 s). */
  checkEveryMs?: number;
  /** Starved this long (work waiting, free slots, nothing received): restart the pull loop (default: configureWorkers, TRANSIT_PULL_RESTART_AFTER_MS, 10 s). */
  restartAfterMs?: number;
  /**
   * A stranded item is requeued once seen this long (default: configureWorkers, TRANSIT_STRANDED_GRACE_MS, 10 s): an acknowledged
   * item normally leaves the stream within milliseconds.
   */
  strandedGraceMs?: number;
  /** Pull request expiry (default: configureWorkers, TRANSIT_PULL_EXPIRES_MS, 10 s); idle heartbeats come at a quarter of it. */
  pullExpiresMs?: number;
};

/**
 * Acknowledges the work item at stream sequence `seq` through the durable consumer, as its
 * worker would: a work queue then removes it on every replica (each applies the consumer's
 * replicated ack locally), and a pending item leaves the consumer's pending set. For items
 * no worker holds a message for: an orphan taken over from a dead worker, a stranded
 * original. Unlike a delete by sequence it never goes through the stream's Raft log.
 */
export async function ackBySequence(bus: Bus, stream: string, consumer: string, seq: number): Promise<void> {
  // The v1 ack subject: delivery count, stream sequence, delivery sequence (0: not known), timestamp, pending.
  bus.nc.publish(`$JS.ACK.${stream}.${consumer}.1.${seq}.0.${Date.now()}000000.0`);
  await bus.nc.flush();
}

/** The timings a worker takes from configureWorkers unless its options say otherwise. */
export type WorkerTimings = Required<Pick<WorkerOptions<unknown>, 'stallAfterMs' | 'checkEveryMs' | 'restartAfterMs' | 'strandedGraceMs' | 'pullExpiresMs'>>;

/**
 * Process-wide defaults, set once by the service shell (libs/service) from the process's
 * settings; until then the register's defaults (libs/config settings.ts).
 */
const defaults: WorkerTimings & { onNotice: (what: string, detail: Record<string, unknown>) => void } = {
  stallAfterMs: environmentDefault('stallSeconds') * 1000,
  checkEveryMs: environmentDefault('workerCheckMs'),
  restartAfterMs: environmentDefault('pullRestartAfterMs'),
  strandedGraceMs: environmentDefault('strandedGraceMs'),
  pullExpiresMs: environmentDefault('pullExpiresMs'),
  onNotice: () => undefined,
};
export function configureWorkers(opts: Partial<WorkerTimings> & { onNotice?: (what: string, detail: Record<string, unknown>) => void }): void {
  for (const key of ['stallAfterMs', 'checkEveryMs', 'restartAfterMs', 'strandedGraceMs', 'pullExpiresMs'] as const) {
    const value = opts[key];
    if (value !== undefined) defaults[key] = value;
  }
  if (opts.onNotice) defaults.onNotice = opts.onNotice;
}

const running = new Set<Worker>();
/** The workers of this process (for /readyz and the metrics). */
export function runningWorkers(): Worker[] {
  return [...running];
}

/** What a stored work item is, beyond its sequence: its first publish's message id, else its time and size. */
function identity(m: StoredMsg): string {
  return m.header?.get('Nats-Msg-Id') || `${m.timestamp}:${m.data.length}`;
}

/** The consumer's filter subject(s) as one subject for STREAM.MSG.GET next_by_subj. */
function filterOf(info: ConsumerInfo): string | undefined {
  const c = info.config as { filter_subject?: string; filter_subjects?: string[] };
  return c.filter_subject || (c.filter_subjects?.length === 1 ? c.filter_subjects[0] : undefined);
}

export function startWorker<T>(bus: Bus, opts: WorkerOptions<T>): Worker {
  const stallAfterMs = opts.stallAfterMs ?? defaults.stallAfterMs;
  const checkEveryMs = opts.checkEveryMs ?? defaults.checkEveryMs;
  const restartAfterMs = opts.restartAfterMs ?? defaults.restartAfterMs;
  const strandedGraceMs = opts.strandedGraceMs ?? defaults.strandedGraceMs;
  const pullExpiresMs = opts.pullExpiresMs ?? defaults.pullExpiresMs;
  /** A put-back item comes back within this, so another replica's deferred item never looks frozen. */
  const maxScheduleMs = Math.max(1000, Math.floor(stallAfterMs / 2));
  const notice = (what: string, detail: Record<string, unknown>) => defaults.onNotice(what, { stream: opts.stream, consumer: opts.consumer, ...detail });

  let stopping = false;
  let active = 0;
  const idle: Array<() => void> = [];
  const done = new Set<Promise<void>>();
  let messages: { stop(): void } | undefined;
  /** A third of the consumer's ack wait, read when consuming starts. */
  let keepAliveMs = 5000;

  // Progress bookkeeping.
  const startedAt = Date.now();
  let lastAckAt = startedAt;
  let lastReceivedAt = startedAt;
  let lastFailureAt = 0;
  /** Stream sequence → when it was put back as not due, until when. */
  const scheduled = new Map<number, number>();
  let info: ConsumerInfo | undefined;
  let checkedAt: number | undefined;
  /** When the consumer's delivered or acknowledged position last changed (any worker). */
  let movedAt = startedAt;
  /** The watchdog's clock: starved since (reset when it restarts the pull loop). */
  let starvedSince: number | undefined;
  /** Since when each stall condition has held without progress (set by `check`). */
  const since = new Map<Reason, number>();
  let restarts = 0;
  let requeued = 0;
  let recreated = 0;
  /** The consumer's creation time when last read, and the highest stream sequence seen since (for that consumer). */
  let consumerCreated: string | undefined;
  let highWater = 0;
  /** Since when the stream has been seen behind the consumer. */
  let behindSince: number | undefined;
  /** Stranded candidates: stream sequence → first seen. */
  const stranded = new Map<number, number>();
  /** Published again (sequence → what was copied); the original acknowledged, and not yet seen gone. */
  const awaitingDelete = new Map<number, string>();

  const putBack = (msg: JsMsg, delayMs: number, isScheduled: boolean) => {
    const delay = isScheduled ? Math.min(delayMs, maxScheduleMs) : delayMs;
    if (isScheduled) scheduled.set(msg.seq, Date.now() + delay);
    else lastFailureAt = Date.now();
    msg.nak(delay);
  };
  const acked = () => {
    lastAckAt = Date.now();
  };

  const settle = async (msg: JsMsg): Promise<void> => {
    lastReceivedAt = Date.now();
    scheduled.delete(msg.seq);
    let item: T;
    try {
      item = opts.decode(msg.data);
    } catch (err) {
      opts.onError(err, msg);
      // No reason text: nats-server 2.9 ignores `+TERM <reason>` (reasons arrived in 2.10),
      // which would leave the item to be redelivered forever. The reason is in the log above.
      msg.term();
      acked();
      return;
    }
    if (opts.holds) {
      const { watcher, messageIdOf, recheckMs, onDropped } = opts.holds;
      // Checked before the poison marker: a held item is not an attempt, and cannot crash anything.
      const hold = await watcher.check(msg.subject, messageIdOf(item)).catch((err: unknown) => {
        // Without the holds the item is worked on, as without poison markers: a hold is an administrator's tool, not a gate of correctness.
        opts.onError(err, msg);
        return undefined;
      });
      if (hold === 'removed') {
        onDropped(item, msg);
        await msg.ackAck().then(acked, (err: unknown) => opts.onError(err, msg));
        return;
      }
      if (hold === 'suspended') {
        putBack(msg, recheckMs, true);
        return;
      }
    }
    const wait = opts.dueIn?.(item) ?? 0;
    if (wait > 0) {
      putBack(msg, wait, true);
      return;
    }
    const poison = opts.poison;
    if (poison) {
      try {
        // Not capped by the delivery count: with the cap, test/poison.test.ts failed 4 of 5 times under load (a worker
        // crashed a third time, or the next item waited), and passed 3 of 3 without it. A marker written twice during a
        // NATS failover can still read as one death too many (docs/operations.md).
        const crashes = await poison.tracker.begin(msg);
        if (crashes >= poison.threshold) {
          await poison.tracker.park(msg, crashes, `its processing ended ${crashes} workers`);
          await poison.onParked(item, msg, crashes);
          acked();
          return;
        }
      } catch (err) {
        // Without the marker store the item is still worked on: poison detection is a safeguard, not a gate.
        opts.onError(err, msg);
      }
    }
    let outcome: Outcome;
    // A live worker keeps its claim (+WPI) well inside the ack wait; a dead one stops, so
    // its item goes to a survivor after one ack wait (15 s by default), however long the work.
    const keepAlive = setInterval(() => msg.working(), opts.keepAliveMs ?? keepAliveMs);
    try {
      // The handler runs in a consumer span, child of the span that published the item.
      const attributes = {
        'messaging.system': 'nats',
        'messaging.operation.type': 'process',
        'messaging.destination.name': msg.subject,
        'messaging.consumer.group.name': opts.consumer,
        'transit.delivery_count': msg.info.deliveryCount,
      };
      outcome = await inSpan(`process ${opts.stream}`, { kind: SpanKind.CONSUMER, attributes, parent: extractTrace(msg.headers) }, async (span) => {
        const o = await opts.handle(item, msg);
        span.setAttribute('transit.outcome', o.kind);
        return o;
      });
    } catch (err) {
      opts.onError(err, msg);
      // Handler errors are mostly the bus or Redis being away for seconds: back off, but never
      // so far that an item which failed a few times during an outage waits minutes after it.
      outcome = retry(Math.min(10_000, 500 * 2 ** Math.min(msg.info.deliveryCount, 6)));
    } finally {
      clearInterval(keepAlive);
    }
    // Out of the journal: an acknowledged item with the next journal write (it cannot come back before the ack wait), one
    // put back before the put-back (it may come back at once, to another process, which must not read it as a death).
    if (poison) {
      const ending = poison.tracker.end(msg, outcome.kind !== 'ack').catch((err: unknown) => opts.onError(err, msg));
      if (outcome.kind !== 'ack') await ending;
    }
    if (outcome.kind === 'ack') await msg.ackAck().then(acked, (err: unknown) => opts.onError(err, msg));
    else putBack(msg, outcome.delayMs, outcome.scheduled === true);
  };

  const loop = async (): Promise<void> => {
    while (!stopping) {
      try {
        const consumer = await bus.js.consumers.get(opts.stream, opts.consumer);
        keepAliveMs = Math.max(250, Math.floor(((await consumer.info(true)).config.ack_wait ?? 15_000_000_000) / 1_000_000 / 3));
        // Short pulls with frequent idle heartbeats: a pull lost with its consumer leader is noticed in seconds, not half a minute.
        const iter = await consumer.consume({
          max_messages: opts.concurrency * 2,
          expires: pullExpiresMs,
          idle_heartbeat: Math.max(500, Math.floor(pullExpiresMs / 4)),
        });
        messages = iter;
        void (async () => {
          for await (const s of iter.status()) {
            if (s.type === 'heartbeats_missed' || s.type === 'consumer_deleted' || s.type === 'consumer_not_found' || s.type === 'stream_not_found')
              notice(`pull consumer: ${s.type}`, { ...s });
          }
        })().catch(() => undefined);
        for await (const msg of iter) {
          while (active >= opts.concurrency) await new Promise<void>((r) => idle.push(r));
          active++;
          const p = settle(msg).finally(() => {
            active--;
            done.delete(p);
            idle.shift()?.();
          });
          done.add(p);
          if (stopping) break;
        }
      } catch (err) {
        if (!stopping) opts.onError(err, undefined);
      }
      if (!stopping) await new Promise((r) => setTimeout(r, 500));
    }
  };

  /** Restarts the pull loop: the iterator ends, and `loop` starts a new one. */
  const restart = (why: string) => {
    restarts++;
    notice('pull loop restarted', { why, restarts });
    messages?.stop();
  };

  /** Items on this consumer's filter at or below its ack floor: the consumer will never hand them out. */
  const sweepStranded = async (ci: ConsumerInfo, si: StreamInfo, now: number) => {
    const floor = ci.ack_floor.stream_seq;
    const filter = filterOf(ci);
    const seen = new Map<number, StoredMsg>();
    if (filter && si.state.messages > 0 && si.state.first_seq <= floor) {
      let seq = si.state.first_seq;
      for (let i = 0; i < 200 && seq <= floor; i++) {
        // `next_by_subj` (wildcards included) is in the server's STREAM.MSG.GET since 2.9; the client's type lists only seq/last_by_subj.
        const m = await bus.jsm.streams.getMessage(opts.stream, { seq, next_by_subj: filter } as unknown as { seq: number });
        if (!m || m.seq > floor) break;
        seen.set(m.seq, m);
        seq = m.seq + 1;
      }
    }
    for (const seq of stranded.keys()) if (!seen.has(seq)) stranded.delete(seq);
    // A sequence that now holds another item (a replica reset can hand sequences out again) is a new candidate, never acknowledged unseen.
    for (const [seq, copied] of awaitingDelete) {
      const m = seen.get(seq);
      if (!m || identity(m) !== copied) {
        awaitingDelete.delete(seq);
        if (m) stranded.set(seq, now);
      }
    }
    for (const [seq, m] of seen) {
      const first = stranded.get(seq);
      if (first === undefined) {
        stranded.set(seq, now);
        continue;
      }
      if (now - first < strandedGraceMs) continue;
      if (!awaitingDelete.has(seq)) {
        const h = natsHeaders();
        for (const [k, values] of m.header ?? []) {
          if (/^Nats-/i.test(k)) continue; // its message id and expectations belonged to the first publish
          for (const v of values) h.append(k, v);
        }
        h.set(REQUEUED_FROM_HEADER, `${opts.stream}:${seq}`);
        // The same id for every sweeper in the cluster: two replicas requeueing at once store one copy.
        const pa = await bus.js.publish(m.subject, m.data, {
          msgID: `requeued:${opts.stream}:${seq}`,
          headers: h,
          expect: { streamName: opts.stream },
          timeout: 5000,
        });
        awaitingDelete.set(seq, identity(m));
        if (!pa.duplicate) requeued++;
        notice('stranded work item requeued', { seq, subject: m.subject, as: pa.seq, floor, duplicate: pa.duplicate });
      }
      // Out of the work queue through the consumer (see ackBySequence); a later sweep that still sees it acknowledges it again.
      await ackBySequence(bus, opts.stream, opts.consumer, seq);
    }
  };

  /** How far the stream is behind this consumer (0: not behind): see "A stream that went back in time" above. */
  const behindBy = (ci: ConsumerInfo, si: StreamInfo): number =>
    Math.max(0, ci.delivered.stream_seq - si.state.last_seq, ci.created === consumerCreated ? highWater - si.state.last_seq : 0);

  /**
   * The first item on the consumer's filter above its ack floor, while the consumer reports nothing pending and nothing in
   * flight: in a work queue such an item should not exist (see "Items the consumer no longer sees" above).
   */
  const unseenAboveFloor = async (ci: ConsumerInfo, si: StreamInfo): Promise<number | undefined> => {
    const filter = filterOf(ci);
    if (!filter || ci.num_pending > 0 || ci.num_ack_pending > 0 || si.state.messages === 0) return undefined;
    const m = await bus.jsm.streams
      .getMessage(opts.stream, { seq: ci.ack_floor.stream_seq + 1, next_by_subj: filter } as unknown as { seq: number })
      .catch(() => undefined); // none (404), or no answer: nothing to act on this time
    return m?.seq;
  };

  /**
   * Deletes and re-adds the consumer, delivering from the start, if `stillBroken` holds on fresh state; one replica in the
   * cluster wins the key and does it.
   */
  const recreate = async (
    seen: ConsumerInfo,
    why: string,
    detail: Record<string, unknown>,
    stillBroken: (ci: ConsumerInfo, si: StreamInfo) => Promise<boolean>,
  ) => {
    const fresh = await bus.jsm.consumers.info(opts.stream, opts.consumer);
    const si = await bus.jsm.streams.info(opts.stream);
    if (fresh.created !== seen.created || !(await stillBroken(fresh, si))) return;
    const key = `recreate.${opts.stream}.${opts.consumer}.${fresh.created.replace(/[^A-Za-z0-9]/g, '_')}`;
    const kv = await new Kvm(bus.js).open(INFLIGHT_BUCKET);
    try {
      await kv.create(key, new TextEncoder().encode(String(process.pid)));
    } catch {
      return; // another replica is at it, or the bucket is away: the next check looks again
    }
    const { opt_start_seq: _seq, opt_start_time: _time, ...config } = fresh.config;
    await bus.jsm.consumers.delete(opts.stream, opts.consumer);
    await bus.jsm.consumers.add(opts.stream, { ...config, deliver_policy: DeliverPolicy.All });
    recreated++;
    notice(`consumer re-created: ${why}`, { ...detail, lastSeq: si.state.last_seq, delivered: fresh.delivered.stream_seq });
    restart('consumer re-created');
  };
  /** The first unseen item (see unseenAboveFloor) and since when it has been seen. */
  let unseen: { seq: number; since: number } | undefined;

  let checking = false;
  let lastSweep = 0;
  const check = async () => {
    if (checking || stopping) return;
    checking = true;
    try {
      const now = Date.now();
      const ci = await bus.jsm.consumers.info(opts.stream, opts.consumer);
      if (info && (ci.delivered.consumer_seq !== info.delivered.consumer_seq || ci.ack_floor.consumer_seq !== info.ack_floor.consumer_seq)) movedAt = now;
      info = ci;
      checkedAt = now;
      const si = await bus.jsm.streams.info(opts.stream);
      const behind = behindBy(ci, si);
      if (ci.created !== consumerCreated) {
        consumerCreated = ci.created;
        highWater = 0;
      }
      highWater = Math.max(highWater, si.state.last_seq);
      if (behind === 0) behindSince = undefined;
      else if (behindSince === undefined) behindSince = now;
      else if (now - behindSince >= checkEveryMs) {
        behindSince = undefined;
        await recreate(ci, 'the stream went back behind it', { behind, highWater }, (f, s) => Promise.resolve(behindBy(f, s) > 0)).catch((err: Error) =>
          notice('consumer re-creation failed', { err: err.message }),
        );
      }
      const first = behind === 0 ? await unseenAboveFloor(ci, si) : undefined;
      if (first === undefined || first !== unseen?.seq) unseen = first === undefined ? undefined : { seq: first, since: now };
      // Held as long as a stranded item must be (strandedGraceMs), and at least two checks: a consumer catching up after a
      // leader change can look idle for a moment.
      else if (now - unseen.since >= Math.max(checkEveryMs, strandedGraceMs)) {
        unseen = undefined;
        await recreate(
          ci,
          'it no longer hands out items it holds',
          { seq: first, ackFloor: ci.ack_floor.stream_seq },
          async (f, s) => (await unseenAboveFloor(f, s)) === first,
        ).catch((err: Error) => notice('consumer re-creation failed', { err: err.message }));
      }
      for (const [seq, due] of scheduled) if (due + 2 * keepAliveMs * 3 < now) scheduled.delete(seq); // came back to another worker
      // The watchdog: work is waiting on the consumer, this worker could take it, and nothing comes.
      const limit = ci.config.max_ack_pending ?? 0;
      const deliverable = ci.num_pending > 0 && (limit <= 0 || ci.num_ack_pending < limit);
      if (deliverable && active < opts.concurrency) {
        if (starvedSince === undefined || lastReceivedAt >= starvedSince) starvedSince = now;
        else if (now - starvedSince >= restartAfterMs) {
          restart(`${ci.num_pending} item(s) waiting and nothing received for ${Math.round((now - starvedSince) / 1000)} s`);
          starvedSince = now;
        }
      } else starvedSince = undefined;
      // Behind, the ack floor itself is past the stream's end: a copy would be stranded again, so the re-creation goes first.
      if (behind === 0 && now - lastSweep >= Math.max(checkEveryMs, strandedGraceMs / 2)) {
        lastSweep = now;
        // A failed requeue leaves the items stranded: the 'stranded' clock below keeps running.
        await sweepStranded(ci, si, now).catch((err: Error) => notice('stranded sweep failed', { err: err.message }));
      }
      // Each stall condition's clock runs while it holds and restarts at progress (an item received, acknowledged, the consumer moving).
      const ownScheduled = [...scheduled.values()].filter((due) => due > now).length;
      const waiting = ci.num_pending > 0 || ci.num_ack_pending - active - ownScheduled > 0;
      const hold = (reason: Reason, holds: boolean, progressAt: number) => {
        if (!holds) since.delete(reason);
        else since.set(reason, Math.max(since.get(reason) ?? now, progressAt));
      };
      hold('starved', deliverable && active < opts.concurrency, lastReceivedAt);
      hold('busy', active >= opts.concurrency && waiting, lastAckAt);
      hold('frozen', waiting, Math.max(lastAckAt, movedAt));
      hold('failing', lastFailureAt > lastAckAt && now - lastFailureAt < 30_000, lastAckAt);
      hold(
        'stranded',
        [...stranded.keys()].some((seq) => !awaitingDelete.has(seq) && now - stranded.get(seq)! >= strandedGraceMs),
        0,
      );
    } catch (err) {
      // NATS away or electing: the check comes again; /readyz already says "disconnected" when it is.
      if (!stopping && bus.connected()) notice('worker check failed', { err: (err as Error).message });
    } finally {
      checking = false;
    }
  };
  const checker = setInterval(() => void check(), checkEveryMs);
  checker.unref();

  const health = (now = Date.now()): WorkerHealth => {
    const base = {
      stream: opts.stream,
      consumer: opts.consumer,
      inFlight: active,
      scheduled: [...scheduled.values()].filter((due) => due > now).length,
      stranded: stranded.size,
      requeued,
      restarts,
      recreated,
      sinceLastAckMs: now - lastAckAt,
      sinceLastReceivedMs: now - lastReceivedAt,
      ...(info ? { pending: info.num_pending, ackPending: info.num_ack_pending } : {}),
      ...(checkedAt !== undefined ? { checkedAgoMs: now - checkedAt } : {}),
    };
    let worst: [Reason, number] | undefined;
    for (const [reason, from] of since) if (now - from >= stallAfterMs && (!worst || now - from > worst[1])) worst = [reason, now - from];
    return worst ? { ...base, stalled: true, reason: worst[0], stalledForMs: worst[1] } : { ...base, stalled: false, stalledForMs: 0 };
  };

  const running$ = loop();
  const worker: Worker = {
    inFlight: () => active,
    health,
    stop: async () => {
      stopping = true;
      clearInterval(checker);
      running.delete(worker);
      messages?.stop();
      idle.splice(0).forEach((r) => r());
      await Promise.allSettled([...done]);
      await running$;
    },
  };
  running.add(worker);
  return worker;
}
