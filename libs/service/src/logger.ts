import { pino, type Logger } from 'pino';

export type { Logger };

/** Structured logs, one event per line. Credentials and bodies never reach a log line. `level` is TRANSIT_LOG_LEVEL (settings.logLevel). */
export function createLogger(role: string, node: string, level = 'info'): Logger {
  return pino({
    name: role,
    level,
    base: { role, node, pid: process.pid },
    redact: { paths: ['password', '*.password', 'pass', '*.pass', 'auth', '*.auth', 'body', '*.body'], censor: '[redacted]' },
  });
}
