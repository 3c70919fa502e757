/**
 * A worker loop over a durable pull consumer with bounded concurrency. Workers are
 * stateless: the outcome of a handler decides the message's fate — ack (done), nak with a
 * delay (try again later), or term (never again; the handler has recorded why).
 */
import type { JsMsg } from '@nats-io/jetstream';
import type { Bus } from './connection.ts';

export type Outcome = { kind: 'ack' } | { kind: 'retry'; delayMs: number } | { kind: 'term'; reason: string };
export const ack: Outcome = { kind: 'ack' };
export const retry = (delayMs: number): Outcome => ({ kind: 'retry', delayMs });
export const term = (reason: string): Outcome => ({ kind: 'term', reason });

export type Worker = { stop(): Promise<void>; inFlight(): number };

export type WorkerOptions = {
  stream: string;
  consumer: string;
  concurrency: number;
  handle: (msg: JsMsg) => Promise<Outcome>;
  onError: (err: unknown, msg: JsMsg | undefined) => void;
};

export function startWorker(bus: Bus, opts: WorkerOptions): Worker {
  let stopping = false;
  let active = 0;
  const idle: Array<() => void> = [];
  const done = new Set<Promise<void>>();
  let messages: { stop(): void } | undefined;

  const settle = async (msg: JsMsg): Promise<void> => {
    let outcome: Outcome;
    try {
      outcome = await opts.handle(msg);
    } catch (err) {
      opts.onError(err, msg);
      outcome = retry(Math.min(60_000, 1000 * 2 ** Math.min(msg.info.deliveryCount, 6)));
    }
    if (outcome.kind === 'ack') await msg.ackAck().catch((err: unknown) => opts.onError(err, msg));
    else if (outcome.kind === 'retry') msg.nak(outcome.delayMs);
    else msg.term(outcome.reason);
  };

  const loop = async (): Promise<void> => {
    while (!stopping) {
      try {
        const consumer = await bus.js.consumers.get(opts.stream, opts.consumer);
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
