export { connectBus, type Bus } from './connection.ts';
export { BODY_BUCKET, CONSUMERS, INFLIGHT_BUCKET, NODES_BUCKET, STREAMS, SUBJECTS, ensureTopology, subjectToken, type TopologyOptions } from './topology.ts';
export { BusUnavailableError, QueueFullError, publishDurable, publishDurableWithin } from './publish.ts';
export { ack, retry, startWorker, type Outcome, type Worker, type WorkerOptions } from './consume.ts';
export { BodyStore } from './bodies.ts';
export { recordEvent, type MessageEvent } from './events.ts';
export { CONFIG_BUCKET, ConfigConflictError, ConfigStore } from './config-store.ts';
export { resubmitFromSafetyNet, type ResubmitRequest, type ResubmitResult } from './safety-net.ts';
export { POISON_THRESHOLD, PoisonTracker, listPoison, type PoisonRow } from './poison.ts';
