import type { JsMsg } from '@nats-io/jetstream';
import { HoldWatcher, type Bus } from '@transit/bus';
import type { ServiceContext } from './run.ts';

/** How soon a held item is looked at again: a resumed queue or message goes within this long. */
export const HOLD_RECHECK_MS = 5000;

/** One watch of `transit-suspended` per process, shared by its workers. */
const watchers = new WeakMap<Bus, HoldWatcher>();

/** The worker option that obeys administrator holds (suspended queues and messages, removed messages), with a log line per dropped item. */
export function adminHolds<T>(ctx: ServiceContext, messageIdOf: (item: T) => string) {
  let watcher = watchers.get(ctx.bus);
  if (!watcher) {
    watcher = new HoldWatcher(ctx.bus, (err) => ctx.log.error({ err: (err as Error).message }, 'watching administrator holds failed'));
    watchers.set(ctx.bus, watcher);
  }
  return {
    watcher,
    messageIdOf,
    recheckMs: HOLD_RECHECK_MS,
    onDropped: (item: T, msg: JsMsg) =>
      ctx.log.warn({ id: messageIdOf(item), subject: msg.subject }, 'work item of a message removed by an administrator dropped; not delivered'),
  };
}
