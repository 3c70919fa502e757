import { describe, expect, it } from 'vitest';
import { buildDsn, dsnStatus, wantsNotification, type DsnInput } from './index.ts';

const date = (d: Date) => d.toUTCString();
const header = Buffer.from('From: bob@contoso.test\r\nTo: x@example.net\r\nSubject: Quarterly report\r\nMessage-ID: <orig@contoso.test>\r\n');
const base: DsnInput = {
  kind: 'failure',
  to: 'bob@contoso.test',
  from: 'postmaster@contoso.test',
  reportingMta: 'fe1.contoso.test',
  arrivalDate: new Date(Date.UTC(2026, 10, 24, 10, 0, 0)),
  now: new Date(Date.UTC(2026, 10, 24, 10, 5, 0)),
  recipients: [
    { address: 'x@example.net', status: '5.1.1', diagnostic: '550 5.1.1 User unknown', remoteMta: 'mx.example.net', original: 'rfc822;X@example.net' },
  ],
  originalSubject: 'Quarterly report',
  originalHeader: header,
  messageId: '<dsn-1@fe1.contoso.test>',
  date,
};

describe('wantsNotification (RFC 3461 NOTIFY)', () => {
  it.each([
    ['bob@contoso.test', undefined, 'failure', true],
    ['bob@contoso.test', undefined, 'delay', true],
    ['', undefined, 'failure', false], // never to the null sender
    ['bob@contoso.test', ['NEVER'], 'failure', false],
    ['bob@contoso.test', ['SUCCESS'], 'failure', false],
    ['bob@contoso.test', ['FAILURE'], 'failure', true],
    ['bob@contoso.test', ['FAILURE'], 'delay', false],
    ['bob@contoso.test', ['DELAY', 'FAILURE'], 'delay', true],
  ] as const)('sender %j, NOTIFY %j, %s → %s', (sender, notify, kind, expected) => {
    expect(wantsNotification(sender, notify, kind)).toBe(expected);
  });
});

describe('dsnStatus', () => {
  it.each([
    ['550 5.1.1 User unknown', 5, '5.1.1'],
    ['451 4.7.1 Greylisted', 4, '4.7.1'],
    ['554 Transaction failed', 5, '5.0.0'],
    ['connect ECONNREFUSED', 4, '4.0.0'],
    [undefined, 5, '5.0.0'],
  ] as const)('%j → %s', (reply, cls, expected) => {
    expect(dsnStatus(reply, cls)).toBe(expected);
  });
});

describe('buildDsn', () => {
  it('builds a multipart/report with per-recipient fields and the original headers', () => {
    const text = buildDsn({ ...base, envid: 'ENV-42' }).toString('utf8');
    const boundary = /boundary="([^"]+)"/.exec(text)![1]!;
    expect(text).toMatch(/^From: Mail Delivery System <postmaster@contoso\.test>\r\nTo: <bob@contoso\.test>\r\nSubject: Undeliverable: Quarterly report\r\n/);
    expect(text).toContain('Auto-Submitted: auto-replied');
    expect(text.split(`--${boundary}`)).toHaveLength(5); // preamble, 3 parts, closing
    expect(text).toContain(
      'Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; fe1.contoso.test\r\nOriginal-Envelope-Id: ENV-42\r\nArrival-Date: ',
    );
    expect(text).toContain(
      'Original-Recipient: rfc822;X@example.net\r\nFinal-Recipient: rfc822; x@example.net\r\nAction: failed\r\nStatus: 5.1.1\r\nRemote-MTA: dns; mx.example.net\r\nDiagnostic-Code: smtp; 550 5.1.1 User unknown\r\n',
    );
    expect(text).toContain(`Content-Type: text/rfc822-headers\r\n\r\n${header.toString()}\r\n--${boundary}--\r\n`);
  });
  it('returns the whole message with RET=FULL', () => {
    const message = Buffer.concat([header, Buffer.from('\r\nbody line\r\n')]);
    const text = buildDsn({ ...base, originalMessage: message }).toString('utf8');
    expect(text).toContain(`Content-Type: message/rfc822\r\n\r\n${message.toString()}`);
  });
  it('says delayed, with Will-Retry-Until, for a delay notice', () => {
    const text = buildDsn({
      ...base,
      kind: 'delay',
      willRetryUntil: new Date(Date.UTC(2026, 10, 26, 10, 0, 0)),
      recipients: [{ address: 'x@example.net', status: '4.4.1', diagnostic: 'connect ECONNREFUSED' }],
    }).toString();
    expect(text).toContain('Subject: Delivery delayed: Quarterly report');
    expect(text).toContain(
      'Action: delayed\r\nStatus: 4.4.1\r\nDiagnostic-Code: smtp; connect ECONNREFUSED\r\nWill-Retry-Until: Thu, 26 Nov 2026 10:00:00 GMT',
    );
  });
  it('keeps every header on one line whatever the diagnostic contains', () => {
    const text = buildDsn({ ...base, recipients: [{ address: 'x@example.net', status: '5.0.0', diagnostic: '550 first\r\nInjected: header' }] }).toString();
    expect(text).toContain('Diagnostic-Code: smtp; 550 first Injected: header\r\n');
    expect(text).not.toMatch(/^Injected:/m);
  });
});
