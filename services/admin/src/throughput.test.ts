import { describe, expect, it } from 'vitest';
import { summarizeThroughput, type TimedEvent } from './throughput.ts';

const received = (id: string, at: number): TimedEvent => ({
  id,
  at,
  event: { type: 'Received', source: 'SMTP', sender: 's@x', recipients: ['a@y', 'b@y'], size: 10 },
});

describe('throughput summary', () => {
  it('counts per bucket and measures latency from Received to each delivered recipient', () => {
    const now = 100_000;
    const events: TimedEvent[] = [
      received('m1', 40_000),
      { id: 'm1', at: 41_000, event: { type: 'Delivered', hop: 'mailbox:db', recipients: ['a@y', 'b@y'] } },
      received('m2', 70_000),
      { id: 'm2', at: 73_000, event: { type: 'Deferred', hop: 'smtp:x', recipients: ['c@z'], reason: '451', nextAttempt: 0 } },
      { id: 'm2', at: 75_000, event: { type: 'Failed', hop: 'smtp:x', recipients: ['d@z'], reason: '550' } },
      // Delivered without its Received in the window: counted, but no latency (no start to measure from).
      { id: 'old', at: 90_000, event: { type: 'Delivered', hop: 'smtp:x', recipients: ['e@z'] } },
    ];
    const s = summarizeThroughput(events, { now, windowMs: 60_000, bucketMs: 20_000 });
    expect(s.buckets.map((b) => [b.received, b.delivered, b.deferred, b.failed])).toEqual([
      [1, 2, 0, 0],
      [1, 0, 1, 1],
      [0, 1, 0, 0],
    ]);
    expect(s.totals).toEqual({ received: 2, delivered: 3, deferred: 1, failed: 1 });
    expect(s.latencyMs).toEqual({ p50: 1000, p95: 1000, max: 1000, samples: 2 });
    expect(s.buckets[1]!.latencyP50Ms).toBeNull();
    expect(s.truncated).toBe(false);
  });

  it('counts a Reception recorded with Submitted as a received message, and measures from when it was queued', () => {
    const s = summarizeThroughput(
      [
        {
          id: 'm',
          at: 40_500,
          event: {
            type: 'Submitted',
            source: 'QUEUE',
            recipients: ['a@y'],
            resolved: [],
            received: { source: 'SMTP', sender: 's@x', recipients: ['a@y'], size: 1, queuedAt: 40_000 },
          },
        },
        { id: 'm', at: 42_000, event: { type: 'Delivered', hop: 'mailbox:db', recipients: ['a@y'] } },
      ],
      { now: 100_000, windowMs: 60_000, bucketMs: 60_000 },
    );
    expect(s.totals).toMatchObject({ received: 1, delivered: 1 });
    expect(s.latencyMs.max).toBe(2000);
  });

  it('leaves out events outside the window', () => {
    const s = summarizeThroughput([received('m', 10), received('n', 200_000)], { now: 100_000, windowMs: 60_000, bucketMs: 30_000, truncated: true });
    expect(s.totals.received).toBe(0);
    expect(s.truncated).toBe(true);
  });
});
