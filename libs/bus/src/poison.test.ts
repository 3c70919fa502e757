import { afterAll, beforeAll, expect, it } from 'vitest';
import { Kvm } from '@nats-io/kv';
import type { JsMsg } from '@nats-io/jetstream';
import { startNats, waitFor, type NatsHandle } from '@transit/testkit';
import { connectBus, type Bus } from './connection.ts';
import { PoisonTracker } from './poison.ts';
import { INFLIGHT_BUCKET, ensureTopology } from './topology.ts';

let nats: NatsHandle;
let bus: Bus;
beforeAll(async () => {
  nats = await startNats({ jetstream: true });
  bus = await connectBus([nats.url], 'poison-test');
  await ensureTopology(bus, { replicas: 1 });
});
afterAll(async () => {
  await bus?.close();
  await nats?.cleanup();
});

it('does not count an attempt that ended while NATS was away as a death', async () => {
  const tracker = new PoisonTracker(bus, 'test@node:1');
  const msg = { info: { stream: 'MAIL_DELIVER' }, seq: 42 } as unknown as JsMsg;
  expect(await tracker.begin(msg)).toBe(0);
  await nats.stop();
  // The attempt ends (its handler gave up) while the marker cannot be cleared.
  await tracker.end(msg);
  await nats.restart();
  const kv = await new Kvm(bus.js).open(INFLIGHT_BUCKET);
  await waitFor(async () => ((await kv.get(PoisonTracker.key(msg)).catch(() => null))?.operation === 'PURGE' ? true : undefined), {
    timeoutMs: 20_000,
    what: 'the marker cleared once NATS is back',
  });
  expect(await tracker.begin(msg)).toBe(0);
});

it('counts a death only for a marker another process left: the same live process seeing its item again is no crash', async () => {
  const msg = { info: { stream: 'MAIL_DELIVER' }, seq: 43 } as unknown as JsMsg;
  const first = new PoisonTracker(bus, 'mailbox-delivery@node:100');
  const second = new PoisonTracker(bus, 'mailbox-delivery@node:200');
  expect(await first.begin(msg)).toBe(0);
  // The first process died mid-item: the next one to get it counts one death.
  expect(await second.begin(msg)).toBe(1);
  // Its own acknowledgement got lost in a failover and the item came back to it: still one.
  expect(await second.begin(msg)).toBe(1);
  expect(await second.begin(msg)).toBe(1);
  // A third process after the second died: two.
  expect(await new PoisonTracker(bus, 'mailbox-delivery@node:300').begin(msg)).toBe(2);
  await second.end(msg);
});
