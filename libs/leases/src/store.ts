/**
 * Shadow state in Redis: which recipients of a message were already delivered, so a work
 * item redelivered after a crash never sends to them again. Redis is a projection of the
 * event log (the `Delivered` events in MAIL_EVENTS): when it comes back empty, it is
 * rebuilt from there, and while it is unreachable delivery waits. Losing Redis costs time,
 * never mail, and never a second copy.
 */
import { decode } from '@msgpack/msgpack';
import { Redis } from 'ioredis';
import { STREAMS, scanStream, type Bus } from '@transit/bus';
import { environmentDefault } from '@transit/config';
import { Leases, deliveredKey, type LeaseOptions } from './leases.ts';

/** Present while the projection is complete; an empty Redis (restarted without data) lacks it. */
export const SHADOW_EPOCH_KEY = 'transit:shadow:epoch';

export class ShadowUnavailableError extends Error {
  readonly code = 'SHADOW_UNAVAILABLE';
  constructor(message: string) {
    super(message);
    this.name = 'ShadowUnavailableError';
  }
}

/** SADD and EXPIRE in one step: a recipient is never recorded without its expiry. */
const MARK_DELIVERED = `
redis.call('SADD', KEYS[1], unpack(ARGV, 2))
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1`;

export class LeaseStore {
  readonly redis: Redis;
  readonly #ttlSeconds: number;

  /** `ttlSeconds`: how long a delivered set is kept; the process passes TRANSIT_DELIVERED_TTL_SECONDS, left out it is the register's default (9 days). */
  constructor(url: string, ttlSeconds: number = environmentDefault('deliveredTtlSeconds')) {
    // Commands fail at once while Redis is down (no offline queue): the caller retries the work later.
    this.redis = new Redis(url, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 1, retryStrategy: (n) => Math.min(n * 200, 2000) });
    this.redis.on('error', () => undefined);
    this.#ttlSeconds = ttlSeconds;
  }

  async connect(): Promise<void> {
    if (this.redis.status === 'wait') await this.redis.connect().catch(() => undefined);
  }

  async #call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw new ShadowUnavailableError(`shadow state ${what} failed: ${(err as Error).message}`);
    }
  }

  /** Records deliveries outside a lease (the rebuild from the event log); workers record them with Leases.release. */
  async markDelivered(messageId: string, recipients: readonly string[]): Promise<void> {
    if (recipients.length === 0) return;
    await this.#call('write', () =>
      this.redis.eval(MARK_DELIVERED, 1, deliveredKey(messageId), String(this.#ttlSeconds), ...recipients.map((r) => r.toLowerCase())),
    );
  }

  /** markDelivered for many messages in one round trip (the rebuild). */
  async markDeliveredMany(entries: ReadonlyArray<readonly [string, readonly string[]]>): Promise<void> {
    const pipeline = this.redis.pipeline();
    for (const [messageId, recipients] of entries)
      if (recipients.length) pipeline.eval(MARK_DELIVERED, 1, deliveredKey(messageId), String(this.#ttlSeconds), ...recipients.map((r) => r.toLowerCase()));
    const replies = await this.#call('write', () => pipeline.exec());
    const failed = replies?.find(([err]) => err);
    if (failed) throw new ShadowUnavailableError(`shadow state write failed: ${failed[0]!.message}`);
  }

  /** The leases of one owner (a process), on this store's connection. */
  leases(owner: string, opts: Omit<LeaseOptions, 'owner' | 'deliveredTtlSeconds'> = {}): Leases {
    return new Leases(this.redis, { ...opts, owner, deliveredTtlSeconds: this.#ttlSeconds });
  }

  /** Whether the projection is complete (false after Redis lost its data). */
  async complete(): Promise<boolean> {
    return (await this.#call('read', () => this.redis.exists(SHADOW_EPOCH_KEY))) === 1;
  }

  async markComplete(): Promise<void> {
    await this.#call('write', () => this.redis.set(SHADOW_EPOCH_KEY, new Date().toISOString()));
  }

  async close(): Promise<void> {
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}

/**
 * Replays every `Delivered` (and `DuplicateSuppressed`) event of the event log into the store, then marks it complete.
 * Idempotent; safe to run while deliveries go on (they add to the same sets).
 */
export async function rebuildShadowFromEvents(bus: Bus, store: LeaseStore): Promise<{ messages: number; recipients: number }> {
  let messages = 0;
  let recipients = 0;
  // Written in batches (one pipeline per batch): the event log of a busy week is long, and delivery waits for this.
  let batch: Array<[string, string[]]> = [];
  const flush = async () => {
    const entries = batch;
    batch = [];
    if (entries.length) await store.markDeliveredMany(entries);
  };
  await scanStream(bus, STREAMS.events, async (m) => {
    const event = decode(m.data) as { type?: string; recipients?: string[] };
    // A DuplicateSuppressed event is a delivery whose Delivered event was lost in a crash.
    if ((event.type !== 'Delivered' && event.type !== 'DuplicateSuppressed') || !event.recipients?.length) return;
    batch.push([m.subject.slice('mail.evt.'.length), event.recipients]);
    messages++;
    recipients += event.recipients.length;
    if (batch.length >= 500) await flush();
  });
  await flush();
  await store.markComplete();
  return { messages, recipients };
}
