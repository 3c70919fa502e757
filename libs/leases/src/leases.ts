/**
 * Who is delivering what, in Redis: a lease per work item in flight (its owner, with a TTL
 * the owner keeps renewing), the set of work items each owner holds, and each owner's
 * heartbeat. Claiming a work item and reading which of its recipients were already
 * delivered is one script; recording the delivered recipients and releasing the lease is
 * another. So a work item JetStream hands out again while its first worker still works
 * waits instead of being sent twice, and the items of an owner whose heartbeat stopped are
 * taken over by a survivor (one survivor per item, by compare-and-set) without waiting for
 * JetStream's ack wait.
 *
 * An owner is one process (`node/pid`): a restarted process is a new owner, and whatever
 * its previous life held is an orphan.
 *
 * A survivor that settled an adopted item acknowledges it through the consumer (libs/bus
 * ackBySequence; never a delete by sequence, which makes nats-server 2.9 replicas reset,
 * nats-server#7308) and marks it settled here: should JetStream hand it out again anyway,
 * the claim answers "settled" and the worker acknowledges it without work.
 */
import type { Redis } from 'ioredis';
import { environmentDefault } from '@transit/config';

/** Where a work item lives in JetStream, enough for a survivor to fetch and settle it. */
export type WorkRef = { stream: string; seq: number; subject: string; messageId: string };

export type Claim = { ok: true; alreadyDelivered: Set<string> } | { ok: false; holder: string } | { ok: false; settled: true };

const OWNERS = 'transit:owners';
const heartbeatKey = (owner: string) => `transit:heartbeat:${owner}`;
const ownedKey = (owner: string) => `transit:owned:${owner}`;
export const deliveredKey = (messageId: string) => `transit:delivered:{${messageId}}`;
// The same hash tag as the delivered set: both live on one shard and one script touches both.
const leaseKey = (ref: WorkRef) => `transit:lease:{${ref.messageId}}:${ref.stream}:${ref.seq}`;
// When the lease's holder took it (ms since the epoch, Redis's clock): lives and dies with the lease.
const sinceKey = (ref: WorkRef) => `transit:lease-since:{${ref.messageId}}:${ref.stream}:${ref.seq}`;
// A work item a survivor already settled (see the header): gone with its TTL, long after JetStream hands it out again.
const settledKey = (ref: WorkRef) => `transit:settled:{${ref.messageId}}:${ref.stream}:${ref.seq}`;
const SETTLED_TTL_SECONDS = 2 * 24 * 3600;
const NOW_MS = `local t = redis.call('TIME')
local now = string.format('%.0f', t[1] * 1000 + math.floor(t[2] / 1000))`;
const encodeRef = (ref: WorkRef) => JSON.stringify([ref.stream, ref.seq, ref.subject, ref.messageId]);
function decodeRef(text: string): WorkRef | undefined {
  try {
    const [stream, seq, subject, messageId] = JSON.parse(text) as [string, number, string, string];
    return typeof stream === 'string' && typeof seq === 'number' && typeof subject === 'string' && typeof messageId === 'string'
      ? { stream, seq, subject, messageId }
      : undefined;
  } catch {
    return undefined;
  }
}

/** KEYS: delivered set, lease, owner's set, lease's since, settled. ARGV: owner, lease TTL ms, ref, recipients... */
const CLAIM = `
if redis.call('EXISTS', KEYS[5]) == 1 then return {2, ''} end
local holder = redis.call('GET', KEYS[2])
if holder and holder ~= ARGV[1] then return {0, holder} end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
if not holder or redis.call('PEXPIRE', KEYS[4], ARGV[2]) == 0 then
  ${NOW_MS}
  redis.call('SET', KEYS[4], now, 'PX', ARGV[2])
end
redis.call('SADD', KEYS[3], ARGV[3])
local out = {1, ''}
for i = 4, #ARGV do
  if redis.call('SISMEMBER', KEYS[1], ARGV[i]) == 1 then table.insert(out, ARGV[i]) end
end
return out`;

/** KEYS: lease, dead owner's set, new owner's set, lease's since. ARGV: dead owner, new owner, TTL ms, ref. */
const TAKE_OVER = `
local holder = redis.call('GET', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[4])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
${NOW_MS}
redis.call('SET', KEYS[4], now, 'PX', ARGV[3])
redis.call('SADD', KEYS[3], ARGV[4])
return 1`;

/** KEYS: lease, lease's since. ARGV: owner, TTL ms. */
const RENEW = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1`;

/** KEYS: delivered set, lease, owner's set, lease's since. ARGV: owner, delivered TTL s, ref, recipients... */
const RELEASE = `
if #ARGV > 3 then
  redis.call('SADD', KEYS[1], unpack(ARGV, 4))
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2], KEYS[4]) end
redis.call('SREM', KEYS[3], ARGV[3])
return 1`;

export type LeaseOptions = {
  owner: string;
  /** How long a lease lives without renewal: the process passes TRANSIT_SHADOW_LEASE_TTL_MS (ctx.settings); left out, the register's default (15 s). */
  leaseTtlMs?: number;
  /**
   * How long a heartbeat lives; an owner silent for longer is presumed dead. The process passes
   * TRANSIT_SHADOW_HEARTBEAT_TTL_MS; left out, the register's default (3 s). At most two thirds of the lease TTL (libs/config settings.ts).
   */
  heartbeatTtlMs?: number;
  /** How long a delivered set is kept (TRANSIT_DELIVERED_TTL_SECONDS: the message's whole life and then some). */
  deliveredTtlSeconds: number;
};

export class Leases {
  readonly owner: string;
  readonly leaseTtlMs: number;
  readonly heartbeatTtlMs: number;
  readonly #redis: Redis;
  readonly #deliveredTtlSeconds: number;

  constructor(redis: Redis, opts: LeaseOptions) {
    this.#redis = redis;
    this.owner = opts.owner;
    // The service passes what the process was started with (ctx.settings, validated by the service shell); this module reads no environment.
    this.leaseTtlMs = opts.leaseTtlMs ?? environmentDefault('shadowLeaseTtlMs');
    this.heartbeatTtlMs = opts.heartbeatTtlMs ?? environmentDefault('shadowHeartbeatTtlMs');
    this.#deliveredTtlSeconds = opts.deliveredTtlSeconds;
  }

  /** "Still alive": call at a third of heartbeatTtlMs. */
  async heartbeat(): Promise<void> {
    await this.#redis.multi().set(heartbeatKey(this.owner), '1', 'PX', this.heartbeatTtlMs).sadd(OWNERS, this.owner).exec();
  }

  /** Before a delivery: take the item's lease (unless another live owner holds it) and learn who already has it. */
  async claim(ref: WorkRef, recipients: readonly string[]): Promise<Claim> {
    const out = (await this.#redis.eval(
      CLAIM,
      5,
      deliveredKey(ref.messageId),
      leaseKey(ref),
      ownedKey(this.owner),
      sinceKey(ref),
      settledKey(ref),
      this.owner,
      String(this.leaseTtlMs),
      encodeRef(ref),
      ...recipients.map((r) => r.toLowerCase()),
    )) as [number, string, ...string[]];
    if (out[0] === 2) return { ok: false, settled: true };
    if (out[0] !== 1) return { ok: false, holder: out[1] };
    const done = new Set(out.slice(2));
    return { ok: true, alreadyDelivered: new Set(recipients.filter((r) => done.has(r.toLowerCase()))) };
  }

  /** While delivering: false once the lease is no longer ours (taken over): stop before sending. */
  async renew(ref: WorkRef): Promise<boolean> {
    return (await this.#redis.eval(RENEW, 2, leaseKey(ref), sinceKey(ref), this.owner, String(this.leaseTtlMs))) === 1;
  }

  /** A work item settled outside JetStream's delivery (an adopted orphan): its next delivery is acknowledged without work. */
  async settle(ref: WorkRef): Promise<void> {
    await this.#redis.set(settledKey(ref), this.owner, 'EX', SETTLED_TTL_SECONDS);
  }

  /** After a delivery attempt: record who got it and give the lease up, in one step. */
  async release(ref: WorkRef, delivered: readonly string[]): Promise<void> {
    await this.#redis.eval(
      RELEASE,
      4,
      deliveredKey(ref.messageId),
      leaseKey(ref),
      ownedKey(this.owner),
      sinceKey(ref),
      this.owner,
      String(this.#deliveredTtlSeconds),
      encodeRef(ref),
      ...delivered.map((r) => r.toLowerCase()),
    );
  }

  /**
   * The work items of owners whose heartbeat stopped, each now leased to this owner (a
   * survivor racing for the same item gets it or not, never both). Owners left with
   * nothing are forgotten.
   */
  async adoptOrphans(limit = 100): Promise<WorkRef[]> {
    const adopted: WorkRef[] = [];
    for (const owner of await this.#redis.smembers(OWNERS)) {
      if (owner === this.owner || (await this.#redis.exists(heartbeatKey(owner))) === 1) continue;
      for (const text of await this.#redis.srandmember(ownedKey(owner), limit)) {
        const ref = decodeRef(text);
        const won = ref
          ? await this.#redis.eval(
              TAKE_OVER,
              4,
              leaseKey(ref),
              ownedKey(owner),
              ownedKey(this.owner),
              sinceKey(ref),
              owner,
              this.owner,
              String(this.leaseTtlMs),
              text,
            )
          : await this.#redis.srem(ownedKey(owner), text);
        if (ref && won === 1) adopted.push(ref);
      }
      // Forget an owner once it holds nothing (a later claim of a live owner re-adds it).
      if ((await this.#redis.scard(ownedKey(owner))) === 0) await this.#redis.srem(OWNERS, owner);
      if (adopted.length >= limit) break;
    }
    return adopted;
  }
}

/** A work item leased right now: who holds it and since when (absent for a lease taken before leases kept it). */
export type LeasedRef = WorkRef & { owner: string; since?: number };

/**
 * The work items leased right now, read only (Get-Queue's Shadow queue): each owner's items
 * whose lease is still held, with the holder (after a takeover, the survivor) and since
 * when it holds it. An item whose lease expired is no longer being delivered and is left
 * out (it waits in JetStream, or for a survivor to adopt it). Oldest first.
 */
export async function listLeases(redis: Redis): Promise<LeasedRef[]> {
  const out: LeasedRef[] = [];
  const seen = new Set<string>();
  for (const owner of await redis.smembers(OWNERS)) {
    const refs = (await redis.smembers(ownedKey(owner))).map(decodeRef).filter((r): r is WorkRef => r !== undefined && !seen.has(leaseKey(r)));
    if (refs.length === 0) continue;
    const pipeline = redis.pipeline();
    for (const ref of refs) pipeline.mget(leaseKey(ref), sinceKey(ref));
    const replies = (await pipeline.exec()) ?? [];
    refs.forEach((ref, i) => {
      const [err, values] = replies[i] ?? [null, null];
      if (err) throw err;
      const [holder, since] = (values ?? []) as Array<string | null>;
      if (!holder) return;
      seen.add(leaseKey(ref));
      out.push({ ...ref, owner: holder, ...(since ? { since: Number(since) } : {}) });
    });
  }
  return out.sort((a, b) => (a.since ?? 0) - (b.since ?? 0) || a.stream.localeCompare(b.stream) || a.seq - b.seq);
}
