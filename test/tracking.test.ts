/**
 * Message tracking end to end: real mail through a cluster, then the tracking rows the
 * event log projects to, read as transitctl reads them (in process, and as the CLI child
 * process with --json, --csv and an EMS Get-MessageTrackingLog line).
 */
import { execFile } from 'node:child_process';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { connectBus, loadMessageEvents } from '@transit/bus';
import { smtpTranscript, waitFor } from '@transit/testkit';
import { TRACKING_FIELDS, readTracking, type TrackingQuery, type TrackingRow } from '@transit/tracking';
import { useHarness } from './use-harness.ts';

const run = promisify(execFile);
const h = useHarness({ rejectRecipient: (rcpt) => (rcpt.startsWith('bounce') ? { code: 550, message: '5.1.1 no such user here' } : undefined) });

const transitctl = (args: string[]) =>
  run(process.execPath, [join(import.meta.dirname, '../tools/transitctl/src/main.ts'), ...args], {
    env: { ...process.env, NATS_URL: h.cluster.natsUrl },
  }).catch((e: { stdout: string; stderr: string; code: number }) => ({ stdout: e.stdout, stderr: e.stderr, code: e.code }));

async function track(query: TrackingQuery): Promise<TrackingRow[]> {
  const bus = await connectBus(h.cluster.natsUrl.split(','), 'tracking-test', 'once');
  try {
    return await readTracking(bus, query);
  } finally {
    await bus.close();
  }
}

/** The message's rows once they include `last` (an event id), as `EVENTID/SOURCE` plus the rows. */
async function rowsUntil(messageId: string, last: (rows: TrackingRow[]) => boolean): Promise<TrackingRow[]> {
  return waitFor(
    async () => {
      const rows = await track({ messageId });
      return last(rows) ? rows : undefined;
    },
    { timeoutMs: 20_000, what: `tracking rows of ${messageId}` },
  );
}
const steps = (rows: TrackingRow[]) => rows.map((r) => `${r.EventId}/${r.Source}`);

async function send(opts: { localAddress?: string; from: string; to: string[]; messageId: string; subject: string }): Promise<number> {
  const body = `From: ${opts.from}\r\nTo: ${opts.to.join(', ')}\r\nSubject: ${opts.subject}\r\nMessage-ID: ${opts.messageId}\r\n\r\nbody\r\n.\r\n`;
  const replies = await smtpTranscript({
    host: '127.0.0.1',
    port: h.cluster.port(25),
    ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
    lines: ['EHLO client.example', `MAIL FROM:<${opts.from}>`, ...opts.to.map((r) => `RCPT TO:<${r}>`), 'DATA', `DATA-BODY:${body}`, 'QUIT'],
  });
  const queued = replies.find((r) => r.startsWith('250 2.6.0'));
  const internalId = /InternalId=(\d+)/.exec(queued ?? '')?.[1];
  if (!internalId) throw new Error(`not queued: ${replies.join(' | ')}`);
  return Number(internalId);
}

describe('message tracking', () => {
  const local = { messageId: `<local-${Date.now()}@example.org>`, subject: `Tracking local ${Date.now()}` };
  const remote = { messageId: `<remote-${Date.now()}@contoso.test>`, subject: `Tracking remote ${Date.now()}` };

  it('shows a delivered local message as RECEIVE → SUBMIT → RESOLVE → DELIVER', async () => {
    const internalId = await send({ from: 'x@example.org', to: ['alice.smith@contoso.test'], ...local });
    const rows = await rowsUntil(local.messageId, (r) => r.some((x) => x.EventId === 'DELIVER'));
    expect(steps(rows)).toEqual(['RECEIVE/SMTP', 'SUBMIT/QUEUE', 'RESOLVE/ROUTING', 'DELIVER/STOREDRIVER']);
    const [receive, submit, resolve, deliver] = rows as [TrackingRow, TrackingRow, TrackingRow, TrackingRow];
    expect(receive).toMatchObject({ ClientIp: '127.0.0.1', ClientHostname: 'client.example', Recipients: ['alice.smith@contoso.test'], RecipientCount: 1 });
    expect(receive.ConnectorId).toMatch(/^\S+\\Default Frontend$/);
    expect(resolve).toMatchObject({ Recipients: ['alice@contoso.test'], RelatedRecipientAddress: 'alice.smith@contoso.test' });
    expect(submit.Recipients).toEqual(['alice@contoso.test']);
    expect(deliver.Recipients).toEqual(['alice@contoso.test']);
    for (const row of rows) {
      expect(row).toMatchObject({
        Sender: 'x@example.org',
        ReturnPath: 'x@example.org',
        MessageId: local.messageId,
        MessageSubject: local.subject,
        InternalMessageId: internalId,
        NetworkMessageId: receive.NetworkMessageId,
      });
      expect(row.TotalBytes).toBeGreaterThan(0);
    }
    expect(rows.map((r) => r.Timestamp)).toEqual(rows.map((r) => r.Timestamp).sort());
    // One append for RECEIVE, SUBMIT, RESOLVE and the route: the frontend wrote no event, the hub's Submitted carries the Reception.
    const bus = await connectBus(h.cluster.natsUrl.split(','), 'tracking-test', 'once');
    const events = await loadMessageEvents(bus, receive.NetworkMessageId).finally(() => bus.close());
    expect(events.map((e) => e.type)).toEqual(['Submitted', 'Delivered']);
    expect(events[0]).toMatchObject({
      received: { internalId, sender: 'x@example.org', connector: 'Default Frontend' },
      routes: [{ recipients: ['alice@contoso.test'] }],
    });
  });

  it('ends a remote message in SEND, and shows a refused recipient’s FAIL and DSN', async () => {
    await send({ localAddress: '127.0.0.2', from: 'bob@contoso.test', to: ['fine@example.net', 'bounce@example.net'], ...remote });
    const rows = await rowsUntil(remote.messageId, (r) => ['SEND', 'FAIL', 'DSN'].every((id) => r.some((x) => x.EventId === id)));
    expect(steps(rows).slice(0, 3)).toEqual(['RECEIVE/SMTP', 'SUBMIT/QUEUE', 'RESOLVE/ROUTING']);
    expect(rows[0]!.ConnectorId).toMatch(/\\Application Relay$/);
    const byId = (id: string) => rows.find((r) => r.EventId === id)!;
    expect(byId('SEND')).toMatchObject({ Source: 'SMTP', ConnectorId: 'Sink', Recipients: ['fine@example.net'] });
    expect(byId('FAIL')).toMatchObject({ Source: 'SMTP', Recipients: ['bounce@example.net'] });
    expect(byId('FAIL').RecipientStatus[0]).toMatch(/^550 5\.1\.1 no such user here/);
    expect(byId('DSN')).toMatchObject({ Source: 'DSN', Recipients: ['bounce@example.net'], MessageInfo: 'failure' });
    // The notification is a message of its own: its RECEIVE has source DSN, to the original sender.
    const dsnId = byId('DSN').Reference![0]!;
    const dsnRows = await waitFor(
      async () => {
        const r = await track({ networkMessageId: dsnId });
        return r.some((x) => x.EventId === 'DELIVER') ? r : undefined;
      },
      { timeoutMs: 20_000, what: 'the DSN delivered' },
    );
    expect(steps(dsnRows)).toEqual(['RECEIVE/DSN', 'SUBMIT/QUEUE', 'RESOLVE/ROUTING', 'DELIVER/STOREDRIVER']);
    expect(dsnRows[0]).toMatchObject({ Sender: '', Recipients: ['bob@contoso.test'] });
  });

  it('filters as Get-MessageTrackingLog does', async () => {
    expect(steps(await track({ recipients: ['fine@example.net'], eventId: 'SEND' }))).toEqual(['SEND/SMTP']);
    expect((await track({ subject: local.subject.toUpperCase().slice(9) })).length).toBe(4);
    expect(await track({ sender: 'bob@contoso.test', eventId: 'DELIVER', subject: local.subject })).toEqual([]);
    expect(await track({ messageId: local.messageId, resultSize: 2 })).toHaveLength(2);
    expect(await track({ messageId: local.messageId, start: new Date(Date.now() + 3_600_000) })).toEqual([]);
  });

  it('prints JSON and CSV in Exchange’s field order from the transitctl command line', async () => {
    const json = await transitctl(['track', '--message-id', local.messageId, '--json']);
    const objects = JSON.parse(json.stdout) as Array<Record<string, unknown>>;
    expect(objects.map((o) => o.EventId)).toEqual(['RECEIVE', 'SUBMIT', 'RESOLVE', 'DELIVER']);
    expect(Object.keys(objects[0]!)).toEqual([...TRACKING_FIELDS]);
    expect(objects[3]).toMatchObject({ Sender: 'x@example.org', Recipients: ['alice@contoso.test'], MessageId: local.messageId });

    const csv = await transitctl(['track', '--recipient', 'bounce@example.net', '--event', 'fail', '--csv', '--subject', 'tracking remote']);
    const lines = csv.stdout.trimEnd().split('\r\n');
    expect(lines[0]).toBe(TRACKING_FIELDS.join(','));
    expect(lines).toHaveLength(2);
    expect(lines[1]).toContain(',SMTP,FAIL,');
    expect(lines[1]).toContain(',bounce@example.net,550 5.1.1 no such user here');

    const table = await transitctl(['track', '--message-id', remote.messageId, '--event', 'SEND']);
    expect(table.stdout.split('\n')[0]).toMatch(/^Timestamp\s+EventId\s+Source\s+Sender\s+Recipients\s+MessageSubject$/);
    expect(table.stdout).toMatch(/ SEND {4}SMTP {3}bob@contoso\.test \{fine@example\.net\} Tracking remote/);
  });

  it('writes daily MSGTRK files with --log-dir', async () => {
    const dir = join(h.dir, 'msgtrk');
    const r = await transitctl(['track', '--message-id', local.messageId, '--log-dir', dir]);
    expect(r.stderr).toContain('wrote 1 message tracking log file(s)');
    const [name] = await readdir(dir);
    expect(name).toMatch(/^MSGTRK\d{8}-1\.LOG$/);
    const lines = (await readFile(join(dir, name!), 'utf8')).split('\r\n');
    expect(lines.slice(0, 3)).toEqual(['#Software: Transit', '#Version: 0.1.0', '#Log-type: Message Tracking Log']);
    expect(lines[4]).toMatch(/^#Fields: date-time,client-ip,client-hostname,server-ip,/);
    expect(lines.slice(5).filter(Boolean)).toHaveLength(4);
  });

  it('names a bad option or value in the error', async () => {
    const unknown = await transitctl(['track', '--recipients', 'x@y']);
    expect(unknown).toMatchObject({ code: 1 });
    expect(unknown.stderr).toMatch(/^transitctl: track: Unknown option '--recipients' \(options: --sender, --recipient, /);
    const badEvent = await transitctl(['track', '--event', 'DELIVERED']);
    expect(badEvent.stderr).toMatch(/--event must be one of RECEIVE, SUBMIT, .* \(got "DELIVERED"\)/);
    expect((await transitctl(['track', '--limit', 'ten'])).stderr).toMatch(/--limit must be a whole number from 1, or unlimited \(got "ten"\)/);
  });

  it('runs Get-MessageTrackingLog through transitctl ems', async () => {
    const r = await transitctl([
      'ems',
      `Get-MessageTrackingLog -Recipients fine@example.net -EventId SEND -MessageSubject "${remote.subject}" -Start "${new Date(Date.now() - 3_600_000).toISOString()}" -ResultSize 10`,
    ]);
    expect(r.stdout.split('\n').slice(0, 3)).toEqual([
      'EventId Source Sender           Recipients         MessageSubject',
      '------- ------ ------           ----------         --------------',
      `SEND    SMTP   bob@contoso.test {fine@example.net} ${remote.subject}`,
    ]);
    const fl = await transitctl([
      'ems',
      `Get-MessageTrackingLog -MessageId "${local.messageId}" -EventId DELIVER | Format-List EventId,Recipients,ConnectorId`,
    ]);
    expect(fl.stdout).toBe('EventId     : DELIVER\nRecipients  : {alice@contoso.test}\nConnectorId :\n');
    const bad = await transitctl(['ems', 'Get-MessageTrackingLog -EventId DELIVERED']);
    expect(bad.stderr).toMatch(/Get-MessageTrackingLog: -EventId DELIVERED is not valid: expected one of RECEIVE, /);
  });
});
