import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Objm } from '@nats-io/obj';
import { headers } from '@nats-io/transport-node';
import { startNats, type NatsHandle } from '@transit/testkit';
import { BODY_READ_AHEAD_CHUNKS, BodyStore } from './bodies.ts';
import { connectBus, type Bus } from './connection.ts';
import { BODY_BUCKET, ensureTopology } from './topology.ts';

const CHUNK = 128 * 1024;

describe('BodyStore against JetStream', () => {
  let nats: NatsHandle;
  let bus: Bus;
  let bodies: BodyStore;
  beforeAll(async () => {
    nats = await startNats({ jetstream: true });
    bus = await connectBus([nats.url], 'bodies-test', 'once');
    await ensureTopology(bus, { replicas: 1 });
    bodies = new BodyStore(bus);
  });
  afterAll(async () => {
    await bus?.close();
    await nats?.stop();
  });

  const chunkConsumers = async () => {
    const out = [];
    for await (const c of bus.jsm.consumers.list(`OBJ_${BODY_BUCKET}`)) if (c.config.filter_subject?.startsWith(`$O.${BODY_BUCKET}.C.`)) out.push(c);
    return out;
  };

  it('reads back a large body byte for byte, in the chunks it was stored in', async () => {
    const data = randomBytes(5 * 1024 * 1024 + 17);
    const ref = await bodies.putStream('large-roundtrip', Readable.from([data.subarray(0, 1000), data.subarray(1000)]));
    expect(ref).toEqual({ kind: 'object', bucket: BODY_BUCKET, name: 'large-roundtrip' });
    const back = await bodies.read(ref);
    expect(back.length).toBe(data.length);
    expect(createHash('sha256').update(back).digest('hex')).toBe(createHash('sha256').update(data).digest('hex'));
    // The consumer that read it is gone once the read ended.
    await expect.poll(async () => (await chunkConsumers()).length).toBe(0);
  });

  it('asks the server for only a few chunks ahead of a reader that stops reading', async () => {
    const data = randomBytes(64 * CHUNK);
    const ref = await bodies.putStream('large-slow-reader', Readable.from([data]));
    const stream = await bodies.open(ref);
    const first = (await stream[Symbol.asyncIterator]().next()).value as Buffer;
    expect(first.equals(data.subarray(0, first.length))).toBe(true);
    // The reader pauses. Whatever the client buffers, the server has delivered at most the
    // pull window plus what the Readable holds ahead, far from the 64 chunks stored.
    await new Promise((r) => setTimeout(r, 300));
    const [consumer] = await chunkConsumers();
    expect(consumer).toBeDefined();
    expect(consumer!.num_pending).toBeGreaterThanOrEqual(64 - 4 * BODY_READ_AHEAD_CHUNKS);
    // Stopping early ends the consumer.
    stream.destroy();
    await expect.poll(async () => (await chunkConsumers()).length).toBe(0);
  });

  it('fails a read whose chunks do not match the digest stored with them', async () => {
    const ref = await bodies.putStream('large-corrupt', Readable.from([randomBytes(3 * CHUNK)]));
    // Rewrite its metadata with another object's digest, as a corrupted store would present it.
    const store = await new Objm(bus.js).open(BODY_BUCKET);
    const other = await store.putBlob({ name: 'large-other' }, randomBytes(3 * CHUNK));
    const subject = `$O.${BODY_BUCKET}.M.${Buffer.from('large-corrupt').toString('base64').replace(/\+/g, '-').replace(/\//g, '_')}`;
    const meta = (await bus.jsm.streams.getMessage(`OBJ_${BODY_BUCKET}`, { last_by_subj: subject }))!.json<Record<string, unknown>>();
    expect(meta.name).toBe('large-corrupt');
    const h = headers();
    h.set('Nats-Rollup', 'sub'); // as the object store writes metadata: only the newest is kept
    await bus.js.publish(subject, JSON.stringify({ ...meta, digest: other.digest }), { headers: h });
    await expect(bodies.read(ref)).rejects.toThrow(/large-corrupt is corrupt: its SHA-256 digest does not match/);
  });

  it('names a body that is missing', async () => {
    await expect(bodies.open({ kind: 'object', bucket: BODY_BUCKET, name: 'never-stored' })).rejects.toThrow(
      `body ${BODY_BUCKET}/never-stored is missing from the object store`,
    );
  });
});
