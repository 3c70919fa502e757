/**
 * The queue cmdlets of libs/queues bound to this admin process: the bus, the live
 * configuration (Remove-Message -WithNDR needs the postmaster address) and, as the actor
 * recorded in each message's event log, the administrator who asked. Their errors become
 * HTTP answers: an unknown queue or message is 404, an action a queue cannot take is 400.
 */
import {
  MESSAGE_STATUSES,
  QueueError,
  listMessages,
  listQueues,
  removeMessage,
  resumeMessage,
  resumeQueue,
  retryQueue,
  suspendMessage,
  suspendQueue,
  type QueueDeps,
  type QueueMessageStatus,
} from '@transit/queues';
import type { ServiceContext } from '@transit/service';
import type { QueueBackend } from './api.ts';
import { HttpError } from './http.ts';

const STATUS_OF_ERROR: Record<QueueError['code'], number> = { NOT_FOUND: 404, NOT_SUPPORTED: 400, NO_CONFIG: 503 };

async function mapped<T>(work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (err) {
    if (err instanceof QueueError) throw new HttpError(STATUS_OF_ERROR[err.code], err.code, err.message);
    throw err;
  }
}

export function queueBackend(ctx: Pick<ServiceContext, 'bus' | 'settings' | 'log' | 'config'>): (actor: string) => QueueBackend {
  return (actor) => {
    const deps: QueueDeps = { bus: ctx.bus, node: ctx.settings.nodeName, actor: `${actor}@admin`, config: ctx.config, log: ctx.log };
    return {
      listQueues: () => mapped(listQueues(deps)),
      listMessages: (filter) => {
        let status: QueueMessageStatus | undefined;
        if (filter.status !== undefined) {
          status = MESSAGE_STATUSES.find((s) => s.toLowerCase() === filter.status!.toLowerCase());
          if (!status) throw new HttpError(400, 'BAD_REQUEST', `status must be one of ${MESSAGE_STATUSES.join(', ')}`);
        }
        return mapped(
          listMessages(deps, {
            ...(filter.queue !== undefined ? { queue: filter.queue } : {}),
            ...(status ? { status } : {}),
            ...(filter.limit !== undefined ? { resultSize: filter.limit } : {}),
          }),
        );
      },
      retryQueue: (queue) => mapped(retryQueue(deps, queue)),
      suspendQueue: (queue) => mapped(suspendQueue(deps, queue)),
      resumeQueue: (queue) => mapped(resumeQueue(deps, queue)),
      suspendMessage: (id) => mapped(suspendMessage(deps, id)),
      resumeMessage: (id) => mapped(resumeMessage(deps, id)),
      removeMessage: (id, opts) => mapped(removeMessage(deps, id, opts)),
    };
  };
}
