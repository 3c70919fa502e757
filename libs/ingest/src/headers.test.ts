import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { HeaderTooLargeError, headerValue, rfc5322Date, splitHeader } from './index.ts';

const chunks = (...parts: string[]): AsyncIterable<Buffer> => Readable.from(parts.map((p) => Buffer.from(p)));
async function restOf(it: AsyncIterator<Buffer>) {
  const out: Buffer[] = [];
  for (let n = await it.next(); !n.done; n = await it.next()) out.push(n.value);
  return Buffer.concat(out).toString();
}

describe('splitHeader', () => {
  it.each([
    ['CRLF in one chunk', ['Subject: a\r\nTo: b\r\n\r\nbody\r\n'], 'Subject: a\r\nTo: b\r\n', '\r\nbody\r\n'],
    ['the separator split across chunks', ['Subject: a\r\n\r', '\nbo', 'dy'], 'Subject: a\r\n', '\r\nbody'],
    ['bare LF', ['Subject: a\n\nbody'], 'Subject: a\n', '\nbody'],
    ['no body', ['Subject: a\r\n'], 'Subject: a\r\n', ''],
    ['no headers', ['\r\nbody'], '', '\r\nbody'],
  ])('splits %s', async (_name, parts, header, body) => {
    const s = await splitHeader(chunks(...parts), 1000);
    expect(s.header.toString()).toBe(header);
    const rest = s.bodyStart.toString() + (await restOf(s.rest));
    expect(rest).toBe(body);
    expect(s.header.toString() + rest).toBe(parts.join('')); // reassembles byte for byte
  });
  it('refuses a header block over the limit', async () => {
    await expect(splitHeader(chunks('X: ' + 'a'.repeat(100), 'b'.repeat(100)), 50)).rejects.toBeInstanceOf(HeaderTooLargeError);
  });
  // MaxHeaderSize must hold however the bytes arrive: a whole header block in one chunk was let through.
  const header = 'A: ' + 'a'.repeat(45) + '\r\n'; // 50 octets
  const message = header + '\r\nbody\r\n';
  const cuts = (s: string) => [[s], ...Array.from({ length: s.length - 1 }, (_, i) => [s.slice(0, i + 1), s.slice(i + 1)])];
  it('accepts a header block of exactly the limit, and refuses one octet over, in one chunk and cut anywhere', async () => {
    for (const parts of cuts(message)) {
      expect((await splitHeader(chunks(...parts), 50)).header.toString()).toBe(header);
      await expect(splitHeader(chunks(...parts), 49), parts.map((p) => p.length).join('+')).rejects.toBeInstanceOf(HeaderTooLargeError);
    }
  });
  it('refuses a header block over the limit that ends the stream without an empty line', async () => {
    await expect(splitHeader(chunks(header), 49)).rejects.toBeInstanceOf(HeaderTooLargeError);
    expect((await splitHeader(chunks(header), 50)).header.toString()).toBe(header);
  });
});

describe('headerValue', () => {
  it('finds a folded header case-insensitively', () => {
    expect(headerValue('Subject: x\r\nmessage-id:\r\n <a@b>\r\n', 'Message-ID')).toBe('<a@b>');
    expect(headerValue('Subject: x\r\n', 'Message-ID')).toBeUndefined();
  });
  it('formats RFC 5322 dates', () => {
    expect(rfc5322Date(new Date(Date.UTC(2026, 10, 23, 3, 4, 5)))).toBe('Mon, 23 Nov 2026 03:04:05 +0000');
  });
});
