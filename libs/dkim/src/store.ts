/**
 * The cluster's DKIM signing configurations in NATS KV (`transit-dkim`, one entry per
 * signing domain, created with the topology). transitctl writes them; every outbound proxy
 * keeps a live copy through a KV watch (`DkimWatcher`), so a new or rotated key signs on every
 * node within moments, and signing reads nothing from NATS per message.
 */
import { Kvm, type KV } from '@nats-io/kv';
import { DKIM_BUCKET, KvMirror, type Bus } from '@transit/bus';
import type { DkimSigningConfig } from './keys.ts';

const enc = new TextEncoder();
const dec = new TextDecoder();

export class DkimStore {
  readonly #kv: KV;
  private constructor(kv: KV) {
    this.#kv = kv;
  }

  static async open(bus: Bus): Promise<DkimStore> {
    return new DkimStore(await new Kvm(bus.js).open(DKIM_BUCKET));
  }

  async get(domain: string): Promise<DkimSigningConfig | undefined> {
    const e = await this.#kv.get(domain.toLowerCase());
    if (!e || e.operation !== 'PUT' || e.value.length === 0) return undefined;
    return JSON.parse(dec.decode(e.value)) as DkimSigningConfig;
  }

  async put(config: DkimSigningConfig): Promise<void> {
    await this.#kv.put(config.Domain, enc.encode(JSON.stringify(config)));
  }

  async remove(domain: string): Promise<boolean> {
    if (!(await this.get(domain))) return false;
    await this.#kv.delete(domain.toLowerCase());
    return true;
  }

  async list(): Promise<DkimSigningConfig[]> {
    const domains: string[] = [];
    for await (const k of await this.#kv.keys()) domains.push(k);
    const configs = await Promise.all(domains.sort().map((d) => this.get(d)));
    return configs.filter((c): c is DkimSigningConfig => c !== undefined);
  }

  /** A live copy of every configuration: the bucket's values, then each change. */
  watch(onError: (err: unknown) => void): DkimWatcher {
    return new DkimWatcher(this.#kv, onError);
  }
}

export class DkimWatcher {
  readonly #mirror: KvMirror<DkimSigningConfig>;

  constructor(kv: KV, onError: (err: unknown) => void) {
    this.#mirror = new KvMirror(
      kv,
      (e) => (e.operation === 'PUT' && e.value.length > 0 ? (JSON.parse(dec.decode(e.value)) as DkimSigningConfig) : undefined),
      onError,
    );
  }

  async get(domain: string): Promise<DkimSigningConfig | undefined> {
    await this.#mirror.ready;
    return this.#mirror.values.get(domain.toLowerCase());
  }

  async any(): Promise<boolean> {
    await this.#mirror.ready;
    return this.#mirror.values.size > 0;
  }

  stop(): void {
    this.#mirror.stop();
  }
}
