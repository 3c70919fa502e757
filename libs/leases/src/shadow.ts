/**
 * Shadow redundancy for delivery items (Exchange's idea, applied to one hop): the hub keeps a
 * copy of every delivery item it queued, in Redis, until the item's recipients have an
 * outcome. A work item that the stream itself loses (nats-server 2.9 can drop items when
 * several replicas of a stream reset at once, see docs/operations.md) then is not the end of
 * the message: the hub's check (services/hub/src/shadow-check.ts) finds the item gone from
 * the stream while its recipients still wait, and queues the copy again.
 *
 * One hash per message, `transit:shadow:{<id>}`, one field per work-queue subject (a
 * message has at most one live item per next hop): the item's stream sequence, when it was
 * found missing, how often it was queued again, and the item's bytes. A sorted set,
 * `transit:shadows`, orders the messages by when they are next due for a check. The outbound
 * proxy moves a shadow to the follow-up item it queues for deferred recipients.
 *
 * Without Redis the hub does not acknowledge the submit item (services/hub/src/main.ts): the
 * item stays in `mail.submit` as the message's second copy until its shadow is kept. A Redis
 * that comes back empty has forgotten the shadows of the mail in flight at that moment; each
 * hub then writes again those it kept lately (RecentShadows), which it notices by the data
 * set's identity (`epoch`).
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';

export const SHADOWS_KEY = 'transit:shadows';
/** A random value the first writer sets: a Redis that restarted without its data has another one. */
const SHADOWS_EPOCH_KEY = 'transit:shadows:epoch';
const shadowKey = (messageId: string) => `transit:shadow:{${messageId}}`;

export type ShadowEntry = {
  /** The work-queue subject the item was published to (its next hop). */
  subject: string;
  /** Its stream sequence (MAIL_DELIVER). */
  seq: number;
  /** When it was queued (ms). */
  since: number;
  /** The sequence of the item this shadow was made for, once a copy was queued in its place (absent: `seq`). */
  origin?: number;
  /** When the check first found it gone from the stream with recipients still waiting (ms), if it has. */
  missingSince?: number;
  /** How many times it was queued again. */
  reissues: number;
  item: Uint8Array;
};

type Stored = Omit<ShadowEntry, 'item'> & { item: string };

/** KEYS: the message's shadow. ARGV: subject, entry, TTL seconds. */
const REPLACE = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1`;

export class DeliveryShadow {
  readonly #redis: Redis;
  readonly #ttlSeconds: number;

  /** `ttlSeconds`: how long a message's shadow may live at most (the message's expiry and a margin). */
  constructor(redis: Redis, ttlSeconds: number) {
    this.#redis = redis;
    this.#ttlSeconds = ttlSeconds;
  }

  /** Keeps a copy of each item just queued for `messageId`, due for its first check `checkAfterMs` from now. */
  async keep(messageId: string, items: ReadonlyArray<{ subject: string; seq: number; item: Uint8Array }>, checkAfterMs: number): Promise<void> {
    if (items.length === 0) return;
    const key = shadowKey(messageId);
    const multi = this.#redis.multi();
    const since = Date.now();
    for (const i of items) multi.hset(key, i.subject, encode({ subject: i.subject, seq: i.seq, since, reissues: 0, item: i.item }));
    multi.expire(key, this.#ttlSeconds);
    // NX: a message already waiting for a check keeps its place.
    multi.zadd(SHADOWS_KEY, 'NX', Date.now() + checkAfterMs, messageId);
    await multi.exec();
  }

  /**
   * The item for `subject` is now `entry` (a follow-up for deferred recipients, or the copy
   * queued again). Only a message that has a shadow gets one: a follow-up of a message whose
   * shadow was settled or never kept does not start one.
   */
  async replace(messageId: string, entry: ShadowEntry): Promise<void> {
    await this.#redis.eval(REPLACE, 1, shadowKey(messageId), entry.subject, encode(entry), String(this.#ttlSeconds));
  }

  /** The identity of Redis's data set; a Redis that lost its data gets a new one here. */
  async epoch(): Promise<string> {
    await this.#redis.set(SHADOWS_EPOCH_KEY, randomUUID(), 'NX');
    return (await this.#redis.get(SHADOWS_EPOCH_KEY)) ?? '';
  }

  /** Messages whose check is due, oldest first. */
  async due(limit: number, now = Date.now()): Promise<string[]> {
    return this.#redis.zrangebyscore(SHADOWS_KEY, 0, now, 'LIMIT', 0, limit);
  }

  /** Puts the message's next check `afterMs` from now. */
  async later(messageId: string, afterMs: number): Promise<void> {
    await this.#redis.zadd(SHADOWS_KEY, Date.now() + afterMs, messageId);
  }

  async entries(messageId: string): Promise<ShadowEntry[]> {
    const all = await this.#redis.hgetall(shadowKey(messageId));
    return Object.values(all).flatMap((text) => {
      const entry = decode(text);
      return entry ? [entry] : [];
    });
  }

  /** The item for `subject` needs no shadow any more; a message left with none is forgotten. */
  async settle(messageId: string, subject: string): Promise<void> {
    await this.#redis.hdel(shadowKey(messageId), subject);
    if ((await this.#redis.hlen(shadowKey(messageId))) === 0) await this.#redis.zrem(SHADOWS_KEY, messageId);
  }

  /** Forgets a message whose shadow hash is gone (expired). */
  async forget(messageId: string): Promise<void> {
    await this.#redis.zrem(SHADOWS_KEY, messageId);
  }
}

function encode(entry: ShadowEntry): string {
  const { item, ...rest } = entry;
  return JSON.stringify({ ...rest, item: Buffer.from(item).toString('base64') } satisfies Stored);
}

function decode(text: string): ShadowEntry | undefined {
  try {
    const stored = JSON.parse(text) as Stored;
    return { ...stored, item: new Uint8Array(Buffer.from(stored.item, 'base64')) };
  } catch {
    return undefined;
  }
}

type Kept = { messageId: string; items: ReadonlyArray<{ subject: string; seq: number; item: Uint8Array }>; at: number; bytes: number };

/**
 * The shadows one process kept lately, in memory, to keep again when Redis comes back
 * without its data: within `maxAgeMs`, and at most `maxBytes` of items (the oldest go first).
 * The seed 7 and 4242 runs (3,000 messages) lost mail queued seconds before Redis restarted
 * empty, whose delivery items a replica reset then dropped: nothing was left to queue again.
 */
export class RecentShadows {
  readonly #maxAgeMs: number;
  readonly #maxBytes: number;
  #kept: Kept[] = [];
  /** Entries before this index are dropped. */
  #head = 0;
  #bytes = 0;

  constructor(maxAgeMs: number, maxBytes: number) {
    this.#maxAgeMs = maxAgeMs;
    this.#maxBytes = maxBytes;
  }

  remember(messageId: string, items: Kept['items'], now = Date.now()): void {
    const bytes = items.reduce((n, i) => n + i.item.byteLength, 0);
    this.#kept.push({ messageId, items, at: now, bytes });
    this.#bytes += bytes;
    this.#trim(now);
  }

  /** What was kept within the age limit, oldest first. */
  recent(now = Date.now()): Array<Pick<Kept, 'messageId' | 'items'>> {
    this.#trim(now);
    return this.#kept.slice(this.#head).map(({ messageId, items }) => ({ messageId, items }));
  }

  get bytes(): number {
    return this.#bytes;
  }

  #trim(now: number): void {
    while (this.#head < this.#kept.length && (now - this.#kept[this.#head]!.at > this.#maxAgeMs || this.#bytes > this.#maxBytes))
      this.#bytes -= this.#kept[this.#head++]!.bytes;
    // Dropped entries are cut off now and then, not on every call.
    if (this.#head > 1024 && this.#head * 2 > this.#kept.length) {
      this.#kept = this.#kept.slice(this.#head);
      this.#head = 0;
    }
  }
}
