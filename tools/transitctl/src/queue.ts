/**
 * `transitctl queue ...` and `transitctl message ...`: the queue cmdlets in transitctl's own
 * verbs. Parsing is pure and checked before connecting; the same QueueRequest comes from
 * libs/ems for Get-Queue, Retry-Queue... lines, and `runQueueRequest` executes either on the
 * cluster through @transit/queues.
 */
import { writeFile } from 'node:fs/promises';
import { parseArgs, type ParseArgsOptionsConfig } from 'node:util';
import type { OrganizationConfig } from '@transit/config';
import {
  FilterError,
  exportMessage,
  listMessages,
  listQueues,
  parseMessageFilter,
  parseQueueFilter,
  removeMessage,
  resumeMessage,
  resumeQueue,
  retryQueue,
  suspendMessage,
  suspendQueue,
  type MessageFilter,
  type QueueDeps,
  type QueueRequest,
} from '@transit/queues';
import { MESSAGE_STATUSES, type LeasedItem } from '@transit/queues/project';
import { LeaseStore, listLeases } from '@transit/leases';
import { CliError, renderTable } from './objects.ts';

export const QUEUE_COLUMNS = [
  'Identity',
  'DeliveryType',
  'Status',
  'MessageCount',
  'IncomingRate',
  'OutgoingRate',
  'NextHopDomain',
  'LastError',
  'NextRetryTime',
];
export const MESSAGE_COLUMNS = ['MessageId', 'FromAddress', 'Status', 'Size', 'Queue', 'LastError', 'NextRetryTime'];

function filterOf<T>(parse: (text: string) => T, text: string | undefined): T | undefined {
  if (text === undefined) return undefined;
  try {
    return parse(text);
  } catch (err) {
    if (err instanceof FilterError) throw new CliError(`--filter: ${err.message}`);
    throw err;
  }
}

/** parseArgs with errors that name the command; `positionals`: how many arguments it takes (at least `min`). */
function options(
  what: string,
  args: string[],
  opts: ParseArgsOptionsConfig,
  positionals = 0,
  min = positionals,
): { values: Record<string, string | boolean | undefined>; positionals: string[] } {
  let parsed;
  try {
    parsed = parseArgs({ args, options: opts, allowPositionals: positionals > 0, strict: true }) as {
      values: Record<string, string | boolean | undefined>;
      positionals: string[];
    };
  } catch (err) {
    throw new CliError(
      `${what}: ${(err as Error).message.split('. ')[0]} (options: ${
        Object.keys(opts)
          .map((o) => `--${o}`)
          .join(', ') || 'none'
      })`,
    );
  }
  const n = parsed.positionals.length;
  if (n < min || n > positionals)
    throw new CliError(
      `${what} takes ${min === positionals ? positionals : `${min} to ${positionals}`} argument(s): ${min > 0 ? 'the message id or queue identity' : 'an optional queue identity'} (got ${n})`,
    );
  return parsed;
}

/** `queue <get|retry|suspend|resume> ...` or `message <get|suspend|resume|remove|export> ...` (the words after `queue`/`message`). */
export function parseQueueCommand(noun: 'queue' | 'message', args: string[]): QueueRequest {
  const [verb, ...rest] = args;
  const what = `${noun} ${verb ?? ''}`.trim();
  if (noun === 'queue') {
    switch (verb) {
      case 'get': {
        const { values, positionals } = options(what, rest, { filter: { type: 'string' } }, 1, 0);
        const filter = filterOf(parseQueueFilter, values.filter as string | undefined) ?? {};
        return { action: 'get-queue', filter: positionals[0] !== undefined ? { ...filter, identity: positionals[0] } : filter };
      }
      case 'retry': {
        const { values, positionals } = options(what, rest, { resubmit: { type: 'boolean' } }, 1);
        return { action: 'retry-queue', identity: positionals[0]!, resubmit: values.resubmit === true };
      }
      case 'suspend':
      case 'resume':
        return { action: `${verb}-queue`, identity: options(what, rest, {}, 1).positionals[0]! };
      default:
        throw new CliError(`queue verbs: get, retry, suspend, resume (got "${verb ?? ''}")`);
    }
  }
  switch (verb) {
    case 'get': {
      const { values } = options(what, rest, {
        queue: { type: 'string' },
        sender: { type: 'string' },
        status: { type: 'string' },
        id: { type: 'string' },
        filter: { type: 'string' },
        limit: { type: 'string' },
      });
      const filter: MessageFilter = filterOf(parseMessageFilter, values.filter as string | undefined) ?? {};
      if (values.queue !== undefined) filter.queue = values.queue as string;
      if (values.sender !== undefined) filter.sender = values.sender as string;
      if (values.id !== undefined) filter.id = values.id as string;
      if (values.status !== undefined) {
        const s = MESSAGE_STATUSES.find((x) => x.toLowerCase() === (values.status as string).toLowerCase());
        if (!s) throw new CliError(`--status must be one of ${MESSAGE_STATUSES.join(', ')} (got "${values.status as string}")`);
        filter.status = s;
      }
      if (values.limit !== undefined) {
        if (!/^\d+$/.test(values.limit as string) || Number(values.limit) === 0)
          throw new CliError(`--limit must be a whole number from 1 (got "${values.limit as string}")`);
        filter.resultSize = Number(values.limit);
      }
      return { action: 'get-message', filter };
    }
    case 'suspend':
    case 'resume':
      return { action: `${verb}-message`, id: options(what, rest, {}, 1).positionals[0]! };
    case 'remove': {
      const { values, positionals } = options(what, rest, { 'with-ndr': { type: 'boolean' }, 'without-ndr': { type: 'boolean' } }, 1);
      if (values['with-ndr'] && values['without-ndr']) throw new CliError('message remove: --with-ndr and --without-ndr exclude each other');
      // Exchange's Remove-Message sends the NDR unless told not to (-WithNDR $false).
      return { action: 'remove-message', id: positionals[0]!, withNdr: values['without-ndr'] !== true };
    }
    case 'export': {
      const { values, positionals } = options(what, rest, { path: { type: 'string' } }, 1);
      if (!values.path) throw new CliError('message export needs --path <file.eml>');
      return { action: 'export-message', id: positionals[0]!, path: values.path as string };
    }
    default:
      throw new CliError(`message verbs: get, suspend, resume, remove, export (got "${verb ?? ''}")`);
  }
}

/**
 * The Shadow queue's source: the work items leased in Redis at `url` (libs/leases), read
 * when a queue verb asks. When Redis cannot be read the queues are listed without it, with
 * a warning.
 */
export function redisLeases(url: string, warn: (message: string) => void): { leases: () => Promise<LeasedItem[] | undefined>; close: () => Promise<void> } {
  let store: LeaseStore | undefined;
  return {
    leases: async () => {
      try {
        store ??= new LeaseStore(url);
        await store.connect();
        return await listLeases(store.redis);
      } catch (err) {
        warn(`the Shadow queue is not listed: Redis at ${url} could not be read (${(err as Error).message}; set REDIS_URL)`);
        return undefined;
      }
    },
    close: async () => {
      await store?.close();
    },
  };
}

export type QueueOutput = { objects: Array<Record<string, unknown>>; text: string };

/** Runs a request on the cluster; `config` is needed only for an NDR. */
export async function runQueueRequest(deps: QueueDeps & { config?: OrganizationConfig }, req: QueueRequest): Promise<QueueOutput> {
  switch (req.action) {
    case 'get-queue': {
      const rows = await listQueues(deps, req.filter);
      return { objects: rows, text: rows.length ? renderTable(rows, QUEUE_COLUMNS) : 'no queues match\n' };
    }
    case 'get-message': {
      const rows = await listMessages(deps, req.filter);
      return { objects: rows, text: rows.length ? renderTable(rows, MESSAGE_COLUMNS) : 'no messages match\n' };
    }
    case 'retry-queue': {
      const r = await retryQueue(deps, req.identity, { resubmit: req.resubmit });
      return { objects: [r], text: `${r.identity}: ${r.retried} deferred item(s) will be tried now\n` };
    }
    case 'suspend-queue':
    case 'resume-queue': {
      const r = await (req.action === 'suspend-queue' ? suspendQueue : resumeQueue)(deps, req.identity);
      const done = req.action === 'suspend-queue' ? 'suspended' : 'resumed';
      return { objects: [r], text: `${r.identity}: ${r.changed ? done : `already ${done}`}\n` };
    }
    case 'suspend-message':
    case 'resume-message': {
      const r = await (req.action === 'suspend-message' ? suspendMessage : resumeMessage)(deps, req.id);
      const done = req.action === 'suspend-message' ? 'suspended' : 'resumed';
      return { objects: [r], text: `message ${r.id}: ${r.changed ? done : `already ${done}`}\n` };
    }
    case 'remove-message': {
      const r = await removeMessage(deps, req.id, { withNdr: req.withNdr });
      return {
        objects: [r],
        text: `message ${r.id}: removed (${r.recipients.length} recipient(s), ${r.items} queued item(s))${r.dsnId ? `; NDR ${r.dsnId} sent to the sender` : req.withNdr ? '; no NDR (none was due)' : ''}\n`,
      };
    }
    case 'export-message': {
      const eml = await exportMessage(deps, req.id);
      await writeFile(req.path, eml);
      return {
        objects: [{ id: req.id, path: req.path, bytes: eml.length }],
        text: `message ${req.id}: ${eml.length} bytes written to ${req.path} (replayable: copy it into the replay directory)\n`,
      };
    }
  }
}
