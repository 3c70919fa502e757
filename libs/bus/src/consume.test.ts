/*
 * The worker loop against a real nats-server: a work item left in the work queue below its
 * consumer's ack floor (what a nats-server 2.9 replica reset leaves behind, and the cause
 * of the chaos run's stuck remote mail) is handed out again; and health() tells a stalled
 * worker from one that waits on an item whose retry is scheduled.
 */
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { JsMsg } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNats, waitFor, type NatsHandle } from '@transit/testkit';
import { connectBus, type Bus } from './connection.ts';
import { REQUEUED_FROM_HEADER, ack, notYet, retry, startWorker, type Outcome, type Worker } from './consume.ts';
import { PoisonTracker } from './poison.ts';
import { CONSUMERS, INFLIGHT_BUCKET, STREAMS, UNLIMITED_ACK_PENDING, ensureTopology } from './topology.ts';

const enc = new TextEncoder();
const dec = new TextDecoder();

describe('a work item below its consumer’s ack floor', () => {
  let dir: string;
  let nats: NatsHandle;
  let bus: Bus | undefined;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'transit-stranded-'));
    nats = await startNats({ jetstream: true, storeDir: join(dir, 'nats') });
  });
  afterAll(async () => {
    await bus?.close();
    await nats?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  /**
   * The stream store and the consumer's state disagree the way a replica reset leaves them:
   * the stream's message blocks are put back as they were before the consumer handed out and
   * acknowledged its items, while the consumer keeps its ack floor. The items are in the work
   * queue, the consumer says nothing is pending, and no worker will ever be given them.
   */
  it('is handed out again, once, and leaves the stream', async () => {
    bus = await connectBus([nats.url], 'stranded-test');
    await ensureTopology(bus, { replicas: 1, ackWaitSeconds: 3 });
    await bus.js.publish('mail.deliver.remote.sink', enc.encode('stranded-1'));
    await bus.js.publish('mail.deliver.mailbox.db01', enc.encode('mailbox-1'));
    await bus.js.publish('mail.deliver.remote.sink', enc.encode('stranded-2'));
    await bus.close();
    await nats.stop();
    const msgs = join(dir, 'nats', 'jetstream', '$G', 'streams', STREAMS.deliver, 'msgs');
    await cp(msgs, join(dir, 'msgs-before'), { recursive: true });
    await nats.restart();
    bus = await connectBus([nats.url], 'stranded-test');
    // Another client takes and acknowledges both remote items: the consumer's ack floor passes them.
    const consumer = await bus.js.consumers.get(STREAMS.deliver, CONSUMERS.outboundProxy);
    for (const expected of ['stranded-1', 'stranded-2']) {
      const m = await consumer.next({ expires: 5000 });
      expect(m && dec.decode(m.data)).toBe(expected);
      await m!.ackAck();
    }
    await bus.close();
    await nats.stop();
    await rm(msgs, { recursive: true });
    await cp(join(dir, 'msgs-before'), msgs, { recursive: true });
    await nats.restart();
    bus = await connectBus([nats.url], 'stranded-test');
    const ci = await bus.jsm.consumers.info(STREAMS.deliver, CONSUMERS.outboundProxy);
    const si = await bus.jsm.streams.info(STREAMS.deliver);
    expect(ci.num_pending).toBe(0);
    expect(si.state.first_seq).toBeLessThanOrEqual(ci.ack_floor.stream_seq);
    expect(si.state.messages).toBe(3);

    const seen: Array<{ data: string; from: string | undefined }> = [];
    const worker = startWorker(bus, {
      stream: STREAMS.deliver,
      consumer: CONSUMERS.outboundProxy,
      concurrency: 4,
      decode: (d) => dec.decode(d),
      onError: () => undefined,
      checkEveryMs: 500,
      strandedGraceMs: 2000,
      handle: (data, msg) => {
        seen.push({ data, from: msg.headers?.get(REQUEUED_FROM_HEADER) || undefined });
        return Promise.resolve(ack);
      },
    });
    try {
      await waitFor(() => (seen.length >= 2 ? true : undefined), { timeoutMs: 20_000, what: 'both stranded items handed out again' });
      expect(seen.map((s) => s.data).sort()).toEqual(['stranded-1', 'stranded-2']);
      expect(seen.every((s) => s.from?.startsWith(`${STREAMS.deliver}:`))).toBe(true);
      // The originals are deleted and the copies acknowledged: only the mailbox item (another consumer's) is left.
      const left = bus;
      await waitFor(async () => ((await left.jsm.streams.info(STREAMS.deliver)).state.messages === 1 ? true : undefined), {
        timeoutMs: 10_000,
        what: 'the originals gone from the work queue',
      });
      expect(worker.health().requeued).toBe(2);
      await new Promise((r) => setTimeout(r, 2000));
      expect(seen).toHaveLength(2);
    } finally {
      await worker.stop();
    }
  }, 90_000);
});

describe('a stream that went back behind its consumer', () => {
  let dir: string;
  let nats: NatsHandle;
  let bus: Bus | undefined;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'transit-behind-'));
    nats = await startNats({ jetstream: true, storeDir: join(dir, 'nats') });
  });
  afterAll(async () => {
    await bus?.close();
    await nats?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  /**
   * What the 3,000-message chaos run (seed 4242) met after two NATS replicas reset at once: the stream came back at a
   * last sequence below the consumer's delivered position, while an unacknowledged item held the ack floor low. New items
   * took sequences between the ack floor and the delivered position: the consumer counted them as handed out, reported
   * nothing pending, and the ack-floor sweep did not see them. Here the stream's message blocks are put back as they were
   * after its first item, behind a consumer that had handed out 41 and acknowledged all but that first one.
   */
  it('re-creates the consumer, and every item left in the work queue is handed out', async () => {
    bus = await connectBus([nats.url], 'behind-test');
    await ensureTopology(bus, { replicas: 1, ackWaitSeconds: 3 });
    await bus.js.publish('mail.deliver.remote.sink', enc.encode('held'));
    await bus.close();
    await nats.stop();
    const msgs = join(dir, 'nats', 'jetstream', '$G', 'streams', STREAMS.deliver, 'msgs');
    await cp(msgs, join(dir, 'msgs-before'), { recursive: true });
    await nats.restart();
    bus = await connectBus([nats.url], 'behind-test');
    for (let i = 0; i < 40; i++) await bus.js.publish('mail.deliver.remote.sink', enc.encode(`old-${i}`));
    const consumer = await bus.js.consumers.get(STREAMS.deliver, CONSUMERS.outboundProxy);
    for (let i = 0; i <= 40; i++) {
      const m = await consumer.next({ expires: 5000 });
      expect(m).toBeTruthy();
      if (m!.seq !== 1) await m!.ackAck(); // the first stays unacknowledged: the ack floor stays below it
    }
    await bus.close();
    await nats.stop();
    await rm(msgs, { recursive: true });
    await cp(join(dir, 'msgs-before'), msgs, { recursive: true });
    await nats.restart();
    bus = await connectBus([nats.url], 'behind-test');
    for (const data of ['new-1', 'new-2']) await bus.js.publish('mail.deliver.remote.sink', enc.encode(data));
    const ci = await bus.jsm.consumers.info(STREAMS.deliver, CONSUMERS.outboundProxy);
    const si = await bus.jsm.streams.info(STREAMS.deliver);
    // The state the chaos run met: the new items lie above the ack floor and at or below the delivered position.
    expect(si.state.last_seq).toBe(3);
    expect(ci.delivered.stream_seq).toBe(41);
    expect(ci.ack_floor.stream_seq).toBe(0);
    expect(ci.num_pending).toBe(0);

    const seen: string[] = [];
    const worker = startWorker(bus, {
      stream: STREAMS.deliver,
      consumer: CONSUMERS.outboundProxy,
      concurrency: 4,
      decode: (d) => dec.decode(d),
      onError: () => undefined,
      checkEveryMs: 500,
      strandedGraceMs: 2000,
      handle: (data) => {
        seen.push(data);
        return Promise.resolve(ack);
      },
    });
    try {
      await waitFor(() => (seen.includes('new-1') && seen.includes('new-2') && seen.includes('held') ? true : undefined), {
        timeoutMs: 20_000,
        what: 'the items the consumer had counted as handed out',
      });
      expect(worker.health().recreated).toBe(1);
      const left = bus;
      await waitFor(async () => ((await left.jsm.streams.info(STREAMS.deliver)).state.messages === 0 ? true : undefined), {
        timeoutMs: 10_000,
        what: 'the work queue empty',
      });
      // The re-created consumer keeps the configuration the topology gave it.
      const after = await bus.jsm.consumers.info(STREAMS.deliver, CONSUMERS.outboundProxy);
      expect(after.config.filter_subject).toBe('mail.deliver.remote.>');
      expect(after.config.ack_wait).toBe(ci.config.ack_wait);
      expect(after.config.max_ack_pending).toBe(ci.config.max_ack_pending);
      // Once each, and not again: the consumer is not re-created a second time.
      await new Promise((r) => setTimeout(r, 2000));
      expect([...seen].sort()).toEqual(['held', 'new-1', 'new-2']);
      expect(worker.health().recreated).toBe(1);
    } finally {
      await worker.stop();
    }
  }, 90_000);
});

describe('an item its idle consumer no longer hands out', () => {
  let nats: NatsHandle;
  let bus: Bus | undefined;
  beforeAll(async () => {
    nats = await startNats({ jetstream: true });
  });
  afterAll(async () => {
    await bus?.close();
    await nats?.cleanup();
  });

  /**
   * The seed 99 run (3,000 messages) ended with 35 items in MAIL_DELIVER above both consumers' ack floors while the
   * consumers reported nothing pending and nothing in flight, and handed none of them out: their acks had been lost with
   * the consumers' replicated state. That state comes only from replica resets; here the same observable state (an item
   * above the ack floor, nothing pending, nothing in flight, never handed out again) is made with the consumer's
   * max_deliver of 1 (Transit's consumers have none) and a first attempt that puts the item back.
   */
  it('re-creates the consumer, and the item is handed out again, once', async () => {
    bus = await connectBus([nats.url], 'unseen-test');
    await ensureTopology(bus, { replicas: 1, ackWaitSeconds: 3 });
    await bus.jsm.consumers.update(STREAMS.deliver, CONSUMERS.mailboxDelivery, { max_deliver: 1 });
    await bus.js.publish('mail.deliver.mailbox.db01', enc.encode('kept'));
    const seen: string[] = [];
    const worker = startWorker(bus, {
      stream: STREAMS.deliver,
      consumer: CONSUMERS.mailboxDelivery,
      concurrency: 2,
      decode: (d) => dec.decode(d),
      onError: () => undefined,
      checkEveryMs: 500,
      strandedGraceMs: 2000,
      handle: (data) => {
        seen.push(data);
        return Promise.resolve(seen.length === 1 ? retry(0) : ack);
      },
    });
    try {
      const b = bus;
      // The state: the item is in the stream, above the ack floor, and the consumer has nothing for any worker.
      const ci = await waitFor(
        async () => {
          const c = await b.jsm.consumers.info(STREAMS.deliver, CONSUMERS.mailboxDelivery);
          return seen.length === 1 && c.num_pending === 0 && c.num_ack_pending === 0 ? c : undefined;
        },
        { timeoutMs: 10_000, what: 'an idle consumer after the first attempt' },
      );
      expect(ci.ack_floor.stream_seq).toBe(0);
      expect((await b.jsm.streams.info(STREAMS.deliver)).state.messages).toBe(1);
      await waitFor(() => (seen.length === 2 ? true : undefined), { timeoutMs: 15_000, what: 'the item handed out again' });
      expect(worker.health().recreated).toBe(1);
      await waitFor(async () => ((await b.jsm.streams.info(STREAMS.deliver)).state.messages === 0 ? true : undefined), {
        timeoutMs: 10_000,
        what: 'the work queue empty',
      });
      await new Promise((r) => setTimeout(r, 2000));
      expect(seen).toEqual(['kept', 'kept']);
      expect(worker.health().recreated).toBe(1);
    } finally {
      await worker.stop();
    }
  }, 60_000);
});

describe('worker health', () => {
  let nats: NatsHandle;
  let bus: Bus;
  beforeAll(async () => {
    nats = await startNats({ jetstream: true });
    bus = await connectBus([nats.url], 'health-test');
    await ensureTopology(bus, { replicas: 1, ackWaitSeconds: 3 });
  });
  afterAll(async () => {
    await bus?.close();
    await nats?.cleanup();
  });

  const run = async (subject: string, concurrency: number, handle: (data: string) => Promise<Outcome>, body: (w: Worker) => Promise<void>) => {
    const consumer = subject.startsWith('mail.deliver.remote') ? CONSUMERS.outboundProxy : CONSUMERS.mailboxDelivery;
    const worker = startWorker(bus, {
      stream: STREAMS.deliver,
      consumer,
      concurrency,
      decode: (d) => dec.decode(d),
      onError: () => undefined,
      checkEveryMs: 300,
      stallAfterMs: 3000,
      handle,
    });
    try {
      await body(worker);
    } finally {
      await worker.stop();
      await bus.jsm.streams.purge(STREAMS.deliver);
    }
  };
  const after = (ms: number) => new Promise((r) => setTimeout(r, ms));

  it('is not stalled while the only item waits for its scheduled retry', async () => {
    await run(
      'mail.deliver.remote.sink',
      4,
      () => Promise.resolve(notYet(60_000)),
      async (w) => {
        await bus.js.publish('mail.deliver.remote.sink', enc.encode('later'));
        await waitFor(() => (w.health().scheduled === 1 ? true : undefined), { timeoutMs: 5000, what: 'the item put back as not due' });
        await after(5000);
        expect(w.health()).toMatchObject({ stalled: false, scheduled: 1, ackPending: 1 });
      },
    );
  });

  it('is stalled when every attempt fails', async () => {
    await run(
      'mail.deliver.remote.sink',
      4,
      () => Promise.resolve(retry(200)),
      async (w) => {
        await bus.js.publish('mail.deliver.remote.sink', enc.encode('fails'));
        await waitFor(() => (w.health().stalled ? true : undefined), { timeoutMs: 10_000, what: 'a stall' });
        expect(w.health().reason).toBe('failing');
      },
    );
  });

  it('is stalled when every slot hangs while work waits, and recovers when it moves', async () => {
    let release!: () => void;
    const hung = new Promise<void>((r) => (release = r));
    await run(
      'mail.deliver.mailbox.db01',
      1,
      async () => {
        await hung;
        return ack;
      },
      async (w) => {
        await bus.js.publish('mail.deliver.mailbox.db01', enc.encode('hangs'));
        await bus.js.publish('mail.deliver.mailbox.db01', enc.encode('waits'));
        await waitFor(() => (w.health().stalled ? true : undefined), { timeoutMs: 10_000, what: 'a stall' });
        expect(w.health()).toMatchObject({ reason: 'busy', inFlight: 1 });
        release();
        await waitFor(() => (!w.health().stalled ? true : undefined), { timeoutMs: 5000, what: 'progress again' });
      },
    );
  });
});

describe('an item whose next attempt is scheduled', () => {
  let nats: NatsHandle;
  let bus: Bus;
  beforeAll(async () => {
    nats = await startNats({ jetstream: true });
    bus = await connectBus([nats.url], 'due-test');
    await ensureTopology(bus, { replicas: 1, ackWaitSeconds: 3 });
  });
  afterAll(async () => {
    await bus?.close();
    await nats?.cleanup();
  });

  it('waits without a poison marker until it is due, then is handled once', async () => {
    /** A real tracker that counts the attempts it is told of. */
    class CountingTracker extends PoisonTracker {
      begun = 0;
      override begin(msg: JsMsg): Promise<number> {
        this.begun++;
        return super.begin(msg);
      }
    }
    const tracker = new CountingTracker(bus, 'due-test');
    const due = Date.now() + 1500;
    await bus.js.publish('mail.deliver.remote.later', enc.encode('later'));
    const handled: number[] = [];
    const worker = startWorker(bus, {
      stream: STREAMS.deliver,
      consumer: CONSUMERS.outboundProxy,
      concurrency: 2,
      decode: (d) => dec.decode(d),
      onError: () => undefined,
      dueIn: () => due - Date.now(),
      poison: { tracker, threshold: 2, onParked: () => Promise.resolve() },
      handle: (_data, msg) => {
        handled.push(msg.info.deliveryCount);
        return Promise.resolve(ack);
      },
    });
    try {
      // Before it is due: put back, never begun, no marker in the bucket.
      await new Promise((r) => setTimeout(r, 700));
      expect(handled).toEqual([]);
      expect(tracker.begun).toBe(0);
      const kv = await new Kvm(bus.js).open(INFLIGHT_BUCKET);
      const keys: string[] = [];
      for await (const k of await kv.keys()) keys.push(k);
      expect(keys).toEqual([]);
      await waitFor(() => (handled.length ? true : undefined), { timeoutMs: 10_000, what: 'the item handled once due' });
      expect(Date.now()).toBeGreaterThanOrEqual(due);
      // Handled on its second delivery, with one attempt begun.
      expect(handled).toEqual([2]);
      expect(tracker.begun).toBe(1);
    } finally {
      await worker.stop();
      await bus.jsm.streams.purge(STREAMS.deliver);
    }
  }, 30_000);

  /**
   * A deferred item waits as an unacknowledged item put back with a delay. Under a consumer limit on unacknowledged items
   * (1,000 until 2026-12-07), that many deferred items left the consumer nothing to hand out: one unreachable destination
   * with 1,000 messages queued stopped every other remote delivery.
   */
  it('does not keep a due item waiting behind more deferred items than the old limit of 1,000', async () => {
    // A consumer from before keeps its limit until ensureTopology brings it to none.
    await bus.jsm.consumers.update(STREAMS.deliver, CONSUMERS.outboundProxy, { max_ack_pending: 1000 });
    await ensureTopology(bus, { replicas: 1, ackWaitSeconds: 3 });
    expect((await bus.jsm.consumers.info(STREAMS.deliver, CONSUMERS.outboundProxy)).config.max_ack_pending).toBe(UNLIMITED_ACK_PENDING);
    const deferred = 1100;
    await Promise.all(Array.from({ length: deferred }, (_, i) => bus.js.publish('mail.deliver.remote.down', enc.encode(`later-${i}`))));
    const handled: string[] = [];
    let putBack = 0;
    const worker = startWorker(bus, {
      stream: STREAMS.deliver,
      consumer: CONSUMERS.outboundProxy,
      concurrency: 8,
      decode: (d) => dec.decode(d),
      onError: () => undefined,
      dueIn: (item: string) => (item.startsWith('later-') ? (putBack++, 10 * 60_000) : 0),
      handle: (item) => {
        handled.push(item);
        return Promise.resolve(ack);
      },
    });
    try {
      // Every deferred item has been handed out and put back: all of them wait unacknowledged.
      await waitFor(async () => ((await bus.jsm.consumers.info(STREAMS.deliver, CONSUMERS.outboundProxy)).num_ack_pending >= deferred ? true : undefined), {
        timeoutMs: 30_000,
        what: `${deferred} deferred items put back`,
      });
      expect(putBack).toBeGreaterThanOrEqual(deferred);
      await bus.js.publish('mail.deliver.remote.up', enc.encode('due'));
      await waitFor(() => (handled.includes('due') ? true : undefined), { timeoutMs: 20_000, what: 'the due item handled' });
      expect(handled).toEqual(['due']);
    } finally {
      await worker.stop();
      await bus.jsm.streams.purge(STREAMS.deliver);
    }
  }, 90_000);
});
