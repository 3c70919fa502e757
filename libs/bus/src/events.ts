/**
 * The per-message event log, `mail.evt.<id>`. This issue records the facts; the
 * fault-tolerance issue folds them into message state with optimistic concurrency.
 */
import { encode } from '@msgpack/msgpack';
import type { Bus } from './connection.ts';
import { SUBJECTS } from './topology.ts';

export type MessageEvent =
  | { type: 'Received'; connector?: string; source: 'SMTP' | 'PICKUP' | 'DSN'; sender: string; recipients: string[]; size: number }
  | { type: 'Routed'; hop: string; recipients: string[] }
  | { type: 'Delivered'; hop: string; recipients: string[]; response?: string }
  | { type: 'Deferred'; hop: string; recipients: string[]; reason: string; nextAttempt: number }
  | { type: 'Failed'; hop: string; recipients: string[]; reason: string }
  /** A delivery status notification about these recipients went to the sender (or was suppressed, and why). */
  | { type: 'DsnGenerated'; kind: 'failure' | 'delay'; recipients: string[]; dsnId: string }
  /** A redelivered work item named recipients already delivered; they were not sent again. */
  | { type: 'DuplicateSuppressed'; hop: string; recipients: string[] }
  /** Its processing killed workers PoisonThreshold times: parked in MAIL_POISON, not retried. */
  | { type: 'Poisoned'; stage: string; crashes: number }
  /** Resubmitted from the Safety Net by an administrator. */
  | { type: 'Resubmitted'; source: 'SAFETYNET'; recipients: string[] }
  | { type: 'DsnSuppressed'; kind: 'failure' | 'delay'; recipients: string[]; reason: string };

export async function recordEvent(bus: Bus, messageId: string, event: MessageEvent, node: string): Promise<void> {
  await bus.js.publish(SUBJECTS.event(messageId), encode({ ...event, at: Date.now(), node }, { ignoreUndefined: true }));
}
