/**
 * docs/configuration.md's settings tables, generated from the register (settings.ts) so
 * the doc cannot drift from the code: `npm run docs:config` rewrites the part between the
 * markers, and a unit test fails when the doc differs from what the register generates.
 */
import { ENVIRONMENT_KEYS, ORGANISATION, ORGANISATION_KEYS, RULES, environmentMeta, organisationDefault, organisationType, type Unit } from './settings.ts';

export const GENERATED_BEGIN = '<!-- BEGIN GENERATED: settings (npm run docs:config writes this from libs/config/src/settings.ts; do not edit by hand) -->';
export const GENERATED_END = '<!-- END GENERATED: settings -->';

const cell = (text: string) => text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
const row = (cells: readonly string[]) => `| ${cells.map(cell).join(' | ')} |`;

function timeSpan(seconds: number): string {
  const d = Math.floor(seconds / 86_400);
  const hms = [Math.floor(seconds / 3600) % 24, Math.floor(seconds / 60) % 60, seconds % 60].map((v) => String(v).padStart(2, '0')).join(':');
  return d > 0 ? `${d}.${hms}` : hms;
}

function size(bytes: number): string {
  for (const [unit, n] of [
    ['MB', 1024 * 1024],
    ['KB', 1024],
  ] as const)
    if (bytes >= n && bytes % n === 0) return `${bytes / n} ${unit}`;
  return `${bytes} B`;
}

function organisationValue(value: unknown, unit: Unit): string {
  if (value === undefined) return '(unset)';
  if (typeof value === 'number' && unit === 's') return `${timeSpan(value)} (${value} s)`;
  if (typeof value === 'number' && unit === 'bytes') return size(value);
  if (typeof value === 'number' && unit === 'ms') return `${value} ms`;
  return JSON.stringify(value);
}

/** The generated part of docs/configuration.md (without the markers). */
export function renderSettingsDoc(): string {
  const lines: string[] = [];
  lines.push('### Organisation settings (`TransportSettings`)', '');
  lines.push(
    "Stored in the organisation's configuration in NATS KV and applied live by every service. Exchange keeps some of them per server (Set-TransportService);",
    'a Transit cluster has one value for all its servers, so `-Identity` names no server there. Time spans are seconds or `d.hh:mm:ss`, sizes bytes or `64KB`, `10MB`.',
    '',
  );
  lines.push(row(['setting', 'default', 'type', 'set with', 'meaning']), row(['---', '---', '---', '---', '---']));
  for (const key of ORGANISATION_KEYS) {
    const meta = ORGANISATION[key];
    const note = meta.note ? ` (${meta.note})` : meta.exchange ? '' : ' (Transit)';
    lines.push(row([`\`${key}\``, organisationValue(organisationDefault(key), meta.unit), organisationType(key), meta.cmdlet, `${meta.meaning}${note}`]));
  }
  lines.push('', '### Environment variables', '');
  lines.push(
    'Read by each process once, at start; a process with an invalid value, or values that break a rule below, exits with status 78 and names the variables.',
    '',
  );
  lines.push(row(['variable', 'default', 'type', 'unit', 'read by', 'meaning']), row(['---', '---', '---', '---', '---', '---']));
  for (const key of ENVIRONMENT_KEYS) {
    const meta = environmentMeta(key);
    lines.push(
      row([
        `\`${meta.variable}\``,
        meta.default !== undefined ? `\`${meta.default}\`` : (meta.defaultText ?? ''),
        meta.type,
        meta.unit === 'count' ? '' : meta.unit,
        meta.readBy,
        meta.meaning,
      ]),
    );
  }
  lines.push('', '### Rules between settings', '');
  for (const r of RULES) lines.push(`- **${r.rule}**: ${r.why}.`);
  return lines.join('\n');
}

/** `doc` with the part between the markers replaced by `generated`; an error when the markers are missing. */
export function withGeneratedSettings(doc: string, generated = renderSettingsDoc()): string {
  const begin = doc.indexOf(GENERATED_BEGIN);
  const end = doc.indexOf(GENERATED_END);
  if (begin < 0 || end < begin) throw new Error(`the document has no ${GENERATED_BEGIN} … ${GENERATED_END} markers`);
  return `${doc.slice(0, begin + GENERATED_BEGIN.length)}\n${generated}\n${doc.slice(end)}`;
}
