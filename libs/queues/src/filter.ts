/**
 * Get-Queue / Get-Message `-Filter` expressions in the OPATH shape administrators copy from
 * Exchange: `Prop -op 'value'` clauses joined by `-and`. Only the properties and operators
 * these projections can answer are accepted; anything else is an error that names what is.
 * Pure: shared by transitctl's `--filter` and libs/ems.
 */
import {
  DELIVERY_TYPES,
  MESSAGE_STATUSES,
  QUEUE_STATUSES,
  type DeliveryType,
  type MessageFilter,
  type QueueFilter,
  type QueueMessageStatus,
  type QueueStatus,
} from './project.ts';

export class FilterError extends Error {
  readonly code = 'BAD_FILTER';
  constructor(message: string) {
    super(message);
    this.name = 'FilterError';
  }
}

type Clause = { prop: string; name: string; op: string; value: string };

function clauses(text: string): Clause[] {
  const parts = text
    .trim()
    .replace(/^\{|\}$/g, '')
    .split(/\s+-and\s+/i);
  return parts.map((part) => {
    const m = /^\s*\(?\s*([A-Za-z]+)\s+-(eq|like|gt|ge)\s+(?:'([^']*)'|"([^"]*)"|(\S+?))\s*\)?\s*$/i.exec(part);
    if (!m)
      throw new FilterError(`filter clause "${part.trim()}" is not of the form Property -eq 'value' (operators: -eq, -like, -gt, -ge; clauses joined by -and)`);
    return { prop: m[1]!.toLowerCase(), name: m[1]!, op: m[2]!.toLowerCase(), value: m[3] ?? m[4] ?? m[5] ?? '' };
  });
}

function oneOf<T extends string>(prop: string, value: string, allowed: readonly T[]): T {
  const found = allowed.find((a) => a.toLowerCase() === value.toLowerCase());
  if (!found) throw new FilterError(`${prop} must be one of ${allowed.join(', ')} (got "${value}")`);
  return found;
}

function count(c: Clause): number {
  if (!/^\d+$/.test(c.value)) throw new FilterError(`MessageCount compares with a whole number (got "${c.value}")`);
  return c.op === 'gt' ? Number(c.value) + 1 : Number(c.value);
}

const only = (c: Clause, ops: string[]) => {
  if (!ops.includes(c.op)) throw new FilterError(`${c.name} takes ${ops.map((o) => `-${o}`).join(' or ')} (got -${c.op})`);
};

export function parseQueueFilter(text: string): QueueFilter {
  const f: QueueFilter = {};
  for (const c of clauses(text)) {
    switch (c.prop) {
      case 'deliverytype':
        only(c, ['eq']);
        f.deliveryType = oneOf<DeliveryType>('DeliveryType', c.value, DELIVERY_TYPES);
        break;
      case 'status':
        only(c, ['eq']);
        f.status = oneOf<QueueStatus>('Status', c.value, QUEUE_STATUSES);
        break;
      case 'nexthopdomain':
        only(c, ['eq', 'like']);
        f.nextHopDomain = c.value;
        break;
      case 'identity':
        only(c, ['eq']);
        f.identity = c.value;
        break;
      case 'messagecount':
        only(c, ['gt', 'ge']);
        f.minMessageCount = count(c);
        break;
      default:
        throw new FilterError(`Get-Queue cannot filter on ${c.name} (properties: DeliveryType, Status, NextHopDomain, Identity, MessageCount)`);
    }
  }
  return f;
}

export function parseMessageFilter(text: string): MessageFilter {
  const f: MessageFilter = {};
  for (const c of clauses(text)) {
    switch (c.prop) {
      case 'fromaddress':
        only(c, ['eq', 'like']);
        f.sender = c.value;
        break;
      case 'status':
        only(c, ['eq']);
        f.status = oneOf<QueueMessageStatus>('Status', c.value, MESSAGE_STATUSES);
        break;
      case 'queue':
        only(c, ['eq']);
        f.queue = c.value;
        break;
      case 'messageid':
      case 'identity':
        only(c, ['eq']);
        f.id = c.value;
        break;
      default:
        throw new FilterError(`Get-Message cannot filter on ${c.name} (properties: FromAddress, Status, Queue, MessageId)`);
    }
  }
  return f;
}
