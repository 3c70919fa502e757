import { describe, expect, it } from 'vitest';
import { parseReplayHeader, stripReplayHeaders } from './replay.ts';

const h = (text: string) => Buffer.from(text, 'latin1');

describe('replay directory headers', () => {
  it('takes the envelope from the leading X-Sender and X-Receiver fields and removes them', () => {
    const header = h(
      'X-Sender: <app@contoso.test> BODY=8BITMIME\r\nX-Receiver: <alice@contoso.test> NOTIFY=NEVER\r\nX-Receiver: bob@contoso.test\r\nx-receiver: <ALICE@contoso.test>\r\nFrom: someone@else.test\r\nTo: nobody@contoso.test\r\nBcc: hidden@contoso.test\r\n',
    );
    expect(parseReplayHeader(header, 100)).toEqual({
      ok: true,
      envelope: { sender: 'app@contoso.test', recipients: ['alice@contoso.test', 'bob@contoso.test'] },
    });
    // The rest stays byte for byte: To and Bcc do not decide anything, and are kept.
    expect(stripReplayHeaders(header).toString('latin1')).toBe('From: someone@else.test\r\nTo: nobody@contoso.test\r\nBcc: hidden@contoso.test\r\n');
  });

  it('accepts the null sender', () => {
    expect(parseReplayHeader(h('X-Sender: <>\r\nX-Receiver: <a@contoso.test>\r\nSubject: x\r\n'), 100)).toEqual({
      ok: true,
      envelope: { sender: '', recipients: ['a@contoso.test'] },
    });
  });

  it.each([
    ['Subject: x\r\nX-Sender: <a@b.test>\r\nX-Receiver: <c@d.test>\r\n', 'X-Sender and X-Receiver must come before all other header fields'],
    ['X-Sender: <a@b.test>\r\nSubject: x\r\nX-Receiver: <c@d.test>\r\n', 'X-Sender and X-Receiver must come before all other header fields'],
    ['X-Receiver: <c@d.test>\r\nSubject: x\r\n', 'no X-Sender header'],
    ['X-Sender: <a@b.test>\r\nX-Sender: <e@b.test>\r\nX-Receiver: <c@d.test>\r\nSubject: x\r\n', '2 X-Sender headers (exactly one is allowed)'],
    ['X-Sender: <a@b.test>\r\nSubject: x\r\n', 'no X-Receiver header'],
    ['X-Sender: <not an address>\r\nX-Receiver: <c@d.test>\r\nSubject: x\r\n', 'X-Sender <not an address> is not a valid address'],
    ['X-Sender: <a@b.test>\r\nX-Receiver: <nope>\r\nSubject: x\r\n', 'X-Receiver <nope> is not a valid address'],
    ['X-Sender: <a@b.test>\r\nX-Receiver: <c@d.test>\r\n', 'no message after the X-Sender and X-Receiver headers'],
  ])('refuses %j: %s', (text, reason) => {
    expect(parseReplayHeader(h(text), 100)).toEqual({ ok: false, reason });
  });

  it('applies the recipient limit', () => {
    expect(parseReplayHeader(h('X-Sender: <a@b.test>\r\nX-Receiver: <c@d.test>\r\nX-Receiver: <e@d.test>\r\nSubject: x\r\n'), 1)).toEqual({
      ok: false,
      reason: '2 recipients exceed the limit of 1',
    });
  });
});
