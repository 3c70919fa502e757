/**
 * The envelope: what travels between Transit's roles on the bus. Versioned (`v`) so a
 * reader can refuse what it does not understand instead of misreading it. The zod schema
 * is the single source of truth; the TypeScript types are inferred from it.
 */
import { z } from 'zod';

export const ENVELOPE_VERSION = 1;

/** Where the body bytes live: inline in the envelope when small, in the object store when large. */
export const bodyRefSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('inline'), data: z.instanceof(Uint8Array) }),
  z.object({ kind: z.literal('object'), bucket: z.string().min(1), name: z.string().min(1) }),
]);
export type BodyRef = z.infer<typeof bodyRefSchema>;

/** RFC 3461 per-recipient DSN parameters, kept as the client gave them. */
export const recipientSchema = z.object({
  address: z.string(),
  /** The address as the client wrote it, before alias resolution (ORCPT). */
  original: z.string().optional(),
  notify: z.array(z.enum(['NEVER', 'SUCCESS', 'FAILURE', 'DELAY'])).optional(),
});
export type Recipient = z.infer<typeof recipientSchema>;

/** How the message entered Transit: the facts a later policy, log or trace may need. */
export const originSchema = z.object({
  kind: z.enum(['smtp', 'pickup', 'replay', 'dsn']),
  connector: z.string().optional(),
  clientIp: z.string().optional(),
  clientPort: z.number().int().optional(),
  clientHelo: z.string().optional(),
  /** The Transit node that accepted the message. */
  serverHost: z.string(),
  principal: z.string().optional(),
  tls: z.boolean().optional(),
});
export type Origin = z.infer<typeof originSchema>;

/** The next hop a hub chose for a group of recipients. */
export const nextHopSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('mailbox'), database: z.string().min(1) }),
  z.object({
    type: z.literal('smtp'),
    /** Send connector that matched, by name. */
    connector: z.string().min(1),
    /** The recipient domain (MX routing) or the connector's smart hosts. */
    domain: z.string().min(1),
    smartHosts: z.array(z.string()).optional(),
    port: z.number().int().min(1).max(65535),
  }),
]);
export type NextHop = z.infer<typeof nextHopSchema>;

export const envelopeSchema = z.object({
  v: z.literal(ENVELOPE_VERSION),
  /** Transit's message id: unique, also the JetStream de-duplication id (Nats-Msg-Id). */
  id: z.string().min(1),
  /** InternalId shown in the 250 reply: the submit stream's sequence number. */
  internalId: z.number().int().nonnegative().optional(),
  /** The RFC 5322 Message-ID header value, with angle brackets. */
  messageId: z.string(),
  /** The Subject header as sent (not RFC 2047-decoded), for message tracking; absent when the message has none. */
  subject: z.string().optional(),
  /** Milliseconds since the epoch, when the frontend accepted the message. */
  receivedAt: z.number().int(),
  /** Envelope sender (MAIL FROM); the empty string is the null sender <>. */
  sender: z.string(),
  recipients: z.array(recipientSchema).min(1),
  origin: originSchema,
  body: bodyRefSchema,
  /** Size in bytes of the stored body (headers Transit added included). */
  size: z.number().int().nonnegative(),
  dsn: z.object({ ret: z.enum(['FULL', 'HDRS']).optional(), envid: z.string().optional() }).optional(),
});
export type Envelope = z.infer<typeof envelopeSchema>;

/** A unit of delivery work: an envelope narrowed to the recipients of one next hop. */
export const deliveryItemSchema = z.object({
  v: z.literal(ENVELOPE_VERSION),
  envelope: envelopeSchema,
  hop: nextHopSchema,
  /** Delivery attempts already made for these recipients. */
  attempt: z.number().int().nonnegative(),
  /** Not to be attempted before this time (ms since the epoch); retries set it. */
  notBefore: z.number().int().nonnegative(),
  /** The sender already got the delay notification for these recipients. */
  delayNotified: z.boolean().optional(),
  /** Resubmitted from the Safety Net: no notifications, and a copy already in the mailbox wins. */
  resubmitted: z.boolean().optional(),
});
export type DeliveryItem = z.infer<typeof deliveryItemSchema>;
