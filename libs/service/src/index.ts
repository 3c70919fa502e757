export { createLogger, type Logger } from './logger.ts';
export { startHttpServer, type HealthChecks, type HttpRoute } from './health.ts';
export { DEFAULT_HTTP_PORTS, ROLES, runService, type NodeHeartbeat, type Role, type RunningService, type ServiceContext } from './run.ts';
export { poisonGuard } from './poison.ts';
export { HOLD_RECHECK_MS, adminHolds } from './holds.ts';
export { DEFAULT_STALL_SECONDS, stallSeconds, stalledSummary, workerHealth } from './progress.ts';
