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

/** A work item as JetStream hands it out, for the tracker: its stream, sequence and delivery count. */
const item = (seq: number, deliveryCount: number) => ({ info: { stream: 'MAIL_DELIVER', deliveryCount }, seq }) as unknown as JsMsg;

/** The items in every process's journal, by process. */
async function journals(): Promise<Array<{ node: string; items: Record<string, number> }>> {
  const kv = await new Kvm(bus.js).open(INFLIGHT_BUCKET);
  const found = [];
  for await (const k of await kv.keys('proc.>')) {
    const e = await kv.get(k);
    if (e?.operation === 'PUT' && e.length > 0) found.push(e.json<{ node: string; items: Record<string, number> }>());
  }
  return found;
}

it('does not count an attempt that ended while NATS was away as a death', async () => {
  const tracker = new PoisonTracker(bus, 'test@node:1');
  expect(await tracker.begin(item(42, 1))).toBe(0);
  expect((await journals()).some((j) => j.items['MAIL_DELIVER.42'] === 0)).toBe(true);
  await nats.stop();
  // The attempt ends (its handler gave up) while the journal cannot be written.
  await tracker.end(item(42, 1), true);
  await nats.restart();
  await waitFor(async () => ((await journals().catch(() => undefined))?.every((j) => !('MAIL_DELIVER.42' in j.items)) ? true : undefined), {
    timeoutMs: 20_000,
    what: 'the item out of the journal once NATS is back',
  });
  // Handed out again, to another process: no death.
  expect(await new PoisonTracker(bus, 'test@node:2').begin(item(42, 2))).toBe(0);
});

it('counts a death only for an item another process left: the same live process seeing its item again is no crash', async () => {
  const first = new PoisonTracker(bus, 'mailbox-delivery@node:100');
  const second = new PoisonTracker(bus, 'mailbox-delivery@node:200');
  expect(await first.begin(item(43, 1))).toBe(0);
  // The first process died mid-item: the next one to get it counts one death.
  expect(await second.begin(item(43, 2))).toBe(1);
  // Its own acknowledgement got lost in a failover and the item came back to it: still one.
  expect(await second.begin(item(43, 3))).toBe(1);
  expect(await second.begin(item(43, 4))).toBe(1);
  // A third process after the second died: two.
  expect(await new PoisonTracker(bus, 'mailbox-delivery@node:300').begin(item(43, 5))).toBe(2);
  await second.end(item(43, 5));
});

it('shares journal writes between items that begin together', async () => {
  const tracker = new PoisonTracker(bus, 'hub@node:400');
  const info = await bus.jsm.streams.info(`KV_${INFLIGHT_BUCKET}`);
  const firstSeq = info.state.last_seq;
  // Fifty items begin at once, as a busy worker's slots do.
  const begun = await Promise.all(Array.from({ length: 50 }, (_, i) => tracker.begin(item(1000 + i, 1))));
  expect(begun.every((c) => c === 0)).toBe(true);
  const writes = (await bus.jsm.streams.info(`KV_${INFLIGHT_BUCKET}`)).state.last_seq - firstSeq;
  // One write for the first item, one for the 49 that came while it was on the wire (the earlier tests' trackers may add a
  // settling write or two); one write per item would be 50.
  expect(writes).toBeGreaterThanOrEqual(1);
  expect(writes).toBeLessThanOrEqual(5);
  for (let i = 0; i < 50; i++) await tracker.end(item(1000 + i, 1));
  await waitFor(async () => ((await journals()).every((j) => !('MAIL_DELIVER.1000' in j.items)) ? true : undefined), {
    timeoutMs: 5000,
    what: 'the settled items out of the journal',
  });
  tracker.close();
});

it('reads the per-item markers of workers before the journals (a rolling upgrade)', async () => {
  const kv = await new Kvm(bus.js).open(INFLIGHT_BUCKET);
  await kv.put('MAIL_DELIVER.44', JSON.stringify({ crashes: 1, node: 'outbound-proxy@old:1', at: Date.now() }));
  expect(await new PoisonTracker(bus, 'outbound-proxy@new:2').begin(item(44, 3))).toBe(2);
});
