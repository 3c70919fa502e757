/**
 * Queues as the administrator sees and drives them, end to end: a remote message deferred by
 * the sink shows in its next-hop queue (Retry, last error); Retry-Queue sends it at once;
 * Suspend-Message holds it on every worker until Resume-Message; Remove-Message bounces it
 * once and it is never delivered; Export-Message writes a file the replay directory takes
 * back; the poison queue lists a parked item. transitctl runs as a child process, as an
 * administrator runs it.
 */
import { execFile } from 'node:child_process';
import { readFile, readdir, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { STREAMS, connectBus, publishDurable } from '@transit/bus';
import { encodeDeliveryItem } from '@transit/envelope';
import { waitFor } from '@transit/testkit';
import { messageEvents, relayOne, waitForMaildirMessage } from './harness.ts';
import { useHarness } from './use-harness.ts';

/** Recipients the sink defers (451) until the test lets them through. */
const accepting = new Set<string>();
const h = useHarness({
  rejectRecipient: (rcpt) => (rcpt.startsWith('held') && !accepting.has(rcpt) ? { code: 451, message: '4.7.1 greylisted, come back later' } : undefined),
  // Ten minutes to the next attempt: only Retry-Queue brings it within the test.
  transport: { TransientRetrySchedule: [600] },
  // The sink takes example.net only: anything else relayed has no route (the Unreachable queue).
  prepare: (config) => {
    (config.SendConnectors as Array<Record<string, unknown>>)[0]!.AddressSpaces = ['example.net'];
  },
});

const run = promisify(execFile);
const transitctl = (...args: string[]) =>
  run(process.execPath, [join(import.meta.dirname, '../tools/transitctl/src/main.ts'), ...args], {
    env: { ...process.env, NATS_URL: h.cluster.natsUrl, REDIS_URL: h.cluster.redisUrl },
  }).catch((err: { stdout: string; stderr: string; code: number }) => ({ stdout: err.stdout, stderr: err.stderr, code: err.code })) as Promise<{
    stdout: string;
    stderr: string;
    code?: number;
  }>;
const json = async <T>(...args: string[]): Promise<T> => {
  const r = await transitctl(...args, '--json');
  if (!r.stdout) throw new Error(`transitctl ${args.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
};

type QueueRow = {
  Identity: string;
  Status: string;
  MessageCount: number;
  LastError?: string;
  NextRetryTime?: string;
  DeliveryType: string;
  NextHopDomain: string;
  IncomingRate?: number;
  OutgoingRate?: number;
};
type MessageRow = { MessageId: string; Status: string; Recipients: string[]; Queue: string; LastError?: string };

const relay = (rcpt: string, marker: string) => relayOne(h, rcpt, marker);

/** Waits until the message to `rcpt` waits for a retry in its next-hop queue; returns it and its queue. */
async function deferred(rcpt: string): Promise<{ message: MessageRow; queue: QueueRow }> {
  const message = await waitFor(async () => (await json<MessageRow[]>('message', 'get')).find((m) => m.Recipients.includes(rcpt) && m.Status === 'Retry'), {
    timeoutMs: 20_000,
    what: `${rcpt} deferred`,
  });
  const queue = (await json<QueueRow[]>('queue', 'get')).find((q) => q.Identity === message.Queue)!;
  return { message, queue };
}

const atSink = (marker: string) => h.sink.messages.filter((m) => m.data.toString().includes(marker));
const dsnsFor = async (marker: string) => (await h.maildirFiles('bob@contoso.test')).filter((f) => f.includes('multipart/report') && f.includes(marker));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('queues', () => {
  it('shows a deferred message in its next-hop queue with status Retry and the last error; Retry-Queue sends it now', async () => {
    const marker = `retry-${Date.now()}`;
    await relay('held1@example.net', marker);
    const { message, queue } = await deferred('held1@example.net');
    // The harness routes everything through the send connector "Sink", whose smart host is the sink.
    expect(queue).toMatchObject({ DeliveryType: 'SmartHostConnectorDelivery', NextHopDomain: `${h.sink.host}:${h.sink.port}`, Status: 'Retry' });
    expect(queue.Identity).toMatch(/^Transit\\remote\.sink_127_0_0_1_\d+$/);
    expect(queue.MessageCount).toBeGreaterThanOrEqual(1);
    expect(queue.LastError).toMatch(/451 4\.7\.1 greylisted/);
    expect(Date.parse(queue.NextRetryTime!)).toBeGreaterThan(Date.now() + 500_000);
    expect(message.LastError).toMatch(/451 4\.7\.1 greylisted/);
    // Routed into it within the last minute (the categorizer's hop key mapped to the queue's subject).
    expect(queue.IncomingRate).toBeGreaterThan(0);
    expect(queue.OutgoingRate).toBe(0);
    // The same through Exchange's cmdlet.
    expect((await transitctl('ems', 'Get-Queue')).stdout).toMatch(
      /Transit\\remote\.sink_127_0_0_1_\d+\s+SmartHostConnectorDelivery\s+Retry\s+\d+\s+127\.0\.0\.1:\d+/,
    );

    accepting.add('held1@example.net');
    const r = await transitctl('queue', 'retry', queue.Identity);
    expect(r.stdout).toMatch(/Transit\\remote\.sink_127_0_0_1_\d+: [1-9]\d* deferred item\(s\) will be tried now/);
    await waitFor(() => Promise.resolve(atSink(marker).length ? true : undefined), { timeoutMs: 15_000, what: 'the retried message at the sink' });
    await sleep(1000);
    expect(atSink(marker)).toHaveLength(1);
  });

  it('Retry-Queue -Resubmit routes the waiting messages through the categorizer again, and they are delivered once', async () => {
    const marker = `resubmit-${Date.now()}`;
    await relay('held6@example.net', marker);
    const { message, queue } = await deferred('held6@example.net');
    accepting.add('held6@example.net');
    const r = await transitctl('ems', `Retry-Queue -Identity '${queue.Identity}' -Resubmit $true`);
    expect(r.code ?? 0).toBe(0);
    await waitFor(() => Promise.resolve(atSink(marker)[0]), { timeoutMs: 20_000, what: 'the resubmitted message at the sink' });
    await sleep(1500);
    expect(atSink(marker)).toHaveLength(1);
    const events = await messageEvents(h, message.MessageId);
    expect(events.filter((e) => e.type === 'Resubmitted' && e.source === 'ADMIN')).toHaveLength(1);
    expect(events.filter((e) => e.type === 'Delivered')).toHaveLength(1);
  });

  it('Suspend-Message keeps a message from being delivered until Resume-Message', async () => {
    const marker = `suspend-${Date.now()}`;
    await relay('held2@example.net', marker);
    const { message, queue } = await deferred('held2@example.net');
    expect((await transitctl('message', 'suspend', message.MessageId)).stdout).toContain(`message ${message.MessageId}: suspended`);
    accepting.add('held2@example.net');
    // Due now, but held: the workers leave it waiting.
    await transitctl('queue', 'retry', queue.Identity);
    await sleep(7000);
    expect(atSink(marker)).toHaveLength(0);
    expect((await json<MessageRow[]>('message', 'get', '--id', message.MessageId))[0]?.Status).toBe('Suspended');

    expect((await transitctl('ems', `Resume-Message ${message.MessageId}`)).stdout).toMatch(/changed\s*:\s*True/i);
    await waitFor(() => Promise.resolve(atSink(marker).length ? true : undefined), { timeoutMs: 20_000, what: 'the resumed message at the sink' });
    const types = (await messageEvents(h, message.MessageId)).map((e) => e.type);
    expect(types).toEqual(expect.arrayContaining(['Suspended', 'Resumed', 'Delivered']));
  });

  it('Export-Message writes a suspended message for the replay directory; Remove-Message bounces it once and it is never delivered', async () => {
    const marker = `remove-${Date.now()}`;
    await relay('held3@example.net', marker);
    const { message, queue } = await deferred('held3@example.net');
    await transitctl('message', 'suspend', message.MessageId);
    const file = join(h.dir, `${marker}.eml`);
    expect((await transitctl('message', 'export', message.MessageId, '--path', file)).code ?? 0).toBe(0);
    const eml = await readFile(file, 'latin1');
    expect(eml).toMatch(/^X-Sender: <bob@contoso\.test>\r\nX-Receiver: <held3@example\.net>\r\n/);
    expect(eml).toContain(`The body of ${marker}`);

    const removed = await transitctl('message', 'remove', message.MessageId);
    expect(removed.stdout).toMatch(/removed \(1 recipient\(s\), 1 queued item\(s\)\); NDR .* sent to the sender/);
    const [dsn] = await waitFor(async () => ((await dsnsFor(marker)).length ? dsnsFor(marker) : undefined), {
      timeoutMs: 20_000,
      what: 'the NDR of the removed message',
    });
    expect(dsn).toContain('Final-Recipient: rfc822; held3@example.net\r\nAction: failed\r\nStatus: 5.3.2');
    expect(dsn).toContain('QUEUE.Admin; message deleted by administrative action');
    // Let it through and retry the queue: nothing of it is left to send.
    accepting.add('held3@example.net');
    await transitctl('queue', 'retry', queue.Identity);
    await sleep(3000);
    expect(atSink(marker)).toHaveLength(0);
    expect(await dsnsFor(marker)).toHaveLength(1);
    expect(await json<MessageRow[]>('message', 'get', '--id', message.MessageId)).toEqual([]);
    expect((await transitctl('message', 'remove', message.MessageId)).stderr).toMatch(/is in no queue/);
    const track = await json<Array<{ EventId: string; Source: string }>>('track', '--network-id', message.MessageId);
    expect(track.map((r) => `${r.EventId}/${r.Source}`)).toContain('DROP/ADMIN');

    // The exported file, replayed, is a new message with the same envelope.
    await mkdir(join(h.cluster.varDir, 'replay'), { recursive: true });
    await writeFile(join(h.cluster.varDir, 'replay', `${marker}.eml`), eml);
    await waitFor(() => Promise.resolve(atSink(marker).length ? true : undefined), { timeoutMs: 20_000, what: 'the replayed message at the sink' });
    expect(atSink(marker)[0]?.rcptTo).toEqual(['held3@example.net']);
    expect(atSink(marker)[0]?.data.toString()).not.toMatch(/^X-Sender/m);
  });

  it('Suspend-Queue holds a whole queue on every worker until Resume-Queue', async () => {
    const marker = `queue-${Date.now()}`;
    const held = 'held4@example.net';
    // A queue exists while it holds messages: this one waits in it for a retry.
    await relay(held, marker);
    const sinkQueue = (await deferred(held)).queue.Identity;
    expect((await transitctl('queue', 'suspend', sinkQueue)).stdout).toMatch(/suspended/);
    expect((await transitctl('queue', 'suspend', 'Transit\\remote.nowhere')).stderr).toMatch(/there is no queue "Transit\\remote.nowhere"/);
    accepting.add(held);
    await transitctl('queue', 'retry', sinkQueue);
    await sleep(7000);
    expect(atSink(marker)).toHaveLength(0);
    expect((await json<QueueRow[]>('queue', 'get', sinkQueue.replace('Transit\\', '')))[0]?.Status).toBe('Suspended');
    expect((await transitctl('ems', `Resume-Queue '${sinkQueue}'`)).stdout).toMatch(/changed\s*:\s*True/i);
    await waitFor(() => Promise.resolve(atSink(marker).length ? true : undefined), { timeoutMs: 20_000, what: 'the message after Resume-Queue' });
  });

  it('lists the work items leased in Redis as the Shadow queue', async () => {
    const shadow = (await json<QueueRow[]>('queue', 'get', 'Shadow'))[0];
    expect(shadow).toMatchObject({ Identity: 'Transit\\Shadow', DeliveryType: 'ShadowRedundancy' });
    expect(shadow!.Status).toBe(shadow!.MessageCount > 0 ? 'Active' : 'Ready');
    for (const m of await json<MessageRow[]>('message', 'get', '--queue', 'Shadow')) expect(m.Queue).toBe('Transit\\Shadow');
    // Without Redis the queues are listed all the same, without Shadow, and a warning says why.
    const r = await run(process.execPath, [join(import.meta.dirname, '../tools/transitctl/src/main.ts'), 'queue', 'get', '--json'], {
      env: { ...process.env, NATS_URL: h.cluster.natsUrl, REDIS_URL: 'redis://127.0.0.1:1' },
    });
    expect((JSON.parse(r.stdout) as QueueRow[]).map((q) => q.Identity)).not.toContain('Transit\\Shadow');
    expect(r.stderr).toMatch(/WARNING: the Shadow queue is not listed/);
  });

  it('lists parked items in the Poison queue', async () => {
    const bus = await connectBus(h.cluster.natsUrl.split(','), 'test', 'once');
    const id = `poison${Date.now()}`;
    try {
      const item = {
        v: 1 as const,
        envelope: {
          v: 1 as const,
          id,
          messageId: `<${id}@example.org>`,
          receivedAt: Date.now(),
          sender: 'x@example.org',
          recipients: [{ address: 'alice@contoso.test' }],
          origin: { kind: 'smtp' as const, serverHost: 'test' },
          body: { kind: 'inline' as const, data: new Uint8Array() },
          size: 0,
        },
        hop: { type: 'mailbox' as const, database: 'DB01' },
        attempt: 0,
        notBefore: 0,
      };
      await publishDurable(bus, 'mail.poison.mail_deliver', encodeDeliveryItem(item), {
        msgID: id,
        expectStream: STREAMS.poison,
        headers: { 'Transit-Poison-Subject': 'mail.deliver.mailbox.db01', 'Transit-Poison-Crashes': '2' },
      });
    } finally {
      await bus.close();
    }
    const poison = (await json<QueueRow[]>('queue', 'get', 'Poison'))[0];
    expect(poison).toMatchObject({ Identity: 'Transit\\Poison', MessageCount: 1 });
    expect(await json<MessageRow[]>('message', 'get', '--queue', 'Poison')).toMatchObject([{ MessageId: id, Status: 'Suspended', Queue: 'Transit\\Poison' }]);
  });

  it('lists a message with no route in the Unreachable queue, and bounces it to its sender with 5.4.4', async () => {
    const marker = `unreachable-${Date.now()}`;
    await relay('lost@nowhere.example.org', marker);
    const listed = await waitFor(
      async () => (await json<MessageRow[]>('message', 'get', '--queue', 'Unreachable')).find((m) => m.Recipients.includes('lost@nowhere.example.org')),
      { timeoutMs: 20_000, what: 'the message in the Unreachable queue' },
    );
    expect(listed.Queue).toBe('Transit\\Unreachable');
    expect(listed.LastError).toMatch(/5\.4\.4/);
    expect((await json<QueueRow[]>('queue', 'get', 'Unreachable'))[0]?.MessageCount).toBeGreaterThanOrEqual(1);
    const dsn = await waitFor(async () => (await dsnsFor(marker))[0], { timeoutMs: 20_000, what: 'the 5.4.4 report to the sender' });
    expect(dsn).toContain('Status: 5.4.4');
  });

  it('takes replay files: X-Sender/X-Receiver define the envelope; a bad file is renamed .bad', async () => {
    const marker = `replay-${Date.now()}`;
    const dir = join(h.cluster.varDir, 'replay');
    await mkdir(dir, { recursive: true });
    await writeFile(
      join(dir, `${marker}.eml`),
      `X-Sender: <app@contoso.test>\r\nX-Receiver: <alice@contoso.test>\r\nFrom: someone@example.org\r\nTo: nobody@contoso.test\r\nSubject: ${marker}\r\n\r\nreplayed\r\n`,
    );
    await writeFile(join(dir, `${marker}-bad.eml`), `Subject: ${marker}\r\nX-Sender: <app@contoso.test>\r\n\r\nno envelope first\r\n`);
    const delivered = await waitForMaildirMessage(h, 'alice@contoso.test', marker);
    expect(delivered).toMatch(/^Return-Path: <app@contoso\.test>\r\n/);
    expect(delivered).not.toContain('X-Receiver');
    await waitFor(async () => ((await readdir(dir)).includes(`${marker}-bad.bad`) ? true : undefined), {
      timeoutMs: 10_000,
      what: 'the bad replay file renamed .bad',
    });
  });
});
