/**
 * A worker loop over a durable pull consumer with bounded concurrency. Workers are
 * stateless: the outcome of a handler decides the message's fate — ack (done) or nak with a
 * delay (try again later). A payload that cannot be decoded is terminated: it never will be.
 */
import type { JsMsg } from '@nats-io/jetstream';
import type { Bus } from './connection.ts';
import type { HoldWatcher } from './holds.ts';
import type { PoisonTracker } from './poison.ts';
import { SpanKind, extractTrace, inSpan } from './trace.ts';

export type Outcome = { kind: 'ack' } | { kind: 'retry'; delayMs: number };
export const ack: Outcome = { kind: 'ack' };
export const retry = (delayMs: number): Outcome => ({ kind: 'retry', delayMs });

export type Worker = { stop(): Promise<void>; inFlight(): number };

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
  /** Administrator holds: an item of a suspended queue or message waits `recheckMs`, a removed message's item is dropped. */
  holds?: { watcher: HoldWatcher; messageIdOf: (item: T) => string; recheckMs: number; onDropped: (item: T, msg: JsMsg) => void };
};

export function startWorker<T>(bus: Bus, opts: WorkerOptions<T>): Worker {
  let stopping = false;
  let active = 0;
  const idle: Array<() => void> = [];
  const done = new Set<Promise<void>>();
  let messages: { stop(): void } | undefined;
  /** A third of the consumer's ack wait, read when consuming starts. */
  let keepAliveMs = 5000;

  const settle = async (msg: JsMsg): Promise<void> => {
    let item: T;
    try {
      item = opts.decode(msg.data);
    } catch (err) {
      opts.onError(err, msg);
      // No reason text: nats-server 2.9 ignores `+TERM <reason>` (reasons arrived in 2.10),
      // which would leave the item to be redelivered forever. The reason is in the log above.
      msg.term();
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
        await msg.ackAck().catch((err: unknown) => opts.onError(err, msg));
        return;
      }
      if (hold === 'suspended') {
        msg.nak(recheckMs);
        return;
      }
    }
    const poison = opts.poison;
    if (poison) {
      try {
        const crashes = await poison.tracker.begin(msg);
        if (crashes >= poison.threshold) {
          await poison.tracker.park(msg, crashes, `its processing ended ${crashes} workers`);
          await poison.onParked(item, msg, crashes);
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
      const attributes = { 'messaging.system': 'nats', 'messaging.operation.type': 'process', 'messaging.destination.name': msg.subject, 'messaging.consumer.group.name': opts.consumer, 'transit.delivery_count': msg.info.deliveryCount };
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
    // The marker goes first, not awaited: it is on the wire before the ack, in order.
    if (poison) void poison.tracker.end(msg).catch((err: unknown) => opts.onError(err, msg));
    if (outcome.kind === 'ack') await msg.ackAck().catch((err: unknown) => opts.onError(err, msg));
    else msg.nak(outcome.delayMs);
  };

  const loop = async (): Promise<void> => {
    while (!stopping) {
      try {
        const consumer = await bus.js.consumers.get(opts.stream, opts.consumer);
        keepAliveMs = Math.max(250, Math.floor(((await consumer.info(true)).config.ack_wait ?? 15_000_000_000) / 1_000_000 / 3));
        const iter = await consumer.consume({ max_messages: opts.concurrency * 2 });
        messages = iter;
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
  const running = loop();

  return {
    inFlight: () => active,
    stop: async () => {
      stopping = true;
      messages?.stop();
      idle.splice(0).forEach((r) => r());
      await Promise.allSettled([...done]);
      await running;
    },
  };
}
