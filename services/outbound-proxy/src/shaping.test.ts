/** The connection slots and message rate of shaping.ts against a real redis-server. */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, type RedisHandle } from '@transit/testkit';
import { DestinationShaper } from './shaping.ts';

let redis: RedisHandle;
let client: Redis;
beforeAll(async () => {
  redis = await startRedis();
  client = new Redis(redis.url, { maxRetriesPerRequest: 1 });
});
afterAll(async () => {
  await client?.quit();
  await redis?.cleanup();
});

describe('destination shaping', () => {
  it('gives out no more connection slots than the limit, across shapers, and a freed one to the next who waits', async () => {
    const a = new DestinationShaper(client);
    const b = new DestinationShaper(client);
    const one = await a.acquire('remote.limited', 2, 100);
    const two = await b.acquire('remote.limited', 2, 100);
    expect(one && two).toBeTruthy();
    expect(await a.acquire('remote.limited', 2, 300)).toBeUndefined();
    expect(await a.holders('remote.limited')).toBe(2);
    expect(await b.wanted('remote.limited')).toBe(true);
    const waiting = b.acquire('remote.limited', 2, 5_000);
    one!.release();
    const three = await waiting;
    expect(three).toBeDefined();
    // Another next hop has slots of its own.
    expect(await a.acquire('remote.other', 1, 100)).toBeDefined();
    two!.release();
    three!.release();
  });

  it('holds a next hop that answered 421 to one connection', async () => {
    const s = new DestinationShaper(client);
    await s.backOff('remote.busy');
    const first = await s.acquire('remote.busy', 5, 100);
    expect(first).toBeDefined();
    expect(await s.acquire('remote.busy', 5, 300)).toBeUndefined();
    first!.release();
  });

  it('counts messages per minute per next hop, and says how long to wait', async () => {
    const s = new DestinationShaper(client);
    for (let i = 0; i < 3; i++) expect(await s.takeMessage('remote.rated', 3)).toBe(0);
    const wait = await s.takeMessage('remote.rated', 3);
    expect(wait).toBeGreaterThan(50_000);
    expect(wait).toBeLessThanOrEqual(60_000);
    expect(await s.takeMessage('remote.other-rated', 3)).toBe(0);
    expect(await s.takeMessage('remote.rated', 0)).toBe(0);
  });
});
