/**
 * REQUIRETLS (RFC 8689): Transit does not honour it (nothing keeps such a message on TLS
 * hops), so it must neither advertise it nor take a MAIL FROM that asks for it. smtp-server
 * (3.21) lists it in EHLO on a secure session only with `hideREQUIRETLS: false` (its default
 * is true; libs/receive leaves it), and refuses the parameter itself only on a plain-text session.
 */
import { describe, expect, it } from 'vitest';
import { hashPassword } from '@transit/config';
import { smtpTranscript } from '@transit/testkit';
import { useHarness } from './use-harness.ts';

const BOB_PASSWORD = 'Bob-Secret-2026!';
const h = useHarness(async () => {
  const bobHash = await hashPassword(BOB_PASSWORD, { N: 1024, r: 8, p: 1 });
  return {
    prepare: (config) => {
      const mailboxes = config.Mailboxes as Record<string, unknown>[];
      Object.assign(
        mailboxes.find((m) => m.Name === 'Bob')!,
        { UserPrincipalName: 'bob@contoso.test', SamAccountName: 'bob', PasswordHash: bobHash },
      );
    },
  };
});

/** The EHLO keywords of a multi-line 250 reply (its first line is the greeting). */
const keywords = (reply: string) =>
  reply
    .split('\n')
    .slice(1)
    .map((l) => l.slice(4).split(' ')[0]!.toUpperCase());

const FRONTENDS = [
  { name: 'Default Frontend', port: 25 },
  { name: 'Client Frontend', port: 587 },
];

describe('REQUIRETLS is not offered', () => {
  it.each(FRONTENDS)('$name: not in EHLO before STARTTLS nor after it', async ({ port }) => {
    const replies = await smtpTranscript({
      host: '127.0.0.1',
      port: h.cluster.port(port),
      startTls: true,
      lines: ['EHLO client.example', 'STARTTLS', 'EHLO client.example', 'QUIT'],
    });
    expect(keywords(replies[1]!)).toContain('STARTTLS');
    expect(keywords(replies[1]!)).not.toContain('REQUIRETLS');
    expect(replies[2]).toBe('220 2.0.0 SMTP server ready');
    expect(replies[3]).toMatch(/^250-/);
    expect(keywords(replies[3]!)).not.toContain('STARTTLS');
    expect(keywords(replies[3]!)).not.toContain('REQUIRETLS');
  });
});

describe('MAIL FROM with REQUIRETLS is refused', () => {
  it.each(FRONTENDS)('$name: on a plain-text session', async ({ port }) => {
    const replies = await smtpTranscript({
      host: '127.0.0.1',
      port: h.cluster.port(port),
      lines: ['EHLO client.example', 'MAIL FROM:<a@b> REQUIRETLS', 'QUIT'],
    });
    // smtp-server refuses it before Transit's MAIL FROM policy runs; its words are translated (libs/receive/src/smtp-adapter.ts).
    expect(replies[2]).toBe('555 5.5.4 MAIL FROM/RCPT TO parameters not recognized or not implemented');
  });

  // The sessions the refusals below need work: STARTTLS, then AUTH on the Client Frontend, and a plain MAIL FROM is taken.
  const secureSession = (port: number, mailFrom: string) =>
    smtpTranscript({
      host: '127.0.0.1',
      port: h.cluster.port(port),
      startTls: true,
      lines: [
        'EHLO client.example',
        'STARTTLS',
        'EHLO client.example',
        ...(port === 587 ? [`AUTH PLAIN ${Buffer.from(`\0bob@contoso.test\0${BOB_PASSWORD}`).toString('base64')}`] : []),
        mailFrom,
        'QUIT',
      ],
    });
  it('Default Frontend and Client Frontend: after STARTTLS (and AUTH) a MAIL FROM without REQUIRETLS is taken', async () => {
    expect((await secureSession(25, 'MAIL FROM:<a@b>'))[4]).toBe('250 2.1.0 Sender OK');
    const client = await secureSession(587, 'MAIL FROM:<bob@contoso.test>');
    expect(client[4]).toMatch(/^235 /);
    expect(client[5]).toBe('250 2.1.0 Sender OK');
  });

  // After STARTTLS smtp-server validates the parameter and lets it through; the receive engine
  // refuses it, since Transit does not keep that promise yet (RFC 5321 §4.1.1.11).
  it('Default Frontend: after STARTTLS', async () => {
    expect((await secureSession(25, 'MAIL FROM:<a@b> REQUIRETLS'))[4]).toBe('555 5.5.4 MAIL FROM/RCPT TO parameters not recognized or not implemented');
  });

  it('Client Frontend: after STARTTLS and AUTH', async () => {
    expect((await secureSession(587, 'MAIL FROM:<bob@contoso.test> REQUIRETLS'))[5]).toBe(
      '555 5.5.4 MAIL FROM/RCPT TO parameters not recognized or not implemented',
    );
  });

  it('Client Frontend: after STARTTLS without AUTH (refused as unauthenticated first)', async () => {
    const replies = await smtpTranscript({
      host: '127.0.0.1',
      port: h.cluster.port(587),
      startTls: true,
      lines: ['EHLO client.example', 'STARTTLS', 'EHLO client.example', 'MAIL FROM:<a@b> REQUIRETLS', 'QUIT'],
    });
    expect(replies[4]).toBe('530 5.7.1 Client was not authenticated');
  });
});
