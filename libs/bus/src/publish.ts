import type { PubAck } from '@nats-io/jetstream';
import { headers, type MsgHdrs } from '@nats-io/transport-node';
import type { Bus } from './connection.ts';
import { injectTrace } from './trace.ts';

export class BusUnavailableError extends Error {
  readonly code = 'BUS_UNAVAILABLE';
  constructor(message: string) {
    super(message);
    this.name = 'BusUnavailableError';
  }
}

/** The stream refused the message because a limit is reached (back pressure, not an outage). */
export class QueueFullError extends Error {
  readonly code = 'QUEUE_FULL';
  constructor(message: string) {
    super(message);
    this.name = 'QueueFullError';
  }
}

const LIMIT_REACHED = /maximum (messages|bytes|consumers) exceeded|insufficient (storage )?resources|10077|10047/i;

/**
 * Publishes and waits for JetStream's acknowledgement: the only proof that the bytes are
 * durable. `msgID` makes a retried publish a no-op inside the stream's duplicate window.
 * Refuses up front while disconnected, so a publish is never left buffered in the client,
 * to be written after the caller already answered 4xx (and the sender retried).
 */
export async function publishDurable(
  bus: Bus,
  subject: string,
  payload: Uint8Array,
  opts: { msgID: string; timeoutMs?: number; expectStream?: string; headers?: Record<string, string> },
): Promise<PubAck> {
  if (!bus.connected()) throw new BusUnavailableError('not connected to NATS');
  const hdrs: MsgHdrs = headers();
  for (const [k, v] of Object.entries(opts.headers ?? {})) hdrs.set(k, v);
  // The message's trace goes with it: the consumer's span becomes this span's child.
  injectTrace(hdrs);
  try {
    return await bus.js.publish(subject, payload, {
      msgID: opts.msgID,
      ...(hdrs.keys().length ? { headers: hdrs } : {}),
      timeout: opts.timeoutMs ?? 5000,
      ...(opts.expectStream ? { expect: { streamName: opts.expectStream } } : {}),
    });
  } catch (err) {
    const message = `publish to ${subject} failed: ${(err as Error).message}`;
    throw LIMIT_REACHED.test((err as Error).message) ? new QueueFullError(message) : new BusUnavailableError(message);
  }
}

/**
 * publishDurable, retried with the same Nats-Msg-Id while the bus is unreachable or the
 * write is not acknowledged, for up to `budgetMs`. A timed-out publish may still be stored
 * (a JetStream leader can commit it once its quorum is back); publishing it again under the
 * same id either stores it or is acknowledged as a duplicate, and both mean "durable". Only
 * when the budget is spent is the outcome left unknown to the caller.
 */
export async function publishDurableWithin(
  bus: Bus,
  subject: string,
  payload: Uint8Array,
  opts: { msgID: string; expectStream?: string; budgetMs: number },
): Promise<PubAck> {
  const deadline = Date.now() + opts.budgetMs;
  for (let attempt = 1; ; attempt++) {
    try {
      const ack = await publishDurable(bus, subject, payload, {
        msgID: opts.msgID,
        timeoutMs: Math.max(1000, Math.min(5000, deadline - Date.now())),
        ...(opts.expectStream ? { expectStream: opts.expectStream } : {}),
      });
      // "Duplicate" after a failed attempt should mean the first one was stored, but a leader
      // can know an id it has not committed yet: only a stored copy proves it. (It may also
      // already be consumed from a work queue; then the sender is told to retry — a possible
      // duplicate, never a loss.)
      if (ack.duplicate && attempt > 1 && !(await storedUnder(bus, ack, opts.msgID)))
        throw new BusUnavailableError(`publish to ${subject}: reported as a duplicate of a message that is not stored`);
      return ack;
    } catch (err) {
      if (err instanceof QueueFullError || Date.now() + 500 >= deadline) throw err;
      await new Promise((r) => setTimeout(r, Math.min(2000, 250 * attempt)));
    }
  }
}

async function storedUnder(bus: Bus, ack: PubAck, msgID: string): Promise<boolean> {
  try {
    const stored = await bus.jsm.streams.getMessage(ack.stream, { seq: ack.seq });
    return stored?.header.get('Nats-Msg-Id') === msgID;
  } catch {
    return false;
  }
}
