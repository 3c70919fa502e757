/**
 * Runs one Exchange Management Shell line against an OrganizationConfig. Pure: the input
 * is never modified; every change builds a new configuration that must pass the schema
 * before the next stage sees it, and the caller gets it only when the whole line ran.
 */
import type { OrganizationConfig } from '@transit/config';
import type { QueueRequest } from '@transit/queues/project';
import type { TrackingQuery, TrackingRow } from '@transit/tracking';
import { bindArgs, type Args, type Cmdlet, type Ctx, type Item, type Kind } from './binding.ts';
import { EmsError } from './errors.ts';
import { renderItems, type Format, type View } from './format.ts';
import { stripComments, stripPrompt, tokenize, type Token } from './lexer.ts';
import { demangle, parsePipeline, renderTokens } from './parser.ts';
import { RECEIVE_CMDLETS, RECEIVE_CONNECTOR_PROPERTIES } from './receive.ts';
import { ROUTING_CMDLETS, SEND_CONNECTOR_PROPERTIES } from './routing.ts';
import { GET_MESSAGE_TRACKING_LOG, trackingItem, trackingQuery } from './tracking.ts';
import { QUEUE_CMDLETS, queueItem, queueRequest } from './queues.ts';
import { TRANSPORT_CMDLETS } from './transport.ts';
import { DKIM_CMDLETS, dkimRequest } from './dkim.ts';
import type { DkimRequest } from '@transit/dkim';

export type EmsOutput = { objects: Record<string, unknown>[]; text: string };
export type EmsResult = { config: OrganizationConfig; changed: boolean; output: EmsOutput; warnings: string[] };

const CMDLETS = [...RECEIVE_CMDLETS, ...ROUTING_CMDLETS, ...TRANSPORT_CMDLETS, GET_MESSAGE_TRACKING_LOG, ...QUEUE_CMDLETS, ...DKIM_CMDLETS];

/** Format-List / Format-Table only choose how the last stage's objects print. */
const FORMATTERS: Record<string, Format['kind']> = { 'format-list': 'list', fl: 'list', 'format-table': 'table', ft: 'table' };
const formatter = (name: string): Cmdlet => ({ name, params: { Property: 'list' }, positional: 'Property', run: () => [] });

const VIEWS: Record<Kind, View> = {
  ReceiveConnector: { columns: ['Identity', 'Bindings', 'Enabled'], types: RECEIVE_CONNECTOR_PROPERTIES },
  ADPermission: { columns: ['Identity', 'User', 'Deny', 'Inherited', 'Rights'], types: {} },
  AcceptedDomain: { columns: ['Name', 'DomainName', 'DomainType', 'Default'], types: {} },
  SendConnector: { columns: ['Identity', 'AddressSpaces', 'Enabled'], types: SEND_CONNECTOR_PROPERTIES },
  MessageTrackingEvent: { columns: ['EventId', 'Source', 'Sender', 'Recipients', 'MessageSubject'], types: {} },
  // Get-Queue's and Get-Message's default tables.
  Queue: { columns: ['Identity', 'DeliveryType', 'Status', 'MessageCount', 'NextHopDomain'], types: {} },
  QueueMessage: { columns: ['Identity', 'FromAddress', 'Status', 'Size', 'Queue'], types: {} },
  QueueActionResult: { columns: [], types: {} },
  // Get-DkimSigningConfig's default table, as Exchange Online's; Format-List shows the selectors and their records.
  DkimSigningConfig: { columns: ['Domain', 'Enabled', 'Status', 'Selector'], types: {} },
  // Values come formatted (each row's type differs); Format-List adds Scope, Default, Unit, SetWith and Meaning.
  TransportSetting: { columns: ['Name', 'Value', 'Source'], types: {} },
};

function lookup(name: string): Cmdlet | undefined {
  const lower = name.toLowerCase();
  return FORMATTERS[lower] ? formatter(name) : CMDLETS.find((c) => c.name.toLowerCase() === lower);
}

type Bound = { stages: Array<{ cmdlet: Cmdlet; args: Args }>; format: Format };

function bindLine(tokens: readonly Token[]): Bound {
  const commands = parsePipeline(tokens);
  const format: Format = { kind: 'table' };
  const stages = commands.map((command, i) => {
    const cmdlet = lookup(command.name);
    if (!cmdlet)
      throw new EmsError(`${command.name} is not supported by transitctl ems (supported: ${CMDLETS.map((c) => c.name).join(', ')}, Format-List, Format-Table)`);
    const args = bindArgs(cmdlet, command);
    const kind = FORMATTERS[cmdlet.name.toLowerCase()];
    if (kind) {
      if (i !== commands.length - 1 || i === 0)
        throw new EmsError(`${cmdlet.name} formats the output of a pipeline, so it must come last, after a Get- cmdlet`);
      format.kind = kind;
      const properties = args.get('Property');
      if (Array.isArray(properties)) format.properties = properties;
    }
    return { cmdlet, args };
  });
  const work = stages.filter((s) => !FORMATTERS[s.cmdlet.name.toLowerCase()]);
  work.forEach(({ cmdlet }, i) => {
    const prev = work[i - 1]?.cmdlet;
    if (!prev) return;
    if (!cmdlet.input) throw new EmsError(`${cmdlet.name} does not take pipeline input; give it -Identity instead`);
    if (prev.output !== cmdlet.input) {
      throw new EmsError(
        `${prev.name} ${prev.output ? `writes ${prev.output} objects` : 'writes no objects'}, but ${cmdlet.name} takes ${cmdlet.input} objects from the pipeline`,
      );
    }
  });
  return { stages: work, format };
}

const paramsOf = (name: string) => {
  const cmdlet = lookup(name);
  return cmdlet ? Object.keys(cmdlet.params) : undefined;
};

function bindEmsLine(line: string): { bound: Bound; readAs?: string; warnings: string[] } {
  const warnings: string[] = [];
  const tokens = tokenize(stripComments(stripPrompt(line)).code);
  try {
    return { bound: bindLine(tokens), warnings };
  } catch (err) {
    // Only a line that fails as written is read again with its hyphens rejoined.
    const fixed = err instanceof EmsError ? demangle(tokens, paramsOf) : undefined;
    if (!fixed) throw err;
    const readAs = renderTokens(fixed);
    const bound = withReading(readAs, () => bindLine(fixed));
    warnings.push(`read as: ${readAs} (the line had spaces around its hyphens, as web pages print them)`);
    return { bound, readAs, warnings };
  }
}

/** A Get-MessageTrackingLog line: the query to run on the event log, and how to print its rows. */
export type EmsTrackingRequest = { query: TrackingQuery; warnings: string[]; render(rows: readonly TrackingRow[]): EmsOutput };

/** The tracking request of `line`, or undefined when the line is not Get-MessageTrackingLog (run it with runEmsLine). */
export function emsTrackingRequest(line: string): EmsTrackingRequest | undefined {
  const { bound, readAs, warnings } = bindEmsLine(line);
  const first = bound.stages[0];
  if (first?.cmdlet !== GET_MESSAGE_TRACKING_LOG) return undefined;
  const query = withReading(readAs, () => trackingQuery(first.args, warnings));
  return {
    query,
    warnings,
    render: (rows) => {
      const items = rows.map(trackingItem);
      return { objects: items.map((i) => i.row), text: renderItems(items, bound.format, VIEWS) };
    },
  };
}

/** A line whose data is the cluster's, not the configuration: the request transitctl runs there, and how to print what it returns. */
export type EmsClusterRequest<R> = { request: R; warnings: string[]; render(rows: ReadonlyArray<Record<string, unknown>>): EmsOutput };
export type EmsQueueRequest = EmsClusterRequest<QueueRequest>;
export type EmsDkimRequest = EmsClusterRequest<DkimRequest>;

/** `line` bound, when its cmdlet is one of `cmdlets` (`what` names them in the error a pipeline of them gets). */
function clusterLine(line: string, cmdlets: readonly Cmdlet[], what: string) {
  const { bound, readAs, warnings } = bindEmsLine(line);
  const first = bound.stages[0];
  if (!first || !cmdlets.includes(first.cmdlet)) return undefined;
  if (bound.stages.length > 1) throw new EmsError(`${first.cmdlet.name}: pipelines of ${what} cmdlets are not supported; give each cmdlet -Identity`);
  return { first, format: bound.format, warnings, bind: <R>(f: () => R) => withReading(readAs, f) };
}

/** The queue request of `line`, or undefined when the line is not a queue cmdlet. */
export function emsQueueRequest(line: string): EmsQueueRequest | undefined {
  const c = clusterLine(line, QUEUE_CMDLETS, 'queue');
  if (!c) return undefined;
  const request = c.bind(() => queueRequest(c.first.cmdlet, c.first.args, c.warnings));
  const kind = c.first.cmdlet.output ?? 'QueueActionResult';
  return {
    request,
    warnings: c.warnings,
    render: (objects) => {
      const items = objects.map((o) => queueItem(kind, { ...o }));
      // An action's result has no default view: it prints as a list.
      return {
        objects: items.map((i) => i.row),
        text: renderItems(items, kind === 'QueueActionResult' ? { ...c.format, kind: 'list' } : c.format, VIEWS),
      };
    },
  };
}

/** The DKIM request of `line`, or undefined when the line is not a DKIM cmdlet. */
export function emsDkimRequest(line: string): EmsDkimRequest | undefined {
  const c = clusterLine(line, DKIM_CMDLETS, 'DKIM');
  if (!c) return undefined;
  const request = c.bind(() => dkimRequest(c.first.cmdlet, c.first.args));
  return {
    request,
    warnings: c.warnings,
    render: (rows) => {
      const items = rows.map((row) => ({ kind: 'DkimSigningConfig' as const, key: String(row.Domain), row: { ...row } }));
      return { objects: items.map((i) => i.row), text: renderItems(items, c.format, VIEWS) };
    },
  };
}

/** `env`: the environment Get-TransportConfig reads the environment settings from (none given: every one at its default). */
export function runEmsLine(line: string, config: OrganizationConfig, env: NodeJS.ProcessEnv = {}): EmsResult {
  const { bound, readAs, warnings } = bindEmsLine(line);
  const ctx: Ctx = { config, changed: false, warnings, env };
  const items = withReading(readAs, () => {
    let piped: Item[] = [];
    for (const [i, { cmdlet, args }] of bound.stages.entries()) piped = cmdlet.run(ctx, args, i > 0 ? piped : undefined);
    return piped;
  });
  return { config: ctx.config, changed: ctx.changed, output: { objects: items.map((i) => i.row), text: renderItems(items, bound.format, VIEWS) }, warnings };
}

/** An error in a rejoined line shows how the line was read, so the administrator can check the rejoining. */
function withReading<T>(readAs: string | undefined, f: () => T): T {
  try {
    return f();
  } catch (err) {
    throw readAs !== undefined && err instanceof EmsError ? new EmsError(`${err.message}\n  (read as: ${readAs})`) : err;
  }
}
