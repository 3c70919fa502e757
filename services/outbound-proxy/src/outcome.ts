/**
 * What a remote SMTP answer means for each recipient, and when to try again. Pure.
 * 5xx is permanent; 4xx, connection failures and timeouts are transient and retried on the
 * transport's schedule until MessageExpirationTimeout, then failed as 4.4.7 (expired).
 */
export type RecipientResult = { address: string; status: 'delivered' | 'transient' | 'permanent'; response: string; remoteMta?: string };

export type SendReport = { accepted: string[]; rejected: Array<{ address: string; code: number | undefined; response: string }> };

export function classifyReport(recipients: string[], report: SendReport): RecipientResult[] {
  const rejected = new Map(report.rejected.map((r) => [r.address.toLowerCase(), r]));
  return recipients.map((address) => {
    const r = rejected.get(address.toLowerCase());
    if (!r) return { address, status: 'delivered', response: 'accepted' };
    return { address, status: r.code !== undefined && r.code >= 500 ? 'permanent' : 'transient', response: r.response };
  });
}

/** A failure before any recipient was answered (connection refused, timeout, 4xx/5xx at MAIL/DATA). */
export function classifyFailure(recipients: string[], code: number | undefined, response: string): RecipientResult[] {
  const status = code !== undefined && code >= 500 ? 'permanent' : 'transient';
  return recipients.map((address) => ({ address, status, response }));
}

export type RetryDecision = { kind: 'retry'; notBefore: number } | { kind: 'expire' };

/**
 * After a transient failure at `now`: retry on the schedule, the last attempt at the moment the
 * message expires when the next step would pass it, and expire once the message is as old as
 * MessageExpirationTimeout. (Expiring as soon as the next step would pass the limit gave up one
 * interval early: a 2-day limit with a 1-hour step skipped up to the last hour of retries.)
 */
export function nextAttempt(schedule: readonly number[], attempt: number, receivedAt: number, now: number, expirationSeconds: number): RetryDecision {
  const expiresAt = receivedAt + expirationSeconds * 1000;
  if (now >= expiresAt) return { kind: 'expire' };
  const delay = schedule[Math.min(attempt, schedule.length - 1)]! * 1000;
  return { kind: 'retry', notBefore: Math.min(now + delay, expiresAt) };
}
