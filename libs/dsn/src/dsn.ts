/**
 * Delivery status notifications (RFC 3464): a multipart/report with a human-readable
 * part, a message/delivery-status part with one block per recipient (the remote server's
 * reply quoted in Diagnostic-Code), and the original message's headers (or the whole
 * message when the sender asked RET=FULL). Pure: callers decide when one is due and submit
 * the bytes through the normal ingest path with the null sender, so a DSN never bounces.
 */
import { randomBytes } from 'node:crypto';

export type DsnKind = 'failure' | 'delay';

export type DsnRecipient = {
  address: string;
  /** ORCPT as the client gave it (`rfc822;addr`), or the address before alias resolution. */
  original?: string | undefined;
  /** Enhanced status code, e.g. 5.1.1 or 4.4.7. */
  status: string;
  /** The remote server's reply or Transit's reason, quoted as `smtp; <reply>`. */
  diagnostic?: string | undefined;
  remoteMta?: string | undefined;
};

export type DsnInput = {
  kind: DsnKind;
  /** The original envelope sender; must not be the null sender (callers check wantsNotification). */
  to: string;
  /** Postmaster address of the default accepted domain: the DSN's From. */
  from: string;
  reportingMta: string;
  arrivalDate: Date;
  now: Date;
  envid?: string | undefined;
  recipients: DsnRecipient[];
  /** The original message's Subject (unfolded), for the notification's own. */
  originalSubject: string;
  /** The original header block (always included: text/rfc822-headers, or the message with RET=FULL). */
  originalHeader: Buffer;
  /** The whole original message, when RET=FULL was asked and it is small enough to return. */
  originalMessage?: Buffer | undefined;
  /** For delay notices: until when Transit keeps trying. */
  willRetryUntil?: Date | undefined;
  messageId: string;
  date: (d: Date) => string;
};

/**
 * RFC 3461: NOTIFY=NEVER never; NOTIFY without FAILURE/DELAY not for that kind; no NOTIFY
 * at all means failures and delays are reported. The null sender never gets one.
 */
export function wantsNotification(sender: string, notify: readonly string[] | undefined, kind: DsnKind): boolean {
  if (sender === '') return false;
  if (!notify || notify.length === 0) return true;
  if (notify.includes('NEVER')) return false;
  return notify.includes(kind === 'failure' ? 'FAILURE' : 'DELAY');
}

/** The enhanced status in a reply (`550 5.1.1 User unknown` → 5.1.1), else one made from its class. */
export function dsnStatus(reply: string | undefined, fallbackClass: 4 | 5): string {
  const m = /(?:^|\s)([245]\.\d{1,3}\.\d{1,3})(?:\s|$)/.exec(reply ?? '');
  if (m) return m[1]!;
  const code = /^([45])\d\d/.exec(reply ?? '');
  return `${code ? code[1] : fallbackClass}.0.0`;
}

const oneLine = (s: string) => s.replace(/[\r\n]+/g, ' ').trim();

export function buildDsn(input: DsnInput): Buffer {
  const boundary = `transit-dsn-${randomBytes(12).toString('hex')}`;
  const failed = input.kind === 'failure';
  const subject = `${failed ? 'Undeliverable' : 'Delivery delayed'}: ${input.originalSubject}`.trim();
  const human = failed
    ? ['Delivery has failed to these recipients or groups:', '']
    : ['Delivery of your message has been delayed to these recipients or groups. Transit will keep trying.', ''];
  for (const r of input.recipients) {
    human.push(r.address);
    if (r.diagnostic) human.push(`${failed ? 'The server returned' : 'The last attempt got'}: ${oneLine(r.diagnostic)}`);
    human.push('');
  }
  if (!failed && input.willRetryUntil) human.push(`Transit will stop trying at ${input.date(input.willRetryUntil)}.`, '');

  const perMessage = [`Reporting-MTA: dns; ${input.reportingMta}`];
  if (input.envid) perMessage.push(`Original-Envelope-Id: ${oneLine(input.envid)}`);
  perMessage.push(`Arrival-Date: ${input.date(input.arrivalDate)}`);
  const perRecipient = input.recipients.map((r) => {
    const lines: string[] = [];
    if (r.original) lines.push(`Original-Recipient: ${r.original.includes(';') ? oneLine(r.original) : `rfc822; ${r.original}`}`);
    lines.push(`Final-Recipient: rfc822; ${r.address}`, `Action: ${failed ? 'failed' : 'delayed'}`, `Status: ${r.status}`);
    if (r.remoteMta) lines.push(`Remote-MTA: dns; ${r.remoteMta}`);
    if (r.diagnostic) lines.push(`Diagnostic-Code: smtp; ${oneLine(r.diagnostic)}`);
    if (!failed && input.willRetryUntil) lines.push(`Will-Retry-Until: ${input.date(input.willRetryUntil)}`);
    lines.push(`Last-Attempt-Date: ${input.date(input.now)}`);
    return lines.join('\r\n');
  });

  const head = [
    `From: Mail Delivery System <${input.from}>`,
    `To: <${input.to}>`,
    `Subject: ${oneLine(subject)}`,
    `Date: ${input.date(input.now)}`,
    `Message-ID: ${input.messageId}`,
    'Auto-Submitted: auto-replied',
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type=delivery-status; boundary="${boundary}"`,
    '',
    'This is a delivery status notification (RFC 3464).',
    '',
    `--${boundary}`,
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
    '',
    ...human,
    `--${boundary}`,
    'Content-Type: message/delivery-status',
    '',
    perMessage.join('\r\n'),
    '',
    perRecipient.join('\r\n\r\n'),
    '',
    `--${boundary}`,
    input.originalMessage ? 'Content-Type: message/rfc822' : 'Content-Type: text/rfc822-headers',
    '',
    '',
  ].join('\r\n');
  const original = input.originalMessage ?? input.originalHeader;
  const tail = `${original.length && !original.subarray(-2).equals(Buffer.from('\r\n')) ? '\r\n' : ''}\r\n--${boundary}--\r\n`;
  return Buffer.concat([Buffer.from(head, 'utf8'), original, Buffer.from(tail, 'latin1')]);
}

/** Groups `items` by `reasonOf`, in the order each reason first appears: one Failed event per reason. */
export function byReason<T>(items: readonly T[], reasonOf: (item: T) => string): Array<[string, T[]]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const reason = reasonOf(item);
    groups.set(reason, [...(groups.get(reason) ?? []), item]);
  }
  return [...groups];
}
