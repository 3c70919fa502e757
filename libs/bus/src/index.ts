export { connectBus, type Bus } from './connection.ts';
export {
  BODY_BUCKET,
  DKIM_BUCKET,
  BODY_STREAM,
  CONSUMERS,
  HOLDS_BUCKET,
  INFLIGHT_BUCKET,
  NODES_BUCKET,
  STREAMS,
  SUBJECTS,
  ensureTopology,
  subjectToken,
  type TopologyOptions,
} from './topology.ts';
export { BusUnavailableError, QueueFullError, publishDurable, publishDurableWithin } from './publish.ts';
export {
  REQUEUED_FROM_HEADER,
  ack,
  ackBySequence,
  configureWorkers,
  notYet,
  retry,
  runningWorkers,
  startWorker,
  type Outcome,
  type Worker,
  type WorkerHealth,
  type WorkerOptions,
  type WorkerTimings,
} from './consume.ts';
export { BodyStore } from './bodies.ts';
export {
  admit,
  applyEvent,
  expandEvent,
  receptionIn,
  emptyState,
  foldMessage,
  loadMessage,
  hasOutcome,
  loadMessageEvents,
  notFound,
  recordEvent,
  type MessageEvent,
  type Reception,
  type Route,
  type MessageState,
  type MessageStatus,
  type RecipientState,
  type RecipientStatus,
  type StoredEvent,
} from './events.ts';
export { CONFIG_BUCKET, ConfigConflictError, ConfigStore } from './config-store.ts';
export { resubmitFromSafetyNet, type ResubmitRequest, type ResubmitResult } from './safety-net.ts';
export { POISON_THRESHOLD, PoisonTracker, listPoison, type PoisonRow } from './poison.ts';
export { scanStream } from './scan.ts';
export { SpanKind, annotate, extractTrace, inSpan, injectTrace, tracer } from './trace.ts';
export { HoldWatcher, decideHold, holdKey, openHolds, readHolds, type Hold, type HoldDecision, type HoldState } from './holds.ts';
export { KvMirror } from './kv-mirror.ts';
