/**
 * The admin JSON API, behind authentication (surface.ts): cluster health, queues and their
 * actions, message tracking and one message's timeline, the configuration (read, and
 * written through the store's validation with compare-and-set, as transitctl does),
 * receive connectors and the test-connector explanation, and throughput and latency.
 *
 * Every answer is computed by the library that owns it (libs/tracking, libs/bus,
 * libs/policy, libs/queues); this module only parses requests and shapes replies, each
 * checked against its wire type in api-types.ts (what the dashboard reads). Each change is
 * logged with the user who made it, never with a secret.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import { ConfigConflictError, loadMessageEvents, foldMessage, type Bus, type ConfigStore } from '@transit/bus';
import { ConfigError, hashPlaintextPasswords, type OrganizationConfig } from '@transit/config';
import { explainSession } from '@transit/policy';
import type { HoldResult, MessageActionResult, MessageRow, QueueRow, RemoveResult, RetryResult } from '@transit/queues';
import type { Logger, NodeHeartbeat } from '@transit/service';
import {
  DEFAULT_RESULT_SIZE,
  TRACKING_EVENT_IDS,
  parseTrackingTime,
  projectMessage,
  readTracking,
  type TrackingEventId,
  type TrackingQuery,
} from '@transit/tracking';
import type * as Wire from './api-types.ts';
import { clusterHealth } from './cluster-health.ts';
import { HttpError, readJson, send, type Sendable } from './http.ts';
import { readThroughput, type ThroughputLimits } from './throughput.ts';

/** The queue operations of libs/queues, bound to this process's bus (main.ts wires them). */
export type QueueBackend = {
  listQueues(): Promise<QueueRow[]>;
  listMessages(filter: { queue?: string; status?: string; limit?: number }): Promise<MessageRow[]>;
  retryQueue(queue: string): Promise<RetryResult>;
  suspendQueue(queue: string): Promise<HoldResult>;
  resumeQueue(queue: string): Promise<HoldResult>;
  suspendMessage(id: string): Promise<MessageActionResult>;
  resumeMessage(id: string): Promise<MessageActionResult>;
  removeMessage(id: string, opts: { withNdr: boolean }): Promise<RemoveResult>;
};

export type ApiDeps = {
  bus: Bus;
  store: ConfigStore;
  /** The configuration this process applies now (the store may be a revision ahead for a moment). */
  config(): OrganizationConfig;
  heartbeats(): Promise<NodeHeartbeat[]>;
  /** A heartbeat older than this counts as gone (TRANSIT_NODE_TTL_MS, the nodes bucket's TTL; default 15 s). */
  heartbeatStaleMs?: number;
  /** The queue operations acting as the given administrator (recorded in the events they write). */
  queues: (actor: string) => QueueBackend;
  log: Logger;
  throughput?: Partial<ThroughputLimits>;
};

export type ApiRequest = { req: IncomingMessage; res: ServerResponse; url: URL; user: string };

/** Transit's message ids (Crockford base32, notification ids with `-` and `_`): safe as a NATS subject token, never a wildcard. */
const MESSAGE_ID = /^[A-Za-z0-9_-]{1,200}$/;
/** Get-Queue identities: `Transit\\remote.sink`, `Submission`, a next-hop domain. */
const QUEUE_NAME = /^[A-Za-z0-9_.:@\\ -]{1,300}$/;
const MAX_CONFIG_BYTES = 4 * 1024 * 1024;
const MAX_TRACKING_ROWS = 5000;
/** Without a start, a search reads the last day only, so an idle click never walks 7 days of events. */
const DEFAULT_TRACKING_WINDOW_MS = 24 * 3600_000;

const testConnectorSchema = z.object({
  remoteIp: z.string().min(1),
  local: z.string().default('0.0.0.0:25'),
  user: z.string().optional(),
  from: z.string().optional(),
  to: z.array(z.string()).optional(),
  size: z.number().int().nonnegative().optional(),
  tls: z.boolean().default(false),
  helo: z.string().optional(),
});

const configWriteSchema = z.object({ revision: z.number().int().nonnegative(), config: z.record(z.string(), z.unknown()) });
const removeSchema = z.object({ withNdr: z.boolean().default(true) });

function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  const r = schema.safeParse(body);
  if (!r.success) {
    const issues = r.error.issues.map((i) => ({ path: i.path.join('.') || '(root)', message: i.message }));
    throw new HttpError(400, 'BAD_REQUEST', `invalid request: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`, { issues });
  }
  return r.data;
}

/** ConfigError's lines `  ReceiveConnectors.1.AuthMechanism: ...` as a list, so a client can show each field's problem. */
function configIssues(message: string): Array<{ path: string; message: string }> {
  return message
    .split('\n')
    .slice(1)
    .map((line) => /^\s+(\S+): (.*)$/.exec(line))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ path: m[1]!, message: m[2]! }));
}

function trackingQuery(params: URLSearchParams, now: number): TrackingQuery {
  const time = (name: string) => {
    const raw = params.get(name);
    if (raw === null || raw === '') return undefined;
    const d = parseTrackingTime(raw);
    if (!d) throw new HttpError(400, 'BAD_REQUEST', `${name} must be a date and time, e.g. 2026-11-24T10:00:00Z (got "${raw}")`);
    return d;
  };
  const text = (name: string) => {
    const v = params.get(name)?.trim();
    return v ? v : undefined;
  };
  const start = time('start') ?? new Date(now - DEFAULT_TRACKING_WINDOW_MS);
  const end = time('end');
  if (end && start > end) throw new HttpError(400, 'BAD_REQUEST', 'start is after end');
  const limitRaw = params.get('limit');
  const limit = limitRaw === null || limitRaw === '' ? Math.min(DEFAULT_RESULT_SIZE, 200) : Number(limitRaw);
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_TRACKING_ROWS)
    throw new HttpError(400, 'BAD_REQUEST', `limit must be a whole number from 1 to ${MAX_TRACKING_ROWS}`);
  const recipients = params
    .getAll('recipient')
    .flatMap((r) => r.split(','))
    .map((r) => r.trim())
    .filter(Boolean);
  const eventRaw = text('event');
  let eventId: TrackingEventId | undefined;
  if (eventRaw !== undefined) {
    eventId = TRACKING_EVENT_IDS.find((e) => e.toLowerCase() === eventRaw.toLowerCase());
    if (!eventId) throw new HttpError(400, 'BAD_REQUEST', `event must be one of ${TRACKING_EVENT_IDS.join(', ')}`);
  }
  const sender = text('sender');
  const messageId = text('message-id');
  const subject = text('subject');
  return {
    start,
    ...(end ? { end } : {}),
    resultSize: limit,
    ...(sender !== undefined ? { sender } : {}),
    ...(recipients.length ? { recipients } : {}),
    ...(messageId !== undefined ? { messageId } : {}),
    ...(subject !== undefined ? { subject } : {}),
    ...(eventId ? { eventId } : {}),
  };
}

type Handler = (r: ApiRequest, match: RegExpExecArray) => Promise<void>;
type Route = { method: 'GET' | 'POST' | 'PUT'; path: RegExp; handle: Handler };

export function apiRoutes(deps: ApiDeps): (r: ApiRequest) => Promise<boolean> {
  const limits: ThroughputLimits = { windowMs: 15 * 60_000, bucketMs: 30_000, maxEvents: 100_000, deadlineMs: 3000, ...deps.throughput };
  const audit = (user: string, action: string, target: Record<string, unknown>) => deps.log.info({ user, action, ...target }, 'admin action');

  const queueAction =
    (action: 'retryQueue' | 'suspendQueue' | 'resumeQueue'): Handler =>
    async ({ res, user }, m) => {
      const queue = decodeURIComponent(m[1]!);
      if (!QUEUE_NAME.test(queue)) throw new HttpError(400, 'BAD_REQUEST', 'not a queue name');
      const result = await deps.queues(user)[action](queue);
      audit(user, action, { queue });
      send(res, 200, { queue, action, result } satisfies Sendable<Wire.QueueActionResult>);
    };
  const messageAction =
    (action: 'suspendMessage' | 'resumeMessage'): Handler =>
    async ({ res, user }, m) => {
      const id = m[1]!;
      const result = await deps.queues(user)[action](id);
      audit(user, action, { id });
      send(res, 200, { id, action, result } satisfies Sendable<Wire.MessageActionResult>);
    };

  const routes: Route[] = [
    {
      method: 'GET',
      path: /^\/api\/health$/,
      handle: async ({ res }) => {
        const health = clusterHealth(await deps.heartbeats(), Date.now(), deps.heartbeatStaleMs);
        send(res, health.status === 'healthy' ? 200 : 503, health satisfies Wire.ClusterHealth);
      },
    },
    {
      method: 'GET',
      path: /^\/api\/queues$/,
      handle: async ({ res, user }) => send(res, 200, { queues: await deps.queues(user).listQueues() } satisfies Sendable<Wire.QueueList>),
    },
    {
      method: 'GET',
      path: /^\/api\/messages$/,
      handle: async ({ res, url, user }) => {
        const limit = url.searchParams.get('limit');
        const filter = {
          ...(url.searchParams.get('queue') ? { queue: url.searchParams.get('queue')! } : {}),
          ...(url.searchParams.get('status') ? { status: url.searchParams.get('status')! } : {}),
          ...(limit ? { limit: Math.min(1000, Math.max(1, Number(limit) || 100)) } : {}),
        };
        send(res, 200, { messages: await deps.queues(user).listMessages(filter) } satisfies Sendable<Wire.QueueMessageList>);
      },
    },
    { method: 'POST', path: /^\/api\/queues\/([^/]+)\/retry$/, handle: queueAction('retryQueue') },
    { method: 'POST', path: /^\/api\/queues\/([^/]+)\/suspend$/, handle: queueAction('suspendQueue') },
    { method: 'POST', path: /^\/api\/queues\/([^/]+)\/resume$/, handle: queueAction('resumeQueue') },
    { method: 'POST', path: /^\/api\/messages\/([A-Za-z0-9_-]{1,200})\/suspend$/, handle: messageAction('suspendMessage') },
    { method: 'POST', path: /^\/api\/messages\/([A-Za-z0-9_-]{1,200})\/resume$/, handle: messageAction('resumeMessage') },
    {
      method: 'POST',
      path: /^\/api\/messages\/([A-Za-z0-9_-]{1,200})\/remove$/,
      handle: async ({ req, res, user }, m) => {
        const { withNdr } = parseBody(removeSchema, await readJson(req, 4096));
        const id = m[1]!;
        const result = await deps.queues(user).removeMessage(id, { withNdr });
        audit(user, 'removeMessage', { id, withNdr });
        send(res, 200, { id, action: 'removeMessage', withNdr, result } satisfies Sendable<Wire.RemoveMessageResult>);
      },
    },
    {
      method: 'GET',
      path: /^\/api\/tracking$/,
      handle: async ({ res, url }) => {
        const query = trackingQuery(url.searchParams, Date.now());
        const rows = await readTracking(deps.bus, query);
        send(res, 200, { query, rows, truncated: rows.length === query.resultSize } satisfies Sendable<Wire.TrackingSearch>);
      },
    },
    {
      method: 'GET',
      path: /^\/api\/messages\/([^/]+)\/timeline$/,
      handle: async ({ res }, m) => {
        const id = decodeURIComponent(m[1]!);
        if (!MESSAGE_ID.test(id)) throw new HttpError(400, 'BAD_REQUEST', "not a message id (Transit's NetworkMessageId, e.g. from a tracking row)");
        const events = await loadMessageEvents(deps.bus, id);
        if (events.length === 0) throw new HttpError(404, 'NOT_FOUND', `no events for message ${id} (the event log keeps 7 days)`);
        send(res, 200, { id, state: foldMessage(id, events), events, rows: projectMessage(id, events) } satisfies Sendable<Wire.MessageTimeline>);
      },
    },
    {
      method: 'GET',
      path: /^\/api\/config$/,
      handle: async ({ res }) => {
        const snapshot = await deps.store.read();
        if (!snapshot) throw new HttpError(404, 'NOT_FOUND', 'the cluster has no configuration yet');
        send(res, 200, snapshot satisfies Sendable<Wire.ConfigSnapshot>);
      },
    },
    {
      method: 'PUT',
      path: /^\/api\/config$/,
      handle: async ({ req, res, user }) => {
        const { revision, config } = parseBody(configWriteSchema, await readJson(req, MAX_CONFIG_BYTES));
        await hashPlaintextPasswords(config);
        try {
          const written = await deps.store.write(config, revision);
          audit(user, 'writeConfig', { from: revision, revision: written.revision });
          send(res, 200, { revision: written.revision } satisfies Sendable<Wire.ConfigWritten>);
        } catch (err) {
          if (err instanceof ConfigError) throw new HttpError(400, err.code, err.message, { issues: configIssues(err.message) });
          if (err instanceof ConfigConflictError) throw new HttpError(409, err.code, err.message);
          throw err;
        }
      },
    },
    {
      method: 'GET',
      path: /^\/api\/connectors$/,
      handle: ({ res }) => {
        const config = deps.config();
        send(res, 200, {
          receiveConnectors: config.ReceiveConnectors.map((c) => ({
            ...c,
            permissions: config.Permissions.filter((p) => p.Identity.toLowerCase() === c.Name.toLowerCase()),
          })),
          sendConnectors: config.SendConnectors,
          acceptedDomains: config.AcceptedDomains,
        } satisfies Sendable<Wire.ConnectorList>);
        return Promise.resolve();
      },
    },
    {
      method: 'POST',
      path: /^\/api\/test-connector$/,
      handle: async ({ req, res }) => {
        const body = parseBody(testConnectorSchema, await readJson(req, 16_384));
        const local = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(body.local);
        if (!local)
          throw new HttpError(400, 'BAD_REQUEST', `local must be ip:port or [ipv6]:port (got "${body.local}")`, {
            issues: [{ path: 'local', message: 'ip:port' }],
          });
        const explanation = explainSession(deps.config(), {
          remoteIp: body.remoteIp,
          localIp: (local[1] ?? local[2])!,
          localPort: Number(local[3]),
          tls: body.tls,
          ...(body.user ? { user: body.user } : {}),
          ...(body.from !== undefined ? { from: body.from } : {}),
          ...(body.to?.length ? { to: body.to } : {}),
          ...(body.size !== undefined ? { size: body.size } : {}),
          ...(body.helo ? { helo: body.helo } : {}),
        });
        send(res, 200, explanation satisfies Sendable<Wire.ConnectorExplanation>);
      },
    },
    {
      method: 'GET',
      path: /^\/api\/throughput$/,
      handle: async ({ res, url }) => {
        const minutes = Number(url.searchParams.get('minutes') ?? limits.windowMs / 60_000);
        if (!Number.isFinite(minutes) || minutes <= 0 || minutes > 60) throw new HttpError(400, 'BAD_REQUEST', 'minutes must be between 1 and 60');
        const windowMs = Math.round(minutes * 60_000);
        send(
          res,
          200,
          (await readThroughput(deps.bus, { ...limits, windowMs, bucketMs: Math.max(5000, Math.round(windowMs / 30)) })) satisfies Wire.ThroughputSummary,
        );
      },
    },
  ];

  return async (r) => {
    const path = r.url.pathname;
    const matching = routes.filter((route) => route.path.test(path));
    if (matching.length === 0) return false;
    const route = matching.find((rt) => rt.method === r.req.method);
    if (!route)
      throw new HttpError(405, 'METHOD_NOT_ALLOWED', `${r.req.method ?? ''} is not allowed on ${path}; use ${matching.map((m) => m.method).join(', ')}`);
    await route.handle(r, route.path.exec(path)!);
    return true;
  };
}
