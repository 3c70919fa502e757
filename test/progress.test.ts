/*
 * Work keeps moving after the faults of the chaos run, and a role that stops moving says so.
 * - A worker's pull requests live on its consumer's leader; when the leader moves, they are
 *   gone. Today's nats.js notices after two missed idle heartbeats (30 to 45 s with its
 *   defaults); the worker must be handed new work within seconds.
 * - An outbound proxy that cannot make progress on waiting work (here: Redis is gone, so no
 *   delivery may start) fails /readyz and exports transit_worker_stalled 1, and recovers
 *   when Redis is back; one that only waits on a scheduled retry stays ready.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONSUMERS, STREAMS, ack, connectBus, ensureTopology, startWorker, type Bus } from '@transit/bus';
import { startLocalCluster, type LocalCluster } from '@transit/cluster';
import { parseExposition, sampleSum } from '@transit/metrics';
import { freeClusterPorts, smtpTranscript, waitFor } from '@transit/testkit';
import { useHarness } from './use-harness.ts';

describe('a worker whose consumer leader moves', () => {
  let dir: string;
  let cluster: LocalCluster;
  let admin: Bus;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'transit-leader-'));
    await writeFile(join(dir, 'org.yaml'), '');
    // Three NATS nodes and Redis only: the worker under test runs in this process.
    cluster = await startLocalCluster({
      varDir: join(dir, 'var'),
      configPath: join(dir, 'org.yaml'),
      ...(await freeClusterPorts({ natsNodes: 3 })),
      roles: [],
    });
    admin = await connectBus(cluster.natsUrl.split(','), 'leader-test');
    // A fresh three-node cluster elects its meta leader, then one Raft group per stream, while
    // other test files load the two cores: the same 90 s the harness gives a multi-node start.
    let last = 'no attempt finished';
    await waitFor(
      () =>
        ensureTopology(admin, { replicas: 3, ackWaitSeconds: 3 }).then(
          () => true,
          (err: Error) => void (last = err.message),
        ),
      { timeoutMs: 90_000, intervalMs: 500, what: 'the streams and consumers on three nodes' },
    ).catch((err: Error) => {
      throw new Error(`${err.message}; the last attempt failed with: ${last}`);
    });
  }, 150_000);
  afterAll(async () => {
    await admin?.close();
    await cluster?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('is handed new work within seconds, not after its heartbeats time out', async () => {
    const bus = await connectBus(cluster.natsUrl.split(','), 'leader-test-worker');
    const got = new Map<string, number>();
    const worker = startWorker(bus, {
      stream: STREAMS.deliver,
      consumer: CONSUMERS.outboundProxy,
      concurrency: 4,
      decode: (d) => new TextDecoder().decode(d),
      onError: () => undefined,
      handle: (id) => (got.set(id, Date.now()), Promise.resolve(ack)),
    });
    /** Publishes a probe and returns how long the worker took to get it (ms). */
    const probe = async (id: string) => {
      await waitFor(
        () =>
          admin.js.publish('mail.deliver.remote.probe', new TextEncoder().encode(id), { timeout: 5000 }).then(
            () => true,
            () => undefined,
          ),
        { timeoutMs: 20_000, intervalMs: 200, what: `probe ${id} stored` },
      );
      const sent = Date.now();
      await waitFor(() => (got.has(id) ? true : undefined), { timeoutMs: 25_000, intervalMs: 50, what: `probe ${id} handed to the worker` });
      return got.get(id)! - sent;
    };
    try {
      expect(await probe('before')).toBeLessThan(2000);
      for (const round of [1, 2]) {
        const before = (await admin.jsm.consumers.info(STREAMS.deliver, CONSUMERS.outboundProxy)).cluster?.leader;
        await admin.nc.request(`$JS.API.CONSUMER.LEADER.STEPDOWN.${STREAMS.deliver}.${CONSUMERS.outboundProxy}`, undefined, { timeout: 5000 });
        await waitFor(
          async () => {
            const leader = (await admin.jsm.consumers.info(STREAMS.deliver, CONSUMERS.outboundProxy).catch(() => undefined))?.cluster?.leader;
            return leader && leader !== before ? true : undefined;
          },
          { timeoutMs: 15_000, intervalMs: 200, what: 'a new consumer leader' },
        );
        // nats.js's defaults took 37 to 42 s here; the worker's short heartbeats and watchdog must do it in seconds.
        expect(await probe(`after-stepdown-${round}`)).toBeLessThan(12_000);
      }
    } finally {
      await worker.stop();
      await bus.close();
    }
  }, 120_000);
});

describe('an outbound proxy that cannot make progress', () => {
  // The sink answers 451 for "later" recipients: their retry is scheduled ten minutes out.
  const h = useHarness({
    env: { TRANSIT_STALL_SECONDS: '10' },
    rejectRecipient: (rcpt) => (rcpt.startsWith('later') ? { code: 451, message: '4.3.0 try again later' } : undefined),
    transport: { TransientRetrySchedule: [600] },
  });
  const readyz = async () => {
    const res = await fetch(`http://127.0.0.1:${h.cluster.httpPort('outbound-proxy')}/readyz`);
    return {
      status: res.status,
      body: (await res.json()) as { stalled?: string; workers?: Array<{ consumer: string; stalled: boolean; reason?: string; scheduled: number }> },
    };
  };
  const stalledMetric = async () =>
    sampleSum(parseExposition(await (await fetch(`http://127.0.0.1:${h.cluster.httpPort('outbound-proxy')}/metrics`)).text()), 'transit_worker_stalled', {
      consumer: CONSUMERS.outboundProxy,
    });
  const send = (rcpt: string, marker: string) =>
    smtpTranscript({
      host: '127.0.0.1',
      port: h.cluster.port(25),
      localAddress: '127.0.0.2',
      lines: [
        'EHLO progress.example.org',
        'MAIL FROM:<app@contoso.test>',
        `RCPT TO:<${rcpt}>`,
        'DATA',
        `DATA-BODY:Subject: ${marker}\r\n\r\n${marker}\r\n.\r\n`,
        'QUIT',
      ],
    });

  it('stays ready while its only work waits for a scheduled retry', async () => {
    const reply = await send('later@example.net', 'progress-deferred');
    expect(reply[5]).toMatch(/^250 /);
    // Deferred (451), then the new attempt item is put back until its time: waiting, not stalled.
    await waitFor(async () => ((await readyz()).body.workers?.[0]?.scheduled ?? 0) > 0 || undefined, {
      timeoutMs: 20_000,
      what: 'the deferred item put back as not due',
    });
    await new Promise((r) => setTimeout(r, 16_000));
    const r = await readyz();
    expect(r.status).toBe(200);
    expect(r.body.workers?.[0]).toMatchObject({ consumer: CONSUMERS.outboundProxy, stalled: false });
    expect(await stalledMetric()).toBe(0);
  }, 60_000);

  it('fails /readyz and reports transit_worker_stalled while Redis is gone, and recovers', async () => {
    await h.cluster.stopRedis();
    try {
      const reply = await send('someone@example.net', 'progress-stalled');
      expect(reply[5]).toMatch(/^250 /);
      const stalled = await waitFor(
        async () => {
          const r = await readyz();
          return r.status === 503 ? r : undefined;
        },
        { timeoutMs: 40_000, intervalMs: 1000, what: '/readyz 503 on the outbound proxy' },
      );
      expect(stalled.body.stalled).toMatch(/outbound-proxy: failing/);
      expect(await stalledMetric()).toBe(1);
    } finally {
      await h.cluster.startRedis();
    }
    await waitFor(() => (h.sink.messages.some((m) => m.data.toString().includes('progress-stalled')) ? true : undefined), {
      timeoutMs: 30_000,
      what: 'the message at the sink once Redis is back',
    });
    await waitFor(async () => ((await readyz()).status === 200 ? true : undefined), { timeoutMs: 15_000, what: '/readyz 200 again' });
    expect(await stalledMetric()).toBe(0);
  }, 120_000);
});
