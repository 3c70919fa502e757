import { once } from 'node:events';
import { PassThrough, Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BODY_BUCKET, BodyStore, STREAMS, connectBus, ensureTopology, type Bus } from '@transit/bus';
import { startNats, type NatsHandle } from '@transit/testkit';
import { ContentRefusedError, ingestMessage, type IngestGuard, type IngestRequest } from './index.ts';

let nats: NatsHandle;
let bus: Bus;
let bodies: BodyStore;

beforeAll(async () => {
  nats = await startNats({ jetstream: true });
  bus = await connectBus([nats.url], 'ingest-test', 'once');
  await ensureTopology(bus, { replicas: 1 });
  bodies = new BodyStore(bus);
}, 30_000);
afterAll(async () => {
  await bus?.close();
  await nats?.stop();
});

const log = { warn: () => undefined };
const deps = () => ({ bus, bodies, nodeName: 'n1', log, publishBudgetMs: 2000 });
const HEAD = 'From: a@example.org\r\nTo: b@contoso.test\r\nSubject: big\r\n\r\n';
/** What JetStream holds: the body bucket's stream and the submit queue. */
async function stored() {
  const [body, submit] = await Promise.all([bus.jsm.streams.info(`OBJ_${BODY_BUCKET}`), bus.jsm.streams.info(STREAMS.submit)]);
  return { bodyBytes: body.state.bytes, bodyMessages: body.state.messages, submitted: submit.state.messages, bodyLastSeq: body.state.last_seq };
}
/** `lines` body lines of 78 octets, the last one ending with `tail`, in chunks as a socket might give them. */
function content(lines: number, tail: string, chunk = 16_384): Buffer[] {
  const all = Buffer.from(HEAD + `${'x'.repeat(76)}\r\n`.repeat(lines) + tail, 'latin1');
  const out: Buffer[] = [];
  for (let i = 0; i < all.length; i += chunk) out.push(all.subarray(i, i + chunk));
  return out;
}
function request(chunks: AsyncIterable<Buffer> | Buffer[], guard: IngestGuard, id: string): IngestRequest {
  return {
    id,
    sender: 'a@example.org',
    recipients: [{ address: 'b@contoso.test' }],
    origin: { kind: 'smtp', connector: 'Default Frontend', clientIp: '192.0.2.1', serverHost: 'n1' },
    content: Array.isArray(chunks) ? Readable.from(chunks) : chunks,
    prependHeaders: () => 'Received: from test\r\n',
    fqdn: 'mx.contoso.test',
    maxHeaderSize: 64 * 1024,
    inlineMaxBytes: 64 * 1024,
    guard,
  };
}
const reject: IngestGuard = { lineEndings: 'Reject', maxLineLength: 1000 };

describe('ingestMessage with the content guard (real nats-server)', () => {
  it('stores and publishes a large clean message (the measure below sees a body)', async () => {
    const before = await stored();
    const result = await ingestMessage(deps(), request(content(5000, 'end\r\n'), { ...reject, maxBytes: 1_000_000 }, 'ingest-clean'));
    const after = await stored();
    expect(after.submitted).toBe(before.submitted + 1);
    expect(after.bodyBytes).toBeGreaterThan(before.bodyBytes + 390_000);
    expect(result.size).toBeGreaterThan(390_000);
  });

  it.each<[string, Buffer[], IngestGuard, string, boolean]>([
    // 5,000 lines of 78 octets: ~390 KB, past the inline limit, so the object store holds chunks of it when the fault arrives.
    ['an oversized message', content(5000, 'end\r\n'), { ...reject, maxBytes: 300_000 }, 'TOO_BIG', true],
    ['a bare LF after 390 KB', content(5000, 'bare\n.\nMAIL FROM:<evil@example.org>\r\n'), reject, 'BARE_LINE_FEED', true],
    ['a NUL after 390 KB, even with Normalize', content(5000, 'x\0\r\n'), { ...reject, lineEndings: 'Normalize' }, 'NUL', true],
    ['a 5,000-octet line', content(10, `${'y'.repeat(5000)}\r\n`), reject, 'LINE_TOO_LONG', false],
    ['a small message with a bare LF (inline body)', content(1, 'a\nb\r\n'), reject, 'BARE_LINE_FEED', false],
    [
      'a header block over MaxHeaderSize in one chunk',
      [Buffer.from(`X-Big: ${'h'.repeat(900)}\r\n`.repeat(80) + '\r\nbody\r\n')],
      reject,
      'HEADER_TOO_BIG',
      false,
    ],
  ])('refuses %s: nothing published, nothing left in the object store', async (_name, chunks, guard, code, streamed) => {
    const before = await stored();
    const err = await ingestMessage(deps(), request(chunks, guard, `ingest-${code}`)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ContentRefusedError);
    expect(err).toMatchObject({ code });
    const after = await stored();
    expect({ ...after, bodyLastSeq: 0 }).toEqual({ ...before, bodyLastSeq: 0 });
    // Where the body had started into the object store, its chunks were written and purged again.
    expect(after.bodyLastSeq > before.bodyLastSeq).toBe(streamed);
  });

  it('leaves the SMTP stream readable after a refusal mid-body, so the rest of DATA can be drained', async () => {
    const stream = new PassThrough();
    const refused = ingestMessage(deps(), request(stream, reject, 'ingest-drain')).catch((e: unknown) => e);
    for (const c of content(2000, 'bare\nLF\r\n')) stream.write(c);
    expect(await refused).toMatchObject({ code: 'BARE_LINE_FEED' });
    const ended = once(stream, 'end');
    stream.resume();
    for (let i = 0; i < 100; i++) stream.write(Buffer.alloc(16_384, 0x61));
    stream.end();
    await ended;
    expect(stream.destroyed || stream.readableEnded).toBe(true);
  });

  it('stores what Normalize made of bare line endings', async () => {
    const req = {
      ...request([Buffer.from('Subject: n\n\nline one\nline two\r.\rend\n')], { ...reject, lineEndings: 'Normalize' }, 'ingest-normalized'),
      inlineMaxBytes: 0,
    };
    await ingestMessage(deps(), req);
    const body = await bodies.read({ kind: 'object', bucket: BODY_BUCKET, name: 'ingest-normalized' });
    expect(body.toString('latin1')).toBe(
      'Received: from test\r\nMessage-ID: <ingest-normalized@mx.contoso.test>\r\nSubject: n\r\n\r\nline one\r\nline two\r\n.\r\nend\r\n',
    );
  });
});
