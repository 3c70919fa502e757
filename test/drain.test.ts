/**
 * Back pressure and graceful drain at the frontend, against real processes: a full submit
 * queue answers 452 4.3.1 instead of buffering, and SIGTERM lets the transaction under way
 * finish while new sessions are told 421 4.3.2 to go elsewhere.
 */
import { describe, expect, it } from 'vitest';
import { openSmtpDialogue, smtpTranscript, waitFor } from '@transit/testkit';
import { waitForMaildirMessage } from './harness.ts';
import { useHarness } from './use-harness.ts';

const h = useHarness({ env: { TRANSIT_SUBMIT_QUEUE_MAX_MESSAGES: '3', TRANSIT_DRAIN_TIMEOUT_MS: '15000' } });

const send = (marker: string) =>
  smtpTranscript({
    host: '127.0.0.1',
    port: h.cluster.port(25),
    lines: [
      'EHLO c.example.org',
      'MAIL FROM:<x@example.org>',
      'RCPT TO:<alice@contoso.test>',
      'DATA',
      `DATA-BODY:Subject: ${marker}\r\n\r\n${marker}\r\n.\r\n`,
      'QUIT',
    ],
    allowClose: true,
  });

describe('back pressure', () => {
  it('answers 452 4.3.1 when the submit queue is full, and accepts again once it drains, losing nothing', async () => {
    await h.cluster.stopRole('hub'); // nothing takes messages off mail.submit now
    const base = `bp-${Date.now()}`;
    for (let i = 0; i < 3; i++) expect((await send(`${base}-${i}`))[5]).toMatch(/^250 2\.6\.0 /);
    expect((await send(`${base}-3`))[5]).toBe('452 4.3.1 Insufficient system resources');
    // Later senders are told at MAIL FROM, before they send a body.
    const early = await smtpTranscript({ host: '127.0.0.1', port: h.cluster.port(25), lines: ['EHLO c.example.org', 'MAIL FROM:<x@example.org>', 'QUIT'] });
    expect(early[2]).toBe('452 4.3.1 Insufficient system resources');

    await h.cluster.startRole('hub');
    for (let i = 0; i < 3; i++) await waitForMaildirMessage(h, 'alice@contoso.test', `${base}-${i}`);
    await waitFor(async () => ((await send(`${base}-after`))[5]!.startsWith('250 2.6.0') ? true : undefined), {
      timeoutMs: 15_000,
      intervalMs: 500,
      what: 'the frontend to accept again',
    });
    await waitForMaildirMessage(h, 'alice@contoso.test', `${base}-after`);
    expect((await h.maildirFiles('alice@contoso.test')).filter((f) => f.includes(`${base}-3`))).toEqual([]);
  });
});

describe('graceful drain on SIGTERM', () => {
  it('refuses new sessions with 421 4.3.2, finishes the message under way, then closes', async () => {
    const marker = `drain-${Date.now()}`;
    const d = await openSmtpDialogue({ host: '127.0.0.1', port: h.cluster.port(25) });
    expect(await d.say('EHLO c.example.org')).toMatch(/^250 /);
    expect(await d.say('MAIL FROM:<x@example.org>')).toBe('250 2.1.0 Sender OK');
    expect(await d.say('RCPT TO:<alice@contoso.test>')).toBe('250 2.1.5 Recipient OK');

    const stopped = h.cluster.stopRole('frontend');
    const refused = await waitFor(
      async () => {
        const r = await smtpTranscript({ host: '127.0.0.1', port: h.cluster.port(25), lines: [], allowClose: true }).catch(() => ['']);
        return r[0]!.startsWith('421') ? r[0] : undefined;
      },
      { timeoutMs: 10_000, what: 'new sessions to be refused' },
    );
    expect(refused).toBe('421 4.3.2 Service not available');
    const ready = await fetch(`http://127.0.0.1:${h.cluster.httpPort('frontend')}/readyz`);
    expect(ready.status).toBe(503);

    expect(await d.say('DATA')).toBe('354 Start mail input; end with <CRLF>.<CRLF>');
    expect(await d.say(`Subject: ${marker}\r\n\r\n${marker}\r\n.`)).toMatch(/^250 2\.6\.0 /);
    expect(await d.say('MAIL FROM:<x@example.org>')).toBe('421 4.3.2 Service not available');
    await stopped;
    await waitForMaildirMessage(h, 'alice@contoso.test', marker);
    await h.cluster.startRole('frontend');
  });
});
