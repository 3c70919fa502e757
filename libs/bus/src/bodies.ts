/**
 * Body storage: small bodies travel inline in the envelope; large ones stream into the
 * JetStream object store (docs/performance.md,
 * "Findings that shaped the code": the object store is for large bodies only).
 */
import { Readable } from 'node:stream';
import type { BodyRef } from '@transit/envelope';
import { Objm, type ObjectStore } from '@nats-io/obj';
import type { Bus } from './connection.ts';
import { BODY_BUCKET } from './topology.ts';

export class BodyStore {
  #store: Promise<ObjectStore> | undefined;
  readonly #bus: Bus;
  constructor(bus: Bus) {
    this.#bus = bus;
  }
  #bucket(): Promise<ObjectStore> {
    this.#store ??= new Objm(this.#bus.js).open(BODY_BUCKET).catch((err: unknown) => {
      this.#store = undefined;
      throw err;
    });
    return this.#store;
  }

  /** Streams `chunks` into the object store under `name`; resolves once the store confirmed every chunk. */
  async putStream(name: string, chunks: AsyncIterable<Uint8Array>): Promise<BodyRef> {
    const store = await this.#bucket();
    await store.put({ name }, Readable.toWeb(Readable.from(chunks)) as ReadableStream<Uint8Array>);
    return { kind: 'object', bucket: BODY_BUCKET, name };
  }

  /** The body as a Node stream, wherever it lives. */
  async open(body: BodyRef): Promise<Readable> {
    if (body.kind === 'inline') return Readable.from([Buffer.from(body.data.buffer, body.data.byteOffset, body.data.byteLength)]);
    const store = await new Objm(this.#bus.js).open(body.bucket);
    const result = await store.get(body.name);
    if (!result) throw new Error(`body ${body.bucket}/${body.name} is missing from the object store`);
    return Readable.fromWeb(result.data);
  }

  async read(body: BodyRef): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const chunk of await this.open(body)) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }
}
