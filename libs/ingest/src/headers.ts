/**
 * Reads a message's header block off a stream, bounded, without touching the body: the
 * caller gets the header bytes, the already-read start of the body, and the rest of the
 * stream, so the stored bytes after Transit's added headers are exactly what was sent.
 * MaxHeaderSize holds however the bytes are chunked: a header block ending past the limit
 * is refused even when it arrived whole in one chunk.
 */
import { HeaderTooLargeError } from './refusal.ts';

export type SplitMessage = { header: Buffer; bodyStart: Buffer; rest: AsyncIterator<Buffer> };

function endOfHeaders(buf: Buffer): number {
  if (buf.length >= 2 && buf[0] === 0x0d && buf[1] === 0x0a) return 0; // no headers at all
  if (buf.length >= 1 && buf[0] === 0x0a) return 0;
  const crlf = buf.indexOf('\r\n\r\n');
  const lf = buf.indexOf('\n\n');
  if (crlf < 0 && lf < 0) return -1;
  if (crlf < 0) return lf + 1;
  if (lf < 0) return crlf + 2;
  return Math.min(crlf + 2, lf + 1);
}

export async function splitHeader(source: AsyncIterable<Buffer>, maxHeaderSize: number): Promise<SplitMessage> {
  const it = source[Symbol.asyncIterator]();
  let buf: Buffer = Buffer.alloc(0);
  for (;;) {
    const end = endOfHeaders(buf);
    if (end > maxHeaderSize) throw new HeaderTooLargeError(maxHeaderSize);
    if (end >= 0) return { header: buf.subarray(0, end), bodyStart: buf.subarray(end), rest: it };
    // Not ended yet: an end within the limit would be in sight (its empty line is at most 2 octets past it).
    if (buf.length >= maxHeaderSize + 2) throw new HeaderTooLargeError(maxHeaderSize);
    const next = await it.next();
    if (next.done) {
      if (buf.length > maxHeaderSize) throw new HeaderTooLargeError(maxHeaderSize);
      return { header: buf, bodyStart: Buffer.alloc(0), rest: it };
    }
    buf = buf.length === 0 ? next.value : Buffer.concat([buf, next.value]);
  }
}

/** Value of the first header `name` (unfolded), or undefined. */
export function headerValue(header: Buffer | string, name: string): string | undefined {
  const text = typeof header === 'string' ? header : header.toString('latin1');
  const re = new RegExp(`^${name}:[ \\t]*((?:.*)(?:\\r?\\n[ \\t].*)*)`, 'im');
  const m = re.exec(text);
  return m ? m[1]!.replace(/\r?\n[ \t]+/g, ' ').trim() : undefined;
}

/** RFC 5322 date-time, as Received and Date headers carry it. */
export function rfc5322Date(at: Date): string {
  const days = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
  const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  const p = (n: number) => String(n).padStart(2, '0');
  return `${days[at.getUTCDay()]}, ${at.getUTCDate()} ${months[at.getUTCMonth()]} ${at.getUTCFullYear()} ${p(at.getUTCHours())}:${p(at.getUTCMinutes())}:${p(at.getUTCSeconds())} +0000`;
}

/** The header block split into fields, folded continuation lines kept with their field. */
export function headerFields(header: Buffer | string): string[] {
  return (typeof header === 'string' ? header : header.toString('latin1')).split(/(?<=\n)(?=[^ \t])/);
}

/** The header block without the fields `remove(name)` selects, byte for byte otherwise. */
export function removeHeaderFields(header: Buffer, remove: (name: string) => boolean): Buffer {
  const fields = headerFields(header);
  const kept = fields.filter((f) => {
    const colon = f.indexOf(':');
    return colon <= 0 || !remove(f.slice(0, colon).trim());
  });
  return kept.length === fields.length ? header : Buffer.from(kept.join(''), 'latin1');
}
