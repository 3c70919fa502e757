import { pino, type Logger } from 'pino';

export type { Logger };

/** Structured logs, one event per line. Credentials and bodies never reach a log line. */
export function createLogger(role: string, node: string): Logger {
  return pino({
    name: role,
    level: process.env.TRANSIT_LOG_LEVEL ?? 'info',
    base: { role, node, pid: process.pid },
    redact: { paths: ['password', '*.password', 'pass', '*.pass', 'auth', '*.auth', 'body', '*.body'], censor: '[redacted]' },
  });
}
