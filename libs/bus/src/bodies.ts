/**
 * Body storage: small bodies travel inline in the envelope; large ones stream into the
 * JetStream object store (docs/performance.md,
 * "Findings that shaped the code": the object store is for large bodies only).
 *
 * Writing goes through the object store client, which waits for each chunk's
 * acknowledgement before it reads the next: what a role holds of a message on its way in
 * is a chunk or two. Reading does not use the client's `get`: that one pushes every chunk
 * into an unbounded stream as fast as the server sends it, so a delivery to a slow
 * destination would hold the whole message in memory (35 MB per large message in flight).
 * `open` reads the chunks through a pull consumer instead, a few at a time as the reader
 * asks for them, and checks the object's size and SHA-256 digest at the end.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { BodyRef } from '@transit/envelope';
import { Objm, type ObjectInfo, type ObjectStore } from '@nats-io/obj';
import type { Bus } from './connection.ts';
import { BODY_BUCKET } from './topology.ts';

/** Chunks asked of the server at a time, and chunks the Readable holds ahead of its reader: about 1.5 MB at the 128 KB chunk size. */
export const BODY_READ_AHEAD_CHUNKS = 8;
const READABLE_AHEAD_CHUNKS = 4;
/** A body whose next chunk does not come within this is unreadable (its chunks expired or were purged): the read fails instead of waiting forever. */
const CHUNK_STALL_MS = 30_000;

/** An object store's SHA-256 digest ("SHA-256=" and base64, URL-safe or not, padded or not; older clients wrote hex). */
function digestBytes(digest: string): Buffer | undefined {
  const value = digest.startsWith('SHA-256=') ? digest.slice('SHA-256='.length) : undefined;
  if (value === undefined) return undefined;
  if (/^[0-9a-f]{64}$/i.test(value)) return Buffer.from(value, 'hex');
  const bytes = Buffer.from(value.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
  return bytes.length === 32 ? bytes : undefined;
}

async function within<T>(work: Promise<T>, ms: number, message: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([work, new Promise<never>((_resolve, reject) => (timer = setTimeout(() => reject(new Error(message())), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

export class BodyStore {
  #store: Promise<ObjectStore> | undefined;
  readonly #bus: Bus;
  constructor(bus: Bus) {
    this.#bus = bus;
  }
  #bucket(name: string): Promise<ObjectStore> {
    if (name !== BODY_BUCKET) return new Objm(this.#bus.js).open(name);
    this.#store ??= new Objm(this.#bus.js).open(BODY_BUCKET).catch((err: unknown) => {
      this.#store = undefined;
      throw err;
    });
    return this.#store;
  }

  /** Streams `chunks` into the object store under `name`; resolves once the store confirmed every chunk. */
  async putStream(name: string, chunks: AsyncIterable<Uint8Array>): Promise<BodyRef> {
    const store = await this.#bucket(BODY_BUCKET);
    await store.put({ name }, Readable.toWeb(Readable.from(chunks)) as ReadableStream<Uint8Array>);
    return { kind: 'object', bucket: BODY_BUCKET, name };
  }

  /** The body as a Node stream, wherever it lives. Destroy it when you stop reading early: that ends its consumer. */
  async open(body: BodyRef): Promise<Readable> {
    if (body.kind === 'inline') return Readable.from([Buffer.from(body.data.buffer, body.data.byteOffset, body.data.byteLength)]);
    const info = await (await this.#bucket(body.bucket)).info(body.name);
    if (!info || info.deleted) throw new Error(`body ${body.bucket}/${body.name} is missing from the object store`);
    if (info.options?.link) throw new Error(`body ${body.bucket}/${body.name} is a link, which Transit never writes`);
    return Readable.from(this.#chunks(body.bucket, info), { highWaterMark: READABLE_AHEAD_CHUNKS });
  }

  async *#chunks(bucket: string, info: ObjectInfo): AsyncGenerator<Buffer> {
    const where = `body ${bucket}/${info.name}`;
    const expected = digestBytes(info.digest);
    if (!expected) throw new Error(`${where} has a digest Transit cannot check: ${info.digest}`);
    const sha = createHash('sha256');
    let size = 0;
    if (info.size > 0) {
      const consumer = await this.#bus.js.consumers.get(`OBJ_${bucket}`, { filter_subjects: `$O.${bucket}.C.${info.nuid}` });
      const iter = await consumer.consume({ max_messages: BODY_READ_AHEAD_CHUNKS });
      const it = iter[Symbol.asyncIterator]();
      try {
        for (;;) {
          const next = await within(
            it.next(),
            CHUNK_STALL_MS,
            () => `${where}: no chunk came within ${CHUNK_STALL_MS / 1000} s (${size} of ${info.size} bytes read)`,
          );
          if (next.done) break;
          const m = next.value;
          const data = Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength);
          size += data.length;
          if (size > info.size) throw new Error(`${where} has more than the ${info.size} bytes its metadata names`);
          sha.update(data);
          if (data.length > 0) yield data;
          if (m.info.pending === 0) break;
        }
      } finally {
        // close() alone waits for the iterator to take its stop: return() hands it over, also while a next() is pending.
        const closed = iter.close();
        await it.return?.();
        await closed;
        // Gone now rather than at the server's inactivity threshold: a busy node reads many bodies.
        await consumer.delete().catch(() => undefined);
      }
    }
    if (size !== info.size) throw new Error(`${where} ended after ${size} of its ${info.size} bytes`);
    if (!sha.digest().equals(expected)) throw new Error(`${where} is corrupt: its SHA-256 digest does not match the one stored with it`);
  }

  async read(body: BodyRef): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const chunk of await this.open(body)) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }
}
