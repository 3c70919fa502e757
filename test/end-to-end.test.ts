import { execFile } from 'node:child_process';
import { utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createTransport } from 'nodemailer';
import { describe, expect, it } from 'vitest';
import { smtpTranscript, waitFor } from '@transit/testkit';
import { waitForMaildir, waitForMaildirMessage } from './harness.ts';
import { useHarness } from './use-harness.ts';

const run = promisify(execFile);
const h = useHarness();

async function swaks(args: string[]): Promise<string> {
  const { stdout } = await run('swaks', ['--server', `127.0.0.1:${h.cluster.port(25)}`, '--timeout', '20', ...args]).catch((e: { stdout: string }) => ({
    stdout: e.stdout,
  }));
  return stdout;
}

describe('the whole path', () => {
  it('accepts mail for a mailbox with 250 2.6.0 and writes the exact bytes into its Maildir', async () => {
    const out = await swaks(['--from', 'x@example.org', '--to', 'alice@contoso.test']);
    expect(out).toMatch(/<- {2}250 2\.6\.0 <[^>]+> \[InternalId=\d+, Hostname=[^\]]+\] Queued mail for delivery/);
    await waitForMaildir(h, 'alice@contoso.test', 1);

    // Byte-exactness, with a client whose every byte the test controls (the '.' line is dot-stuffed on the wire).
    const body = `From: x@example.org\r\nTo: alice@contoso.test\r\nSubject: e2e\r\nMessage-ID: <e2e-1@example.org>\r\n\r\nline one\r\n.leading dot\r\n\r\nend ${Date.now()}\r\n`;
    const replies = await smtpTranscript({
      host: '127.0.0.1',
      port: h.cluster.port(25),
      lines: [
        'EHLO client.example',
        'MAIL FROM:<x@example.org>',
        'RCPT TO:<alice@contoso.test>',
        'DATA',
        `DATA-BODY:${body.replace(/^\./gm, '..')}.\r\n`,
        'QUIT',
      ],
    });
    expect(replies[4]).toBe('354 Start mail input; end with <CRLF>.<CRLF>');
    expect(replies[5]).toMatch(/^250 2\.6\.0 <e2e-1@example\.org> \[InternalId=\d+, Hostname=/);
    const file = await waitForMaildirMessage(h, 'alice@contoso.test', '<e2e-1@example.org>');
    expect(file).toMatch(
      /^Return-Path: <x@example\.org>\r\nDelivered-To: alice@contoso\.test\r\nReceived: from \S+ \(\[127\.0\.0\.1\]\) by \S+ \(Transit\) with ESMTP id \w+; /,
    );
    // Everything after the headers Transit added is byte-for-byte what the client sent (dot-unstuffed).
    expect(file.slice(file.indexOf('From: x@example.org'))).toBe(body);
  });

  it('refuses relay (550 5.7.54) and unknown recipients (550 5.1.1) at RCPT for anonymous clients', async () => {
    const replies = await smtpTranscript({
      host: '127.0.0.1',
      port: h.cluster.port(25),
      lines: [
        'EHLO client.example',
        'MAIL FROM:<x@example.org>',
        'RCPT TO:<someone@example.net>',
        'RCPT TO:<nobody@contoso.test>',
        'RCPT TO:<alice.smith@contoso.test>',
        'QUIT',
      ],
    });
    expect(replies[0]).toMatch(/^220 \S+ Transit ESMTP MAIL Service ready at /);
    expect(replies[1]).toMatch(/^250-\S+ Hello \[127\.0\.0\.1\]/);
    expect(replies.slice(2)).toEqual([
      '250 2.1.0 Sender OK',
      '550 5.7.54 SMTP; Unable to relay recipient in non-accepted domain',
      '550 5.1.1 User unknown',
      '250 2.1.5 Recipient OK',
      '221 2.0.0 Service closing transmission channel',
    ]);
    const viaSwaks = await swaks(['--from', 'x@example.org', '--to', 'someone@example.net']);
    expect(viaSwaks).toMatch(/<\*\* 550 5\.7\.54 SMTP; Unable to relay recipient in non-accepted domain/);
  });

  it('refuses anonymous submission on the Client Frontend (530 5.7.1)', async () => {
    const replies = await smtpTranscript({ host: '127.0.0.1', port: h.cluster.port(587), lines: ['EHLO client.example', 'MAIL FROM:<x@example.org>'] });
    expect(replies[2]).toBe('530 5.7.1 Client was not authenticated');
  });

  it('relays for the IP-scoped Application Relay connector through the outbound proxy to a remote sink', async () => {
    const transport = createTransport({ host: '127.0.0.1', port: h.cluster.port(25), secure: false, ignoreTLS: true, localAddress: '127.0.0.2' });
    const before = h.sink.messages.length;
    const info = await transport.sendMail({
      envelope: { from: 'app@contoso.test', to: ['someone@example.net'] },
      raw: 'From: app@contoso.test\r\nTo: someone@example.net\r\nSubject: relayed\r\n\r\nrelay body\r\n',
    });
    expect(info.response).toMatch(/^250 2\.6\.0 /);
    const got = await h.sink.waitFor(before + 1);
    const msg = got[before]!;
    expect(msg.mailFrom).toBe('app@contoso.test');
    expect(msg.rcptTo).toEqual(['someone@example.net']);
    expect(msg.data.toString()).toMatch(/\r\n\r\nrelay body\r\n$/);
    transport.close();
  });

  it('submits pickup-directory files: Bcc recipients delivered and the Bcc header removed; remote recipients relayed', async () => {
    const before = h.sink.messages.length;
    await writeFile(
      join(h.cluster.pickupDir, 'report.eml'),
      'From: reports@contoso.test\r\nTo: bob@contoso.test, partner@example.net\r\nBcc: alice@contoso.test\r\nSubject: pickup\r\n\r\nfrom the pickup directory\r\n',
    );
    // report.eml is dated back so that a pass takes it at once and leaves broken.eml, just written, for a later pass.
    const past = new Date(Date.now() - 10_000);
    await utimes(join(h.cluster.pickupDir, 'report.eml'), past, past);
    await writeFile(join(h.cluster.pickupDir, 'broken.eml'), 'Subject: no addresses\r\n\r\nnothing\r\n');
    const bobCopy = await waitForMaildirMessage(h, 'bob@contoso.test', 'from the pickup directory');
    expect(bobCopy).not.toMatch(/^Bcc:/im);
    const aliceCopy = await waitForMaildirMessage(h, 'alice@contoso.test', 'from the pickup directory'); // the Bcc recipient
    expect(aliceCopy).not.toMatch(/^Bcc:/im);
    const remote = await h.sink.waitFor(before + 1);
    expect(remote[before]!.rcptTo).toEqual(['partner@example.net']);
    const { readdir } = await import('node:fs/promises');
    // The two files may be taken in different passes (a file is left until it has gone a second unchanged, PICKUP_SETTLE_MS):
    // the look waits until the pickup has finished with every file, then what it left is checked.
    const left = await waitFor(
      async () => {
        const names = await readdir(h.cluster.pickupDir);
        return names.some((n) => n.endsWith('.eml') || n.endsWith('.tmp')) ? undefined : names;
      },
      { timeoutMs: 15_000, what: 'the pickup directory to have no file left to take' },
    );
    expect(left).toEqual(['broken.bad']);
  });

  it('stores a large body in the object store and delivers it intact', async () => {
    const big = 'x'.repeat(998) + '\r\n';
    const body = `From: x@example.org\r\nTo: bob@contoso.test\r\nSubject: big\r\nMessage-ID: <big@example.org>\r\n\r\n${big.repeat(1500)}`; // ~1.5 MB, above the 256 KiB inline limit
    const transport = createTransport({ host: '127.0.0.1', port: h.cluster.port(25), secure: false, ignoreTLS: true });
    const info = await transport.sendMail({ envelope: { from: 'x@example.org', to: ['bob@contoso.test'] }, raw: body });
    expect(info.response).toMatch(/^250 2\.6\.0 <big@example\.org>/);
    transport.close();
    const copy = await waitForMaildirMessage(h, 'bob@contoso.test', '<big@example.org>');
    expect(copy.endsWith(body)).toBe(true);
  });
});
