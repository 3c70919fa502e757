/**
 * `transitctl track`: its command line, checked, as a tracking query. The reading (one walk
 * of MAIL_EVENTS from --start, stopping at --limit or past --end) is `readTracking` in
 * libs/tracking, shared with Get-MessageTrackingLog and the admin API.
 */
import { parseArgs } from 'node:util';
import {
  DEFAULT_RESULT_SIZE,
  TRACKING_EVENT_IDS,
  TRACKING_SOURCES,
  parseTrackingTime,
  type TrackingEventId,
  type TrackingQuery,
  type TrackingSource,
} from '@transit/tracking';
import { CliError } from './objects.ts';

export type TrackOutput = 'table' | 'json' | 'csv';
export type TrackCommand = { query: TrackingQuery; output: TrackOutput; logDir?: string };

const OPTIONS = {
  sender: { type: 'string' },
  recipient: { type: 'string', multiple: true },
  'message-id': { type: 'string' },
  'internal-id': { type: 'string' },
  'network-id': { type: 'string' },
  event: { type: 'string' },
  source: { type: 'string' },
  subject: { type: 'string' },
  start: { type: 'string' },
  end: { type: 'string' },
  limit: { type: 'string' },
  json: { type: 'boolean' },
  csv: { type: 'boolean' },
  'log-dir': { type: 'string' },
  nats: { type: 'string' },
} as const;

function oneOf<T extends string>(name: string, value: string, allowed: readonly T[]): T {
  const found = allowed.find((a) => a.toLowerCase() === value.toLowerCase());
  if (!found) throw new CliError(`--${name} must be one of ${allowed.join(', ')} (got "${value}")`);
  return found;
}

function time(name: string, value: string | undefined): Date | undefined {
  if (value === undefined) return undefined;
  const d = parseTrackingTime(value);
  if (!d) throw new CliError(`--${name} must be a date and time, e.g. 2026-11-24T10:00:00Z (got "${value}")`);
  return d;
}

/** The command line after `track`, checked; every error names the option at fault. */
export function parseTrackArgs(args: string[]): TrackCommand {
  let values: ReturnType<typeof parseArgs<{ args: string[]; options: typeof OPTIONS; allowPositionals: false }>>['values'];
  try {
    values = parseArgs({ args, options: OPTIONS, allowPositionals: false }).values;
  } catch (err) {
    // node:util names the option in its message ("Unknown option '--foo'"); say which ones exist.
    throw new CliError(
      `track: ${(err as Error).message.split('. ')[0]} (options: ${Object.keys(OPTIONS)
        .map((o) => `--${o}`)
        .join(', ')})`,
    );
  }
  if (values.json && values.csv) throw new CliError('track: --json and --csv exclude each other');
  const start = time('start', values.start);
  const end = time('end', values.end);
  if (start && end && start > end) throw new CliError('track: --start is after --end');
  let resultSize: number | undefined = DEFAULT_RESULT_SIZE;
  if (values.limit !== undefined) {
    if (/^unlimited$/i.test(values.limit)) resultSize = undefined;
    else if (/^\d+$/.test(values.limit) && Number(values.limit) > 0) resultSize = Number(values.limit);
    else throw new CliError(`--limit must be a whole number from 1, or unlimited (got "${values.limit}")`);
  }
  const internal = values['internal-id'];
  if (internal !== undefined && !/^\d+$/.test(internal))
    throw new CliError(`--internal-id must be the InternalId of a 250 reply, a whole number (got "${internal}")`);
  const query: TrackingQuery = {
    ...(values.sender !== undefined ? { sender: values.sender } : {}),
    ...(values.recipient?.length
      ? {
          recipients: values.recipient
            .flatMap((r) => r.split(','))
            .map((r) => r.trim())
            .filter(Boolean),
        }
      : {}),
    ...(values['message-id'] !== undefined ? { messageId: values['message-id'] } : {}),
    ...(internal !== undefined ? { internalMessageId: Number(internal) } : {}),
    ...(values['network-id'] !== undefined ? { networkMessageId: values['network-id'] } : {}),
    ...(values.event !== undefined ? { eventId: oneOf<TrackingEventId>('event', values.event, TRACKING_EVENT_IDS) } : {}),
    ...(values.source !== undefined ? { source: oneOf<TrackingSource>('source', values.source, TRACKING_SOURCES) } : {}),
    ...(values.subject !== undefined ? { subject: values.subject } : {}),
    ...(start ? { start } : {}),
    ...(end ? { end } : {}),
    ...(resultSize !== undefined ? { resultSize } : {}),
  };
  return { query, output: values.json ? 'json' : values.csv ? 'csv' : 'table', ...(values['log-dir'] !== undefined ? { logDir: values['log-dir'] } : {}) };
}
