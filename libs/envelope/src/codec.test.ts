import { encode } from '@msgpack/msgpack';
import { describe, expect, it } from 'vitest';
import { DecodeError, decodeDeliveryItem, decodeEnvelope, encodeDeliveryItem, encodeEnvelope, newMessageId, type Envelope } from './index.ts';

const sample: Envelope = {
  v: 1,
  id: newMessageId(0),
  messageId: '<a@b>',
  receivedAt: 1_700_000_000_000,
  sender: '',
  recipients: [{ address: 'alice@contoso.test', notify: ['FAILURE'] }],
  origin: { kind: 'smtp', connector: 'Default Frontend', clientIp: '127.0.0.1', serverHost: 'n1' },
  body: { kind: 'inline', data: new TextEncoder().encode('Subject: x\r\n\r\nhi\r\n') },
  size: 17,
};

describe('envelope codec', () => {
  it('round-trips an envelope with an inline body, bytes intact', () => {
    const back = decodeEnvelope(encodeEnvelope(sample));
    expect(back).toEqual(sample);
    expect(back.body.kind === 'inline' && Buffer.from(back.body.data).toString()).toBe('Subject: x\r\n\r\nhi\r\n');
  });

  it('round-trips a delivery item with an object-store body', () => {
    const item = {
      v: 1 as const,
      envelope: { ...sample, body: { kind: 'object' as const, bucket: 'bodies', name: sample.id } },
      hop: { type: 'smtp' as const, connector: 'Internet', domain: 'example.net', port: 25 },
      attempt: 2,
      notBefore: 5,
    };
    expect(decodeDeliveryItem(encodeDeliveryItem(item))).toEqual(item);
  });

  it.each([
    ['an unknown version', { ...sample, v: 2 }, /v:/],
    ['no recipients', { ...sample, recipients: [] }, /recipients/],
    ['a bad body kind', { ...sample, body: { kind: 'file', path: '/x' } }, /body/],
  ])('refuses %s with a decode error naming the field', (_name, value, pattern) => {
    expect(() => decodeEnvelope(encode(value))).toThrow(DecodeError);
    expect(() => decodeEnvelope(encode(value))).toThrow(pattern);
  });

  it('refuses bytes that are not msgpack', () => {
    expect(() => decodeEnvelope(new Uint8Array([0xc1]))).toThrow(/not msgpack/);
  });

  it('makes time-ordered, subject-safe ids', () => {
    const a = newMessageId(1000);
    const b = newMessageId(2000);
    expect(a < b).toBe(true);
    expect(a).toMatch(/^[0-9A-Z]{26}$/);
  });
});
