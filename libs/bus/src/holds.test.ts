import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNats, type NatsHandle } from '@transit/testkit';
import { connectBus, type Bus } from './connection.ts';
import { HoldWatcher, decideHold, holdKey, openHolds, type Hold } from './holds.ts';
import { ensureTopology } from './topology.ts';

const REMOTE = 'mail.deliver.remote.internet_fabrikam_test';

describe('decideHold', () => {
  const holds = new Map<string, Hold>([
    [holdKey.queue(REMOTE), { state: 'Suspended', at: 1 }],
    [holdKey.message('m1'), { state: 'Suspended', at: 1 }],
    [holdKey.message('m2'), { state: 'Removed', at: 1 }],
  ]);
  it.each([
    [REMOTE, 'm0', 'suspended'],
    ['mail.deliver.mailbox.db01', 'm0', undefined],
    ['mail.deliver.mailbox.db01', 'm1', 'suspended'],
    // Removal wins over any suspension: the item is dropped, not kept waiting.
    [REMOTE, 'm2', 'removed'],
  ])('%s %s → %s', (subject, id, decision) => expect(decideHold(holds, subject, id)).toBe(decision));
});

describe('HoldWatcher against JetStream', () => {
  let nats: NatsHandle;
  let bus: Bus;
  beforeAll(async () => {
    nats = await startNats({ jetstream: true });
    bus = await connectBus([nats.url], 'holds-test', 'once');
    await ensureTopology(bus, { replicas: 1 });
  });
  afterAll(async () => {
    await bus?.close();
    await nats?.stop();
  });

  it('loads the holds present at start, then follows puts and deletes', async () => {
    const kv = await openHolds(bus);
    await kv.put(holdKey.message('early'), JSON.stringify({ state: 'Suspended', at: 1 } satisfies Hold));
    const watcher = new HoldWatcher(bus, (err) => {
      throw err;
    });
    expect(await watcher.check(REMOTE, 'early')).toBe('suspended');
    await kv.put(holdKey.queue(REMOTE), JSON.stringify({ state: 'Suspended', at: 2 } satisfies Hold));
    await expect.poll(() => watcher.check(REMOTE, 'other')).toBe('suspended');
    await kv.delete(holdKey.queue(REMOTE));
    await kv.put(holdKey.message('early'), JSON.stringify({ state: 'Removed', at: 3 } satisfies Hold));
    await expect.poll(() => watcher.check(REMOTE, 'other')).toBeUndefined();
    await expect.poll(() => watcher.check(REMOTE, 'early')).toBe('removed');
  });
});
