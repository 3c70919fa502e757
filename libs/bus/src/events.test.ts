import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encode } from '@msgpack/msgpack';
import { headers } from '@nats-io/transport-node';
import { startNats, type NatsHandle } from '@transit/testkit';
import { connectBus, type Bus } from './connection.ts';
import {
  admit,
  applyEvent,
  emptyState,
  expandEvent,
  foldMessage,
  loadMessage,
  loadMessageEvents,
  recordEvent,
  type MessageEvent,
  type MessageState,
  type Route,
  type StoredEvent,
} from './events.ts';
import { STREAMS, SUBJECTS, ensureTopology } from './topology.ts';

let seq = 0;
const stored = (event: MessageEvent): StoredEvent => ({ ...event, at: 1000 + seq, node: 'n1', seq: ++seq });
const received: MessageEvent = {
  type: 'Received',
  source: 'SMTP',
  connector: 'Default Frontend',
  sender: 's@example.org',
  recipients: ['a@contoso.test', 'B@fabrikam.test'],
  size: 10,
};

describe('foldMessage', () => {
  it('folds a message through routing, a deferral and delivery', () => {
    const state = foldMessage('m1', [
      stored(received),
      stored({ type: 'Routed', hop: 'mailbox:db1', recipients: ['a@contoso.test'] }),
      stored({ type: 'Routed', hop: 'remote:fabrikam.test', recipients: ['b@fabrikam.test'] }),
      stored({ type: 'Delivered', hop: 'mailbox:db1', recipients: ['a@contoso.test'] }),
      stored({ type: 'Deferred', hop: 'remote:fabrikam.test', recipients: ['b@fabrikam.test'], reason: '451 4.3.0 try later', nextAttempt: 5000 }),
    ]);
    expect(state.status).toBe('Retry');
    expect(state.received?.sender).toBe('s@example.org');
    expect(state.recipients['a@contoso.test']?.status).toBe('Delivered');
    // Addresses are matched without case; the first spelling is kept.
    expect(state.recipients['b@fabrikam.test']).toMatchObject({
      address: 'B@fabrikam.test',
      status: 'Deferred',
      deferrals: 1,
      lastError: '451 4.3.0 try later',
      nextAttempt: 5000,
    });
    const done = foldMessage('m1', [stored(received), stored({ type: 'Delivered', hop: 'x', recipients: ['a@contoso.test', 'b@fabrikam.test'] })]);
    expect(done.status).toBe('Delivered');
  });

  it('routes with Submitted as with one Routed per hop, and a late Routed changes nothing', () => {
    const routes: Route[] = [
      { hop: 'mailbox:db1', recipients: ['a@contoso.test'] },
      { hop: 'smtp:Internet:fabrikam.test', recipients: ['b@fabrikam.test'], connector: 'Internet' },
    ];
    const submitted: MessageEvent = { type: 'Submitted', source: 'QUEUE', recipients: ['a@contoso.test', 'b@fabrikam.test'], resolved: [] };
    const together = foldMessage('m1b', [stored(received), stored({ ...submitted, routes })]);
    const apart = foldMessage('m1b', [stored(received), stored(submitted), ...routes.map((r) => stored({ type: 'Routed', ...r }))]);
    expect(together.recipients).toEqual(apart.recipients);
    expect(together.recipients['b@fabrikam.test']).toMatchObject({ status: 'Routed', hop: 'smtp:Internet:fabrikam.test' });
    // A hub that got the submit item again writes Submitted once; its Routed for recipients already routed is not admitted.
    expect(admit(together, { ...submitted, routes })).toBeUndefined();
    expect(admit(together, { type: 'Routed', ...routes[0]! })).toBeUndefined();
    // One whose Submitted came from a hub before routes came with it: its Pending recipients still get their Routed.
    const old = foldMessage('m1c', [stored(received), stored(submitted)]);
    expect(admit(old, { type: 'Routed', ...routes[1]! })).toEqual({ type: 'Routed', ...routes[1]! });
  });

  it('folds a Submitted that carries its Reception as a Received followed by it, once', () => {
    const { type: _type, ...reception } = received;
    const withReception: MessageEvent = {
      type: 'Submitted',
      source: 'QUEUE',
      recipients: ['a@contoso.test', 'b@fabrikam.test'],
      resolved: [],
      routes: [{ hop: 'mailbox:db1', recipients: ['a@contoso.test'] }],
      received: { ...reception, queuedAt: 900, acceptedBy: 'frontend-1' },
    };
    const one = stored(withReception);
    const state = foldMessage('m1d', [one]);
    // The Reception is the accepting node's, dated when the submit queue took the message; Submitted is the hub's.
    expect(state.received).toMatchObject({ at: 900, node: 'frontend-1', sender: 's@example.org', connector: 'Default Frontend' });
    expect(state.submitted).toEqual({ at: one.at, node: 'n1' });
    expect(state.events).toBe(1);
    expect(Object.keys(state.recipients).sort()).toEqual(['a@contoso.test', 'b@fabrikam.test']);
    expect(state.recipients['a@contoso.test']?.status).toBe('Routed');
    // The same as a Received event and a Submitted apart, recipient for recipient.
    const { received: _r, ...plain } = withReception;
    expect(foldMessage('m1d', [stored({ ...received, queuedAt: 900 }), stored(plain)]).recipients).toEqual(state.recipients);
    // A Received already recorded (an older frontend wrote it) is not recorded again: the Reception is left out.
    const before = foldMessage('m1e', [stored(received)]);
    expect(admit(before, withReception)).toEqual(plain);
    expect(admit(emptyState('m1f'), withReception)).toEqual(withReception);
    // Tracking reads it as the two events: the Received first, with the accepting node and the queue's time.
    const [r, s] = expandEvent(one);
    expect(r).toMatchObject({ type: 'Received', at: 900, node: 'frontend-1', seq: one.seq, sender: 's@example.org' });
    expect(r).not.toHaveProperty('acceptedBy');
    expect(s).toEqual({ ...plain, at: one.at, node: 'n1', seq: one.seq });
    expect(expandEvent(stored(plain))).toHaveLength(1);
  });

  it('tells partial failure, poison and resubmission apart', () => {
    const partial = foldMessage('m2', [
      stored(received),
      stored({ type: 'Delivered', hop: 'h', recipients: ['a@contoso.test'] }),
      stored({ type: 'Failed', hop: 'h', recipients: ['b@fabrikam.test'], reason: '550 5.1.1 unknown' }),
    ]);
    expect(partial.status).toBe('PartiallyFailed');
    const poisoned = foldMessage('m3', [stored(received), stored({ type: 'Poisoned', stage: 'categorizer', crashes: 2 })]);
    expect(poisoned.status).toBe('Poisoned');
    const resubmitted = foldMessage('m4', [
      stored(received),
      stored({ type: 'Delivered', hop: 'h', recipients: ['a@contoso.test', 'b@fabrikam.test'] }),
      stored({ type: 'Resubmitted', source: 'SAFETYNET', recipients: ['a@contoso.test'] }),
    ]);
    expect(resubmitted).toMatchObject({ status: 'Active', resubmissions: 1 });
    expect(resubmitted.recipients['a@contoso.test']?.status).toBe('Resubmitted');
  });
});

describe('Submitted', () => {
  const submitted: MessageEvent = {
    type: 'Submitted',
    source: 'QUEUE',
    recipients: ['alice@contoso.test', 'b@fabrikam.test'],
    resolved: [{ address: 'alice@contoso.test', original: 'A@contoso.test' }],
  };
  it('replaces a resolved alias by its address, so the message can still end Delivered', () => {
    const state = foldMessage('m5', [
      stored(received),
      stored(submitted),
      stored({ type: 'Delivered', hop: 'h', recipients: ['alice@contoso.test', 'b@fabrikam.test'] }),
    ]);
    expect(Object.keys(state.recipients).sort()).toEqual(['alice@contoso.test', 'b@fabrikam.test']);
    expect(state.status).toBe('Delivered');
    expect(state.submitted).toEqual({ at: expect.any(Number) as number, node: 'n1' });
  });
  it('does not bring a resolved alias back when Received lands after Submitted', () => {
    const late = foldMessage('m5b', [
      stored(submitted),
      stored(received),
      stored({ type: 'Delivered', hop: 'h', recipients: ['alice@contoso.test', 'b@fabrikam.test'] }),
    ]);
    expect(Object.keys(late.recipients).sort()).toEqual(['alice@contoso.test', 'b@fabrikam.test']);
    expect(late.status).toBe('Delivered');
  });
  it('is recorded once per message, also when a redelivered submit item is categorized again', () => {
    const once = foldMessage('m6', [stored(received), stored(submitted)]);
    expect(admit(once, submitted)).toBeUndefined();
    expect(admit(foldMessage('m7', [stored(received)]), submitted)).toEqual(submitted);
    // Categorization may win the race with the Received append (which follows the submit queue's ack).
    expect(admit(foldMessage('m8', [stored(submitted)]), received)).toEqual(received);
  });
  it('keeps the fields tracking searches by', () => {
    const state = foldMessage('m9', [stored({ ...received, messageId: '<x@example.org>', subject: 'Hello' })]);
    expect(state.received).toMatchObject({ messageId: '<x@example.org>', subject: 'Hello', sender: 's@example.org' });
  });
});

describe('a fold under racing appends (nats-server#4320: clustered streams before 2.10)', () => {
  it('never lets a late Routed, Deferred or Failed take back a delivery', () => {
    const state = foldMessage('race', [
      stored(received),
      stored({ type: 'Delivered', hop: 'h', recipients: ['a@contoso.test'] }),
      stored({ type: 'Routed', hop: 'h', recipients: ['a@contoso.test'] }),
      stored({ type: 'Deferred', hop: 'h', recipients: ['a@contoso.test'], reason: '451', nextAttempt: 1 }),
      stored({ type: 'Failed', hop: 'h', recipients: ['a@contoso.test'], reason: '550' }),
    ]);
    expect(state.recipients['a@contoso.test']?.status).toBe('Delivered');
    // And a Delivered racing an earlier Failed wins: the mail did arrive.
    const late = foldMessage('race2', [
      stored(received),
      stored({ type: 'Failed', hop: 'h', recipients: ['a@contoso.test'], reason: '550' }),
      stored({ type: 'Delivered', hop: 'h', recipients: ['a@contoso.test'] }),
    ]);
    expect(late.recipients['a@contoso.test']?.status).toBe('Delivered');
  });
});

describe('admit', () => {
  const state = foldMessage('m', [stored(received), stored({ type: 'Delivered', hop: 'h', recipients: ['a@contoso.test'] })]);
  it('never records a second outcome for a recipient', () => {
    expect(admit(state, { type: 'Delivered', hop: 'h', recipients: ['a@contoso.test'] })).toBeUndefined();
    expect(admit(state, { type: 'Failed', hop: 'h', recipients: ['A@contoso.test', 'b@fabrikam.test'], reason: 'x' })).toEqual({
      type: 'Failed',
      hop: 'h',
      recipients: ['b@fabrikam.test'],
      reason: 'x',
    });
    expect(admit(state, { type: 'Deferred', hop: 'h', recipients: ['a@contoso.test'], reason: 'x', nextAttempt: 1 })).toBeUndefined();
  });
  it('records Received, Poisoned and each kind of notification once', () => {
    expect(admit(state, received)).toBeUndefined();
    const withDsn = foldMessage('m', [stored(received), stored({ type: 'DsnGenerated', kind: 'delay', recipients: ['a@contoso.test'], dsnId: 'd1' })]);
    expect(admit(withDsn, { type: 'DsnGenerated', kind: 'delay', recipients: ['a@contoso.test'], dsnId: 'd2' })).toBeUndefined();
    expect(admit(withDsn, { type: 'DsnGenerated', kind: 'failure', recipients: ['a@contoso.test'], dsnId: 'd3' })).toBeDefined();
    const poisoned = foldMessage('m', [stored({ type: 'Poisoned', stage: 's', crashes: 2 })]);
    expect(admit(poisoned, { type: 'Poisoned', stage: 's', crashes: 3 })).toBeUndefined();
  });
  it('lets a resubmitted recipient be delivered again', () => {
    const again = foldMessage('m', [
      stored(received),
      stored({ type: 'Delivered', hop: 'h', recipients: ['a@contoso.test'] }),
      stored({ type: 'Resubmitted', source: 'SAFETYNET', recipients: ['a@contoso.test'] }),
    ]);
    expect(admit(again, { type: 'Delivered', hop: 'h', recipients: ['a@contoso.test'] })).toBeDefined();
  });
});

describe('administrator actions', () => {
  const routed = [stored(received), stored({ type: 'Routed', hop: 'smtp:Internet:fabrikam.test', recipients: ['a@contoso.test', 'b@fabrikam.test'] })];
  it('folds Suspended and Resumed into the message status, and admits each only when it changes something', () => {
    const suspended = foldMessage('m', [...routed, stored({ type: 'Suspended', source: 'ADMIN', actor: 'root@admin1' })]);
    expect(suspended.status).toBe('Suspended');
    expect(suspended.suspended).toMatchObject({ actor: 'root@admin1' });
    expect(admit(suspended, { type: 'Suspended', source: 'ADMIN' })).toBeUndefined();
    expect(admit(suspended, { type: 'Resumed', source: 'ADMIN' })).toBeDefined();
    const resumed = foldMessage('m', [...routed, stored({ type: 'Suspended', source: 'ADMIN' }), stored({ type: 'Resumed', source: 'ADMIN' })]);
    expect(resumed.status).toBe('Active');
    expect(resumed.suspended).toBeUndefined();
    expect(admit(resumed, { type: 'Resumed', source: 'ADMIN' })).toBeUndefined();
    // A message already delivered has nothing to suspend.
    const done = foldMessage('m', [stored(received), stored({ type: 'Delivered', hop: 'h', recipients: ['a@contoso.test', 'b@fabrikam.test'] })]);
    expect(admit(done, { type: 'Suspended', source: 'ADMIN' })).toBeUndefined();
  });

  it('makes removed recipients final, keeps delivered ones, and removes once', () => {
    const partly = foldMessage('m', [
      ...routed,
      stored({ type: 'Delivered', hop: 'mailbox:db1', recipients: ['a@contoso.test'] }),
      stored({ type: 'Suspended', source: 'ADMIN' }),
    ]);
    const removal: MessageEvent = {
      type: 'Removed',
      source: 'ADMIN',
      recipients: ['a@contoso.test', 'b@fabrikam.test'],
      withNdr: true,
      reason: 'removed by administrator',
    };
    const admitted = admit(partly, removal);
    expect(admitted).toEqual({ ...removal, recipients: ['b@fabrikam.test'] });
    const removed = foldMessage('m', [
      ...routed,
      stored({ type: 'Delivered', hop: 'mailbox:db1', recipients: ['a@contoso.test'] }),
      stored({ type: 'Suspended', source: 'ADMIN' }),
      stored(admitted!),
    ]);
    expect(removed.recipients['b@fabrikam.test']).toMatchObject({ status: 'Failed', lastError: 'removed by administrator' });
    expect(removed.recipients['a@contoso.test']?.status).toBe('Delivered');
    expect(removed.status).toBe('PartiallyFailed');
    expect(removed.removed).toMatchObject({ withNdr: true });
    expect(removed.suspended).toBeUndefined();
    expect(admit(removed, removal)).toBeUndefined();
    // A delivery racing the removal is not recorded after it.
    expect(admit(removed, { type: 'Delivered', hop: 'remote', recipients: ['b@fabrikam.test'] })).toBeUndefined();
  });
});

describe('recordEvent against JetStream', () => {
  let nats: NatsHandle;
  let bus: Bus;
  beforeAll(async () => {
    nats = await startNats({ jetstream: true });
    bus = await connectBus([nats.url], 'events-test', 'once');
    await ensureTopology(bus, { replicas: 1 });
  });
  afterAll(async () => {
    await bus?.close();
    await nats?.stop();
  });

  it('lets exactly one of two racing workers record an outcome for a recipient', async () => {
    for (let round = 0; round < 10; round++) {
      const id = `race-${round}`;
      await recordEvent(bus, id, received, 'n0');
      const results = await Promise.all([
        recordEvent(bus, id, { type: 'Delivered', hop: 'h', recipients: ['a@contoso.test'] }, 'n1'),
        recordEvent(bus, id, { type: 'Failed', hop: 'h', recipients: ['a@contoso.test'], reason: '550 5.0.0 no' }, 'n2'),
        recordEvent(bus, id, { type: 'Delivered', hop: 'h', recipients: ['a@contoso.test'] }, 'n3'),
      ]);
      expect(results.filter(Boolean)).toHaveLength(1);
      const events = await loadMessageEvents(bus, id);
      expect(events.map((e) => e.type)).toHaveLength(2);
      expect(events.every((e, i) => i === 0 || e.seq > events[i - 1]!.seq)).toBe(true);
      expect(['Delivered', 'Failed']).toContain((await loadMessage(bus, id)).recipients['a@contoso.test']?.status);
    }
  });

  it('reads a message in one request from the snapshot its last event carries, equal to the fold of its log', async () => {
    const id = 'snapshot';
    const known: { state?: MessageState } = { state: emptyState(id) };
    await recordEvent(bus, id, received, 'n0', known);
    await recordEvent(bus, id, { type: 'Routed', hop: 'h', recipients: ['a@contoso.test'] }, 'n1', known);
    // A wrong guess about the state (stale: before Routed) is refused by JetStream and corrected.
    await recordEvent(bus, id, { type: 'Delivered', hop: 'h', recipients: ['a@contoso.test'] }, 'n2', {
      state: foldMessage(id, (await loadMessageEvents(bus, id)).slice(0, 1)),
    });
    const events = await loadMessageEvents(bus, id);
    expect(events.map((e) => e.type)).toEqual(['Received', 'Routed', 'Delivered']);
    expect(events.some((e) => 'state' in e || 'prev' in e)).toBe(false);
    const state = await loadMessage(bus, id);
    expect(state).toEqual(foldMessage(id, events));
    expect(known.state?.lastSeq).toBe(events[1]!.seq);
  });

  it('does not trust a snapshot written on a stale state (what a clustered 2.9 server can let through)', async () => {
    const id = 'stale-snapshot';
    await recordEvent(bus, id, received, 'n0');
    const afterReceived = await loadMessage(bus, id);
    await recordEvent(bus, id, { type: 'Delivered', hop: 'h', recipients: ['a@contoso.test'] }, 'n1');
    // A racing append accepted against the state after Received: its snapshot lacks the delivery.
    const stale = applyEvent(afterReceived, { type: 'Routed', hop: 'h', recipients: ['a@contoso.test'], at: 1, node: 'n2', seq: afterReceived.lastSeq + 1 });
    const { id: _id, lastSeq: _lastSeq, ...snapshot } = stale;
    await bus.js.publish(
      SUBJECTS.event(id),
      encode({ type: 'Routed', hop: 'h', recipients: ['a@contoso.test'], at: 1, node: 'n2', state: snapshot, prev: afterReceived.lastSeq }),
    );
    const state = await loadMessage(bus, id);
    expect(state.recipients['a@contoso.test']?.status).toBe('Delivered');
    expect(state).toEqual(foldMessage(id, await loadMessageEvents(bus, id)));
  });

  it('refuses an append that names a stale last sequence', async () => {
    const id = 'stale';
    await recordEvent(bus, id, received, 'n0');
    const hdrs = headers();
    hdrs.set('Nats-Expected-Last-Subject-Sequence', '0');
    await expect(bus.js.publish(SUBJECTS.event(id), new Uint8Array([0xc0]), { headers: hdrs, expect: { streamName: STREAMS.events } })).rejects.toThrow(
      /wrong last sequence/,
    );
    expect(await loadMessageEvents(bus, id)).toHaveLength(1);
  });

  it('reads only the message’s own events, across other messages’ events', async () => {
    await recordEvent(bus, 'one', received, 'n0');
    await recordEvent(bus, 'two', received, 'n0');
    await recordEvent(bus, 'one', { type: 'Routed', hop: 'h', recipients: ['a@contoso.test'] }, 'n0');
    expect((await loadMessageEvents(bus, 'one')).map((e) => e.type)).toEqual(['Received', 'Routed']);
    expect((await loadMessage(bus, 'never-seen')).status).toBe('Unknown');
  });
});
