/**
 * The DATA content guard: message content (dot-unstuffed, line endings as the client sent
 * them) passes through here before anything is stored, so a bad message is refused while
 * it arrives, not after it reached the object store. It wraps the content stream and
 * yields the bytes to store; a refusal is a thrown ContentRefusedError (refusal.ts).
 *
 * - Lines end in CRLF. A bare LF (not after a CR) or a bare CR (not before an LF) is refused
 *   with `Reject` and becomes CRLF with `Normalize`. Bare endings are what SMTP smuggling
 *   uses (`\n.\n`, `\r.\r`, ...): a server that takes one for the end of DATA and a relay
 *   that does not disagree on where a message ends, and the rest is read as commands.
 *   Normalized, the smuggled text is an ordinary line of this message.
 * - NUL is refused in both modes: 7bit and 8bit data (RFC 2045 §2.7-2.8, 8BITMIME) exclude
 *   it, only BINARYMIME may carry it and Transit does not offer that, so no legitimate
 *   message holds one; and servers that drop NULs read `\r\n\0.\r\n` as the end of DATA.
 * - A line over maxLineLength octets (its CRLF included; RFC 5321 §4.5.3.1.6 allows 1000)
 *   is refused at its first octet over the limit.
 * - maxBytes counts the content as received (what SIZE and MaxMessageSize mean); the chunk
 *   that crosses it is refused before any of it is yielded, so a client cannot stream an
 *   unbounded body into the store. maxHeaderSize counts the header block (the lines
 *   before the first empty line, CRLFs included) as yielded.
 * - The refusal names the first fault in the byte stream, whatever the chunk boundaries,
 *   and nothing is yielded after it. Every byte yielded is final: a CR ending a chunk is
 *   held back until the next byte shows whether it was bare.
 * - It buffers nothing across chunks but that CR. A chunk that needs no change is yielded
 *   itself (or a subarray of it); only a chunk with line endings to normalize is copied.
 *   Scanning is indexOf over the chunk (native memchr), once per line, not a loop per byte.
 * - When it refuses (or its consumer stops) it closes its source with return(). A Node
 *   Readable is read through `iterator({ destroyOnReturn: false })`, so it stays readable
 *   and the SMTP layer can drain the rest of DATA before answering: a destroyed stream
 *   never emits 'end', and an abandoned iterator's 'readable' listener stops resume().
 */
import { Readable } from 'node:stream';
import { ContentRefusedError, HeaderTooLargeError } from './refusal.ts';

export type LineEndingHandling = 'Reject' | 'Normalize';

export type ContentGuardOptions = {
  lineEndings: LineEndingHandling;
  /** Octets per line, CRLF included; a longer line is refused. 0: no limit. */
  maxLineLength: number;
  /** Octets of content as received; 0 or absent: no limit. */
  maxBytes?: number;
  /** Octets of the header block as yielded; 0 or absent: no limit. */
  maxHeaderSize?: number;
};

/** RFC 5321 §4.5.3.1.6: a text line is at most 1000 octets with its CRLF. */
export const SMTP_MAX_LINE_LENGTH = 1000;

const NUL = 0x00;
const LF = 0x0a;
const CR = 0x0d;
// Inserted line endings; only ever copied into a new buffer (Buffer.concat), never yielded themselves.
const CRLF = Buffer.from([CR, LF]);
const LFBUF = Buffer.from([LF]);

/** A Node Readable is read without destroying it on return(), so its owner can drain it; any other source as it is. */
export function releasableIterator(source: AsyncIterable<Buffer>): AsyncIterator<Buffer> {
  return source instanceof Readable ? (source.iterator({ destroyOnReturn: false }) as AsyncIterator<Buffer>) : source[Symbol.asyncIterator]();
}

/** Yields the content to store, or throws a ContentRefusedError at the first fault. */
export async function* guardContent(source: AsyncIterable<Buffer>, options: ContentGuardOptions): AsyncGenerator<Buffer, void, undefined> {
  const scanner = new ContentScanner(options);
  const it = releasableIterator(source);
  try {
    for (let next = await it.next(); !next.done; next = await it.next()) {
      for (const out of scanner.push(next.value)) yield out;
    }
    const tail = scanner.end();
    if (tail) yield tail;
  } finally {
    await it.return?.();
  }
}

/** The guard's state between chunks; push() and end() either return what to yield or throw. */
class ContentScanner {
  readonly #normalize: boolean;
  /** Content octets a line may hold besides its CRLF (Infinity: no limit). */
  readonly #maxLineContent: number;
  readonly #maxBytes: number;
  readonly #maxHeader: number;
  /** Octets received so far, for maxBytes and the offsets in refusals. */
  #received = 0;
  /** Content octets of the current line so far (its CR and LF not counted). */
  #line = 0;
  #inHeader = true;
  #headerBytes = 0;
  /** The previous chunk ended in a CR that is not yielded yet. */
  #heldCr = false;

  constructor(o: ContentGuardOptions) {
    this.#normalize = o.lineEndings === 'Normalize'; // anything else rejects: the safe side
    this.#maxLineContent = o.maxLineLength > 0 ? Math.max(0, o.maxLineLength - 2) : Infinity;
    this.#maxBytes = o.maxBytes ?? 0;
    this.#maxHeader = o.maxHeaderSize ?? 0;
  }

  push(chunk: Buffer): Buffer[] {
    const n = chunk.length;
    if (n === 0) return [];
    const base = this.#received;
    this.#received += n;
    // Bytes past maxBytes are not looked at: a fault before the limit is still named first.
    const over = this.#maxBytes > 0 && this.#received > this.#maxBytes;
    const end = over ? Math.max(0, this.#maxBytes - base) : n;
    const out: Buffer[] = [];
    let copy = false; // a line ending was added inside the chunk: yield one new buffer
    let from = 0; // chunk[from, ...) is not in `out` yet
    let pos = 0;

    if (this.#heldCr) {
      if (end === 0) throw this.#tooBig(); // whether the CR was bare lies past the limit
      this.#heldCr = false;
      if (chunk[0] === LF) {
        out.push(Buffer.from([CR]));
        this.#endLine();
        pos = 1;
      } else {
        if (!this.#normalize) throw new ContentRefusedError('BARE_CR', 'bare CR (not followed by LF)', base - 1);
        out.push(Buffer.from([CR, LF]));
        this.#endLine();
      }
    }

    let nul = chunk.indexOf(NUL);
    if (nul < 0 || nul >= end) nul = end;
    let lf = -1;
    let cr = -1;
    while (pos < end) {
      if (lf < pos) {
        lf = chunk.indexOf(LF, pos);
        if (lf < 0 || lf >= end) lf = end;
      }
      if (cr < pos) {
        cr = chunk.indexOf(CR, pos);
        if (cr < 0 || cr >= end) cr = end;
      }
      const stop = Math.min(lf, cr, nul);
      this.#addToLine(stop - pos, base + pos);
      if (stop === end) break;
      if (stop === nul) throw new ContentRefusedError('NUL', 'NUL octet', base + nul);
      if (stop === lf) {
        // A CR before it would have stopped the scan first: this LF is bare.
        if (!this.#normalize) throw new ContentRefusedError('BARE_LINE_FEED', 'bare LF (not preceded by CR)', base + lf);
        out.push(chunk.subarray(from, lf), CRLF);
        from = pos = lf + 1;
        copy = true;
        this.#endLine();
        continue;
      }
      if (cr + 1 === end) {
        // Past maxBytes, the refusal below is the answer; otherwise the next chunk tells.
        out.push(chunk.subarray(from, cr));
        from = end;
        this.#heldCr = true;
        break;
      }
      if (chunk[cr + 1] === LF) {
        pos = cr + 2;
        this.#endLine();
        continue;
      }
      if (!this.#normalize) throw new ContentRefusedError('BARE_CR', 'bare CR (not followed by LF)', base + cr);
      out.push(chunk.subarray(from, cr + 1), LFBUF);
      from = pos = cr + 1;
      copy = true;
      this.#endLine();
    }
    if (over) throw this.#tooBig();
    if (from < end) out.push(from === 0 && end === n ? chunk : chunk.subarray(from, end));
    if (copy) return [Buffer.concat(out)];
    return out.length === 1 && out[0]!.length > 0 ? out : out.filter((b) => b.length > 0);
  }

  /** At the end of the content: a CR still held back was bare; a header block without an empty line ends here. */
  end(): Buffer | undefined {
    let tail: Buffer | undefined;
    if (this.#heldCr) {
      this.#heldCr = false;
      if (!this.#normalize) throw new ContentRefusedError('BARE_CR', 'bare CR (not followed by LF)', this.#received - 1);
      tail = Buffer.from([CR, LF]);
      this.#endLine();
    }
    if (this.#inHeader) this.#addToHeader(this.#line);
    return tail;
  }

  #addToLine(octets: number, at: number): void {
    const before = this.#line;
    this.#line += octets;
    if (this.#line > this.#maxLineContent) {
      throw new ContentRefusedError('LINE_TOO_LONG', `line longer than ${this.#maxLineContent + 2} octets with its CRLF`, at + (this.#maxLineContent - before));
    }
  }

  #endLine(): void {
    if (this.#inHeader) {
      if (this.#line === 0)
        this.#inHeader = false; // the empty line after the header block
      else this.#addToHeader(this.#line + 2);
    }
    this.#line = 0;
  }

  #addToHeader(octets: number): void {
    this.#headerBytes += octets;
    if (this.#maxHeader > 0 && this.#headerBytes > this.#maxHeader) throw new HeaderTooLargeError(this.#maxHeader);
  }

  #tooBig(): ContentRefusedError {
    return new ContentRefusedError('TOO_BIG', `message exceeds ${this.#maxBytes} octets`, this.#maxBytes);
  }
}
