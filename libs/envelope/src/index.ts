export {
  ENVELOPE_VERSION,
  envelopeSchema,
  deliveryItemSchema,
  nextHopSchema,
  type BodyRef,
  type DeliveryItem,
  type Envelope,
  type NextHop,
  type Origin,
  type Recipient,
} from './envelope.ts';
export { DecodeError, decodeDeliveryItem, decodeEnvelope, encodeDeliveryItem, encodeEnvelope } from './codec.ts';
export { newMessageId } from './ids.ts';
