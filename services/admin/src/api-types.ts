/**
 * The admin JSON API's answers as a client parses them: the one definition shared by the
 * server, whose handlers check what they send against these (api.ts, surface.ts, through
 * http.ts's `Sendable`), and the dashboard (web/app.ts), which reads them. A server change
 * that would break the page therefore fails the type check instead of a browser.
 *
 * On the wire: a time the server holds as a Date is an ISO 8601 string, one it holds as a
 * number stays epoch milliseconds; a bigint is a decimal string; an undefined property is
 * absent. Values from an open list kept by a library (role names, queue and tracking
 * statuses, event ids) are plain strings here: clients show them and must expect new ones.
 *
 * Only types, with no imports: the browser's type check (web/tsconfig.json, DOM and no Node)
 * includes this file. Records a library owns are described as far as clients rely on them;
 * the configuration's full shape is libs/config's schema, which this file does not repeat.
 */

/** Every error answer (4xx, 5xx). `issues` names each field of a refused request or configuration. */
export type ApiErrorBody = { error: string; code: string; issues?: FieldIssue[] };
export type FieldIssue = { path: string; message: string };

/** POST /api/login. */
export type LoginSession = { user: string; expires: string };
/** GET /api/session. */
export type SessionUser = { user: string };
/** POST /api/logout. */
export type LoggedOut = { loggedOut: true };

/** GET /api/health: the same body with 200 (healthy) and 503 (degraded: a role has no ready replica). */
export type ClusterHealth = { status: 'healthy' | 'degraded'; roles: RoleHealth[] };
/** A role of libs/service's ROLES, with its live replicas (heartbeats younger than the stale limit). */
export type RoleHealth = { role: string; replicas: number; ready: number; nodes: NodeHealth[] };
/** One replica's last heartbeat: `http` is its bind address, `facts` what the role reports about itself. */
export type NodeHealth = { node: string; pid: number; ready: boolean; http: string; facts: Record<string, unknown>; ageMs: number };

/** GET /api/throughput?minutes=: counts per bucket and delivery latency, from MAIL_EVENTS. */
export type ThroughputSummary = {
  windowSeconds: number;
  bucketSeconds: number;
  totals: { received: number; delivered: number; deferred: number; failed: number };
  latencyMs: { p50: number | null; p95: number | null; max: number | null; samples: number };
  buckets: ThroughputBucket[];
  /** Events read for the summary. */
  events: number;
  /** The read stopped at its event or time limit: the figures cover the window's start only. */
  truncated: boolean;
};
/** `start` is ISO 8601; latencies are null in a bucket without deliveries. */
export type ThroughputBucket = {
  start: string;
  received: number;
  delivered: number;
  deferred: number;
  failed: number;
  latencyP50Ms: number | null;
  latencyP95Ms: number | null;
};

/** GET /api/queues: Get-Queue. */
export type QueueList = { queues: QueueRow[] };
/** Get-Queue's object (libs/queues). Times are ISO 8601; rates are messages per second. */
export type QueueRow = {
  Identity: string;
  DeliveryType: string;
  NextHopDomain: string;
  NextHopConnector?: string;
  Status: string;
  MessageCount: number;
  LastError?: string;
  NextRetryTime?: string;
  IncomingRate?: number;
  OutgoingRate?: number;
  Subject?: string;
};

/** GET /api/messages?queue=&status=&limit=: Get-Message. */
export type QueueMessageList = { messages: QueueMessageRow[] };
/** Get-Message's object: one per message per queue. `MessageId` is what the message actions take. */
export type QueueMessageRow = {
  Identity: string;
  MessageId: string;
  InternetMessageId: string;
  FromAddress: string;
  Recipients: string[];
  Status: string;
  Size: number;
  Subject?: string;
  DateReceived: string;
  Queue: string;
  LastError?: string;
  RetryCount: number;
  NextRetryTime?: string;
  LeaseOwner?: string;
  LeasedSince?: string;
};

/** POST /api/queues/<identity>/retry|suspend|resume: `retried` for a retry, `changed` for a hold. */
export type QueueActionResult = {
  queue: string;
  action: 'retryQueue' | 'suspendQueue' | 'resumeQueue';
  result: { identity: string; retried: number } | { identity: string; changed: boolean };
};
/** POST /api/messages/<id>/suspend|resume. */
export type MessageActionResult = { id: string; action: 'suspendMessage' | 'resumeMessage'; result: { id: string; changed: boolean } };
/** POST /api/messages/<id>/remove: the recipients made final, and the NDR's id when one was sent. */
export type RemoveMessageResult = {
  id: string;
  action: 'removeMessage';
  withNdr: boolean;
  result: { id: string; recipients: string[]; items: number; dsnId?: string };
};

/** GET /api/tracking: the query as the server applied it (defaults filled in), and its rows. */
export type TrackingSearch = { query: TrackingQuery; rows: TrackingRow[]; truncated: boolean };
export type TrackingQuery = {
  sender?: string;
  recipients?: string[];
  messageId?: string;
  internalMessageId?: number;
  networkMessageId?: string;
  eventId?: string;
  source?: string;
  subject?: string;
  start?: string;
  end?: string;
  resultSize?: number;
};
/** Get-MessageTrackingLog's object (libs/tracking): multi-valued properties are arrays. */
export type TrackingRow = {
  /** ISO 8601, UTC, milliseconds. */
  Timestamp: string;
  ClientIp?: string;
  ClientHostname?: string;
  ServerIp?: string;
  ServerHostname?: string;
  SourceContext?: string;
  ConnectorId?: string;
  Source: string;
  EventId: string;
  InternalMessageId?: number;
  MessageId?: string;
  /** Transit's message id: what the timeline takes. */
  NetworkMessageId: string;
  Recipients: string[];
  RecipientStatus: string[];
  TotalBytes?: number;
  RecipientCount: number;
  RelatedRecipientAddress?: string;
  Reference?: string[];
  MessageSubject?: string;
  Sender?: string;
  ReturnPath?: string;
  Directionality?: string;
  MessageInfo?: string;
};

/** GET /api/messages/<id>/timeline: the folded state, the raw events and their tracking rows. */
export type MessageTimeline = { id: string; state: MessageState; events: StoredEvent[]; rows: TrackingRow[] };
/** A message's state as libs/bus folds its events. Times are epoch milliseconds. */
export type MessageState = {
  id: string;
  lastSeq: number;
  events: number;
  received?: { at: number; sender: string; connector?: string; source: string; size: number; node: string; messageId?: string; subject?: string };
  submitted?: { at: number; node: string };
  /** Alias as the sender wrote it (lower case) → the address it resolved to. */
  resolvedAliases: Record<string, string>;
  /** By lower-case address. */
  recipients: Record<string, RecipientState>;
  poisoned?: { stage: string; crashes: number; at: number };
  suspended?: { at: number; actor?: string };
  removed?: { at: number; withNdr: boolean; actor?: string };
  duplicatesSuppressed: number;
  resubmissions: number;
  status: string;
};
export type RecipientState = { address: string; status: string; hop?: string; deferrals: number; lastError?: string; nextAttempt?: number; dsn: string[] };
/** One event of the message's log (libs/bus MessageEvent): its other fields depend on `type`. */
export type StoredEvent = { type: string; at: number; node: string; seq: number; [field: string]: unknown };

/** GET /api/config. */
export type ConfigSnapshot = { revision: number; config: OrganizationConfig };
/** PUT /api/config: the revision written. */
export type ConfigWritten = { revision: number };
/** The organisation configuration document, every default applied (libs/config's schema is its definition). */
export type OrganizationConfig = {
  ReceiveConnectors: ReceiveConnector[];
  SendConnectors: SendConnector[];
  AcceptedDomains: AcceptedDomain[];
  Permissions: PermissionEntry[];
  [section: string]: unknown;
};
/** Get-ReceiveConnector's object: the fields clients show; the answer carries every field of the schema. */
export type ReceiveConnector = {
  Name: string;
  TransportRole: string;
  Bindings: string[];
  RemoteIPRanges: string[];
  AuthMechanism: string[];
  PermissionGroups: string[];
  Enabled: boolean;
};
/** Get-SendConnector's object, as far as clients show it. */
export type SendConnector = { Name: string; AddressSpaces: string[]; SmartHosts: string[]; DNSRoutingEnabled: boolean; Enabled: boolean };
export type AcceptedDomain = { Name?: string; DomainName: string; DomainType: string; Default: boolean };
/** One Add-ADPermission entry; `Identity` is the receive connector's name. */
export type PermissionEntry = { Identity: string; User: string; ExtendedRights: string[]; Deny: boolean };

/** GET /api/connectors: the configuration this admin applies now, each receive connector with its permission entries. */
export type ConnectorList = {
  receiveConnectors: Array<ReceiveConnector & { permissions: PermissionEntry[] }>;
  sendConnectors: SendConnector[];
  acceptedDomains: AcceptedDomain[];
};

/** POST /api/test-connector: libs/policy's explainSession, as `transitctl test-connector --json` prints it. */
export type ConnectorExplanation = {
  candidates: ConnectorCandidate[];
  /** The receive connector that takes the session; absent when none does. */
  connector?: ReceiveConnector;
  principal?: string;
  /** Extended rights without the `ms-Exch-` prefix, sorted. */
  rights: string[];
  sources: RightSource[];
  steps: SmtpStepReport[];
};
/** A receive connector with a binding on the local port; `rangeSize` counts the addresses of the matching range (decimal). */
export type ConnectorCandidate = {
  connector: string;
  enabled: boolean;
  binding: 'specific' | 'wildcard' | 'none';
  range?: string;
  rangeSize?: string;
  chosen: boolean;
};
export type RightSource = { right: string; connector: string; via: string; deny: boolean };
export type SmtpStepReport = { command: string; reply: string; reason?: string; ok: boolean };
