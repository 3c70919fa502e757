/**
 * Accepting a message into Transit: store the body (inline or object store), publish the
 * envelope to `mail.submit`, and return only once JetStream acknowledged it. Used by every
 * way in (SMTP receive connectors, the pickup directory), so "durable before 250" holds
 * in one place. With a guard, the content passes the DATA content guard on its way in: a
 * refused message is never published, and of one that had started into the object store
 * nothing remains (the store purges the chunks of a put whose source throws).
 */
import type { Bus, BodyStore } from '@transit/bus';
import { SUBJECTS, publishDurableWithin, STREAMS, type Reception } from '@transit/bus';
import { encodeEnvelope, newMessageId, type BodyRef, type Envelope, type Origin, type Recipient } from '@transit/envelope';
import { metrics } from '@transit/metrics';
import { guardContent, releasableIterator, type ContentGuardOptions } from './content-guard.ts';
import { headerValue, splitHeader } from './headers.ts';

/** Message tracking's Source of the RECEIVE row. */
const sourceOf = (origin: Origin): Reception['source'] => (origin.kind === 'pickup' ? 'PICKUP' : origin.kind === 'dsn' ? 'DSN' : 'SMTP');

export type IngestDeps = {
  bus: Bus;
  bodies: BodyStore;
  nodeName: string;
  log: { warn(obj: object, msg: string): void };
  /** How long to keep trying to make the message durable (same id, so never twice) before giving up. */
  publishBudgetMs?: number;
};

/** The content guard's limits; its maxHeaderSize is the request's. */
export type IngestGuard = Omit<ContentGuardOptions, 'maxHeaderSize'>;

export type IngestRequest = {
  sender: string;
  recipients: Recipient[];
  origin: Origin;
  /** The message as received, header block first. */
  content: AsyncIterable<Buffer>;
  /** Header lines Transit adds at the top (e.g. Received:), each ending in CRLF; may use `{id}`. */
  prependHeaders: (id: string, messageIdHeader: string) => string;
  /** FQDN used to make a Message-ID when the message has none. */
  fqdn: string;
  maxHeaderSize: number;
  inlineMaxBytes: number;
  /**
   * Line endings, NUL, line length and size, checked while the content arrives (a
   * ContentRefusedError is thrown). Every way in from outside has one; only content
   * Transit wrote itself (DSNs) goes without.
   */
  guard?: IngestGuard;
  /** Called once the whole message was read; a returned error aborts before publishing. Limits checkable on the way in belong in `guard`. */
  beforePublish?: (size: number) => Error | undefined;
  dsn?: Envelope['dsn'];
  /** Header transform on the original header block (e.g. removing Bcc for pickup). */
  rewriteHeader?: (header: Buffer) => Buffer;
  /** A deterministic id (e.g. a DSN's, derived from its cause) so a retried submission is de-duplicated by JetStream. */
  id?: string;
};

export type IngestResult = { id: string; messageId: string; internalId: number; size: number };

export async function ingestMessage(deps: IngestDeps, req: IngestRequest): Promise<IngestResult> {
  const content = releasableIterator(req.guard ? guardContent(req.content, { ...req.guard, maxHeaderSize: req.maxHeaderSize }) : req.content);
  try {
    return await ingest(deps, req, content);
  } catch (err) {
    // Let go of the content without destroying it, so the SMTP layer can drain the rest of DATA and answer.
    await content.return?.().catch(() => undefined);
    throw err;
  }
}

async function ingest(deps: IngestDeps, req: IngestRequest, content: AsyncIterator<Buffer>): Promise<IngestResult> {
  const receivedAt = Date.now();
  const id = req.id ?? newMessageId(receivedAt);
  const split = await splitHeader({ [Symbol.asyncIterator]: () => content }, req.maxHeaderSize);
  const header = req.rewriteHeader ? req.rewriteHeader(split.header) : split.header;
  const existing = headerValue(header, 'Message-ID');
  const messageId = existing ?? `<${id}@${req.fqdn}>`;
  const added = req.prependHeaders(id, messageId) + (existing ? '' : `Message-ID: ${messageId}\r\n`);

  let size = 0;
  const buffered: Buffer[] = [];
  let bufferedBytes = 0;
  const take = (chunk: Buffer) => {
    size += chunk.length;
    buffered.push(chunk);
    bufferedBytes += chunk.length;
  };
  take(Buffer.from(added, 'latin1'));
  take(header);
  if (split.bodyStart.length) take(split.bodyStart);

  let body: BodyRef;
  let next = await split.rest.next();
  while (!next.done && bufferedBytes + next.value.length <= req.inlineMaxBytes) {
    take(next.value);
    next = await split.rest.next();
  }
  if (next.done && bufferedBytes <= req.inlineMaxBytes) {
    body = { kind: 'inline', data: Buffer.concat(buffered) };
  } else {
    // Large: stream what we hold and the rest straight into the object store.
    const first = next;
    const rest = split.rest;
    async function* all(): AsyncGenerator<Buffer> {
      for (const b of buffered.splice(0)) yield b;
      if (!first.done) {
        size += first.value.length;
        yield first.value;
      }
      for (let n = await rest.next(); !n.done; n = await rest.next()) {
        size += n.value.length;
        yield n.value;
      }
    }
    body = await deps.bodies.putStream(id, all());
  }

  // The whole message is read (for SMTP, the end of DATA): from here to the return is the wait for the 250.
  const dataEnd = performance.now();
  const refusal = req.beforePublish?.(size);
  if (refusal) throw refusal;

  // What message tracking shows and searches by, read from the header block already in hand (as sent, not RFC 2047-decoded).
  const subject = headerValue(header, 'Subject');
  const envelope: Envelope = {
    v: 1,
    id,
    messageId,
    subject,
    receivedAt,
    sender: req.sender,
    recipients: req.recipients,
    origin: req.origin,
    body,
    size,
    dsn: req.dsn,
  };
  // The only write before the 250: the hub records the Reception with its Submitted (receptionOf), in one append.
  const ack = await publishDurableWithin(deps.bus, SUBJECTS.submit, encodeEnvelope(envelope), {
    msgID: id,
    expectStream: STREAMS.submit,
    budgetMs: deps.publishBudgetMs ?? 15_000,
  }).catch((err: unknown) => {
    // The outcome is unknown: JetStream may still commit it when its quorum returns.
    deps.log.warn({ id, err: (err as Error).message }, 'message not confirmed durable; the client is told to retry, and this copy may still be delivered');
    throw err;
  });
  const source = sourceOf(req.origin);
  metrics.messagesReceived.inc({ connector: req.origin.connector ?? 'none', source });
  metrics.messageAccept.observe({ source }, (performance.now() - dataEnd) / 1000);
  return { id, messageId, internalId: ack.seq, size };
}

/**
 * What the event log records of a message's reception (message tracking's RECEIVE row), from
 * its submit item: the envelope, the item's stream sequence (the 250's InternalId) and the
 * time the stream stored it.
 */
export function receptionOf(envelope: Envelope, submit: { seq: number; storedAt: number }): Reception {
  const { origin } = envelope;
  // Absent fields stay absent on the wire: the codecs leave out undefined values.
  return {
    connector: origin.connector,
    source: sourceOf(origin),
    sender: envelope.sender,
    recipients: envelope.recipients.map((r) => r.address),
    size: envelope.size,
    messageId: envelope.messageId,
    subject: envelope.subject,
    internalId: envelope.internalId ?? submit.seq,
    clientIp: origin.clientIp,
    clientHostname: origin.clientHelo,
    queuedAt: submit.storedAt,
    acceptedBy: origin.serverHost,
  };
}
