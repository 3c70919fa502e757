/**
 * A live copy of a KV bucket in memory: its values, then every change, through one KV watch.
 * `ready` resolves once the watch has caught up with what the bucket held when it started,
 * so a reader never sees a half-loaded copy. Used where a check per item must cost no round
 * trip (administrator holds, DKIM signing configurations).
 */
import type { KV, KvEntry } from '@nats-io/kv';

export class KvMirror<T> {
  readonly values = new Map<string, T>();
  readonly ready: Promise<void>;
  #stop: (() => void) | undefined;

  /** `parse`: an entry's value, or undefined for a deleted entry or one to ignore (the key is then left out). */
  constructor(kv: KV, parse: (e: KvEntry) => T | undefined, onError: (err: unknown) => void) {
    this.ready = this.#start(kv, parse, onError);
    // A rejected start shows at the first read; this only keeps it from being "unhandled" before then.
    this.ready.catch(() => undefined);
  }

  async #start(kv: KV, parse: (e: KvEntry) => T | undefined, onError: (err: unknown) => void): Promise<void> {
    const initial = (await kv.status()).values;
    const watch = await kv.watch();
    this.#stop = () => watch.stop();
    let loaded!: () => void;
    const ready = new Promise<void>((r) => (loaded = r));
    if (initial === 0) loaded();
    void (async () => {
      try {
        for await (const e of watch) {
          const value = parse(e);
          if (value !== undefined) this.values.set(e.key, value);
          else this.values.delete(e.key);
          // `delta` counts the values still to come: 0 once the watch has caught up with the bucket.
          if (!e.delta) loaded();
        }
      } catch (err) {
        onError(err);
      }
    })();
    await ready;
  }

  stop(): void {
    this.#stop?.();
  }
}
