/**
 * Parameter binding as PowerShell does it (case-insensitive names, unique prefixes, one
 * positional parameter, switches), typed conversion of values to what the configuration
 * schema stores, and the pieces every cmdlet shares: identities with wildcards, pipeline
 * items, and committing a changed configuration only after it validates.
 */
import { ConfigError, parseByteSize, parseOrganizationConfig, parseTimeSpan, type OrganizationConfig } from '@transit/config';
import { EmsError } from './errors.ts';
import { showValue, type Command, type Value } from './parser.ts';

/** How a parameter's value is read. `one`/`many` are enumerations, matched case-insensitively. */
/** `timespans`: a list of time spans, each seconds or `hh:mm:ss` (TransientRetrySchedule). */
export type ParamType =
  'string' | 'list' | 'bool' | 'switch' | 'int' | 'bytes' | 'timespan' | 'timespans' | { one: readonly string[] } | { many: readonly string[] };
/** `@{Add=…; Remove=…}` on a multi-valued property. */
export type ListEdit = { add: string[]; remove: string[] };
export type Arg = string | number | boolean | string[] | ListEdit | null;
export type Args = Map<string, Arg>;

export type Kind =
  | 'ReceiveConnector'
  | 'ADPermission'
  | 'AcceptedDomain'
  | 'SendConnector'
  | 'MessageTrackingEvent'
  | 'Queue'
  | 'QueueMessage'
  | 'QueueActionResult'
  | 'DkimSigningConfig'
  | 'TransportSetting';
/** What flows through a pipeline: `key` finds the object again in the working configuration. */
export type Item = { kind: Kind; key: string; row: Record<string, unknown> };

/** `env`: the environment whose settings Get-TransportConfig shows (transitctl passes its own; tests pass what they need). */
export type Ctx = { config: OrganizationConfig; changed: boolean; warnings: string[]; env: NodeJS.ProcessEnv };

export type Cmdlet = {
  name: string;
  params: Record<string, ParamType>;
  /** The parameter the first unnamed argument binds to. */
  positional?: string;
  /** The kind of pipeline input accepted (`Get-ReceiveConnector x | Set-ReceiveConnector …`). */
  input?: Kind;
  /** The kind of objects it writes to the pipeline, if any. */
  output?: Kind;
  /** Parameters bound only to be refused with a better message than "not supported" (and so not listed as supported). */
  hidden?: readonly string[];
  /** Said after "parameter -X is not supported" when it helps, e.g. where X is set instead. */
  unknownHint?: (written: string) => string | undefined;
  run(ctx: Ctx, args: Args, input: Item[] | undefined): Item[];
};

export const isListEdit = (a: Arg | undefined): a is ListEdit => typeof a === 'object' && a !== null && !Array.isArray(a);

/** PowerShell's rule: an exact name wins, else a unique prefix; an ambiguous prefix is an error. */
export function resolveParam(cmdlet: Cmdlet, written: string): string {
  const names = Object.keys(cmdlet.params);
  const lower = written.toLowerCase();
  const exact = names.find((n) => n.toLowerCase() === lower);
  if (exact) return exact;
  const candidates = names.filter((n) => n.toLowerCase().startsWith(lower));
  if (candidates.length === 1) return candidates[0]!;
  if (candidates.length > 1) throw new EmsError(`${cmdlet.name}: parameter -${written} is ambiguous (-${candidates.join(', -')})`);
  const hint = cmdlet.unknownHint?.(written);
  const listed = names.filter((n) => !cmdlet.hidden?.includes(n));
  throw new EmsError(`${cmdlet.name}: parameter -${written} is not supported${hint ? `: ${hint}` : ''} (supported: -${listed.join(', -')})`);
}

/** An unquoted argument like this is more likely the next command of a line a web page ran together. */
const CMDLET_LIKE = /^(Get|Set|New|Remove|Add|Enable|Disable|Test)-[A-Za-z]+$/i;

export function bindArgs(cmdlet: Cmdlet, command: Command): Args {
  const args: Args = new Map();
  const { elements } = command;
  let positionalText: string | undefined;
  for (let i = 0; i < elements.length; i++) {
    const el = elements[i]!;
    if (el.t === 'value') {
      if (!cmdlet.positional || args.has(cmdlet.positional)) {
        const text = showValue(el.value);
        const hint = CMDLET_LIKE.test(text)
          ? ` (it looks like the next command: the page this came from may have joined two lines; put each command on its own line)`
          : positionalText !== undefined
            ? ` (-${cmdlet.positional} is already '${positionalText}'; quote a value that contains spaces)`
            : '';
        throw new EmsError(`${cmdlet.name}: a positional parameter cannot be found that accepts argument '${text}'${hint}`);
      }
      args.set(cmdlet.positional, convert(cmdlet, cmdlet.positional, el.value));
      positionalText = showValue(el.value);
      continue;
    }
    const name = resolveParam(cmdlet, el.name);
    if (args.has(name)) throw new EmsError(`${cmdlet.name}: parameter -${name} is given more than once`);
    let value = el.value;
    if (value === undefined && cmdlet.params[name] !== 'switch') {
      const next = elements[i + 1];
      if (next?.t !== 'value') throw new EmsError(`${cmdlet.name}: missing a value for -${name}`);
      value = next.value;
      i++;
    }
    args.set(name, value === undefined ? true : convert(cmdlet, name, value));
  }
  return args;
}

function convert(cmdlet: Cmdlet, param: string, value: Value): Arg {
  const type = cmdlet.params[param]!;
  const bad = (expected: string) => new EmsError(`${cmdlet.name}: -${param} ${showValue(value)} is not valid: expected ${expected}`);
  const single = (): string => {
    if (value.t === 'str') return value.v;
    throw bad('a single value');
  };
  const list = (v: Value): string[] => {
    if (v.t === 'str') return [v.v];
    if (v.t === 'null') return [];
    if (v.t === 'array') return v.items.flatMap(list);
    throw bad('a list of values');
  };
  const canonical = (values: readonly string[], allowed: readonly string[]) =>
    values.map((v) => allowed.find((a) => a.toLowerCase() === v.trim().toLowerCase()) ?? badEnum(cmdlet, param, v, allowed));

  if (typeof type === 'object') {
    const allowed = 'one' in type ? type.one : type.many;
    if ('one' in type) return canonical([single()], allowed)[0]!;
    if (value.t === 'hash') return canonicalEdit(hashEdit(cmdlet, param, value, list), (v) => canonical(v, allowed));
    return canonical(list(value), allowed);
  }
  switch (type) {
    case 'string':
      return value.t === 'null' ? null : single();
    case 'list':
      return value.t === 'hash' ? hashEdit(cmdlet, param, value, list) : list(value);
    case 'bool':
    case 'switch':
      if (value.t === 'bool') return value.v;
      if (value.t === 'str' && (value.v === '1' || value.v === '0')) return value.v === '1';
      throw bad('$true or $false');
    case 'int': {
      const text = single().trim();
      if (!/^\d+$/.test(text)) throw bad('a whole number');
      return Number(text);
    }
    case 'bytes': {
      const n = parseByteSize(single());
      if (typeof n !== 'number' || !Number.isFinite(n)) throw bad('a size such as 25MB, 64KB or "36 MB (37,748,736 bytes)"');
      return n;
    }
    case 'timespan': {
      const n = parseTimeSpan(single());
      if (typeof n !== 'number') throw bad('a time span such as 00:05:00');
      return n;
    }
    case 'timespans': {
      if (value.t === 'null') return null;
      if (value.t === 'hash') throw bad('a list of time spans such as 60,300,00:15:00 (@{Add/Remove} does not apply to a schedule)');
      // Kept as text of whole seconds until applyProperties makes them numbers: Arg holds no number lists.
      return list(value).map((v) => {
        const n = parseTimeSpan(v);
        if (typeof n !== 'number') throw bad('a list of time spans such as 60,300,00:15:00');
        return String(n);
      });
    }
  }
}

function badEnum(cmdlet: Cmdlet, param: string, v: string, allowed: readonly string[]): never {
  throw new EmsError(`${cmdlet.name}: -${param} ${v} is not valid: expected one of ${allowed.join(', ')}`);
}

function hashEdit(cmdlet: Cmdlet, param: string, value: Extract<Value, { t: 'hash' }>, list: (v: Value) => string[]): ListEdit {
  const edit: ListEdit = { add: [], remove: [] };
  for (const { key, value: v } of value.entries) {
    const k = key.toLowerCase();
    if (k !== 'add' && k !== 'remove') throw new EmsError(`${cmdlet.name}: -${param} @{${key}=…} is not valid: a hashtable takes only Add and Remove`);
    edit[k].push(...list(v));
  }
  return edit;
}

const canonicalEdit = (edit: ListEdit, canon: (v: string[]) => string[]): ListEdit => ({ add: canon(edit.add), remove: canon(edit.remove) });

/** A multi-valued property after `-P a,b` (replace) or `-P @{Add=…; Remove=…}` (edit the current values). */
export function applyList(current: readonly string[], arg: string[] | ListEdit, warn: (message: string) => void, what: string): string[] {
  if (!isListEdit(arg)) return [...arg];
  const same = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();
  for (const r of arg.remove) if (!current.some((c) => same(c, r))) warn(`${what}: ${r} was not there to remove`);
  const kept = current.filter((c) => !arg.remove.some((r) => same(c, r)));
  return [...kept, ...arg.add.filter((a, i) => !kept.some((c) => same(c, a)) && arg.add.findIndex((b) => same(a, b)) === i)];
}

/**
 * A copy of `current` with every bound property of `types` applied: `$null` clears an
 * optional property, lists replace or (with @{Add/Remove}) edit the current values.
 */
export function applyProperties<T extends object>(ctx: Ctx, cmdlet: string, current: T, args: Args, types: Record<string, ParamType>): T {
  const next = { ...current } as Record<string, unknown>;
  for (const [key, arg] of args) {
    if (!(key in types)) continue;
    if (arg === null) delete next[key];
    else if (types[key] === 'timespans' && Array.isArray(arg)) next[key] = arg.map(Number);
    else if (Array.isArray(arg) || isListEdit(arg))
      next[key] = applyList((next[key] as string[] | undefined) ?? [], arg, (m) => ctx.warnings.push(m), `${cmdlet} -${key}`);
    else next[key] = arg;
  }
  return next as T;
}

/**
 * Identities are case-insensitive and may use `*`. For receive connectors the `Server\`
 * part is optional and does not restrict the match: in a Transit cluster the server part
 * only names the connector (every node of the role serves it).
 */
export function identityPattern(identity: string, splitServer: boolean): { server?: string; test(name: string): boolean } {
  const slash = splitServer ? identity.lastIndexOf('\\') : -1;
  const name = identity.slice(slash + 1).trim();
  const re = new RegExp(`^${name.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`, 'i');
  return { ...(slash >= 0 ? { server: identity.slice(0, slash) } : {}), test: (n) => re.test(n) };
}

export function notFound(cmdlet: string, identity: string, what: string, names: readonly string[]): EmsError {
  return new EmsError(`${cmdlet}: the operation couldn't be performed because object '${identity}' couldn't be found (${what}: ${names.join(', ') || 'none'})`);
}

export const stringArg = (args: Args, name: string): string | undefined => {
  const v = args.get(name);
  return typeof v === 'string' ? v : undefined;
};

export function requireString(cmdlet: string, args: Args, name: string): string {
  const v = stringArg(args, name);
  if (v === undefined || v.trim() === '') throw new EmsError(`${cmdlet}: -${name} is required`);
  return v;
}

/**
 * The objects a Set/Remove/permission cmdlet acts on: its pipeline input, or what its
 * -Identity names. Without pipeline input, a wildcard may not match several objects.
 */
export function targets<T>(
  cmdlet: string,
  args: Args,
  input: Item[] | undefined,
  find: (identity: string) => T[],
  key: (item: Item) => T | undefined,
  single = true,
): T[] {
  const identity = args.get('Identity');
  if (input) {
    if (identity !== undefined) throw new EmsError(`${cmdlet}: give either -Identity or pipeline input, not both`);
    return input.map(key).filter((t): t is T => t !== undefined);
  }
  if (typeof identity !== 'string') throw new EmsError(`${cmdlet}: -Identity is required`);
  const found = find(identity);
  if (single && found.length > 1) throw new EmsError(`${cmdlet}: the operation couldn't be performed because '${identity}' matches multiple entries`);
  return found;
}

/**
 * Validates the whole new configuration with the schema (which re-applies defaults) and
 * makes it the working one. A ConfigError becomes this cmdlet's error: nothing of the line
 * is applied, because runEmsLine returns only after every stage committed.
 */
export function commit(ctx: Ctx, cmdlet: string, next: Record<string, unknown>): void {
  try {
    ctx.config = parseOrganizationConfig(next, `the configuration after ${cmdlet}`);
  } catch (err) {
    // The schema's own refinements may throw a plain Error for input it has already flagged
    // (e.g. an unparsable binding); either way the value came from this line.
    if (!(err instanceof Error)) throw err;
    const message = err instanceof ConfigError ? err.message : `the configuration after ${cmdlet} is invalid: ${err.message}`;
    throw new EmsError(`${cmdlet}: nothing was changed: ${namedPaths(message, next)}`);
  }
  ctx.changed = true;
}

/** `ReceiveConnectors.5.RemoteIPRanges` → `ReceiveConnectors.5 (SMTP Relay).RemoteIPRanges`: indexes mean little to a person. */
function namedPaths(message: string, doc: Record<string, unknown>): string {
  return message.replace(/\b(ReceiveConnectors|SendConnectors|AcceptedDomains)\.(\d+)/g, (whole, list: string, index: string) => {
    const entry = (doc[list] as Array<{ Name?: string; DomainName?: string }> | undefined)?.[Number(index)];
    const name = entry?.Name ?? entry?.DomainName;
    return name ? `${whole} (${name})` : whole;
  });
}
