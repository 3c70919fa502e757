import { describe, expect, it } from 'vitest';
import { parsePickupHeader, stripPickupHeaders } from './pickup.ts';

const h = (s: string) => Buffer.from(s.replace(/\n/g, '\r\n'));

describe('pickup envelope', () => {
  it.each([
    ['Sender wins over From', 'Sender: s@contoso.test\nFrom: f@contoso.test\nTo: a@x.test\n', { sender: 's@contoso.test', recipients: ['a@x.test'] }],
    ['From when no Sender', 'From: "F" <f@contoso.test>\nTo: a@x.test, "B" <b@x.test>\nCc: c@x.test\nBcc: d@x.test,\n e@x.test\n', { sender: 'f@contoso.test', recipients: ['a@x.test', 'b@x.test', 'c@x.test', 'd@x.test', 'e@x.test'] }],
    ['duplicates once', 'From: f@contoso.test\nTo: a@x.test\nCc: a@x.test\n', { sender: 'f@contoso.test', recipients: ['a@x.test'] }],
  ])('%s', (_n, header, envelope) => {
    expect(parsePickupHeader(h(header), 100)).toEqual({ ok: true, envelope });
  });
  it.each([
    ['no sender', 'To: a@x.test\n', /no Sender or From/],
    ['no recipients', 'From: f@contoso.test\n', /no recipients/],
    ['too many', `From: f@contoso.test\nTo: ${Array.from({ length: 3 }, (_, i) => `r${i}@x.test`).join(', ')}\n`, /3 recipients exceed the limit of 2/],
  ])('refuses %s', (_n, header, reason) => {
    const r = parsePickupHeader(h(header), 2);
    expect(r.ok).toBe(false);
    expect(!r.ok && r.reason).toMatch(reason);
  });
  it('removes Bcc, Received and Resent-* fields (with their folded lines) and adds a Date when missing', () => {
    const out = stripPickupHeaders(h('Received: from a\n by b\nFrom: f@contoso.test\nBcc: d@x.test,\n e@x.test\nResent-From: z@x\nSubject: s\n'), new Date(Date.UTC(2026, 0, 2, 3, 4, 5))).toString();
    expect(out).toBe('Date: Fri, 2 Jan 2026 03:04:05 +0000\r\nFrom: f@contoso.test\r\nSubject: s\r\n');
    expect(stripPickupHeaders(h('Date: x\nFrom: f@contoso.test\n')).toString()).toBe('Date: x\r\nFrom: f@contoso.test\r\n');
  });
});
