/**
 * Strict reading of the Prometheus text exposition format (version 0.0.4) and of the metric
 * names a PromQL expression refers to. Pure; the tests use the first to check what /metrics
 * serves, and the deployment checks use the second so dashboards and alert rules cannot name
 * a metric the code does not export.
 */

export type Sample = { name: string; labels: Record<string, string>; value: number };
export type Exposition = { help: Map<string, string>; types: Map<string, string>; samples: Sample[] };

export class ExpositionError extends Error {
  readonly code = 'BAD_EXPOSITION';
  constructor(line: number, text: string, why: string) {
    super(`line ${line}: ${why}: ${JSON.stringify(text)}`);
    this.name = 'ExpositionError';
  }
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const LABEL = '[a-zA-Z_][a-zA-Z0-9_]*';
// Prometheus reads values with Go's ParseFloat, which takes NaN and Inf in any case (prom-client writes "Nan").
const VALUE = '(?:[+-]?(?:\\d+(?:\\.\\d*)?|\\.\\d+)(?:[eE][+-]?\\d+)?|[+-]?[iI][nN][fF]|[nN][aA][nN])';
const SAMPLE = new RegExp(`^(${NAME})(?:\\{((?:${LABEL}="(?:[^"\\\\\\n]|\\\\[\\\\"n])*",?)*)\\})? (${VALUE})(?: -?\\d+)?$`);
const PAIR = new RegExp(`(${LABEL})="((?:[^"\\\\\\n]|\\\\[\\\\"n])*)"`, 'g');
const HELP = new RegExp(`^# HELP (${NAME}) (.*)$`);
const TYPE = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`);
const SUFFIXES: Record<string, string[]> = {
  counter: [''],
  gauge: [''],
  untyped: [''],
  histogram: ['_bucket', '_sum', '_count'],
  summary: ['', '_sum', '_count'],
};

/** Parses an exposition; throws on any line that is not a HELP, TYPE, comment or well-formed sample, or on a sample of no declared family. */
export function parseExposition(text: string): Exposition {
  const help = new Map<string, string>();
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  lines.forEach((raw, i) => {
    const n = i + 1;
    if (raw === '') return;
    if (raw.startsWith('# HELP ')) {
      const m = HELP.exec(raw);
      if (!m) throw new ExpositionError(n, raw, 'malformed HELP');
      help.set(m[1]!, m[2]!);
      return;
    }
    if (raw.startsWith('# TYPE ')) {
      const m = TYPE.exec(raw);
      if (!m) throw new ExpositionError(n, raw, 'malformed TYPE');
      if (types.has(m[1]!)) throw new ExpositionError(n, raw, 'second TYPE for one family');
      types.set(m[1]!, m[2]!);
      return;
    }
    if (raw.startsWith('#')) return;
    const m = SAMPLE.exec(raw);
    if (!m) throw new ExpositionError(n, raw, 'malformed sample');
    const name = m[1]!;
    const family = [...types.entries()].find(([f, t]) => SUFFIXES[t]!.some((s) => f + s === name));
    if (!family) throw new ExpositionError(n, raw, 'sample before (or without) the TYPE of its family');
    const labels: Record<string, string> = {};
    for (const pair of (m[2] ?? '').matchAll(PAIR)) labels[pair[1]!] = pair[2]!.replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
    const text = m[3]!.toLowerCase();
    const value = text.endsWith('inf') ? (text.startsWith('-') ? -Infinity : Infinity) : text === 'nan' ? NaN : Number(text);
    samples.push({ name, labels, value });
  });
  return { help, types, samples };
}

/** The sum of the samples named `name` whose labels include `match`. */
export function sampleSum(exposition: Exposition, name: string, match: Record<string, string> = {}): number {
  return exposition.samples.filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v)).reduce((sum, s) => sum + s.value, 0);
}

// Words of PromQL that look like metric names but are not: aggregations, operators, modifiers.
const KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'and', 'or', 'unless', 'offset', 'atan2', 'inf', 'nan']);

/** The metric names a PromQL expression selects (functions, label names, strings, durations and Grafana variables left out). */
export function promqlMetricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, ' ') // strings
    .replace(/\$\{?[A-Za-z_][A-Za-z0-9_]*\}?/g, ' ') // Grafana variables ($__rate_interval, ${role})
    .replace(/\{[^}]*\}/g, ' ') // label matchers
    .replace(/\[[^\]]*\]/g, ' ') // range and subquery durations
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/gi, ' ') // grouping label lists
    .replace(/\boffset\s+-?\w+/gi, ' ');
  const names = new Set<string>();
  for (const m of stripped.matchAll(/(?<![A-Za-z0-9_:.])([A-Za-z_:][A-Za-z0-9_:]*)(?=\s*(\(?))/g)) {
    const word = m[1]!;
    if (m[2] === '(' || KEYWORDS.has(word.toLowerCase())) continue; // a function or aggregation call, or a keyword
    names.add(word);
  }
  return [...names].sort();
}
