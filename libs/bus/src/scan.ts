/**
 * Reading a whole stream (or its tail from a time) in order: the one way the Safety Net,
 * the poison list, the shadow rebuild and the tests walk a stream. An ordered consumer
 * reads up to the last message present when the scan began, or until `visit` says stop.
 */
import { DeliverPolicy, type JsMsg } from '@nats-io/jetstream';
import type { Bus } from './connection.ts';

export async function scanStream(
  bus: Bus,
  stream: string,
  visit: (m: JsMsg) => Promise<boolean | void> | boolean | void,
  opts: { since?: Date } = {},
): Promise<number> {
  const { state } = await bus.jsm.streams.info(stream);
  if (state.messages === 0 || (opts.since && new Date(state.last_ts) < opts.since)) return 0;
  const consumer = await bus.js.consumers.get(stream, opts.since ? { deliver_policy: DeliverPolicy.StartTime, opt_start_time: opts.since.toISOString() } : {});
  const iter = await consumer.consume({ max_messages: 500 });
  let seen = 0;
  try {
    for await (const m of iter) {
      seen++;
      if ((await visit(m)) === false || m.info.pending === 0) break;
    }
  } finally {
    await iter.close();
  }
  return seen;
}
