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
