/**
 * Exactly once per recipient when a delivery work item comes back (as it does after a
 * crash between the remote server's 250 and the acknowledgement): the outbound proxy
 * consults the shadow state in Redis, and rebuilds it from the event log when Redis
 * returns empty. Without Redis the hub keeps the submit item until the shadow is kept.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { Redis } from 'ioredis';
import { expect, it } from 'vitest';
import { STREAMS } from '@transit/bus';
import { decodeDeliveryItem, encodeDeliveryItem, type DeliveryItem } from '@transit/envelope';
import { smtpTranscript, waitFor } from '@transit/testkit';
import { messageEvents } from './harness.ts';
import { useHarness } from './use-harness.ts';

const run = promisify(execFile);
const h = useHarness();

/** Sends `body` from the application relay address (127.0.0.2) to `rcpt`; the replies, greeting first. */
function relay(rcpt: string, body: string): Promise<string[]> {
  return smtpTranscript({
    host: '127.0.0.1',
    port: h.cluster.port(25),
    localAddress: '127.0.0.2',
    lines: ['EHLO app.contoso.test', 'MAIL FROM:<app@contoso.test>', `RCPT TO:<${rcpt}>`, 'DATA', `DATA-BODY:${body}.\r\n`, 'QUIT'],
  });
}

/** Puts a delivery item for an already delivered message back on the queue, as a crash would. */
async function redeliver(item: DeliveryItem, tag: string): Promise<void> {
  const nc = await connect({ servers: h.cluster.natsUrl });
  try {
    await jetstream(nc).publish('mail.deliver.remote.sink_redelivered', encodeDeliveryItem(item), { msgID: `${item.envelope.id}:redelivered:${tag}` });
  } finally {
    await nc.close();
  }
}

it('never sends a recipient twice when its work item comes back, even after Redis lost its data', async () => {
  const marker = `once-${Date.now()}`;
  const body = `From: app@contoso.test\r\nSubject: ${marker}\r\n\r\n${marker}\r\n`;
  const replies = await relay('partner@example.net', body);
  expect(replies[5]).toMatch(/^250 2\.6\.0 /);
  const atSink = () => h.sink.messages.filter((m) => m.data.toString('latin1').includes(marker));
  const first = await waitFor(() => Promise.resolve(atSink()[0]), { timeoutMs: 20_000, what: 'the first delivery' });
  const id = /\(Transit\) with ESMTP id (\w+);/.exec(first.data.toString('latin1'))![1]!;

  const item: DeliveryItem = {
    v: 1,
    envelope: {
      v: 1,
      id,
      messageId: `<${marker}@test>`,
      receivedAt: Date.now(),
      sender: 'app@contoso.test',
      recipients: [{ address: 'partner@example.net' }],
      origin: { kind: 'smtp', serverHost: 'test' },
      body: { kind: 'inline', data: Buffer.from(body) },
      size: body.length,
    },
    hop: { type: 'smtp', connector: 'Sink', domain: 'example.net', smartHosts: [`${h.sink.host}:${h.sink.port}`], port: 25 },
    attempt: 0,
    notBefore: 0,
  };
  const suppressed = async (n: number) =>
    waitFor(async () => ((await messageEvents(h, id)).filter((e) => e.type === 'DuplicateSuppressed').length >= n ? true : undefined), {
      timeoutMs: 20_000,
      what: `${n} DuplicateSuppressed event(s)`,
    });

  await redeliver(item, 'a');
  await suppressed(1);
  expect(atSink()).toHaveLength(1);

  // Redis restarts empty: the projection is rebuilt from the Delivered events before anything is sent.
  const redis = new Redis(h.cluster.redisUrl);
  await redis.flushall();
  await redis.quit();
  await redeliver(item, 'b');
  await suppressed(2);
  expect(atSink()).toHaveLength(1);

  // The administrator's way: transitctl shadow rebuild.
  const flushed = new Redis(h.cluster.redisUrl);
  await flushed.flushall();
  const { stdout } = await run(process.execPath, [join(import.meta.dirname, '../tools/transitctl/src/main.ts'), 'shadow', 'rebuild'], {
    env: { ...process.env, NATS_URL: h.cluster.natsUrl, REDIS_URL: h.cluster.redisUrl },
  });
  expect(stdout).toMatch(/shadow state rebuilt: [1-9]\d* delivered recipient\(s\)/);
  expect(await flushed.sismember(`transit:delivered:{${id}}`, 'partner@example.net')).toBe(1);
  await flushed.quit();
});

it('keeps the submit item while Redis is away, delivers meanwhile, and acknowledges it with its shadow once Redis is back', async () => {
  const marker = `noshadow-${Date.now()}`;
  const body = `From: app@contoso.test\r\nSubject: ${marker}\r\n\r\n${marker}\r\n`;
  const nc = await connect({ servers: h.cluster.natsUrl });
  const submitted = async () => (await (await jetstreamManager(nc)).streams.info(STREAMS.submit)).state.messages;
  await h.cluster.stopRedis();
  let id: string;
  try {
    const replies = await relay('alice@contoso.test', body);
    expect(replies[5]).toMatch(/^250 2\.6\.0 /);
    // The delivery item was queued and flows: the mailbox has the message while Redis is still away.
    const file = await waitFor(async () => (await h.maildirFiles('alice@contoso.test')).find((f) => f.includes(marker)), {
      timeoutMs: 20_000,
      what: 'the mailbox copy while Redis is away',
    });
    id = /\(Transit\) with ESMTP id (\w+);/.exec(file)![1]!;
    // The submit item stays: it is the message's second copy until a shadow is kept.
    await new Promise((r) => setTimeout(r, 2000));
    expect(await submitted()).toBeGreaterThanOrEqual(1);
  } finally {
    await h.cluster.startRedis();
  }
  await waitFor(async () => ((await submitted()) === 0 ? true : undefined), { timeoutMs: 30_000, what: 'the submit item acknowledged' });
  const redis = new Redis(h.cluster.redisUrl);
  try {
    expect(await redis.zscore('transit:shadows', id)).not.toBeNull();
  } finally {
    await redis.quit();
    await nc.close();
  }
  expect((await h.maildirFiles('alice@contoso.test')).filter((f) => f.includes(marker))).toHaveLength(1);
}, 90_000);

it('keeps the recent shadows again when Redis comes back empty, so an item the stream then loses is queued again', async () => {
  const marker = `rekept-${Date.now()}`;
  const body = `From: app@contoso.test\r\nSubject: ${marker}\r\n\r\n${marker}\r\n`;
  const nc = await connect({ servers: h.cluster.natsUrl });
  const jsm = await jetstreamManager(nc);
  const redisUrl = h.cluster.redisUrl;
  const shadowOf = async (id: string) => {
    const r = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
    try {
      await r.connect();
      return await r.hgetall(`transit:shadow:{${id}}`);
    } finally {
      r.disconnect();
    }
  };
  // Nothing takes the mailbox item off the queue meanwhile.
  await h.cluster.stopRole('mailbox-delivery');
  try {
    const replies = await relay('alice@contoso.test', body);
    expect(replies[5]).toMatch(/^250 2\.6\.0 /);
    // The mailbox item and its shadow, as the hub left them.
    const queued = await waitFor(
      async () => {
        const m = await jsm.streams.getMessage(STREAMS.deliver, { last_by_subj: 'mail.deliver.mailbox.db01' }).catch(() => undefined);
        if (!m) return undefined;
        const item = decodeDeliveryItem(m.data);
        return new TextDecoder().decode(item.envelope.body.kind === 'inline' ? item.envelope.body.data : new Uint8Array()).includes(marker)
          ? { seq: m.seq, id: item.envelope.id }
          : undefined;
      },
      { timeoutMs: 20_000, what: 'the mailbox item in the queue' },
    );
    expect(Object.keys(await shadowOf(queued.id))).toEqual(['mail.deliver.mailbox.db01']);
    // Redis restarts empty: the hub writes the shadow again.
    await h.cluster.stopRedis(true);
    await h.cluster.startRedis();
    await waitFor(async () => (Object.keys(await shadowOf(queued.id)).length > 0 ? true : undefined), {
      timeoutMs: 20_000,
      what: 'the shadow kept again',
    });
    // The stream loses the item (what a replica reset did in the chaos runs): it is queued again from the shadow.
    await jsm.streams.deleteMessage(STREAMS.deliver, queued.seq);
  } finally {
    await h.cluster.startRole('mailbox-delivery');
  }
  await waitFor(async () => ((await h.maildirFiles('alice@contoso.test')).some((f) => f.includes(marker)) ? true : undefined), {
    timeoutMs: 60_000,
    what: 'the message in the mailbox, queued again from its shadow',
  });
  await nc.close();
  expect((await h.maildirFiles('alice@contoso.test')).filter((f) => f.includes(marker))).toHaveLength(1);
}, 120_000);
