/**
 * Poison messages (Exchange's PoisonThreshold): a work item whose processing kills its
 * worker again and again must not crash-loop the cluster. Before handling an item the
 * worker leaves a marker in the KV bucket `transit-inflight` and removes it when the item
 * is settled; finding a marker on delivery means the previous attempt died mid-way. At
 * PoisonThreshold such deaths the item is parked in the MAIL_POISON stream, never retried
 * automatically, and shown by `transitctl poison list`.
 */
import { Kvm, type KV } from '@nats-io/kv';
import type { JsMsg } from '@nats-io/jetstream';
import { decodeDeliveryItem, decodeEnvelope } from '@transit/envelope';
import type { Bus } from './connection.ts';
import { publishDurable } from './publish.ts';
import { scanStream } from './scan.ts';
import { INFLIGHT_BUCKET, STREAMS } from './topology.ts';

export const POISON_THRESHOLD = 2;

type Marker = { crashes: number; node: string; at: number };

export class PoisonTracker {
  readonly #kv: Promise<KV>;
  readonly #bus: Bus;
  readonly #node: string;
  constructor(bus: Bus, node: string) {
    this.#bus = bus;
    this.#node = node;
    this.#kv = new Kvm(bus.js).open(INFLIGHT_BUCKET);
  }

  static key(msg: JsMsg): string {
    return `${msg.info.stream}.${msg.seq}`;
  }

  /** Records the start of an attempt; resolves with how many earlier attempts died. */
  async begin(msg: JsMsg): Promise<number> {
    const kv = await this.#kv;
    const key = PoisonTracker.key(msg);
    const marker = (crashes: number) => JSON.stringify({ crashes, node: this.#node, at: Date.now() } satisfies Marker);
    try {
      await kv.create(key, marker(0)); // the usual case: one round trip
      return 0;
    } catch {
      // A marker is there: the previous attempt at this item never finished.
      const previous = await kv.get(key);
      const last = previous && previous.operation === 'PUT' && previous.length > 0 ? previous.json<Marker>() : undefined;
      // Left by this process, which is alive: its acknowledgement or its clearing of the marker was lost (a NATS failover),
      // and the item came back to it. Not a death; counting it parked healthy items in the chaos runs.
      if (last?.node === this.#node) return last.crashes ?? 0;
      const crashes = last ? (last.crashes ?? 0) + 1 : 0;
      await kv.put(key, marker(crashes));
      return crashes;
    }
  }

  /**
   * Clears the marker; called before the item is acknowledged (a crash in between only
   * undercounts). An attempt that ended while NATS was unreachable still ended: its marker
   * must not read as a death on the next delivery, so clearing is retried in the background
   * (for up to a minute) until NATS answers, normally well before the item comes back.
   */
  async end(msg: JsMsg): Promise<void> {
    const key = PoisonTracker.key(msg);
    try {
      await (await this.#kv).purge(key);
    } catch {
      void this.#clearLater(key);
    }
  }

  async #clearLater(key: string): Promise<void> {
    for (let attempt = 0; attempt < 120; attempt++) {
      // Unreferenced: a process that is stopping does not wait for this.
      await new Promise((r) => setTimeout(r, 500).unref());
      try {
        await (await this.#kv).purge(key);
        return;
      } catch {
        // NATS still away; try again.
      }
    }
  }

  /** Moves the item to MAIL_POISON (kept for the administrator) and out of its work queue. */
  async park(msg: JsMsg, crashes: number, reason: string): Promise<void> {
    const subject = `mail.poison.${msg.info.stream.toLowerCase()}`;
    await publishDurable(this.#bus, subject, msg.data, {
      msgID: `poison:${PoisonTracker.key(msg)}`,
      expectStream: STREAMS.poison,
      headers: { 'Transit-Poison-Crashes': String(crashes), 'Transit-Poison-Subject': msg.subject, 'Transit-Poison-Reason': reason },
    });
    msg.term();
    await this.end(msg);
  }
}

export type PoisonRow = { Id: string; Stage: string; Crashes: number; Sender: string; Recipients: string[]; ParkedAt: string };

/** What MAIL_POISON holds, for the administrator. */
export async function listPoison(bus: Bus): Promise<PoisonRow[]> {
  const rows: PoisonRow[] = [];
  await scanStream(bus, STREAMS.poison, (m) => {
    let envelope: { id: string; sender: string; recipients: Array<{ address: string }> } | undefined;
    try {
      envelope = m.subject === 'mail.poison.mail_submit' ? decodeEnvelope(m.data) : decodeDeliveryItem(m.data).envelope;
    } catch {
      envelope = undefined;
    }
    rows.push({
      Id: envelope?.id ?? `(undecodable, stream seq ${m.seq})`,
      Stage: m.headers?.get('Transit-Poison-Subject') ?? m.subject,
      Crashes: Number(m.headers?.get('Transit-Poison-Crashes') ?? 0),
      Sender: envelope ? envelope.sender || '<>' : '',
      Recipients: envelope?.recipients.map((r) => r.address) ?? [],
      ParkedAt: new Date(m.info.timestampNanos / 1_000_000).toISOString(),
    });
  });
  return rows;
}
