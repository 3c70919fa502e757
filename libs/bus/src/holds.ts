/**
 * Administrator holds (Suspend-Queue, Suspend-Message, Remove-Message), kept in the KV
 * bucket `transit-suspended` so that every worker of every node sees them: `queue.<subject>`
 * holds a whole work queue, `message.<id>` one message (Suspended) or drops it (Removed).
 * Workers keep a watched copy in memory, so checking an item costs no round trip; a change
 * reaches them within milliseconds. An item a worker had already started when the hold was
 * written finishes (Exchange's PendingSuspend/PendingRemove); every later attempt obeys it.
 */
import { Kvm, type KV, type KvEntry } from '@nats-io/kv';
import type { Bus } from './connection.ts';
import { KvMirror } from './kv-mirror.ts';
import { HOLDS_BUCKET } from './topology.ts';

export type HoldState = 'Suspended' | 'Removed';
export type Hold = { state: HoldState; at: number; actor?: string };
/** What a worker does with an item: nothing special, wait (suspended), or drop it (removed). */
export type HoldDecision = 'suspended' | 'removed' | undefined;

export const holdKey = {
  /** A work queue by its subject (`mail.submit`, `mail.deliver.remote.<hop>`...): subjects are valid KV keys. */
  queue: (subject: string) => `queue.${subject}`,
  message: (messageId: string) => `message.${messageId.replace(/[^A-Za-z0-9_-]/g, '_')}`,
} as const;

export async function openHolds(bus: Bus): Promise<KV> {
  return new Kvm(bus.js).open(HOLDS_BUCKET);
}

/** Every hold now, by key (the administrator's view; workers use HoldWatcher). */
export async function readHolds(bus: Bus): Promise<Map<string, Hold>> {
  const kv = await openHolds(bus);
  const out = new Map<string, Hold>();
  for await (const key of await kv.keys()) {
    const e = await kv.get(key);
    const hold = e ? parseHold(e) : undefined;
    if (hold) out.set(key, hold);
  }
  return out;
}

function parseHold(e: KvEntry): Hold | undefined {
  if (e.operation !== 'PUT' || e.length === 0) return undefined;
  try {
    const h = e.json<Hold>();
    return h.state === 'Suspended' || h.state === 'Removed' ? h : undefined;
  } catch {
    return undefined;
  }
}

/** The decision for an item of `messageId` on `subject`, from a set of holds (pure). */
export function decideHold(holds: ReadonlyMap<string, Hold>, subject: string, messageId: string): HoldDecision {
  const message = holds.get(holdKey.message(messageId));
  if (message?.state === 'Removed') return 'removed';
  if (message?.state === 'Suspended' || holds.get(holdKey.queue(subject))) return 'suspended';
  return undefined;
}

/** A worker's live copy of the holds: the bucket's values, then every change, through one KV watch. */
export class HoldWatcher {
  readonly #mirror: Promise<KvMirror<Hold>>;
  constructor(bus: Bus, onError: (err: unknown) => void) {
    this.#mirror = openHolds(bus).then((kv) => new KvMirror(kv, parseHold, onError));
    this.#mirror.catch(() => undefined);
  }

  async check(subject: string, messageId: string): Promise<HoldDecision> {
    const mirror = await this.#mirror;
    await mirror.ready;
    return decideHold(mirror.values, subject, messageId);
  }
}
