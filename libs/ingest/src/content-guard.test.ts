import { once } from 'node:events';
import { PassThrough } from 'node:stream';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { REPLIES } from '@transit/policy';
import {
  CONTENT_REFUSAL_CODES,
  ContentRefusedError,
  HeaderTooLargeError,
  contentRefusalReply,
  guardContent,
  type ContentGuardOptions,
  type ContentRefusalCode,
} from './index.ts';

type Outcome = { out: string } | { code: ContentRefusalCode };

async function* from(chunks: Buffer[]): AsyncGenerator<Buffer> {
  for (const c of chunks) yield await Promise.resolve(c); // each chunk a turn later, as from a socket
}

/** The guard over these chunks: what it yielded (latin1, so every octet is one character), or the code it refused with. */
async function run(chunks: Buffer[], o: ContentGuardOptions): Promise<Outcome> {
  const out: Buffer[] = [];
  try {
    for await (const b of guardContent(from(chunks), o)) out.push(b);
  } catch (err) {
    if (err instanceof ContentRefusedError) return { code: err.code };
    throw err;
  }
  return { out: Buffer.concat(out).toString('latin1') };
}

const bytes = (s: string) => Buffer.from(s, 'latin1');
/** Every way to cut `s` into two chunks, and into one-octet chunks. */
function splits(s: string): Buffer[][] {
  const b = bytes(s);
  const ways: Buffer[][] = [[b], [...b].map((x) => Buffer.from([x]))];
  for (let i = 1; i < b.length; i++) ways.push([b.subarray(0, i), b.subarray(i)]);
  return ways;
}
async function everySplit(s: string, o: ContentGuardOptions): Promise<Outcome> {
  const outcomes = await Promise.all(splits(s).map((chunks) => run(chunks, o)));
  for (const x of outcomes) expect(x).toEqual(outcomes[0]); // the same verdict whatever the chunk boundaries
  return outcomes[0]!;
}

/**
 * The contract, one octet at a time with the whole input in hand: the guard must give the
 * same outcome as this for any input and any chunking.
 */
function reference(input: Buffer, o: ContentGuardOptions): Outcome {
  const reject = o.lineEndings === 'Reject';
  const maxContent = o.maxLineLength > 0 ? Math.max(0, o.maxLineLength - 2) : Infinity;
  const maxBytes = o.maxBytes ?? 0;
  const maxHeader = o.maxHeaderSize ?? 0;
  let out = '';
  let line = 0;
  let inHeader = true;
  let header = 0;
  const headerOver = (n: number) => {
    header += n;
    return maxHeader > 0 && header > maxHeader;
  };
  const endLine = (): boolean => {
    const wasHeader = inHeader;
    if (inHeader && line === 0) inHeader = false;
    const over = wasHeader && line > 0 && headerOver(line + 2);
    line = 0;
    out += '\r\n';
    return over;
  };
  for (let i = 0; i < input.length; i++) {
    if (maxBytes > 0 && i >= maxBytes) return { code: 'TOO_BIG' };
    const c = input[i]!;
    if (c === 0) return { code: 'NUL' };
    if (c === 0x0d) {
      if (i + 1 < input.length && maxBytes > 0 && i + 1 >= maxBytes) return { code: 'TOO_BIG' };
      const crlf = input[i + 1] === 0x0a;
      if (!crlf && reject) return { code: 'BARE_CR' };
      if (crlf) i++;
      if (endLine()) return { code: 'HEADER_TOO_BIG' };
    } else if (c === 0x0a) {
      if (reject) return { code: 'BARE_LINE_FEED' };
      if (endLine()) return { code: 'HEADER_TOO_BIG' };
    } else {
      if (++line > maxContent) return { code: 'LINE_TOO_LONG' };
      out += String.fromCharCode(c);
    }
  }
  if (inHeader && headerOver(line)) return { code: 'HEADER_TOO_BIG' };
  return { out };
}

const reject: ContentGuardOptions = { lineEndings: 'Reject', maxLineLength: 1000 };
const normalize: ContentGuardOptions = { lineEndings: 'Normalize', maxLineLength: 1000 };

describe('guardContent: the ten bad endings of SMTP smuggling', () => {
  const head = 'From: a@example.org\r\nSubject: x\r\n\r\nbody';
  const smuggled = 'MAIL FROM:<evil@example.org>\r\nRCPT TO:<victim@contoso.test>\r\n';
  // [ending, Reject's refusal, what Normalize stores for it, or NUL for its refusal]
  const cases: Array<[string, ContentRefusalCode, string]> = [
    ['\n.\n', 'BARE_LINE_FEED', '\r\n.\r\n'],
    ['\r.\r', 'BARE_CR', '\r\n.\r\n'],
    ['\r.\n', 'BARE_CR', '\r\n.\r\n'],
    ['\n.\r', 'BARE_LINE_FEED', '\r\n.\r\n'],
    ['\n.\r\n', 'BARE_LINE_FEED', '\r\n.\r\n'],
    ['\r\n.\n', 'BARE_LINE_FEED', '\r\n.\r\n'],
    ['\r.\r\n', 'BARE_CR', '\r\n.\r\n'],
    ['\r\n.\r', 'BARE_CR', '\r\n.\r\n'],
    ['\r\n\0.\r\n', 'NUL', 'NUL'],
    ['\r\n.\0\r\n', 'NUL', 'NUL'],
  ];
  for (const [ending, code, normalized] of cases) {
    const name = JSON.stringify(ending);
    // Followed by smuggled commands (as smtp-server hands them over), and as the very last octets.
    for (const [where, after] of [
      ['before smuggled commands', smuggled],
      ['at the end of the content', ''],
    ] as const) {
      it(`Reject refuses ${name} ${where}, at every chunk boundary`, async () => {
        expect(await everySplit(head + ending + after, reject)).toEqual({ code });
      });
      it(`Normalize ${normalized.length > 4 ? 'stores' : 'refuses'} ${name} ${where}, at every chunk boundary`, async () => {
        const expected = normalized === 'NUL' ? { code: 'NUL' } : { out: head + normalized + after };
        expect(await everySplit(head + ending + after, normalize)).toEqual(expected);
      });
    }
  }
});

describe('guardContent', () => {
  const line = (n: number) => 'a'.repeat(n);
  it.each<[string, string, ContentGuardOptions, Outcome]>([
    // RFC 5321 §4.5.3.1.6: 998 octets and the CRLF.
    ['998 octets and CRLF', `${line(998)}\r\n`, reject, { out: `${line(998)}\r\n` }],
    ['999 octets and CRLF', `${line(999)}\r\n`, reject, { code: 'LINE_TOO_LONG' }],
    ['999 octets without an ending yet', line(999), reject, { code: 'LINE_TOO_LONG' }],
    ['998 octets and a bare LF, normalized to 1000', `X\r\n\r\n${line(998)}\n`, normalize, { out: `X\r\n\r\n${line(998)}\r\n` }],
    ['999 octets and a bare LF, normalized to 1001', `X\r\n\r\n${line(999)}\n`, normalize, { code: 'LINE_TOO_LONG' }],
    ['a lowered MaxLineLength', `${line(78)}\r\n${line(79)}\r\n`, { ...reject, maxLineLength: 80 }, { code: 'LINE_TOO_LONG' }],
    ['no line limit', `${line(5000)}\r\n`, { ...reject, maxLineLength: 0 }, { out: `${line(5000)}\r\n` }],
    // maxBytes: the content as received.
    ['exactly maxBytes', 'Subject: x\r\n\r\nhello\r\n', { ...reject, maxBytes: 21 }, { out: 'Subject: x\r\n\r\nhello\r\n' }],
    ['one octet over maxBytes', 'Subject: x\r\n\r\nhello\r\n', { ...reject, maxBytes: 20 }, { code: 'TOO_BIG' }],
    ['maxBytes counts bare LFs as received, not as stored', 'S: x\n\nhi\n', { ...normalize, maxBytes: 9 }, { out: 'S: x\r\n\r\nhi\r\n' }],
    ['a bare LF before the limit is named first', 'S: x\n\nhello\r\n', { ...reject, maxBytes: 5 }, { code: 'BARE_LINE_FEED' }],
    // maxHeaderSize: the header lines with their CRLFs, the empty line not counted.
    ['a header block of exactly maxHeaderSize', 'A: 1\r\nB: 2\r\n\r\nbody\r\n', { ...reject, maxHeaderSize: 12 }, { out: 'A: 1\r\nB: 2\r\n\r\nbody\r\n' }],
    ['a header block one octet over', 'A: 1\r\nB: 22\r\n\r\nbody\r\n', { ...reject, maxHeaderSize: 12 }, { code: 'HEADER_TOO_BIG' }],
    ['a header block without an empty line', 'A: 1\r\nB: 22', { ...reject, maxHeaderSize: 10 }, { code: 'HEADER_TOO_BIG' }],
    ['a long body is not header', 'A: 1\r\n\r\n' + line(500) + '\r\n', { ...reject, maxHeaderSize: 12 }, { out: 'A: 1\r\n\r\n' + line(500) + '\r\n' }],
    ['no header at all', '\r\nbody\r\n', { ...reject, maxHeaderSize: 1 }, { out: '\r\nbody\r\n' }],
    ['header normalized before it is counted', 'A: 1\nB: 2\n\nbody\n', { ...normalize, maxHeaderSize: 12 }, { out: 'A: 1\r\nB: 2\r\n\r\nbody\r\n' }],
    ['header normalized, one over', 'A: 1\nB: 22\n\nbody\n', { ...normalize, maxHeaderSize: 12 }, { code: 'HEADER_TOO_BIG' }],
    // NUL in either mode, anywhere.
    ['NUL in the header, Reject', 'Subject: a\0b\r\n\r\n', reject, { code: 'NUL' }],
    ['NUL in the body, Normalize', 'Subject: a\r\n\r\nb\0dy\n', normalize, { code: 'NUL' }],
    ['NUL as the last octet', 'Subject: a\r\n\r\nbody\r\n\0', normalize, { code: 'NUL' }],
    // Bare CR alone and in runs.
    ['CR CR LF, normalized', 'a\r\r\nb\r\n', normalize, { out: 'a\r\n\r\nb\r\n' }],
    ['a trailing bare CR, normalized', 'a\r\n\r\nb\r', normalize, { out: 'a\r\n\r\nb\r\n' }],
    ['a trailing bare CR, Reject', 'a\r\n\r\nb\r', reject, { code: 'BARE_CR' }],
    ['empty content', '', reject, { out: '' }],
  ])('%s', async (_name, input, o, expected) => {
    expect(await everySplit(input, o)).toEqual(expected);
    expect(reference(bytes(input), o)).toEqual(expected); // the reference model agrees with the table
  });

  it('refuses with the offset of the fault and the limit in the message', async () => {
    const err = await guardAll(from([bytes('Subject: x\r\n\r\nab\ncd\r\n')]), reject).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ContentRefusedError);
    expect(err).toMatchObject({ code: 'BARE_LINE_FEED', offset: 16 });
    const big = await guardAll(from([bytes('A: 1\r\nB: 22\r\n\r\n')]), { ...reject, maxHeaderSize: 12 }).catch((e: unknown) => e);
    expect(big).toBeInstanceOf(HeaderTooLargeError); // what callers matched before the guard existed
    expect((big as Error).message).toBe('header block exceeds 12 octets');
  });

  it('yields nothing of the chunk that crosses maxBytes, and nothing after a refusal', async () => {
    const yielded: string[] = [];
    const chunks = [bytes('Subject: x\r\n\r\n'), bytes('0123456789'), bytes('abc\r\n'), bytes('more\r\n')];
    const err = await (async () => {
      for await (const b of guardContent(from(chunks), { ...reject, maxBytes: 26 })) yielded.push(b.toString('latin1'));
    })().catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'TOO_BIG' });
    expect(yielded).toEqual(['Subject: x\r\n\r\n', '0123456789']);
  });

  it('yields a chunk that needs no change itself, not a copy', async () => {
    const chunks = [bytes('Subject: x\r\n\r\n'), bytes('hello\r\nworld\r\n')];
    const out: Buffer[] = [];
    for await (const b of guardContent(from(chunks), normalize)) out.push(b);
    expect(out).toHaveLength(2);
    expect(out[0]).toBe(chunks[0]);
    expect(out[1]).toBe(chunks[1]);
  });

  it('holds back a CR that ends a chunk until the next octet says what it was', async () => {
    const out: string[] = [];
    for await (const b of guardContent(from([bytes('a\r\n\r\nb\r'), bytes('\nc\r'), bytes('d\r\n')]), normalize)) out.push(b.toString('latin1'));
    expect(out).toEqual(['a\r\n\r\nb', '\r', '\nc', '\r\n', 'd\r\n']);
  });

  it('leaves a Node stream readable after a refusal, so the SMTP layer can drain the rest of DATA', async () => {
    const stream = new PassThrough();
    stream.write(bytes('Subject: x\r\n\r\nbare\nLF\r\n'));
    const refused = guardAll(stream, reject).catch((e: unknown) => e);
    expect(await refused).toMatchObject({ code: 'BARE_LINE_FEED' });
    expect(stream.destroyed).toBe(false);
    // What the engine does: resume and wait for the end, while the client goes on sending.
    const ended = once(stream, 'end');
    stream.resume();
    for (let i = 0; i < 200; i++) stream.write(Buffer.alloc(1024, 0x61));
    stream.end();
    await ended;
    expect(stream.readableEnded).toBe(true);
  });

  it('maps every refusal code to its reply', () => {
    expect(Object.fromEntries(CONTENT_REFUSAL_CODES.map((c) => [c, contentRefusalReply(c)]))).toEqual({
      BARE_LINE_FEED: REPLIES.contentBareLineFeed,
      BARE_CR: REPLIES.contentBareCarriageReturn,
      NUL: REPLIES.contentNul,
      LINE_TOO_LONG: REPLIES.contentLineTooLong,
      TOO_BIG: REPLIES.messageTooBig,
      HEADER_TOO_BIG: REPLIES.headerTooBig,
    });
    expect(contentRefusalReply('BARE_LINE_FEED')).toEqual({ code: 554, enhanced: '5.6.0', text: 'Invalid message content, contains bare linefeeds' });
  });
});

describe('guardContent against the reference model (fast-check)', () => {
  const octet = fc.constantFrom(...[...'ab. :\r\n\r\n\0'].map((c) => c.charCodeAt(0)));
  const content = fc.array(octet, { maxLength: 60 }).map((a) => Buffer.from(a));
  const options = fc.record({
    lineEndings: fc.constantFrom('Reject' as const, 'Normalize' as const),
    maxLineLength: fc.oneof(fc.constant(0), fc.integer({ min: 2, max: 14 })),
    maxBytes: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 60 })),
    maxHeaderSize: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 40 })),
  });
  /** The content cut at random places (some cuts repeated: empty chunks too). */
  const chunked = content.chain((buf) =>
    fc.array(fc.integer({ min: 0, max: buf.length }), { maxLength: 12 }).map((cuts) => {
      const at = [0, ...cuts.sort((x, y) => x - y), buf.length];
      return { buf, chunks: at.slice(1).map((end, i) => buf.subarray(at[i], end)) };
    }),
  );

  it('gives the same outcome for any input, any options and any chunking', async () => {
    await fc.assert(
      fc.asyncProperty(chunked, options, async ({ buf, chunks }, o) => {
        expect(await run(chunks, o)).toEqual(reference(buf, o));
      }),
      { numRuns: 5000 },
    );
  });
});

async function guardAll(source: AsyncIterable<Buffer>, o: ContentGuardOptions): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const b of guardContent(source, o)) out.push(b);
  return Buffer.concat(out);
}
