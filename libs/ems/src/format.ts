/**
 * PowerShell-like text output: Format-Table (the default view of each object kind, as the
 * Exchange Management Shell prints it) and Format-List (every property). Arrays print as
 * `{a, b}`, booleans as True/False, sizes and time spans the way Exchange writes them.
 */
import type { Item, Kind, ParamType } from './binding.ts';

export type View = { columns: readonly string[]; types: Record<string, ParamType> };
export type Format = { kind: 'table' | 'list'; properties?: readonly string[] };

function formatBytes(n: number): string {
  const units: Array<[string, number]> = [
    ['GB', 1024 ** 3],
    ['MB', 1024 ** 2],
    ['KB', 1024],
  ];
  const [unit, size] = units.find(([, s]) => n >= s) ?? ['B', 1];
  return `${Number((n / size).toFixed(3))} ${unit} (${n.toLocaleString('en-US')} bytes)`;
}

function formatTimeSpan(seconds: number): string {
  const days = Math.floor(seconds / 86_400);
  const hms = [Math.floor(seconds / 3600) % 24, Math.floor(seconds / 60) % 60, seconds % 60].map((v) => String(v).padStart(2, '0')).join(':');
  return days > 0 ? `${days}.${hms}` : hms;
}

export function display(value: unknown, type?: ParamType): string {
  if (value === undefined || value === null) return '';
  if (Array.isArray(value)) return `{${value.map((v) => display(v)).join(', ')}}`;
  if (typeof value === 'boolean') return value ? 'True' : 'False';
  if (typeof value === 'number' && type === 'bytes') return formatBytes(value);
  if (typeof value === 'number' && type === 'timespan') return formatTimeSpan(value);
  return typeof value === 'string' ? value : typeof value === 'number' ? value.toString() : JSON.stringify(value);
}

function wildcard(pattern: string): RegExp {
  return new RegExp(`^${pattern.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`, 'i');
}

/** The properties to show: a view's columns, every property (lists), or those the administrator named (wildcards allowed). */
function selected(rows: readonly Record<string, unknown>[], format: Format, columns: readonly string[]): string[] {
  const all = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  if (!format.properties || format.properties.length === 0) return format.kind === 'list' ? all : [...columns];
  return format.properties.flatMap((p) => all.filter((k) => wildcard(p).test(k)));
}

export function renderItems(items: readonly Item[], format: Format, views: Record<Kind, View>): string {
  if (items.length === 0) return '';
  const view = views[items[0]!.kind];
  const rows = items.map((i) => i.row);
  const props = selected(rows, format, view.columns);
  const cell = (row: Record<string, unknown>, p: string) => display(row[p], view.types[p]);
  if (format.kind === 'list') {
    const width = Math.max(...props.map((p) => p.length));
    return rows.map((row) => props.map((p) => `${p.padEnd(width)} : ${cell(row, p)}`.trimEnd()).join('\n')).join('\n\n');
  }
  const widths = props.map((p) => Math.max(p.length, ...rows.map((r) => cell(r, p).length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join(' ')
      .trimEnd();
  return [line(props), line(props.map((p) => '-'.repeat(p.length))), ...rows.map((r) => line(props.map((p) => cell(r, p))))].join('\n');
}
