/**
 * What the outbound proxy sends to the next hop has CRLF line endings only and is
 * dot-stuffed, whatever the stored message holds: bare LF, bare CR, mixed endings, lone "."
 * lines, lines starting with ".", no final line break. A sink records the DATA bytes as they
 * came off its socket (smtp-server's own `data` is dot-unstuffed and would hide them).
 * Messages come in through the replay and pickup directories, and, to test the outbound
 * guarantee on its own whatever ingest does, as stored bodies (inline, and in the object
 * store with the tricky bytes on its chunk boundaries) put straight on `mail.deliver.remote.*`.
 */
import { rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { jetstream } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { afterAll, describe, expect, it } from 'vitest';
import { BodyStore, SUBJECTS, connectBus } from '@transit/bus';
import { encodeDeliveryItem, newMessageId, type BodyRef, type DeliveryItem } from '@transit/envelope';
import { startSmtpSink, type ReceivedMessage, type SmtpSink } from '@transit/testkit';
import { useHarness } from './use-harness.ts';

let wireSink: SmtpSink | undefined;
const h = useHarness(async () => {
  wireSink = await startSmtpSink({ recordWire: true });
  const smartHost = `${wireSink.host}:${wireSink.port}`;
  return { prepare: (config) => void (config.SendConnectors = [{ Name: 'Wire', AddressSpaces: ['*'], DNSRoutingEnabled: false, SmartHosts: [smartHost] }]) };
});
afterAll(async () => {
  await wireSink?.close();
});

/** Bodies whose line endings and dots a next hop could misread. */
const BODIES: Record<string, string> = {
  'bare LF': 'first\nsecond\n\nafter an empty line\n',
  'bare CR': 'first\rsecond\r\rafter an empty line\r',
  'mixed endings': 'crlf\r\nlf\ncr\rcr then crlf\r\r\nlf then cr\n\rlast\r\n',
  // Every end-of-data look-alike: a receiver that takes a bare CR or LF as a line end would stop at any of them.
  'lone dot lines': 'a\n.\nb\r.\rc\r\n.\r\nd\n.\r\ne\r\n.\nf\r.\ng\n.\rh\n',
  'lines starting with a dot': '.one\n..two\r...three\r\n.\tfour\n',
  'no final line break': 'the last line has no end',
  'a lone dot at the very end': 'the last line is a dot\n.',
  'ends with a bare CR': 'the end\r',
};

/** The message as a receiver must read it: every CR, LF and CRLF a CRLF, and one at the end (DATA ends after a line). */
function expectedContent(input: Buffer): Buffer {
  const s = input.toString('latin1').replace(/\r\n|\r|\n/g, '\r\n');
  return Buffer.from(s.endsWith('\r\n') ? s : `${s}\r\n`, 'latin1');
}

/** Offsets of a CR not followed by LF and of an LF not preceded by CR. */
function bareLineBreaks(wire: Buffer): { cr: number[]; lf: number[] } {
  const cr: number[] = [];
  const lf: number[] = [];
  for (let i = wire.indexOf(0x0d); i >= 0; i = wire.indexOf(0x0d, i + 1)) if (wire[i + 1] !== 0x0a) cr.push(i);
  for (let i = wire.indexOf(0x0a); i >= 0; i = wire.indexOf(0x0a, i + 1)) if (i === 0 || wire[i - 1] !== 0x0d) lf.push(i);
  return { cr, lf };
}

/** Asserts the DATA bytes are well formed, and returns the content a receiver reads from them (dot-unstuffed). */
function readWire(msg: ReceivedMessage): Buffer {
  const wire = msg.wire!;
  expect(wire.subarray(-5).toString('latin1')).toBe('\r\n.\r\n');
  expect(bareLineBreaks(wire)).toEqual({ cr: [], lf: [] });
  const lines = wire.subarray(0, -3).toString('latin1').split('\r\n').slice(0, -1);
  const unstuffed = lines.filter((l) => l.startsWith('.') && !l.startsWith('..'));
  expect(unstuffed, 'content lines starting with "." sent without the extra dot').toEqual([]);
  const content = Buffer.from(lines.map((l) => (l.startsWith('.') ? l.slice(1) : l) + '\r\n').join(''), 'latin1');
  // smtp-server's reading of the same bytes agrees.
  expectSameBytes(msg.data, content);
  return content;
}

/** Byte equality, failing with the first difference and the bytes around it (the messages are too big for a diff). */
function expectSameBytes(actual: Buffer, expected: Buffer): void {
  let at = 0;
  while (at < actual.length && at < expected.length && actual[at] === expected[at]) at++;
  if (at === actual.length && at === expected.length) return;
  const around = (b: Buffer) => JSON.stringify(b.subarray(Math.max(0, at - 20), at + 20).toString('latin1'));
  expect.fail(
    `content differs at byte ${at} (${actual.length} received, ${expected.length} expected): received ${around(actual)}, expected ${around(expected)}`,
  );
}

async function arrived(marker: string, timeoutMs = 30_000): Promise<ReceivedMessage> {
  const sink = wireSink!;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const msg = sink.messages.find((m) => m.data.includes(marker));
    if (msg) return msg;
    if (Date.now() > deadline) throw new Error(`no message with ${marker} at the wire sink; it has ${sink.messages.length}`);
    await sink.waitFor(sink.messages.length + 1, Math.max(1, deadline - Date.now())).catch(() => undefined);
  }
}

/** A delivery work item for a stored body, as the hub would publish it. */
async function deliverStored(marker: string, body: BodyRef, size: number): Promise<void> {
  const item: DeliveryItem = {
    v: 1,
    envelope: {
      v: 1,
      id: newMessageId(),
      messageId: `<${marker}@test>`,
      receivedAt: Date.now(),
      sender: 'app@contoso.test',
      recipients: [{ address: 'partner@example.net' }],
      origin: { kind: 'replay', serverHost: 'test' },
      body,
      size,
    },
    hop: { type: 'smtp', connector: 'Wire', domain: 'example.net', smartHosts: [`${wireSink!.host}:${wireSink!.port}`], port: 25 },
    attempt: 0,
    notBefore: 0,
  };
  const nc = await connect({ servers: h.cluster.natsUrl.split(',') });
  try {
    await jetstream(nc).publish(SUBJECTS.remote('Wire'), encodeDeliveryItem(item), { msgID: `${item.envelope.id}:Wire:attempt-0` });
  } finally {
    await nc.close();
  }
}

const stamp = Date.now();
const cases = Object.entries(BODIES).map(([name, body], i) => ({ name, body, marker: (path: string) => `[${path}-${i}-${stamp}]` }));

/** Puts a file into a directory Transit polls, whole (written beside it, then renamed). */
async function drop(dir: string, name: string, content: string): Promise<void> {
  await writeFile(join(dir, `${name}.part`), content, 'latin1');
  await rename(join(dir, `${name}.part`), join(dir, `${name}.eml`));
}

describe('the outbound proxy sends CRLF line endings only, dot-stuffed', () => {
  it.each(cases)('a stored message with $name, headers included', async ({ body, marker: markerFor }) => {
    const marker = markerFor('stored');
    // Bare endings in the header block too, and a first line starting with a dot.
    const raw = Buffer.from(`.X-Leading-Dot: 1\nFrom: app@contoso.test\rTo: partner@example.net\r\nSubject: ${marker}\n\n${body}`, 'latin1');
    await deliverStored(marker, { kind: 'inline', data: raw }, raw.length);
    const content = readWire(await arrived(marker));
    expectSameBytes(content, expectedContent(raw));
  });

  it('a stored body in the object store with bare CR, a lone dot and a split CRLF on its chunk boundaries', async () => {
    const marker = `[object-${stamp}]`;
    const CHUNK = 128 * 1024; // the object store's chunk size
    const raw = Buffer.alloc(3 * CHUNK + 1000);
    const filler = Buffer.from('0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdef\n', 'latin1');
    for (let i = 0; i < raw.length; i += filler.length) filler.copy(raw, i);
    raw.write(`From: app@contoso.test\nSubject: ${marker}\n\n`, 0, 'latin1');
    raw.write('\r.\r', CHUNK - 1, 'latin1'); // a bare CR last in a chunk, a dot first in the next
    raw.write('\r\n', 2 * CHUNK - 1, 'latin1'); // a CRLF split by the boundary: not to be doubled
    raw.write('\n.\n', 3 * CHUNK - 1, 'latin1');
    raw.write('no end', raw.length - 6, 'latin1');
    const bus = await connectBus(h.cluster.natsUrl.split(','), 'test', 'once');
    let ref: BodyRef;
    try {
      ref = await new BodyStore(bus).putStream(`test-object-${stamp}`, Readable.from([raw]));
    } finally {
      await bus.close();
    }
    await deliverStored(marker, ref, raw.length);
    const content = readWire(await arrived(marker));
    expectSameBytes(content, expectedContent(raw));
  });

  it.each(cases)('a replay-directory file with $name in its body', async ({ body, marker: markerFor }) => {
    const marker = markerFor('replay');
    const message = `From: app@contoso.test\r\nTo: partner@example.net\r\nSubject: ${marker}\r\n\r\n${body}`;
    await drop(join(h.cluster.varDir, 'replay'), marker.slice(1, -1), `X-Sender: <app@contoso.test>\r\nX-Receiver: <partner@example.net>\r\n${message}`);
    const content = readWire(await arrived(marker));
    // Transit's own header fields come first; the file's message follows them.
    const expected = expectedContent(Buffer.from(message, 'latin1'));
    expectSameBytes(content.subarray(-expected.length), expected);
  });

  it.each(cases)('a pickup-directory file with $name in its body', async ({ body, marker: markerFor }) => {
    const marker = markerFor('pickup');
    const header = `From: app@contoso.test\r\nTo: partner@example.net\r\nSubject: ${marker}\r\n\r\n`;
    await drop(h.cluster.pickupDir, marker.slice(1, -1), header + body);
    const content = readWire(await arrived(marker));
    // The pickup rules rewrite the header block (Date added, Transit's fields first); the body follows it.
    const expected = Buffer.from(`Subject: ${marker}\r\n\r\n${expectedContent(Buffer.from(body, 'latin1')).toString('latin1')}`, 'latin1');
    expectSameBytes(content.subarray(-expected.length), expected);
  });
});
