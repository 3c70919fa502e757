/**
 * Get-MessageTrackingLog. Its data is the message event log on the bus, not the
 * configuration, so the cmdlet here only binds and checks its parameters into a
 * TrackingQuery (libs/ems stays pure); transitctl reads the log and hands the rows back
 * to be printed as the shell would.
 */
import {
  DEFAULT_RESULT_SIZE,
  TRACKING_EVENT_IDS,
  TRACKING_FIELDS,
  TRACKING_SOURCES,
  parseTrackingTime,
  type TrackingEventId,
  type TrackingQuery,
  type TrackingRow,
  type TrackingSource,
} from '@transit/tracking';
import { stringArg, type Args, type Cmdlet, type Item } from './binding.ts';
import { EmsError } from './errors.ts';

export const GET_MESSAGE_TRACKING_LOG: Cmdlet = {
  name: 'Get-MessageTrackingLog',
  params: {
    Start: 'string',
    End: 'string',
    EventId: { one: TRACKING_EVENT_IDS },
    Source: { one: TRACKING_SOURCES },
    Sender: 'string',
    Recipients: 'list',
    MessageId: 'string',
    InternalMessageId: 'int',
    NetworkMessageId: 'string',
    MessageSubject: 'string',
    ResultSize: 'string',
    Server: 'string',
  },
  output: 'MessageTrackingEvent',
  run() {
    throw new EmsError('Get-MessageTrackingLog reads the message event log on the bus, not the configuration: run it with transitctl ems');
  },
};

function time(args: Args, name: string): Date | undefined {
  const text = stringArg(args, name);
  if (text === undefined) return undefined;
  const d = parseTrackingTime(text);
  if (!d)
    throw new EmsError(
      `Get-MessageTrackingLog: -${name} "${text}" is not valid: expected a date and time such as "11/24/2026 09:00:00" or 2026-11-24T09:00:00Z`,
    );
  return d;
}

function resultSize(args: Args): number | undefined {
  const text = stringArg(args, 'ResultSize')?.trim();
  if (text === undefined) return DEFAULT_RESULT_SIZE;
  if (/^unlimited$/i.test(text)) return undefined;
  if (!/^\d+$/.test(text) || Number(text) === 0)
    throw new EmsError(`Get-MessageTrackingLog: -ResultSize ${text} is not valid: expected a whole number from 1, or Unlimited`);
  return Number(text);
}

/** The bound parameters as a query; `warnings` gets what was accepted but means little in Transit. */
export function trackingQuery(args: Args, warnings: string[]): TrackingQuery {
  const server = stringArg(args, 'Server');
  if (server !== undefined) warnings.push(`-Server ${server} is informational: the message event log is the whole cluster's`);
  const start = time(args, 'Start');
  const end = time(args, 'End');
  if (start && end && start > end) throw new EmsError('Get-MessageTrackingLog: -Start is after -End');
  const recipients = args.get('Recipients');
  const internal = args.get('InternalMessageId');
  const q: TrackingQuery = {
    ...(start ? { start } : {}),
    ...(end ? { end } : {}),
    ...(Array.isArray(recipients) && recipients.length ? { recipients } : {}),
    ...(typeof internal === 'number' ? { internalMessageId: internal } : {}),
  };
  const strings = { Sender: 'sender', MessageId: 'messageId', NetworkMessageId: 'networkMessageId', MessageSubject: 'subject' } as const;
  for (const [param, field] of Object.entries(strings)) {
    const v = stringArg(args, param);
    if (v !== undefined) q[field] = v;
  }
  const eventId = stringArg(args, 'EventId');
  if (eventId !== undefined) q.eventId = eventId as TrackingEventId;
  const source = stringArg(args, 'Source');
  if (source !== undefined) q.source = source as TrackingSource;
  const size = resultSize(args);
  if (size !== undefined) q.resultSize = size;
  return q;
}

/** A row as the shell's object: every property, in Exchange's order. */
export const trackingItem = (row: TrackingRow): Item => ({
  kind: 'MessageTrackingEvent',
  key: row.NetworkMessageId,
  row: Object.fromEntries(TRACKING_FIELDS.map((f) => [f, row[f] ?? null])),
});
