/**
 * The queue cmdlets (docs/exchange-behaviour.md §9): Get-Queue, Get-Message, Retry-Queue, Suspend-/Resume-Queue,
 * Suspend-/Resume-Message, Remove-Message, Export-Message. Their data is the cluster's work
 * queues, not the configuration, so here they only bind and check their parameters into a
 * QueueRequest (libs/ems stays pure); transitctl runs it and hands the objects back to print.
 * Export-Message takes `-Path` (Exchange pipes to AssembleMessage / Set-Content instead).
 */
import { FilterError, parseMessageFilter, parseQueueFilter } from '@transit/queues/filter';
import type { MessageFilter, QueueFilter, QueueRequest } from '@transit/queues/project';
import { requireString, stringArg, type Args, type Cmdlet, type Item, type Kind } from './binding.ts';
import { EmsError } from './errors.ts';

const notHere = (name: string) => () => {
  throw new EmsError(`${name} works on the cluster's queues, not the configuration: run it with transitctl ems`);
};

const cmdlet = (name: string, params: Cmdlet['params'], output?: Kind): Cmdlet => ({
  name,
  // -Server is informational (the queues are the cluster's); -Confirm is accepted as scripts pass it.
  params: { ...params, Server: 'string', Confirm: 'bool' },
  positional: 'Identity',
  ...(output ? { output } : {}),
  run: notHere(name),
});

export const GET_QUEUE = cmdlet('Get-Queue', { Identity: 'string', Filter: 'string', ResultSize: 'string' }, 'Queue');
export const GET_MESSAGE = cmdlet('Get-Message', { Identity: 'string', Queue: 'string', Filter: 'string', ResultSize: 'string' }, 'QueueMessage');
export const RETRY_QUEUE = cmdlet('Retry-Queue', { Identity: 'string', Resubmit: 'bool' });
export const SUSPEND_QUEUE = cmdlet('Suspend-Queue', { Identity: 'string' });
export const RESUME_QUEUE = cmdlet('Resume-Queue', { Identity: 'string' });
export const SUSPEND_MESSAGE = cmdlet('Suspend-Message', { Identity: 'string' });
export const RESUME_MESSAGE = cmdlet('Resume-Message', { Identity: 'string' });
export const REMOVE_MESSAGE = cmdlet('Remove-Message', { Identity: 'string', WithNDR: 'bool' });
export const EXPORT_MESSAGE = cmdlet('Export-Message', { Identity: 'string', Path: 'string' });

export const QUEUE_CMDLETS = [
  GET_QUEUE,
  GET_MESSAGE,
  RETRY_QUEUE,
  SUSPEND_QUEUE,
  RESUME_QUEUE,
  SUSPEND_MESSAGE,
  RESUME_MESSAGE,
  REMOVE_MESSAGE,
  EXPORT_MESSAGE,
];

function filter<T>(name: string, parse: (text: string) => T, args: Args): T | undefined {
  const text = stringArg(args, 'Filter');
  if (text === undefined) return undefined;
  try {
    return parse(text);
  } catch (err) {
    throw err instanceof FilterError ? new EmsError(`${name}: -Filter: ${err.message}`) : err;
  }
}

function resultSize(name: string, args: Args): number | undefined {
  const text = stringArg(args, 'ResultSize')?.trim();
  if (text === undefined || /^unlimited$/i.test(text)) return undefined;
  if (!/^\d+$/.test(text) || Number(text) === 0) throw new EmsError(`${name}: -ResultSize ${text} is not valid: expected a whole number from 1, or Unlimited`);
  return Number(text);
}

/** The request a queue cmdlet's bound parameters stand for; `warnings` gets what is accepted but means little in Transit. */
export function queueRequest(c: Cmdlet, args: Args, warnings: string[]): QueueRequest {
  const server = stringArg(args, 'Server');
  if (server !== undefined) warnings.push(`-Server ${server} is informational: queues are the whole cluster's`);
  const identity = () => requireString(c.name, args, 'Identity');
  switch (c) {
    case GET_QUEUE: {
      const f: QueueFilter = filter(c.name, parseQueueFilter, args) ?? {};
      const id = stringArg(args, 'Identity');
      return { action: 'get-queue', filter: id !== undefined ? { ...f, identity: id } : f };
    }
    case GET_MESSAGE: {
      const f: MessageFilter = filter(c.name, parseMessageFilter, args) ?? {};
      const id = stringArg(args, 'Identity');
      const queue = stringArg(args, 'Queue');
      const size = resultSize(c.name, args);
      return {
        action: 'get-message',
        filter: { ...f, ...(id !== undefined ? { id } : {}), ...(queue !== undefined ? { queue } : {}), ...(size !== undefined ? { resultSize: size } : {}) },
      };
    }
    case RETRY_QUEUE:
      return { action: 'retry-queue', identity: identity(), resubmit: args.get('Resubmit') === true };
    case SUSPEND_QUEUE:
      return { action: 'suspend-queue', identity: identity() };
    case RESUME_QUEUE:
      return { action: 'resume-queue', identity: identity() };
    case SUSPEND_MESSAGE:
      return { action: 'suspend-message', id: identity() };
    case RESUME_MESSAGE:
      return { action: 'resume-message', id: identity() };
    case REMOVE_MESSAGE:
      // Exchange's default is to send the NDR: only -WithNDR $false removes silently.
      return { action: 'remove-message', id: identity(), withNdr: args.get('WithNDR') !== false };
    case EXPORT_MESSAGE:
      return { action: 'export-message', id: identity(), path: requireString(c.name, args, 'Path') };
    default:
      throw new EmsError(`${c.name} is not a queue cmdlet`);
  }
}

/** A Get-Queue or Get-Message row as the shell's object; other cmdlets print their result object. */
export const queueItem = (kind: Kind, row: Record<string, unknown>): Item => {
  const key = row.Identity ?? row.identity ?? row.id;
  return { kind, key: typeof key === 'string' ? key : '', row };
};
