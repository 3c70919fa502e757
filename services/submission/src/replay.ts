/**
 * The replay directory (docs/exchange-behaviour.md §12) beside the pickup directory: `.eml` files whose
 * envelope is written in them, as Export-Message produces them. `X-Sender:` (exactly one)
 * and `X-Receiver:` (one per recipient) must come before every other header field; they
 * define the envelope and are removed, and the rest of the message is queued byte for byte
 * (it was formed already: no Date or Message-ID is added, Bcc and Received stay). Files are
 * claimed, queued and renamed `.bad` exactly as in the pickup directory (pickup.ts).
 */
import { headerFields } from '@transit/ingest';
import { isValidAddress } from '@transit/policy';
import type { PickupParse } from './pickup.ts';

const ENVELOPE_FIELD = /^x-(sender|receiver):/i;

/** `<a@b> NOTIFY=...` or `a@b`: the address, `''` for the null sender `<>`; the ESMTP parameters after it are not used. */
function address(value: string): string | undefined {
  const v = value.replace(/\r?\n[ \t]+/g, ' ').trim();
  const bracketed = /^<([^>]*)>/.exec(v);
  if (bracketed) return bracketed[1]!.trim();
  const bare = /^(\S+)/.exec(v);
  return bare?.[1];
}

/** The envelope from the leading X-Sender / X-Receiver fields; pure. */
export function parseReplayHeader(header: Buffer, maxRecipients: number): PickupParse {
  const fields = headerFields(header).filter((f) => f.trim() !== '');
  const lead = fields.findIndex((f) => !ENVELOPE_FIELD.test(f));
  const envelopeFields = lead === -1 ? fields : fields.slice(0, lead);
  if (fields.slice(envelopeFields.length).some((f) => ENVELOPE_FIELD.test(f)))
    return { ok: false, reason: 'X-Sender and X-Receiver must come before all other header fields' };
  const value = (f: string) => f.slice(f.indexOf(':') + 1);
  const senders = envelopeFields.filter((f) => /^x-sender:/i.test(f));
  if (senders.length !== 1)
    return { ok: false, reason: senders.length === 0 ? 'no X-Sender header' : `${senders.length} X-Sender headers (exactly one is allowed)` };
  const sender = address(value(senders[0]!));
  if (sender === undefined || (sender !== '' && !isValidAddress(sender)))
    return { ok: false, reason: `X-Sender ${value(senders[0]!).trim()} is not a valid address` };
  const recipients: string[] = [];
  for (const f of envelopeFields.filter((x) => /^x-receiver:/i.test(x))) {
    const r = address(value(f));
    if (!r || !isValidAddress(r)) return { ok: false, reason: `X-Receiver ${value(f).trim()} is not a valid address` };
    if (!recipients.some((x) => x.toLowerCase() === r.toLowerCase())) recipients.push(r);
  }
  if (recipients.length === 0) return { ok: false, reason: 'no X-Receiver header' };
  if (recipients.length > maxRecipients) return { ok: false, reason: `${recipients.length} recipients exceed the limit of ${maxRecipients}` };
  if (envelopeFields.length === fields.length) return { ok: false, reason: 'no message after the X-Sender and X-Receiver headers' };
  return { ok: true, envelope: { sender, recipients } };
}

/** The header block without its leading X-Sender / X-Receiver fields, byte for byte otherwise. */
export function stripReplayHeaders(header: Buffer): Buffer {
  const fields = headerFields(header);
  const lead = fields.findIndex((f) => !ENVELOPE_FIELD.test(f));
  return Buffer.from((lead === -1 ? [] : fields.slice(lead)).join(''), 'latin1');
}
