/**
 * Tracking rows as text: a table for people, JSON and CSV in Get-MessageTrackingLog's
 * property order, and Exchange's daily MSGTRK log files (#Software, #Version, #Log-type,
 * #Date, #Fields header lines, then one CSV line per row; multiple values `;`-separated;
 * a new file `-2`, `-3` ... when one would exceed the size limit). Pure: the caller writes.
 */
import { MSGTRK_FIELDS, TRACKING_FIELDS, type TrackingRow } from './rows.ts';

const csv = (s: string): string => (/[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s);
const oneLine = (s: string) => s.replace(/[\r\n]+/g, ' ');

function text(value: TrackingRow[keyof TrackingRow]): string {
  if (value === undefined) return '';
  if (Array.isArray(value)) return value.join(';');
  return String(value);
}

/** Rows as JSON objects with every property, in Exchange's order (null: not known). */
export function trackingJson(rows: readonly TrackingRow[]): string {
  const objects = rows.map((row) => Object.fromEntries(TRACKING_FIELDS.map((f) => [f, row[f] ?? null])));
  return JSON.stringify(objects, null, 2) + '\n';
}

/** Rows as CSV with a header line of property names (Export-Csv -NoTypeInformation's shape). */
export function trackingCsv(rows: readonly TrackingRow[]): string {
  const lines = [TRACKING_FIELDS.join(','), ...rows.map((row) => TRACKING_FIELDS.map((f) => csv(oneLine(text(row[f])))).join(','))];
  return lines.join('\r\n') + '\r\n';
}

/** The columns `transitctl track` prints: Exchange's default view with the time first. */
export const TABLE_COLUMNS = ['Timestamp', 'EventId', 'Source', 'Sender', 'Recipients', 'MessageSubject'] as const satisfies ReadonlyArray<keyof TrackingRow>;

export function trackingTable(rows: readonly TrackingRow[], columns: ReadonlyArray<keyof TrackingRow> = TABLE_COLUMNS): string {
  if (rows.length === 0) return 'no matching tracking events\n';
  const cells = rows.map((row) => columns.map((c) => oneLine(Array.isArray(row[c]) ? `{${(row[c] as string[]).join(', ')}}` : text(row[c]))));
  const widths = columns.map((c, i) => Math.max(c.length, ...cells.map((r) => r[i]!.length)));
  const line = (values: readonly string[]) =>
    values
      .map((v, i) => v.padEnd(widths[i]!))
      .join(' ')
      .trimEnd();
  return [line(columns), line(columns.map((c) => '-'.repeat(c.length))), ...cells.map(line)].join('\n') + '\n';
}

export type MsgtrkOptions = { software?: string; version?: string; maxFileSize?: number };

/** `MSGTRK20261124-1.LOG`: the day (UTC) and the file's number within it. */
export function msgtrkFileName(day: Date, n = 1): string {
  return `MSGTRK${day.toISOString().slice(0, 10).replaceAll('-', '')}-${n}.LOG`;
}

export function msgtrkHeader(created: Date, opts: MsgtrkOptions = {}): string {
  return (
    [
      `#Software: ${opts.software ?? 'Transit'}`,
      `#Version: ${opts.version ?? '0.1.0'}`,
      '#Log-type: Message Tracking Log',
      `#Date: ${created.toISOString()}`,
      `#Fields: ${MSGTRK_FIELDS.map(([name]) => name).join(',')}`,
    ].join('\r\n') + '\r\n'
  );
}

export function msgtrkLine(row: TrackingRow): string {
  return MSGTRK_FIELDS.map(([, prop]) => (prop ? csv(oneLine(text(row[prop]))) : '')).join(',') + '\r\n';
}

/**
 * The files for these rows (in order), by UTC day of their Timestamp: name → content.
 * A file is started at its first row's time and rolls to the next number before a line
 * would take it past `maxFileSize` (Exchange: 10 MB).
 */
export function msgtrkFiles(rows: readonly TrackingRow[], opts: MsgtrkOptions = {}): Map<string, string> {
  const max = opts.maxFileSize ?? 10 * 1024 * 1024;
  const files = new Map<string, string>();
  const current = new Map<string, { name: string; size: number; n: number }>();
  for (const row of rows) {
    const at = new Date(row.Timestamp);
    const day = row.Timestamp.slice(0, 10);
    const line = msgtrkLine(row);
    let file = current.get(day);
    if (file && file.size + Buffer.byteLength(line) > max) file = { name: msgtrkFileName(at, file.n + 1), size: 0, n: file.n + 1 };
    if (!file) file = { name: msgtrkFileName(at, 1), size: 0, n: 1 };
    if (file.size === 0) {
      const header = msgtrkHeader(at, opts);
      files.set(file.name, header);
      file.size = Buffer.byteLength(header);
    }
    files.set(file.name, files.get(file.name)! + line);
    file.size += Buffer.byteLength(line);
    current.set(day, file);
  }
  return files;
}
