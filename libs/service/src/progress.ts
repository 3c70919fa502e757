/**
 * Whether this process's workers make progress (libs/bus startWorker `health()`), for
 * /readyz, the heartbeat the dashboard reads, and the metrics. A worker that has work waiting
 * for it and finishes none for TRANSIT_STALL_SECONDS (default 120) is stalled: the process
 * then answers /readyz with 503, and `transit_worker_stalled{consumer}` is 1. An item put back
 * because its retry time has not come is waiting, not stalled. Reading the state costs no
 * round trip: each worker reads its consumer's info every 5 s itself.
 */
import { configureWorkers, runningWorkers, type WorkerHealth } from '@transit/bus';
import { readEnvironmentSetting, type RuntimeSettings } from '@transit/config';
import { metrics, type Probe } from '@transit/metrics';
import type { Logger } from './logger.ts';

export const DEFAULT_STALL_SECONDS = 120;

/** TRANSIT_STALL_SECONDS, at least 10 s (a smaller value would call every short outage a stall); the register (libs/config settings.ts) parses it. */
export function stallSeconds(env: NodeJS.ProcessEnv = process.env): number {
  return readEnvironmentSetting(env, 'stallSeconds');
}

export type WorkerSettings = Pick<RuntimeSettings, 'stallSeconds' | 'workerCheckMs' | 'pullRestartAfterMs' | 'strandedGraceMs' | 'pullExpiresMs'>;

/**
 * Before any worker starts: their stall threshold and pull timings from this process's settings
 * (TRANSIT_STALL_SECONDS, TRANSIT_WORKER_CHECK_MS, TRANSIT_PULL_RESTART_AFTER_MS, TRANSIT_STRANDED_GRACE_MS,
 * TRANSIT_PULL_EXPIRES_MS), and their notices (pull loop restarted, item requeued) in this role's log.
 */
export function configureProgress(log: Logger, settings: WorkerSettings): void {
  configureWorkers({
    stallAfterMs: settings.stallSeconds * 1000,
    checkEveryMs: settings.workerCheckMs,
    restartAfterMs: settings.pullRestartAfterMs,
    strandedGraceMs: settings.strandedGraceMs,
    pullExpiresMs: settings.pullExpiresMs,
    onNotice: (what, detail) => log.warn(detail, what),
  });
}

export function workerHealth(now = Date.now()): WorkerHealth[] {
  return runningWorkers().map((w) => w.health(now));
}

/** "outbound-proxy: starved for 130 s (12 pending)"; undefined when no worker is stalled. */
export function stalledSummary(health: WorkerHealth[]): string | undefined {
  const stalled = health.filter((h) => h.stalled);
  if (stalled.length === 0) return undefined;
  return stalled
    .map(
      (h) =>
        `${h.consumer}: ${h.reason} for ${Math.round(h.stalledForMs / 1000)} s (${h.pending ?? '?'} pending, ${h.ackPending ?? '?'} unacknowledged, ${h.stranded} stranded)`,
    )
    .join('; ');
}

/** Sets the worker gauges on every scrape from what the workers already know. */
export function workerProbe(): Probe {
  const counted = new Map<string, { requeued: number; restarts: number }>();
  return () => {
    for (const h of workerHealth()) {
      const consumer = h.consumer;
      metrics.workerStalled.set({ consumer }, h.stalled ? 1 : 0);
      metrics.workerSinceAck.set({ consumer }, h.sinceLastAckMs / 1000);
      if (h.pending !== undefined) metrics.consumerPending.set({ consumer }, h.pending);
      if (h.ackPending !== undefined) metrics.consumerAckPending.set({ consumer }, h.ackPending);
      const before = counted.get(consumer) ?? { requeued: 0, restarts: 0 };
      if (h.requeued > before.requeued) metrics.workerRequeued.inc({ consumer }, h.requeued - before.requeued);
      else metrics.workerRequeued.inc({ consumer }, 0);
      if (h.restarts > before.restarts) metrics.workerPullRestarts.inc({ consumer }, h.restarts - before.restarts);
      else metrics.workerPullRestarts.inc({ consumer }, 0);
      counted.set(consumer, { requeued: h.requeued, restarts: h.restarts });
    }
    return Promise.resolve();
  };
}
