import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, type RedisHandle } from '@transit/testkit';
import { Leases, listLeases, type WorkRef } from './leases.ts';

let server: RedisHandle;
let redis: Redis;

beforeAll(async () => {
  server = await startRedis();
  redis = new Redis(server.url);
});

afterAll(async () => {
  await redis?.quit();
  await server?.cleanup();
});

const ref = (seq: number, messageId = `m${seq}`): WorkRef => ({
  stream: 'MAIL_DELIVER',
  seq,
  subject: 'mail.deliver.remote.internet_fabrikam_test',
  messageId,
});

describe('listLeases', () => {
  it('lists the leased work items with their holder and since when, follows takeovers, and drops released ones', async () => {
    const a = new Leases(redis, { owner: 'n1/100', deliveredTtlSeconds: 60, heartbeatTtlMs: 200 });
    const b = new Leases(redis, { owner: 'n2/200', deliveredTtlSeconds: 60 });
    await Promise.all([a.heartbeat(), b.heartbeat()]);
    const before = Date.now();
    expect((await a.claim(ref(1), ['x@fabrikam.test'])).ok).toBe(true);
    expect((await b.claim(ref(2), ['y@fabrikam.test'])).ok).toBe(true);
    const listed = await listLeases(redis);
    expect(listed.map((l) => [l.owner, l.messageId, l.seq, l.subject])).toEqual(
      expect.arrayContaining([
        ['n1/100', 'm1', 1, 'mail.deliver.remote.internet_fabrikam_test'],
        ['n2/200', 'm2', 2, 'mail.deliver.remote.internet_fabrikam_test'],
      ]),
    );
    expect(listed).toHaveLength(2);
    for (const l of listed) expect(l.since).toBeGreaterThanOrEqual(before - 1000);
    const since1 = listed.find((l) => l.seq === 1)!.since;

    // Renewing and claiming again keep "since"; releasing drops the item.
    await new Promise((r) => setTimeout(r, 20));
    expect(await a.renew(ref(1))).toBe(true);
    expect((await a.claim(ref(1), ['x@fabrikam.test'])).ok).toBe(true);
    expect((await listLeases(redis)).find((l) => l.seq === 1)?.since).toBe(since1);
    await b.release(ref(2), ['y@fabrikam.test']);
    expect((await listLeases(redis)).map((l) => l.messageId)).toEqual(['m1']);
    expect(await redis.exists('transit:lease-since:{m2}:MAIL_DELIVER:2')).toBe(0);

    // n1's heartbeat stops: n2 adopts its item and holds it from then on.
    await new Promise((r) => setTimeout(r, 300));
    await b.heartbeat();
    expect((await b.adoptOrphans()).map((r) => r.messageId)).toEqual(['m1']);
    const [adopted] = await listLeases(redis);
    expect(adopted).toMatchObject({ owner: 'n2/200', messageId: 'm1' });
    expect(adopted!.since).toBeGreaterThanOrEqual(since1!);
  });

  it('leaves out an item whose lease expired', async () => {
    await redis.flushall();
    const c = new Leases(redis, { owner: 'n3/300', deliveredTtlSeconds: 60, leaseTtlMs: 100 });
    await c.heartbeat();
    await c.claim(ref(3), ['z@fabrikam.test']);
    expect(await listLeases(redis)).toHaveLength(1);
    await new Promise((r) => setTimeout(r, 200));
    expect(await listLeases(redis)).toEqual([]);
  });
});

describe('settle', () => {
  it('makes the next claim of a work item answer "settled", for every owner, without touching other items', async () => {
    await redis.flushall();
    const adopter = new Leases(redis, { owner: 'n4/400', deliveredTtlSeconds: 60 });
    const other = new Leases(redis, { owner: 'n5/500', deliveredTtlSeconds: 60 });
    expect((await adopter.claim(ref(7), ['a@fabrikam.test'])).ok).toBe(true);
    await adopter.release(ref(7), ['a@fabrikam.test']);
    await adopter.settle(ref(7));
    // JetStream's redelivery of the settled item, to any worker: acknowledged without work.
    expect(await other.claim(ref(7), ['a@fabrikam.test'])).toEqual({ ok: false, settled: true });
    expect(await adopter.claim(ref(7), ['a@fabrikam.test'])).toEqual({ ok: false, settled: true });
    expect(await redis.ttl('transit:settled:{m7}:MAIL_DELIVER:7')).toBeGreaterThan(3600);
    // Another work item of the same message (a later attempt) is claimed as usual, and learns who has it.
    const later = await other.claim(ref(8, 'm7'), ['a@fabrikam.test', 'b@fabrikam.test']);
    expect(later.ok && [...later.alreadyDelivered]).toEqual(['a@fabrikam.test']);
  });
});
