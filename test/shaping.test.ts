/**
 * Per-destination shaping across outbound proxies: with two outbound proxies running, a next
 * hop limited to 2 connections (a send connector's MaxPerDomainOutboundConnections) never has
 * more than 2 open at once, counted at the destination itself, and gets every message once;
 * one limited to 3 messages a minute gets 3, and the rest wait (not deferred, not lost)
 * until the minute has passed.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { startSmtpSink, waitFor, type SmtpSink } from '@transit/testkit';
import { messageEvents, relayOne } from './harness.ts';
import { useHarness } from './use-harness.ts';

let busy: SmtpSink | undefined;
let rated: SmtpSink | undefined;
afterAll(async () => {
  await Promise.all([busy?.close(), rated?.close()]);
});

const h = useHarness(async () => {
  // Each transaction takes a while, so the proxies would open more connections if they could.
  busy = await startSmtpSink({ beforeRcptReply: () => new Promise((r) => setTimeout(r, 150)) });
  rated = await startSmtpSink();
  const b = busy;
  const r = rated;
  return {
    replicated: ['outbound-proxy'],
    prepare: (config) => {
      (config.SendConnectors as unknown[]).push(
        {
          Name: 'Two connections',
          AddressSpaces: ['shaped.test'],
          DNSRoutingEnabled: false,
          SmartHosts: [`${b.host}:${b.port}`],
          MaxPerDomainOutboundConnections: 2,
        },
        {
          Name: 'Three a minute',
          AddressSpaces: ['rated.test'],
          DNSRoutingEnabled: false,
          SmartHosts: [`${r.host}:${r.port}`],
          MaxPerDomainOutboundMessagesPerMinute: 3,
        },
      );
    },
  };
});

const arrived = (sink: SmtpSink, marker: string) => sink.messages.filter((m) => m.data.toString('latin1').includes(marker));

describe('per-destination shaping', () => {
  it('holds a next hop to its connection limit across two outbound proxies, and delivers every message once', async () => {
    const marker = `shaped-${Date.now()}`;
    const count = 24;
    // 8 sessions at a time: more than the hop's 2 connections, and fewer than the receive connector's 20 per source (a 21st gets 421 4.3.2).
    for (let from = 0; from < count; from += 8)
      await Promise.all(Array.from({ length: 8 }, (_, j) => from + j).map((i) => relayOne(h, `r${i}@shaped.test`, `${marker}-${i}-`)));
    await waitFor(() => (arrived(busy!, marker).length >= count ? true : undefined), { timeoutMs: 90_000, what: `${count} messages at the shaped sink` });
    expect(busy!.peakConnections()).toBeLessThanOrEqual(2);
    expect(busy!.peakConnections()).toBe(2);
    for (let i = 0; i < count; i++) expect(arrived(busy!, `${marker}-${i}-`)).toHaveLength(1);
    // Held back, not failed: no recipient was deferred on the retry schedule.
    const deferred = (await messageEvents(h)).filter((e) => e.type === 'Deferred' && (e.recipients as string[]).some((r) => r.endsWith('@shaped.test')));
    expect(deferred).toEqual([]);
  }, 120_000);

  it('sends a next hop no more messages a minute than its limit; the others wait for the next minute', async () => {
    const marker = `rated-${Date.now()}`;
    const started = Date.now();
    for (let i = 0; i < 5; i++) await relayOne(h, `r${i}@rated.test`, `${marker}-${i}-`);
    await waitFor(() => (arrived(rated!, marker).length >= 3 ? true : undefined), { timeoutMs: 30_000, what: 'the first 3 messages' });
    // Within the minute, the other two stay queued.
    await new Promise((r) => setTimeout(r, 3000));
    if (Date.now() - started < 55_000) expect(arrived(rated!, marker)).toHaveLength(3);
    await waitFor(() => (arrived(rated!, marker).length >= 5 ? true : undefined), { timeoutMs: 100_000, what: 'the last 2 messages after the minute' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(55_000);
    for (let i = 0; i < 5; i++) expect(arrived(rated!, `${marker}-${i}-`)).toHaveLength(1);
    const deferred = (await messageEvents(h)).filter((e) => e.type === 'Deferred' && (e.recipients as string[]).some((r) => r.endsWith('@rated.test')));
    expect(deferred).toEqual([]);
  }, 150_000);
});
