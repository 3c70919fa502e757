/**
 * GET /metrics on every role of a real cluster: valid Prometheus text, the process and
 * Transit families, and counters that move by exactly what the mail sent here caused
 * (received, routed, delivered, refused, failed, deferred) with histograms that observed it;
 * and a scrape that still answers, in time, while NATS and Redis are stopped.
 */
import { describe, expect, it } from 'vitest';
import { parseExposition, sampleSum, type Exposition } from '@transit/metrics';
import { ROLES, type Role } from '@transit/service';
import { smtpTranscript, waitFor } from '@transit/testkit';
import { waitForMaildirMessage } from './harness.ts';
import { useHarness } from './use-harness.ts';

const h = useHarness({
  rejectRecipient: (rcpt) =>
    rcpt.startsWith('bounce')
      ? { code: 550, message: '5.1.1 no such user here' }
      : rcpt.startsWith('slow')
        ? { code: 451, message: '4.4.1 try again later' }
        : undefined,
});

async function scrape(role: Role, timeoutMs = 5000): Promise<{ status: number; contentType: string; metrics: Exposition }> {
  const res = await fetch(`http://127.0.0.1:${h.cluster.httpPort(role)}/metrics`, { signal: AbortSignal.timeout(timeoutMs) });
  const text = await res.text();
  return { status: res.status, contentType: res.headers.get('content-type') ?? '', metrics: parseExposition(text) };
}

const snapshot = async () =>
  Object.fromEntries(await Promise.all(ROLES.map(async (role) => [role, (await scrape(role)).metrics] as const))) as Record<Role, Exposition>;

/** How far `name` (summed over the samples matching `match`) moved on `role` since `before`. */
const moved = (before: Record<Role, Exposition>, after: Record<Role, Exposition>, role: Role, name: string, match: Record<string, string> = {}) =>
  sampleSum(after[role], name, match) - sampleSum(before[role], name, match);

const message = (marker: string) => `DATA-BODY:From: x@example.org\r\nSubject: metrics\r\n\r\n${marker}\r\n.\r\n`;

describe('GET /metrics', () => {
  it('serves Prometheus text on every role, with process metrics, the role, JetStream and (outbound proxy) Redis up', async () => {
    for (const role of ROLES) {
      const { status, contentType, metrics } = await scrape(role);
      expect(status, role).toBe(200);
      expect(contentType, role).toMatch(/^text\/plain; version=0\.0\.4/);
      expect(sampleSum(metrics, 'transit_role_info', { role }), role).toBe(1);
      expect(sampleSum(metrics, 'transit_jetstream_up'), role).toBe(1);
      expect(metrics.types.get('nodejs_eventloop_lag_seconds'), role).toBe('gauge');
      expect(sampleSum(metrics, 'process_resident_memory_bytes'), role).toBeGreaterThan(0);
      expect(
        metrics.samples
          .filter((s) => s.name === 'transit_queue_messages')
          .map((s) => s.labels.stream)
          .sort(),
        role,
      ).toEqual(['MAIL_DELIVER', 'MAIL_POISON', 'MAIL_SUBMIT']);
      for (const family of metrics.types.keys()) expect(metrics.help.has(family), `${role} ${family} has HELP`).toBe(true);
    }
    expect(sampleSum((await scrape('outbound-proxy')).metrics, 'transit_redis_up')).toBe(1);
    expect((await scrape('hub')).metrics.samples.some((s) => s.name === 'transit_redis_up')).toBe(false);
  });

  it('counts a local and a relayed message from reception to delivery, and a relay refusal by its code', async () => {
    const before = await snapshot();
    const marker = `metrics-local-${Date.now()}`;
    const local = await smtpTranscript({
      host: '127.0.0.1',
      port: h.cluster.port(25),
      lines: [
        'EHLO client.example',
        'MAIL FROM:<x@example.org>',
        'RCPT TO:<someone@example.net>',
        'RCPT TO:<alice@contoso.test>',
        'DATA',
        message(marker),
        'QUIT',
      ],
    });
    expect(local[3]).toBe('550 5.7.54 SMTP; Unable to relay recipient in non-accepted domain');
    expect(local[6]).toMatch(/^250 2\.6\.0 /);
    const sent = h.sink.messages.length;
    const relayed = await smtpTranscript({
      host: '127.0.0.1',
      port: h.cluster.port(25),
      localAddress: '127.0.0.2',
      lines: ['EHLO app.example', 'MAIL FROM:<app@contoso.test>', 'RCPT TO:<someone@example.net>', 'DATA', message('metrics-remote'), 'QUIT'],
    });
    expect(relayed[5]).toMatch(/^250 2\.6\.0 /);
    await waitForMaildirMessage(h, 'alice@contoso.test', marker);
    await h.sink.waitFor(sent + 1);

    // Delivery is recorded just after the write: poll until the last counter has moved.
    const after = await waitFor(
      async () => {
        const now = await snapshot();
        return moved(before, now, 'outbound-proxy', 'transit_messages_delivered_total') >= 1 &&
          moved(before, now, 'mailbox-delivery', 'transit_messages_delivered_total') >= 1
          ? now
          : undefined;
      },
      { timeoutMs: 15_000, what: 'the delivery counters to move' },
    );
    expect(moved(before, after, 'frontend', 'transit_smtp_sessions_total', { connector: 'Default Frontend' })).toBe(1);
    expect(moved(before, after, 'frontend', 'transit_smtp_sessions_total', { connector: 'Application Relay' })).toBe(1);
    expect(moved(before, after, 'frontend', 'transit_smtp_rejections_total', { connector: 'Default Frontend', code: '5.7.54' })).toBe(1);
    expect(moved(before, after, 'frontend', 'transit_smtp_rejections_total')).toBe(1);
    expect(moved(before, after, 'frontend', 'transit_messages_received_total', { source: 'SMTP', connector: 'Default Frontend' })).toBe(1);
    expect(moved(before, after, 'frontend', 'transit_messages_received_total', { source: 'SMTP', connector: 'Application Relay' })).toBe(1);
    expect(moved(before, after, 'frontend', 'transit_message_accept_seconds_count', { source: 'SMTP' })).toBe(2);
    expect(moved(before, after, 'frontend', 'transit_message_accept_seconds_bucket', { source: 'SMTP', le: '+Inf' })).toBe(2);
    expect(moved(before, after, 'hub', 'transit_messages_routed_total', { kind: 'mailbox' })).toBe(1);
    expect(moved(before, after, 'hub', 'transit_messages_routed_total', { kind: 'remote' })).toBe(1);
    expect(moved(before, after, 'mailbox-delivery', 'transit_messages_delivered_total')).toBe(1);
    expect(moved(before, after, 'mailbox-delivery', 'transit_delivery_latency_seconds_count', { kind: 'mailbox' })).toBe(1);
    expect(moved(before, after, 'outbound-proxy', 'transit_messages_delivered_total', { hop: 'smtp:Sink' })).toBe(1);
    expect(moved(before, after, 'outbound-proxy', 'transit_delivery_latency_seconds_count', { kind: 'remote' })).toBe(1);
    // Both sessions have ended (QUIT), so none is open on the frontend.
    await waitFor(async () => (sampleSum((await scrape('frontend')).metrics, 'transit_smtp_sessions_open') === 0 ? true : undefined), {
      timeoutMs: 5000,
      what: 'no open SMTP sessions',
    });
  });

  it('counts remote recipients that failed (5xx, with a DSN submitted) and that were deferred (4xx)', async () => {
    const before = await snapshot();
    const replies = await smtpTranscript({
      host: '127.0.0.1',
      port: h.cluster.port(25),
      localAddress: '127.0.0.2',
      lines: [
        'EHLO app.example',
        'MAIL FROM:<bob@contoso.test>',
        'RCPT TO:<bounce@example.net>',
        'RCPT TO:<slow@example.net>',
        'DATA',
        message('metrics-fail'),
        'QUIT',
      ],
    });
    expect(replies[6]).toMatch(/^250 2\.6\.0 /);
    const after = await waitFor(
      async () => {
        const now = await snapshot();
        return moved(before, now, 'outbound-proxy', 'transit_messages_failed_total', { hop: 'smtp:Sink' }) >= 1 &&
          moved(before, now, 'outbound-proxy', 'transit_messages_deferred_total', { hop: 'smtp:Sink' }) >= 1
          ? now
          : undefined;
      },
      { timeoutMs: 20_000, what: 'the failed and deferred counters to move' },
    );
    expect(moved(before, after, 'outbound-proxy', 'transit_messages_failed_total', { hop: 'smtp:Sink' })).toBe(1);
    expect(moved(before, after, 'outbound-proxy', 'transit_messages_received_total', { source: 'DSN' })).toBe(1);
    expect(moved(before, after, 'outbound-proxy', 'transit_messages_delivered_total')).toBe(0);
  });

  it('still answers within its deadline while NATS and Redis are down, reporting them down and the queues unknown', async () => {
    await h.cluster.stopNats();
    await h.cluster.stopRedis();
    try {
      // The deadline is 0.8 s per probe; 2.5 s leaves room for a loaded machine but not for a NATS request timeout (5 s).
      const down = await waitFor(
        async () => {
          const { status, metrics } = await scrape('outbound-proxy', 2500);
          expect(status).toBe(200);
          return sampleSum(metrics, 'transit_jetstream_up') === 0 && sampleSum(metrics, 'transit_redis_up') === 0 ? metrics : undefined;
        },
        { timeoutMs: 20_000, what: 'JetStream and Redis reported down' },
      );
      expect(down.samples.filter((s) => s.name === 'transit_queue_messages' || s.name === 'transit_queue_oldest_age_seconds')).toEqual([]);
      expect(sampleSum(down, 'transit_role_info', { role: 'outbound-proxy' })).toBe(1);
      for (const role of ROLES) expect((await scrape(role, 2500)).status, role).toBe(200);
    } finally {
      await h.cluster.startNats();
      await h.cluster.startRedis();
    }
    await waitFor(
      async () => {
        const { metrics } = await scrape('outbound-proxy');
        return sampleSum(metrics, 'transit_jetstream_up') === 1 && sampleSum(metrics, 'transit_redis_up') === 1 ? true : undefined;
      },
      { timeoutMs: 30_000, what: 'JetStream and Redis reported up again' },
    );
  });
});
