/**
 * msgpack codec for bus payloads. Decoding validates against the schema, so a reader gets
 * either a well-formed value of the version it understands or an error value it can act on
 * (terminate the work item, log) — never a half-read object.
 */
import { decode, encode } from '@msgpack/msgpack';
import type { z } from 'zod';
import { deliveryItemSchema, envelopeSchema, type DeliveryItem, type Envelope } from './envelope.ts';

export class DecodeError extends Error {
  readonly code = 'ENVELOPE_DECODE';
  constructor(message: string) {
    super(message);
    this.name = 'DecodeError';
  }
}

function decodeWith<T>(schema: z.ZodType<T>, bytes: Uint8Array, what: string): T {
  let raw: unknown;
  try {
    raw = decode(bytes);
  } catch (err) {
    throw new DecodeError(`${what}: not msgpack (${(err as Error).message})`);
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new DecodeError(`${what}: ${issue ? `${issue.path.join('.') || '(root)'}: ${issue.message}` : 'invalid'}`);
  }
  return parsed.data;
}

export function encodeEnvelope(envelope: Envelope): Uint8Array {
  return encode(envelope, { ignoreUndefined: true });
}

export function decodeEnvelope(bytes: Uint8Array): Envelope {
  return decodeWith(envelopeSchema, bytes, 'envelope');
}

export function encodeDeliveryItem(item: DeliveryItem): Uint8Array {
  return encode(item, { ignoreUndefined: true });
}

export function decodeDeliveryItem(bytes: Uint8Array): DeliveryItem {
  return decodeWith(deliveryItemSchema, bytes, 'delivery item');
}
