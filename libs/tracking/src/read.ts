/**
 * Reading Get-MessageTrackingLog from the cluster: walks MAIL_EVENTS once (from the query's
 * start, a minute early for clock skew), projects each message's events to tracking rows and
 * keeps the rows the query matches. Rows kept never exceed the result size, and the walk stops
 * once it has them or has passed the end; the per-message facts (sender, subject...) held
 * meanwhile are a few strings per message in the range, so a narrow start keeps a search cheap
 * on a busy cluster. One message's id (networkMessageId) is read by its subject alone.
 * The one reader behind `transitctl track`, `Get-MessageTrackingLog` and the admin API; the
 * rest of this library is pure.
 */
import { decode } from '@msgpack/msgpack';
import { STREAMS, SUBJECTS, loadMessageEvents, scanStream, type Bus, type MessageEvent } from '@transit/bus';
import { TrackingProjection } from './project.ts';
import { matchesRow, type TrackingQuery } from './query.ts';
import type { TrackingRow } from './rows.ts';

/** Events may be written by nodes whose clocks differ a little; the walk goes this far past --end. */
const CLOCK_SKEW_MS = 60_000;

export async function readTracking(bus: Bus, query: TrackingQuery): Promise<TrackingRow[]> {
  const limit = query.resultSize ?? Infinity;
  const projection = new TrackingProjection();
  const rows: TrackingRow[] = [];
  const keep = (produced: TrackingRow[]) => {
    for (const row of produced) if (rows.length < limit && matchesRow(query, row)) rows.push(row);
  };
  if (query.networkMessageId !== undefined) {
    for (const event of await loadMessageEvents(bus, query.networkMessageId)) keep(projection.push(query.networkMessageId, event));
    keep(projection.flush());
    return rows;
  }
  const prefix = SUBJECTS.event('');
  const endMs = query.end ? query.end.getTime() + CLOCK_SKEW_MS : Infinity;
  // From a minute before --start: a message's RECEIVE row is dated when it was queued, a little before its Received event.
  const since = query.start ? new Date(query.start.getTime() - CLOCK_SKEW_MS) : undefined;
  await scanStream(
    bus,
    STREAMS.events,
    (m) => {
      const event = { ...(decode(m.data) as MessageEvent & { at: number; node: string }), seq: m.seq };
      if (event.at > endMs) return false;
      keep(projection.push(m.subject.slice(prefix.length), event));
      return rows.length < limit;
    },
    since ? { since } : {},
  );
  keep(projection.flush());
  return rows;
}
