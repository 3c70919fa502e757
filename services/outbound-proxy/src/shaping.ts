/**
 * Per-destination shaping, cluster-wide: how many SMTP connections may be open at once to one
 * next hop, and how many messages per minute it may be sent, counted in Redis across every
 * outbound proxy (TransportSettings' MaxPerDomainOutboundConnections and
 * MaxPerDomainOutboundMessagesPerMinute, or a send connector's own).
 *
 * Connections are slots in a sorted set per next hop, each member an open connection whose
 * score is when its slot lapses; the holder renews it while the connection is open and
 * removes it when the connection closes, and the slot of a proxy that died lapses. A rate
 * limiter (rate-limiter-flexible) counts messages: it limits rates, not holders, so the
 * connection slots are a Lua script of our own (check, take and renew in one atomic step,
 * timed by Redis's clock, so proxies with skewed clocks agree). A next hop that answers
 * 421 (too many connections, or any 421 4.7.x) is held to one connection for a minute. A proxy
 * that waits for a slot says so, and a proxy holding idle connections to that next hop then
 * closes them rather than keep them for later.
 *
 * Without Redis no slot can be taken: delivery waits, as it already does for its leases.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';

const SLOT_TTL_MS = 60_000;
const BACKOFF_MS = 60_000;

/** KEYS: slots, back-off marker. ARGV: member, limit, slot TTL (ms). 1 when the member holds a slot now. */
const TAKE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local limit = tonumber(ARGV[2])
if redis.call('EXISTS', KEYS[2]) == 1 then limit = 1 end
if redis.call('ZSCORE', KEYS[1], ARGV[1]) or redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) * 2)
  return 1
end
return 0`;

/** KEYS: slots. ARGV: member, slot TTL (ms). Renews a slot still held. */
const RENEW = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
  return 1
end
return 0`;

const slotsKey = (hop: string) => `transit:shape:conn:{${hop}}`;
const backoffKey = (hop: string) => `transit:shape:backoff:{${hop}}`;
const wantKey = (hop: string) => `transit:shape:want:{${hop}}`;

export type Slot = { release(): void };

/** A next hop's limits, as the connector or TransportSettings give them. */
export type HopLimits = { maxConnections: number; messagesPerMinute: number };

export class DestinationShaper {
  readonly #redis: Redis;
  readonly #owner = randomUUID();
  readonly #limiters = new Map<number, RateLimiterRedis>();
  #sequence = 0;

  constructor(redis: Redis) {
    this.#redis = redis;
  }

  /**
   * A connection slot for `hop`, waiting up to `waitMs` for one (polling, with jitter) while
   * others hold all of them; undefined when none came free in time. The slot is renewed
   * until released.
   */
  async acquire(hop: string, limit: number, waitMs: number, signal?: AbortSignal): Promise<Slot | undefined> {
    const member = `${this.#owner}:${++this.#sequence}`;
    const until = Date.now() + waitMs;
    for (let pause = 50; ; pause = Math.min(pause * 2, 500)) {
      const taken = (await this.#redis.eval(TAKE, 2, slotsKey(hop), backoffKey(hop), member, String(limit), String(SLOT_TTL_MS))) === 1;
      if (taken) break;
      if (Date.now() + pause > until || signal?.aborted) return undefined;
      // Says a proxy waits for a slot: one that holds idle connections to this hop closes them (sender.ts).
      void this.#redis.set(wantKey(hop), '1', 'PX', 5_000).catch(() => undefined);
      await new Promise((r) => setTimeout(r, pause * (0.5 + Math.random())));
    }
    const renewal = setInterval(() => void this.#redis.eval(RENEW, 1, slotsKey(hop), member, String(SLOT_TTL_MS)).catch(() => undefined), SLOT_TTL_MS / 3);
    renewal.unref();
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        clearInterval(renewal);
        // A slot Redis could not free lapses within SLOT_TTL_MS.
        void this.#redis.zrem(slotsKey(hop), member).catch(() => undefined);
      },
    };
  }

  /** 0 when a message to `hop` may go now (and it is counted), else the milliseconds until one may. */
  async takeMessage(hop: string, perMinute: number): Promise<number> {
    if (perMinute <= 0) return 0;
    let limiter = this.#limiters.get(perMinute);
    if (!limiter) {
      limiter = new RateLimiterRedis({ storeClient: this.#redis, keyPrefix: `transit:shape:rate:${perMinute}`, points: perMinute, duration: 60 });
      this.#limiters.set(perMinute, limiter);
    }
    try {
      await limiter.consume(hop, 1);
      return 0;
    } catch (res) {
      if (res instanceof RateLimiterRes) return Math.max(1, res.msBeforeNext);
      throw res;
    }
  }

  /** Whether a proxy waited for a slot of `hop` in the last seconds. */
  async wanted(hop: string): Promise<boolean> {
    return (await this.#redis.exists(wantKey(hop))) === 1;
  }

  /** The next hop answered 421: one connection at a time for a minute. */
  async backOff(hop: string): Promise<void> {
    await this.#redis.set(backoffKey(hop), '1', 'PX', BACKOFF_MS);
  }

  /** Connection slots held now for `hop` (for tests and `transitctl`). */
  async holders(hop: string): Promise<number> {
    const now = Date.now();
    return this.#redis.zcount(slotsKey(hop), now, '+inf');
  }
}
