import type { PubAck } from '@nats-io/jetstream';
import { headers, type MsgHdrs } from '@nats-io/transport-node';
import type { Bus } from './connection.ts';

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
export async function publishDurable(bus: Bus, subject: string, payload: Uint8Array, opts: { msgID: string; timeoutMs?: number; expectStream?: string; headers?: Record<string, string> }): Promise<PubAck> {
  if (!bus.connected()) throw new BusUnavailableError('not connected to NATS');
  let hdrs: MsgHdrs | undefined;
  if (opts.headers) {
    hdrs = headers();
    for (const [k, v] of Object.entries(opts.headers)) hdrs.set(k, v);
  }
  try {
    return await bus.js.publish(subject, payload, {
      msgID: opts.msgID,
      ...(hdrs ? { headers: hdrs } : {}),
      timeout: opts.timeoutMs ?? 5000,
      ...(opts.expectStream ? { expect: { streamName: opts.expectStream } } : {}),
    });
  } catch (err) {
    const message = `publish to ${subject} failed: ${(err as Error).message}`;
    throw LIMIT_REACHED.test((err as Error).message) ? new QueueFullError(message) : new BusUnavailableError(message);
  }
}
