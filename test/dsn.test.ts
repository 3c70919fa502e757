/**
 * Delivery status notifications end to end: a sink that refuses or defers chosen
 * recipients, real SMTP in, and the notifications arriving in the sender's Maildir.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { smtpTranscript, startSmtpSink, waitFor, type SmtpSink } from '@transit/testkit';
import { messageEvents } from './harness.ts';
import { useHarness } from './use-harness.ts';

/** A next hop that does not offer DSN (RFC 3461): it must get none of the parameters. */
let plainSink: SmtpSink | undefined;
afterAll(async () => {
  await plainSink?.close();
});

const h = useHarness(async () => {
  plainSink = await startSmtpSink({ dsn: false });
  const sink = plainSink;
  return {
    rejectRecipient: (rcpt) =>
      rcpt.startsWith('bounce')
        ? { code: 550, message: '5.1.1 no such user here' }
        : rcpt.startsWith('slow')
          ? { code: 451, message: '4.4.1 try again later' }
          : undefined,
    transport: { TransientRetrySchedule: [1], DelayNotificationTimeout: 1, MessageExpirationTimeout: 4 },
    // A mailbox whose address the Maildir store cannot turn into a directory: its delivery fails for good.
    prepare: (config) => {
      (config.Mailboxes as unknown[]).push({ Name: 'Odd', PrimarySmtpAddress: 'odd/box@contoso.test' });
      (config.SendConnectors as unknown[]).push({
        Name: 'No DSN',
        AddressSpaces: ['no-dsn.test'],
        DNSRoutingEnabled: false,
        SmartHosts: [`${sink.host}:${sink.port}`],
      });
    },
  };
});

/** Relays through the Application Relay connector (127.0.0.2), which may send as contoso.test and relay. */
async function relay(mailFrom: string, rcpts: string[], subject: string, extra = ''): Promise<string[]> {
  const body = `From: bob@contoso.test\r\nTo: ${rcpts.join(', ')}\r\nSubject: ${subject}\r\n\r\nThe body of ${subject}\r\n.\r\n`;
  return smtpTranscript({
    host: '127.0.0.1',
    port: h.cluster.port(25),
    localAddress: '127.0.0.2',
    lines: [
      'EHLO app.contoso.test',
      `MAIL FROM:<${mailFrom}>${extra}`,
      ...rcpts.map((r) => `RCPT TO:<${r.split(' ')[0]}>${r.includes(' ') ? ` ${r.split(' ').slice(1).join(' ')}` : ''}`),
      'DATA',
      `DATA-BODY:${body}`,
      'QUIT',
    ],
  });
}

const dsnsFor = async (marker: string) => (await h.maildirFiles('bob@contoso.test')).filter((f) => f.includes('multipart/report') && f.includes(marker));

describe('failure notifications', () => {
  it('sends one RFC 3464 report to the sender for a recipient the remote server refused, and delivers the others', async () => {
    const marker = `fail-${Date.now()}`;
    const replies = await relay('bob@contoso.test', ['bounce1@example.net', 'fine@example.net'], marker);
    expect(replies.at(-2)).toMatch(/^250 2\.6\.0 /);
    const [dsn] = await waitFor(async () => ((await dsnsFor(marker)).length ? dsnsFor(marker) : undefined), { timeoutMs: 20_000, what: 'the failure DSN' });
    expect(dsn).toMatch(/^Return-Path: <>\r\n/);
    expect(dsn).toContain(`Subject: Undeliverable: ${marker}`);
    expect(dsn).toMatch(/Content-Type: multipart\/report; report-type=delivery-status; boundary="/);
    expect(dsn).toContain(
      'Final-Recipient: rfc822; bounce1@example.net\r\nAction: failed\r\nStatus: 5.1.1\r\nRemote-MTA: dns; 127.0.0.1\r\nDiagnostic-Code: smtp; 550 5.1.1 no such user here',
    );
    expect(dsn).toContain('Content-Type: text/rfc822-headers');
    expect(dsn).not.toContain('fine@example.net\r\nAction');
    expect(h.sink.messages.filter((m) => m.rcptTo.includes('fine@example.net') && m.data.toString().includes(marker))).toHaveLength(1);
    await new Promise((r) => setTimeout(r, 1500));
    expect(await dsnsFor(marker)).toHaveLength(1);
  });

  it('honours RET=FULL, ENVID and ORCPT', async () => {
    const marker = `full-${Date.now()}`;
    await relay('bob@contoso.test', ['bounce2@example.net ORCPT=rfc822;Bounce2@Example.NET'], marker, ' RET=FULL ENVID=QQ314159');
    const [dsn] = await waitFor(async () => ((await dsnsFor(marker)).length ? dsnsFor(marker) : undefined), { timeoutMs: 20_000, what: 'the failure DSN' });
    expect(dsn).toContain('Original-Envelope-Id: QQ314159');
    expect(dsn).toContain('Original-Recipient: rfc822;Bounce2@Example.NET\r\nFinal-Recipient: rfc822; bounce2@example.net');
    expect(dsn).toContain('Content-Type: message/rfc822');
    expect(dsn).toContain(`The body of ${marker}`);
  });

  it('sends none for NOTIFY=NEVER or to the null sender, and records why', async () => {
    const marker = `never-${Date.now()}`;
    await relay('bob@contoso.test', ['bounce3@example.net NOTIFY=NEVER'], marker);
    await relay('', ['bounce4@example.net'], `${marker}-null`);
    const suppressed = await waitFor(
      async () => {
        const all = (await messageEvents(h)).filter((e) => e.type === 'DsnSuppressed');
        const never = all.find((e) => (e.recipients as string[]).includes('bounce3@example.net'));
        const nul = all.find((e) => (e.recipients as string[]).includes('bounce4@example.net'));
        return never && nul ? { never, nul } : undefined;
      },
      { timeoutMs: 20_000, what: 'DsnSuppressed events' },
    );
    expect(suppressed.never.reason).toBe('NOTIFY excludes it');
    expect(suppressed.nul.reason).toBe('null sender');
    expect(await dsnsFor(marker)).toEqual([]);
  });

  it('bounces an unknown recipient found by the categorizer (pickup) with 5.1.10', async () => {
    const marker = `unknown-${Date.now()}`;
    await writeFile(join(h.cluster.pickupDir, `${marker}.eml`), `From: bob@contoso.test\r\nTo: nobody@contoso.test\r\nSubject: ${marker}\r\n\r\nhello\r\n`);
    const [dsn] = await waitFor(async () => ((await dsnsFor(marker)).length ? dsnsFor(marker) : undefined), { timeoutMs: 20_000, what: 'the categorizer DSN' });
    expect(dsn).toContain('Final-Recipient: rfc822; nobody@contoso.test\r\nAction: failed\r\nStatus: 5.1.10\r\n');
    expect(dsn).toContain('RESOLVER.ADR.RecipientNotFound');
  });
});

describe('mailbox delivery failures', () => {
  it('reports a recipient the mailbox store refuses, once, and delivers the other mailboxes', async () => {
    const marker = `maildir-${Date.now()}`;
    const replies = await relay('bob@contoso.test', ['odd/box@contoso.test', 'alice@contoso.test'], marker);
    expect(replies.at(-2)).toMatch(/^250 2\.6\.0 /);
    const [dsn] = await waitFor(async () => ((await dsnsFor(marker)).length ? dsnsFor(marker) : undefined), { timeoutMs: 20_000, what: 'the mailbox DSN' });
    const reply = '550 5.2.0 address "odd/box@contoso.test" cannot name a mailbox directory';
    expect(dsn).toContain(`Final-Recipient: rfc822; odd/box@contoso.test\r\nAction: failed\r\nStatus: 5.2.0\r\n`);
    expect(dsn).toContain(`Diagnostic-Code: smtp; ${reply}`);
    expect(dsn).not.toContain('alice@contoso.test\r\nAction');
    const delivered = (await h.maildirFiles('alice@contoso.test')).filter((f) => f.includes(marker));
    expect(delivered).toHaveLength(1);
    const failed = (await messageEvents(h)).filter((e) => e.type === 'Failed' && (e.recipients as string[]).includes('odd/box@contoso.test'));
    expect(failed.map((e) => [e.hop, e.reason])).toEqual([['mailbox:DB01', reply]]);
    await new Promise((r) => setTimeout(r, 1500));
    expect(await dsnsFor(marker)).toHaveLength(1);
  });
});

describe('delay and expiry', () => {
  it('sends one delay notice after DelayNotificationTimeout, then one 4.4.7 report at expiry', async () => {
    const marker = `slow-${Date.now()}`;
    await relay('bob@contoso.test', ['slow1@example.net'], marker);
    const expired = await waitFor(
      async () => {
        const dsns = await dsnsFor(marker);
        return dsns.some((d) => d.includes('Action: failed')) ? dsns : undefined;
      },
      { timeoutMs: 30_000, what: 'the expiry DSN' },
    );
    await new Promise((r) => setTimeout(r, 1500));
    const all = await dsnsFor(marker);
    expect(all).toHaveLength(2);
    const delay = all.find((d) => d.includes('Action: delayed'))!;
    expect(delay).toContain(`Subject: Delivery delayed: ${marker}`);
    expect(delay).toContain('Status: 4.4.1');
    expect(delay).toMatch(/Will-Retry-Until: /);
    const failure = expired.find((d) => d.includes('Action: failed'))!;
    expect(failure).toContain('Status: 4.4.7');
    expect(failure).toContain('Diagnostic-Code: smtp; 550 4.4.7 Message expired: 451 4.4.1 try again later');
  });
});

describe('DSN parameters to the next hop', () => {
  const arrivals = (sink: SmtpSink, marker: string) => sink.messages.filter((m) => m.data.toString('latin1').includes(marker));

  it('passes NOTIFY and ORCPT per recipient and RET and ENVID per message, one transaction per set of parameters, each recipient once', async () => {
    const marker = `params-${Date.now()}`;
    const replies = await relay(
      'bob@contoso.test',
      ['p1@example.net NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;first+2Bone@example.org', 'p2@example.net', 'p3@example.net', 'p4@example.net NOTIFY=NEVER'],
      marker,
      ` RET=HDRS ENVID=${marker}+2Bq`,
    );
    expect(replies.at(-2)).toMatch(/^250 2\.6\.0 /);
    const got = await waitFor(() => (arrivals(h.sink, marker).length >= 3 ? arrivals(h.sink, marker) : undefined), {
      timeoutMs: 20_000,
      what: 'three transactions at the sink',
    });
    const byRecipients = new Map(got.map((m) => [m.rcptTo.join(' '), m]));
    expect([...byRecipients.keys()].sort()).toEqual(['p1@example.net', 'p2@example.net p3@example.net', 'p4@example.net']);
    for (const m of got) expect(m.dsn).toEqual({ ret: 'HDRS', envid: `${marker}+q` });
    // smtp-server decodes xtext: the next hop got ORCPT=rfc822;first+2Bone@example.org back, encoded as the client had sent it.
    expect(byRecipients.get('p1@example.net')!.rcptDsn).toEqual([{ notify: ['SUCCESS', 'FAILURE'], orcpt: 'rfc822;first+one@example.org' }]);
    expect(byRecipients.get('p2@example.net p3@example.net')!.rcptDsn).toEqual([{}, {}]);
    expect(byRecipients.get('p4@example.net')!.rcptDsn).toEqual([{ notify: ['NEVER'] }]);
    const delivered = (await messageEvents(h)).filter((e) => e.type === 'Delivered').flatMap((e) => e.recipients as string[]);
    for (const r of ['p1@example.net', 'p2@example.net', 'p3@example.net', 'p4@example.net']) expect(delivered.filter((d) => d === r)).toHaveLength(1);
    // Give a second copy time to show up before counting.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(arrivals(h.sink, marker)).toHaveLength(3);
  });

  it('sends a next hop without DSN none of the parameters, and the message once', async () => {
    const marker = `plain-${Date.now()}`;
    const replies = await relay(
      'bob@contoso.test',
      ['a@no-dsn.test NOTIFY=SUCCESS ORCPT=rfc822;a@no-dsn.test', 'b@no-dsn.test'],
      marker,
      ` RET=FULL ENVID=${marker}`,
    );
    expect(replies.at(-2)).toMatch(/^250 2\.6\.0 /);
    const got = await waitFor(() => (arrivals(plainSink!, marker).length >= 2 ? arrivals(plainSink!, marker) : undefined), {
      timeoutMs: 20_000,
      what: 'both recipients at the sink without DSN',
    });
    expect(got.flatMap((m) => m.rcptTo).sort()).toEqual(['a@no-dsn.test', 'b@no-dsn.test']);
    for (const m of got) {
      expect(m.dsn).toEqual({});
      expect(m.rcptDsn.every((r) => Object.keys(r).length === 0)).toBe(true);
    }
  });
});
