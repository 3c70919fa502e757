/**
 * Safety Net resubmission (Exchange's Safety Net): copies of delivered mailbox items stay in
 * the SAFETY_NET stream for SafetyNetHoldTime; after a mailbox store was lost or restored
 * from an old backup, an administrator resubmits those for a recipient or a domain and a
 * time window. Mailbox delivery skips copies already in the mailbox, so resubmitting too
 * much is harmless; resubmitted items never produce notifications.
 */
import { decodeDeliveryItem, encodeDeliveryItem } from '@transit/envelope';
import type { Bus } from './connection.ts';
import { recordEvent } from './events.ts';
import { publishDurable } from './publish.ts';
import { scanStream } from './scan.ts';
import { STREAMS, SUBJECTS } from './topology.ts';

export type ResubmitRequest = {
  /** An address (alice@contoso.test) or a domain (contoso.test), case-insensitive. */
  recipient: string;
  since: Date;
  until?: Date;
  node: string;
};

export type ResubmitResult = { messages: number; recipients: number; scanned: number };

export async function resubmitFromSafetyNet(bus: Bus, req: ResubmitRequest): Promise<ResubmitResult> {
  const wanted = req.recipient.toLowerCase();
  const matches = (address: string) => {
    const a = address.toLowerCase();
    return wanted.includes('@') ? a === wanted : a.endsWith(`@${wanted}`);
  };
  const result: ResubmitResult = { messages: 0, recipients: 0, scanned: 0 };
  const stamp = Date.now();
  await scanStream(
    bus,
    STREAMS.safetyNet,
    async (m) => {
      if (req.until && m.info.timestampNanos / 1_000_000 > req.until.getTime()) return false;
      result.scanned++;
      const item = decodeDeliveryItem(m.data);
      const recipients = item.envelope.recipients.filter((r) => matches(r.address));
      if (recipients.length === 0 || item.hop.type !== 'mailbox') return;
      const again = { ...item, envelope: { ...item.envelope, recipients }, attempt: 0, notBefore: 0, resubmitted: true };
      await publishDurable(bus, SUBJECTS.mailbox(item.hop.database), encodeDeliveryItem(again), {
        msgID: `${item.envelope.id}:resubmit:${m.seq}:${stamp}`,
        expectStream: STREAMS.deliver,
      });
      await recordEvent(bus, item.envelope.id, { type: 'Resubmitted', source: 'SAFETYNET', recipients: recipients.map((r) => r.address) }, req.node);
      result.messages++;
      result.recipients += recipients.length;
    },
    { since: req.since },
  );
  return result;
}
