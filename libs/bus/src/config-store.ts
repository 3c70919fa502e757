/**
 * The organisation's configuration in a NATS KV bucket: one key, the whole validated
 * document, written with compare-and-set so two administrators never overwrite each
 * other, and watched by every service. A document is validated before it is written, so
 * an invalid configuration is refused at write time and a service never sees half of one.
 * Validation includes what the schema cannot know: a MessageExpirationTimeout the cluster's
 * event and body retention cannot hold (libs/config settings.ts RULES) is refused too.
 */
import { Kvm, type KV } from '@nats-io/kv';
import { ConfigError, parseOrganizationConfig, retentionProblems, type ConfigSnapshot, type OrganizationConfig, type Retention } from '@transit/config';
import type { Bus } from './connection.ts';
import { BODY_STREAM, STREAMS } from './topology.ts';

export const CONFIG_BUCKET = 'transit-config';
const KEY = 'organization';

export class ConfigConflictError extends Error {
  readonly code = 'CONFIG_CONFLICT';
  constructor(expected: number, actual: number) {
    super(`the configuration changed meanwhile (expected revision ${expected}, found ${actual}); read it again and retry`);
    this.name = 'ConfigConflictError';
  }
}

const encoder = new TextEncoder();

export class ConfigStore {
  readonly #kv: KV;
  readonly #bus: Bus;
  private constructor(kv: KV, bus: Bus) {
    this.#kv = kv;
    this.#bus = bus;
  }

  static async open(bus: Bus, replicas = 1): Promise<ConfigStore> {
    return new ConfigStore(await new Kvm(bus.js).create(CONFIG_BUCKET, { replicas, history: 20 }), bus);
  }

  /** How long the cluster keeps events and bodies, as its streams say (a stream not created yet, or without a limit, is left out). */
  async retention(): Promise<Partial<Retention>> {
    const maxAgeSeconds = async (stream: string) => {
      const info = await this.#bus.jsm.streams.info(stream).catch(() => undefined);
      const ns = info?.config.max_age ?? 0;
      return ns > 0 ? Math.floor(ns / 1e9) : undefined;
    };
    const [events, bodies] = await Promise.all([maxAgeSeconds(STREAMS.events), maxAgeSeconds(BODY_STREAM)]);
    return { ...(events !== undefined ? { eventRetentionSeconds: events } : {}), ...(bodies !== undefined ? { bodyRetentionSeconds: bodies } : {}) };
  }

  async read(): Promise<ConfigSnapshot | undefined> {
    const entry = await this.#kv.get(KEY);
    if (!entry || entry.operation !== 'PUT' || entry.length === 0) return undefined;
    return { config: parseOrganizationConfig(entry.json(), `${CONFIG_BUCKET}/${KEY} revision ${entry.revision}`), revision: entry.revision };
  }

  /**
   * Validates and writes. `expectedRevision` is the revision the change was based on
   * (0 = the store must be empty); a different current revision is a conflict.
   */
  async write(config: unknown, expectedRevision: number): Promise<ConfigSnapshot> {
    const valid = parseOrganizationConfig(config);
    const problems = retentionProblems(await this.retention(), valid.TransportSettings, "in the cluster's streams");
    if (problems.length) throw new ConfigError(`configuration refused:\n${problems.map((p) => `  TransportSettings.${p}`).join('\n')}`);
    const data = encoder.encode(JSON.stringify(valid));
    try {
      const revision = expectedRevision === 0 ? await this.#kv.create(KEY, data) : await this.#kv.update(KEY, data, expectedRevision);
      return { config: valid, revision };
    } catch (err) {
      if (!/wrong last sequence|key exists/i.test((err as Error).message)) throw err;
      const current = await this.#kv.get(KEY);
      throw new ConfigConflictError(expectedRevision, current?.revision ?? 0);
    }
  }

  /** The stored configuration, or `initial` written as the first revision when the store is empty. */
  async seed(initial: OrganizationConfig): Promise<ConfigSnapshot> {
    const existing = await this.read();
    if (existing) return existing;
    try {
      return await this.write(initial, 0);
    } catch (err) {
      if (err instanceof ConfigConflictError) return (await this.read())!;
      throw err;
    }
  }

  /** Calls `onChange` for every new revision until the returned function is called. */
  async watch(onChange: (snapshot: ConfigSnapshot) => void, onError: (err: Error) => void): Promise<() => void> {
    const iter = await this.#kv.watch({ key: KEY });
    void (async () => {
      for await (const entry of iter) {
        if (entry.operation !== 'PUT') continue;
        try {
          onChange({ config: parseOrganizationConfig(entry.json(), `${CONFIG_BUCKET}/${KEY} revision ${entry.revision}`), revision: entry.revision });
        } catch (err) {
          onError(err as Error);
        }
      }
    })();
    return () => iter.stop();
  }
}
