/**
 * The hub's shadow check against a real nats-server and redis-server: an item the stream
 * lost is queued again from its shadow once it has been missing for the grace time, and
 * only for the recipients still waiting; an item still queued is left alone; a delivered
 * one settles its shadow. A loss is simulated by deleting the item from the stream.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { STREAMS, connectBus, ensureTopology, publishDurable, recordEvent, type Bus } from '@transit/bus';
import { decodeDeliveryItem, encodeDeliveryItem, type DeliveryItem } from '@transit/envelope';
import { DeliveryShadow, SHADOWS_KEY, type ShadowEntry } from '@transit/leases';
import { startNats, startRedis, type NatsHandle, type RedisHandle } from '@transit/testkit';
import { checkShadows } from './shadow-check.ts';

const SUBJECT = 'mail.deliver.remote.sink';
const OPTIONS = { graceMs: 20_000, recheckMs: 30_000, maxRecheckMs: 300_000, batch: 50 };

const item = (id: string, recipients: string[]): DeliveryItem => ({
  v: 1,
  envelope: {
    v: 1,
    id,
    messageId: `<${id}@contoso.test>`,
    receivedAt: Date.now(),
    sender: 'bob@contoso.test',
    recipients: recipients.map((address) => ({ address })),
    origin: { kind: 'smtp', serverHost: 'n1' },
    body: { kind: 'inline', data: new TextEncoder().encode('Subject: x\r\n\r\nbody\r\n') },
    size: 22,
  },
  hop: { type: 'smtp', connector: 'Sink', domain: 'example.net', port: 25 },
  attempt: 0,
  notBefore: 0,
});

describe('shadow redundancy of delivery items', () => {
  let nats: NatsHandle;
  let redisServer: RedisHandle;
  let bus: Bus;
  let redis: Redis;
  let shadow: DeliveryShadow;
  beforeAll(async () => {
    nats = await startNats({ jetstream: true });
    redisServer = await startRedis();
    bus = await connectBus([nats.url], 'shadow-test');
    await ensureTopology(bus, { replicas: 1, ackWaitSeconds: 3 });
    redis = new Redis(redisServer.url);
    shadow = new DeliveryShadow(redis, 3600);
  });
  afterAll(async () => {
    redis?.disconnect();
    await bus?.close();
    await nats?.cleanup();
    await redisServer?.stop();
  });

  /** Queues an item as the hub does: Routed recorded, the item published, its shadow kept. */
  async function queue(id: string, recipients: string[]): Promise<number> {
    await recordEvent(bus, id, { type: 'Routed', hop: 'smtp:Sink', recipients }, 'test');
    const bytes = encodeDeliveryItem(item(id, recipients));
    const ack = await publishDurable(bus, SUBJECT, bytes, { msgID: `${id}:first`, expectStream: STREAMS.deliver });
    await shadow.keep(id, [{ subject: SUBJECT, seq: ack.seq, item: bytes }], 0);
    return ack.seq;
  }
  const reissued: Array<{ id: string; entry: ShadowEntry; recipients: string[] }> = [];
  const check = (at: number) =>
    checkShadows({ bus, shadow, now: () => at, onReissued: (id, entry, recipients) => reissued.push({ id, entry, recipients }) }, OPTIONS);

  it('leaves a queued item alone, and queues a lost one again once it has been missing for the grace time', async () => {
    const t0 = Date.now();
    const seq = await queue('LOST1', ['a@example.net', 'b@example.net']);
    expect(await check(t0 + 1000)).toEqual({ checked: 1, settled: 0, missing: 0, reissued: 0 });

    // The stream loses it; meanwhile a@ was delivered (its outcome recorded before the loss).
    await recordEvent(bus, 'LOST1', { type: 'Delivered', hop: SUBJECT, recipients: ['a@example.net'] }, 'test');
    await bus.jsm.streams.deleteMessage(STREAMS.deliver, seq);
    // First seen missing: noted, not queued again yet.
    expect(await check(t0 + 40_000)).toEqual({ checked: 1, settled: 0, missing: 1, reissued: 0 });
    expect(reissued).toEqual([]);
    // Within the grace time: still waiting.
    expect(await check(t0 + 50_000)).toMatchObject({ missing: 1, reissued: 0 });
    // Past it: queued again, for b@ only, under the reissue's message id.
    expect(await check(t0 + 400_000)).toMatchObject({ missing: 1, reissued: 1 });
    expect(reissued).toHaveLength(1);
    expect(reissued[0]).toMatchObject({ id: 'LOST1', recipients: ['b@example.net'], entry: { subject: SUBJECT, reissues: 1 } });
    const again = await bus.jsm.streams.getMessage(STREAMS.deliver, { seq: reissued[0]!.entry.seq });
    expect(again!.header.get('Nats-Msg-Id')).toBe(`LOST1:${SUBJECT}:reissue-1`);
    expect(again!.header.get('Transit-Requeued-From')).toBe(`${STREAMS.deliver}:${seq}`);
    expect(reissued[0]!.entry.origin).toBe(seq);
    expect(decodeDeliveryItem(again!.data).envelope.recipients.map((r) => r.address)).toEqual(['b@example.net']);

    // The copy is there now: nothing more happens.
    expect(await check(t0 + 800_000)).toMatchObject({ missing: 0, reissued: 0 });
    // b@ is delivered and the copy acknowledged (gone): the shadow is settled and the message forgotten.
    await recordEvent(bus, 'LOST1', { type: 'Delivered', hop: SUBJECT, recipients: ['b@example.net'] }, 'test');
    await bus.jsm.streams.deleteMessage(STREAMS.deliver, reissued[0]!.entry.seq);
    expect(await check(t0 + 1_200_000)).toEqual({ checked: 1, settled: 1, missing: 0, reissued: 0 });
    expect(await redis.zscore(SHADOWS_KEY, 'LOST1')).toBeNull();
    expect(await shadow.entries('LOST1')).toEqual([]);
  });

  it('does not queue again an item whose message was poisoned, or whose recipients all have an outcome', async () => {
    const t0 = Date.now();
    const poisoned = await queue('POISON1', ['c@example.net']);
    await recordEvent(bus, 'POISON1', { type: 'Poisoned', stage: 'outbound-proxy', crashes: 2 }, 'test');
    await bus.jsm.streams.deleteMessage(STREAMS.deliver, poisoned);
    const failed = await queue('FAILED1', ['d@example.net']);
    await recordEvent(bus, 'FAILED1', { type: 'Failed', hop: SUBJECT, recipients: ['d@example.net'], reason: '550 5.1.1 no such user' }, 'test');
    await bus.jsm.streams.deleteMessage(STREAMS.deliver, failed);
    expect(await check(t0 + 400_000)).toEqual({ checked: 2, settled: 2, missing: 0, reissued: 0 });
    expect(await redis.zcard(SHADOWS_KEY)).toBe(0);
  });

  it('waits for a deferred recipient’s next attempt before it looks for the follow-up item', async () => {
    const t0 = Date.now();
    const seq = await queue('LATER1', ['e@example.net']);
    await recordEvent(
      bus,
      'LATER1',
      { type: 'Deferred', hop: SUBJECT, recipients: ['e@example.net'], reason: '451 4.4.1 later', nextAttempt: t0 + 600_000 },
      'test',
    );
    await bus.jsm.streams.deleteMessage(STREAMS.deliver, seq); // the original, acknowledged; the shadow did not follow the follow-up
    expect(await check(t0 + 400_000)).toMatchObject({ missing: 0, reissued: 0 });
    expect(await check(t0 + 700_000)).toMatchObject({ missing: 1, reissued: 0 });
    await redis.del(`transit:shadow:{LATER1}`);
    await shadow.forget('LATER1');
  });
});
