import type { JsMsg } from '@nats-io/jetstream';
import { POISON_THRESHOLD, PoisonTracker, recordEvent, type Reception } from '@transit/bus';
import type { ServiceContext } from './run.ts';

/**
 * The worker option that parks poison messages of one stage, with an event and a log line for the administrator.
 * `receptionOf`: for a stage that records the message's Reception itself (the categorizer), what to record first, so a
 * message parked before it was ever categorized still has its RECEIVE row.
 */
export function poisonGuard<T>(ctx: ServiceContext, stage: string, messageIdOf: (item: T) => string, receptionOf?: (item: T, msg: JsMsg) => Reception) {
  const tracker = new PoisonTracker(ctx.bus, `${ctx.role}@${ctx.settings.nodeName}:${process.pid}`);
  return {
    tracker,
    threshold: POISON_THRESHOLD,
    onParked: async (item: T, msg: JsMsg, crashes: number) => {
      const id = messageIdOf(item);
      ctx.log.error({ id, stage, crashes, subject: msg.subject }, 'poison message parked in MAIL_POISON; it will not be retried automatically');
      const known = {};
      if (receptionOf) await recordEvent(ctx.bus, id, { type: 'Received', ...receptionOf(item, msg) }, ctx.settings.nodeName, known);
      await recordEvent(ctx.bus, id, { type: 'Poisoned', stage, crashes }, ctx.settings.nodeName, known);
    },
  };
}
