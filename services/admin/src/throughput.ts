/**
 * Throughput and latency for the dashboard, from the event log itself (MAIL_EVENTS) rather
 * than by scraping each role's /metrics: heartbeats carry a bind address (0.0.0.0:8080 in
 * containers) that another pod cannot reach, while every admin reaches JetStream.
 *
 * Reading is bounded: only the last few minutes, at most `maxEvents` events and `deadlineMs`
 * of wall time; a summary cut short says so (`truncated`) instead of blocking the page.
 * Latency is from the message's Received to each recipient's Delivered, for messages whose
 * Received lies in the window (older ones have no start to measure from here). The summary
 * is GET /api/throughput's answer as it goes on the wire (api-types.ts).
 */
import { decode } from '@msgpack/msgpack';
import { STREAMS, SUBJECTS, receptionIn, scanStream, type Bus, type MessageEvent } from '@transit/bus';
import type { ThroughputSummary } from './api-types.ts';

export type TimedEvent = { id: string; at: number; event: MessageEvent };

function quantile(sorted: readonly number[], q: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

/** Pure: events in (any order within the window), per-bucket counts and latency quantiles out. */
export function summarizeThroughput(
  events: readonly TimedEvent[],
  opts: { now: number; windowMs: number; bucketMs: number; truncated?: boolean },
): ThroughputSummary {
  const from = opts.now - opts.windowMs;
  const count = Math.ceil(opts.windowMs / opts.bucketMs);
  const buckets = Array.from({ length: count }, (_, i) => ({
    start: from + i * opts.bucketMs,
    received: 0,
    delivered: 0,
    deferred: 0,
    failed: 0,
    latencies: [] as number[],
  }));
  const receivedAt = new Map<string, number>();
  for (const e of events) {
    const reception = receptionIn(e.event);
    if (reception) receivedAt.set(e.id, reception.queuedAt ?? e.at);
  }
  const all: number[] = [];
  for (const e of events) {
    if (e.at < from || e.at > opts.now) continue;
    const b = buckets[Math.min(count - 1, Math.floor((e.at - from) / opts.bucketMs))]!;
    // A Received event, or the Reception the hub records with its Submitted (libs/bus/src/events.ts).
    if (receptionIn(e.event)) b.received++;
    switch (e.event.type) {
      case 'Delivered': {
        b.delivered += e.event.recipients.length;
        const start = receivedAt.get(e.id);
        if (start !== undefined) {
          for (let i = 0; i < e.event.recipients.length; i++) b.latencies.push(Math.max(0, e.at - start));
        }
        break;
      }
      case 'Deferred':
        b.deferred += e.event.recipients.length;
        break;
      case 'Failed':
        b.failed += e.event.recipients.length;
        break;
      default:
        break;
    }
  }
  const totals = { received: 0, delivered: 0, deferred: 0, failed: 0 };
  const out = buckets.map((b) => {
    totals.received += b.received;
    totals.delivered += b.delivered;
    totals.deferred += b.deferred;
    totals.failed += b.failed;
    const sorted = b.latencies.sort((x, y) => x - y);
    all.push(...sorted);
    return {
      start: new Date(b.start).toISOString(),
      received: b.received,
      delivered: b.delivered,
      deferred: b.deferred,
      failed: b.failed,
      latencyP50Ms: quantile(sorted, 0.5),
      latencyP95Ms: quantile(sorted, 0.95),
    };
  });
  all.sort((x, y) => x - y);
  return {
    windowSeconds: Math.round(opts.windowMs / 1000),
    bucketSeconds: Math.round(opts.bucketMs / 1000),
    totals,
    latencyMs: { p50: quantile(all, 0.5), p95: quantile(all, 0.95), max: all.length ? all[all.length - 1]! : null, samples: all.length },
    buckets: out,
    events: events.length,
    truncated: opts.truncated ?? false,
  };
}

export type ThroughputLimits = { windowMs: number; bucketMs: number; maxEvents: number; deadlineMs: number };

/** Reads the window's events from MAIL_EVENTS within the limits and summarises them. */
export async function readThroughput(bus: Bus, limits: ThroughputLimits, now = Date.now()): Promise<ThroughputSummary> {
  const prefix = SUBJECTS.event('');
  const events: TimedEvent[] = [];
  const deadline = Date.now() + limits.deadlineMs;
  let truncated = false;
  await scanStream(
    bus,
    STREAMS.events,
    (m) => {
      const e = decode(m.data) as MessageEvent & { at: number };
      if (e.at > now) return false;
      events.push({ id: m.subject.slice(prefix.length), at: e.at, event: e });
      if (events.length >= limits.maxEvents || Date.now() > deadline) {
        truncated = true;
        return false;
      }
      return true;
    },
    { since: new Date(now - limits.windowMs) },
  );
  return summarizeThroughput(events, { now, windowMs: limits.windowMs, bucketMs: limits.bucketMs, truncated });
}
