/**
 * Orphaned work: an outbound proxy killed in the middle of an SMTP transaction leaves its
 * work item leased in Redis to an owner whose heartbeat stops. The other replica takes it
 * over within seconds, long before JetStream's ack wait (two minutes here) would hand it out
 * again, and the remote server gets it once.
 */
import { Redis } from 'ioredis';
import { expect, it } from 'vitest';
import { connectBus, loadMessage } from '@transit/bus';
import { smtpTranscript, waitFor } from '@transit/testkit';
import { ownerOfConnection } from './proc.ts';
import { useHarness } from './use-harness.ts';

const marker = `orphan-${Date.now()}`;
let killed: { replica: number; at: number } | undefined;

const h = useHarness({
  replicated: ['outbound-proxy'],
  // JetStream alone would bring the item back only after this.
  env: { TRANSIT_ACK_WAIT_SECONDS: '120' },
  beforeRcptReply: async (rcpt, client) => {
    if (killed || !rcpt.startsWith('orphan@')) return;
    const pids = [0, 1].map((replica) => h.cluster.roleProcess('outbound-proxy', replica)?.child.pid ?? -1);
    const owner = await ownerOfConnection(pids, client.port);
    if (owner === undefined) throw new Error(`no outbound proxy owns the connection from port ${client.port}`);
    killed = { replica: pids.indexOf(owner), at: Date.now() };
    await h.cluster.killRole('outbound-proxy', killed.replica);
  },
});

it('a surviving outbound proxy takes over the work item of one killed mid-transaction, within seconds, and delivers it once', async () => {
  const body = `From: app@contoso.test\r\nSubject: ${marker}\r\n\r\n${marker}\r\n`;
  const replies = await smtpTranscript({
    host: '127.0.0.1',
    port: h.cluster.port(25),
    localAddress: '127.0.0.2',
    lines: ['EHLO app.contoso.test', 'MAIL FROM:<app@contoso.test>', 'RCPT TO:<orphan@example.net>', 'DATA', `DATA-BODY:${body}.\r\n`, 'QUIT'],
  });
  expect(replies[5]).toMatch(/^250 2\.6\.0 /);

  const atSink = () => h.sink.messages.filter((m) => m.data.toString('latin1').includes(marker));
  const copy = await waitFor(() => Promise.resolve(atSink()[0]), { timeoutMs: 30_000, what: 'the message at the sink after its first sender was killed' });
  expect(killed).toBeDefined();
  const tookSeconds = (Date.now() - killed!.at) / 1000;
  // Heartbeat TTL (3 s) plus a sweep (1 s) and the delivery: far inside the 120 s ack wait.
  expect(tookSeconds).toBeLessThan(20);

  const id = /\(Transit\) with ESMTP id (\w+);/.exec(copy.data.toString('latin1'))![1]!;
  const bus = await connectBus([h.cluster.natsUrl], 'orphans-test', 'once');
  try {
    const state = await waitFor(
      async () => {
        const s = await loadMessage(bus, id);
        return s.recipients['orphan@example.net']?.status === 'Delivered' ? s : undefined;
      },
      { timeoutMs: 10_000, what: 'the Delivered event' },
    );
    expect(state.status).toBe('Delivered');
    // The taken-over item left the work queue: nothing comes back when the ack wait ends.
    const deliver = await bus.jsm.streams.info('MAIL_DELIVER');
    expect(deliver.state.messages).toBe(0);
  } finally {
    await bus.close();
  }
  const redis = new Redis(h.cluster.redisUrl);
  try {
    expect(await redis.sismember(`transit:delivered:{${id}}`, 'orphan@example.net')).toBe(1);
    // The dead owner is forgotten once its items are adopted.
    expect((await redis.smembers('transit:owners')).length).toBe(1);
  } finally {
    await redis.quit();
  }
  await new Promise((r) => setTimeout(r, 2000));
  expect(atSink()).toHaveLength(1);
});
