/**
 * Get-MessageTrackingLog's filters as one query object: transitctl's `track` options and
 * the EMS cmdlet's parameters both become this, and the reader applies it row by row.
 * Every filter matches a row on its own fields, as Exchange's do: `-Recipients` finds the
 * rows that name the recipient, not every row of its messages.
 */
import type { TrackingEventId, TrackingRow, TrackingSource } from './rows.ts';

export type TrackingQuery = {
  sender?: string;
  /** Any of these (case-insensitive). */
  recipients?: string[];
  /** The RFC 5322 Message-ID, with or without angle brackets. */
  messageId?: string;
  internalMessageId?: number;
  networkMessageId?: string;
  eventId?: TrackingEventId;
  source?: TrackingSource;
  /** A part of the subject (case-insensitive), as -MessageSubject. */
  subject?: string;
  start?: Date;
  end?: Date;
  /** At most this many rows (Exchange's -ResultSize; undefined: unlimited). */
  resultSize?: number;
};

/** Exchange's -ResultSize default. */
export const DEFAULT_RESULT_SIZE = 1000;

const bare = (id: string) => id.trim().replace(/^<|>$/g, '').toLowerCase();
const same = (a: string | undefined, b: string) => a !== undefined && a.toLowerCase() === b.toLowerCase();

export function matchesRow(q: TrackingQuery, row: TrackingRow): boolean {
  if (q.sender !== undefined && !same(row.Sender, q.sender)) return false;
  if (q.recipients?.length && !row.Recipients.some((a) => q.recipients!.some((b) => same(a, b)))) return false;
  if (q.messageId !== undefined && (row.MessageId === undefined || bare(row.MessageId) !== bare(q.messageId))) return false;
  if (q.internalMessageId !== undefined && row.InternalMessageId !== q.internalMessageId) return false;
  if (q.networkMessageId !== undefined && !same(row.NetworkMessageId, q.networkMessageId)) return false;
  if (q.eventId !== undefined && row.EventId !== q.eventId) return false;
  if (q.source !== undefined && row.Source !== q.source) return false;
  if (q.subject !== undefined && !(row.MessageSubject ?? '').toLowerCase().includes(q.subject.toLowerCase())) return false;
  const at = Date.parse(row.Timestamp);
  if (q.start && at < q.start.getTime()) return false;
  if (q.end && at > q.end.getTime()) return false;
  return true;
}

/**
 * A time as administrators write it: ISO 8601 (`2026-11-24T10:00:00Z`) or Exchange's
 * `11/24/2026 10:00:00` (month first; local time, as the shell reads it). Undefined when
 * it is not a time.
 */
export function parseTrackingTime(text: string): Date | undefined {
  const t = text.trim();
  if (!/^\d{4}-\d{2}-\d{2}/.test(t) && !/^\d{1,2}\/\d{1,2}\/\d{4}/.test(t)) return undefined;
  const d = new Date(t);
  return Number.isNaN(d.getTime()) ? undefined : d;
}
