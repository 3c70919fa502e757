/**
 * Poison messages (Exchange's PoisonThreshold): a work item whose processing kills its
 * worker again and again must not crash-loop the cluster. Each worker process keeps a
 * journal of the items it is handling, one entry in the KV bucket `transit-inflight` per
 * process (`proc.<process>`): an item is written into it before its handler runs, and
 * dropped from it once settled. Finding an item in another process's journal when it is
 * handed out again means that attempt died mid-way. At PoisonThreshold such deaths the
 * item is parked in the MAIL_POISON stream, never retried automatically, and shown by
 * `transitctl poison list`.
 *
 * Writes are shared: every item that begins while a journal write is on the wire rides on
 * the next one, and a settled item leaves the journal with the next write (or within
 * 200 ms), so a busy worker writes far less than once per item, and a first delivery reads
 * nothing. The journal of a process that died stays until the bucket's TTL
 * (TRANSIT_POISON_MARKER_TTL_SECONDS), well past the ack wait after which its items come back.
 */
import { randomUUID } from 'node:crypto';
import { Kvm, type KV } from '@nats-io/kv';
import type { JsMsg } from '@nats-io/jetstream';
import { decodeDeliveryItem, decodeEnvelope } from '@transit/envelope';
import type { Bus } from './connection.ts';
import { publishDurable } from './publish.ts';
import { scanStream } from './scan.ts';
import { INFLIGHT_BUCKET, STREAMS } from './topology.ts';

export const POISON_THRESHOLD = 2;

/** A process's journal: the items it is handling, each with the deaths counted before it began. */
type Journal = { node: string; items: Record<string, number> };
/** A per-item marker, as workers before the journals wrote them (read during a rolling upgrade). */
type Marker = { crashes: number; node: string; at: number };

const JOURNAL_PREFIX = 'proc.';
/** How long a settled item may stay in the journal before a write drops it (a redelivery comes after the ack wait). */
const SETTLE_WRITE_MS = 200;
/** A journal with items is written again this often, so the bucket's TTL (60 s at least) never ages it out under a live process. */
const REFRESH_MS = 20_000;

export class PoisonTracker {
  readonly #kv: Promise<KV>;
  readonly #bus: Bus;
  /** The process: its node and PID, and an instance id (a restarted container can have the same PID). */
  readonly #node: string;
  readonly #journalKey: string;
  readonly #items = new Map<string, number>();
  /** Bumped at every change of #items; #written is the last change stored. */
  #changed = 0;
  #written = 0;
  #writing: Promise<void> | undefined;
  #settleTimer: NodeJS.Timeout | undefined;
  #settleFailures = 0;
  #lastWriteAt = 0;
  readonly #refresh: NodeJS.Timeout;

  constructor(bus: Bus, node: string) {
    this.#bus = bus;
    this.#node = `${node}#${randomUUID().slice(0, 8)}`;
    this.#journalKey = JOURNAL_PREFIX + Buffer.from(this.#node).toString('base64url');
    this.#kv = new Kvm(bus.js).open(INFLIGHT_BUCKET);
    this.#kv.catch(() => undefined); // awaited where used
    this.#refresh = setInterval(() => {
      if (this.#items.size > 0 && Date.now() - this.#lastWriteAt > REFRESH_MS / 2) void this.#store(this.#changed).catch(() => undefined);
    }, REFRESH_MS);
    this.#refresh.unref();
  }

  static key(msg: JsMsg): string {
    return `${msg.info.stream}.${msg.seq}`;
  }

  /** Records the start of an attempt; resolves with how many earlier attempts died. */
  async begin(msg: JsMsg): Promise<number> {
    const key = PoisonTracker.key(msg);
    // A first delivery has no earlier attempt to look for.
    const crashes = (msg.info.deliveryCount ?? 1) > 1 ? await this.#earlierDeaths(key) : 0;
    this.#items.set(key, Math.max(crashes, this.#items.get(key) ?? 0));
    await this.#store(++this.#changed);
    return crashes;
  }

  /**
   * Drops the item from the journal. An item put back (`soon`) may come again within
   * milliseconds, to any process: it is dropped by a write before this resolves. An
   * acknowledged one is not handed out again before the ack wait, so its write is shared
   * with the next ones. An attempt that ended while NATS was unreachable still ended: the
   * write is retried in the background (for up to a minute) until NATS answers.
   */
  async end(msg: JsMsg, soon = false): Promise<void> {
    if (!this.#items.delete(PoisonTracker.key(msg))) return;
    const change = ++this.#changed;
    if (soon) {
      try {
        await this.#store(change);
        return;
      } catch {
        // retried below
      }
    }
    this.#settleLater(soon ? 500 : SETTLE_WRITE_MS);
  }

  /** Deaths before this attempt: the most any journal (or old-style marker) counted for the item, plus one if another process left it. */
  async #earlierDeaths(key: string): Promise<number> {
    const kv = await this.#kv;
    let crashes = this.#items.get(key) ?? 0;
    // Left by this process, which is alive: its acknowledgement was lost (a NATS failover) and the item came back to it. Not a death.
    const consider = (node: string, counted: number) => (crashes = Math.max(crashes, node === this.#node ? counted : counted + 1));
    for await (const journalKey of await kv.keys(`${JOURNAL_PREFIX}>`)) {
      if (journalKey === this.#journalKey) continue;
      const entry = await kv.get(journalKey);
      if (!entry || entry.operation !== 'PUT' || entry.length === 0) continue;
      const journal = entry.json<Journal>();
      const counted = journal.items?.[key];
      if (typeof counted === 'number') consider(journal.node, counted);
    }
    const old = await kv.get(key);
    if (old && old.operation === 'PUT' && old.length > 0) {
      const marker = old.json<Marker>();
      consider(marker.node, marker.crashes ?? 0);
    }
    return crashes;
  }

  /** Stores the journal as it is now, once no write is on the wire; resolves once change `upTo` is stored. */
  async #store(upTo: number): Promise<void> {
    while (this.#written < upTo) {
      if (this.#writing) {
        // Ride on the write on the wire; if it predates this change, or failed, the next round writes again.
        await this.#writing.catch(() => undefined);
        continue;
      }
      const change = this.#changed;
      const value = JSON.stringify({ node: this.#node, items: Object.fromEntries(this.#items) } satisfies Journal);
      const write = (async () => {
        await (await this.#kv).put(this.#journalKey, value);
        this.#written = Math.max(this.#written, change);
        this.#lastWriteAt = Date.now();
      })();
      this.#writing = write;
      try {
        await write;
      } finally {
        this.#writing = undefined;
      }
    }
  }

  #settleLater(delayMs: number): void {
    if (this.#settleTimer) return;
    // Unreferenced: a process that is stopping does not wait for this.
    this.#settleTimer = setTimeout(() => {
      this.#settleTimer = undefined;
      this.#store(this.#changed).then(
        () => (this.#settleFailures = 0),
        () => {
          // NATS still away; try again, for up to a minute.
          if (++this.#settleFailures < 120) this.#settleLater(500);
        },
      );
    }, delayMs).unref();
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

  /** Stops the journal's timers (the journal itself ages out with the bucket's TTL). */
  close(): void {
    clearInterval(this.#refresh);
    if (this.#settleTimer) clearTimeout(this.#settleTimer);
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
