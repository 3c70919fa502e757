/**
 * Sends a delivery status notification about some recipients of a message back to its
 * sender, through the normal ingest path (so it is durable before the caller acks its
 * work item) with the null sender (so it can never bounce). The id is derived from the
 * cause: a work item redelivered after a crash submits the same id again, and JetStream's
 * de-duplication keeps one notification.
 */
import { Readable } from 'node:stream';
import type { BodyStore } from '@transit/bus';
import { recordEvent } from '@transit/bus';
import type { OrganizationConfig } from '@transit/config';
import { buildDsn, wantsNotification, type DsnKind, type DsnRecipient } from '@transit/dsn';
import type { Envelope } from '@transit/envelope';
import { headerValue, rfc5322Date, splitHeader } from './headers.ts';
import { ingestMessage, type IngestDeps } from './ingest.ts';

export type DsnRequest = {
  envelope: Envelope;
  kind: DsnKind;
  /** The recipients concerned, with their status; those whose NOTIFY excludes this kind are left out. */
  recipients: DsnRecipient[];
  /** Distinguishes notifications about one message (e.g. the hop and attempt). */
  tag: string;
  config: OrganizationConfig;
  fqdn: string;
  willRetryUntil?: Date;
};

export type DsnOutcome = { sent: string[]; suppressed: string[]; dsnId?: string };

async function original(bodies: BodyStore, envelope: Envelope, full: boolean, limit: number): Promise<{ header: Buffer; message?: Buffer }> {
  if (full && envelope.size <= limit) {
    const message = await bodies.read(envelope.body);
    const split = await splitHeader(Readable.from([message]), 1024 * 1024);
    return { header: split.header, message };
  }
  const body = await bodies.open(envelope.body);
  try {
    return { header: (await splitHeader(body, 1024 * 1024)).header };
  } finally {
    body.destroy(); // only the header was read: this ends the body's object-store consumer
  }
}

export async function submitDsn(deps: IngestDeps, req: DsnRequest): Promise<DsnOutcome> {
  const { envelope, kind } = req;
  const notifyOf = new Map(envelope.recipients.map((r) => [r.address.toLowerCase(), r]));
  const wanted = req.recipients.filter((r) => wantsNotification(envelope.sender, notifyOf.get(r.address.toLowerCase())?.notify, kind));
  const suppressed = req.recipients.filter((r) => !wanted.includes(r)).map((r) => r.address);
  if (suppressed.length) {
    const reason = envelope.sender === '' ? 'null sender' : 'NOTIFY excludes it';
    await recordEvent(deps.bus, envelope.id, { type: 'DsnSuppressed', kind, recipients: suppressed, reason }, deps.nodeName);
  }
  if (wanted.length === 0) return { sent: [], suppressed };

  const ts = req.config.TransportSettings;
  const { header, message } = await original(deps.bodies, envelope, envelope.dsn?.ret === 'FULL', ts.DsnMaxReturnedMessageBytes);
  const defaultDomain = req.config.AcceptedDomains.find((d) => d.Default)!.DomainName.replace(/^\*\./, '');
  const dsnId = `${envelope.id}-${kind}-${req.tag}`.replace(/[^A-Za-z0-9_-]/g, '_');
  const now = new Date();
  const content = buildDsn({
    kind,
    to: envelope.sender,
    from: `postmaster@${defaultDomain}`,
    reportingMta: req.fqdn,
    arrivalDate: new Date(envelope.receivedAt),
    now,
    envid: envelope.dsn?.envid,
    recipients: wanted.map((r) => ({ ...r, original: r.original ?? notifyOf.get(r.address.toLowerCase())?.original })),
    originalSubject: headerValue(header, 'Subject') ?? '',
    originalHeader: header,
    originalMessage: message,
    willRetryUntil: req.willRetryUntil,
    messageId: `<${dsnId}@${req.fqdn}>`,
    date: rfc5322Date,
  });
  await ingestMessage(deps, {
    id: dsnId,
    sender: '',
    recipients: [{ address: envelope.sender, notify: ['NEVER'] }],
    origin: { kind: 'dsn', serverHost: deps.nodeName },
    content: Readable.from([content]),
    fqdn: req.fqdn,
    maxHeaderSize: 1024 * 1024,
    inlineMaxBytes: ts.InlineBodyMaxBytes,
    prependHeaders: (id) => `Received: from localhost by ${req.fqdn} (Transit) with DSN id ${id}; ${rfc5322Date(now)}\r\n`,
  });
  await recordEvent(deps.bus, envelope.id, { type: 'DsnGenerated', kind, recipients: wanted.map((r) => r.address), dsnId }, deps.nodeName);
  return { sent: wanted.map((r) => r.address), suppressed, dsnId };
}
