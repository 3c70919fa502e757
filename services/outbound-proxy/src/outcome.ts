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

/** RFC 3461 parameters as nodemailer sends them: RET and ENVID with MAIL FROM, NOTIFY and ORCPT with each RCPT TO. */
export type DsnParams = { ret?: 'FULL' | 'HDRS'; envid?: string; notify?: string; orcpt?: string };

/** A part of a work item's recipients that goes out in one SMTP transaction, with the DSN parameters they share. */
export type SendGroup = { recipients: string[]; dsn?: DsnParams };

/**
 * The transactions a work item goes out in, so that the next hop gets each recipient's DSN
 * parameters (NOTIFY, ORCPT) and the message's (RET, ENVID) as the client gave them. nodemailer
 * sends one NOTIFY and one ORCPT for every RCPT of a transaction, so recipients that differ in
 * them go in transactions of their own, in the order of their first recipient; recipients
 * without any (the common case) share one. A next hop that does not offer DSN gets none of them
 * (nodemailer leaves them out). Pure.
 */
export function sendGroups(
  recipients: ReadonlyArray<{ address: string; notify?: readonly string[] | undefined; original?: string | undefined }>,
  message: { ret?: 'FULL' | 'HDRS' | undefined; envid?: string | undefined } | undefined,
): SendGroup[] {
  const groups = new Map<string, SendGroup>();
  for (const r of recipients) {
    const notify = r.notify?.length ? r.notify.join(',') : undefined;
    const key = JSON.stringify([notify ?? null, r.original ?? null]);
    let group = groups.get(key);
    if (!group) {
      const dsn: DsnParams = {
        ...(message?.ret ? { ret: message.ret } : {}),
        ...(message?.envid ? { envid: message.envid } : {}),
        ...(notify ? { notify } : {}),
        ...(r.original ? { orcpt: r.original } : {}),
      };
      group = { recipients: [], ...(Object.keys(dsn).length ? { dsn } : {}) };
      groups.set(key, group);
    }
    group.recipients.push(r.address);
  }
  return [...groups.values()];
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
