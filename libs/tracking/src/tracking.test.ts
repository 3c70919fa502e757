import { describe, expect, it } from 'vitest';
import type { MessageEvent, StoredEvent } from '@transit/bus';
import { msgtrkFileName, msgtrkFiles, msgtrkHeader, msgtrkLine, trackingCsv, trackingJson, trackingTable } from './format.ts';
import { TrackingProjection, projectMessage } from './project.ts';
import { matchesRow, parseTrackingTime } from './query.ts';
import { MSGTRK_FIELDS, TRACKING_FIELDS, type TrackingRow } from './rows.ts';

const T0 = Date.parse('2026-11-24T10:00:00.000Z');
let seq = 0;
const at = (event: MessageEvent, offsetMs: number, node = 'hub1'): StoredEvent => ({ ...event, at: T0 + offsetMs, node, seq: ++seq });

const received = (recipients: string[], extra: Partial<Extract<MessageEvent, { type: 'Received' }>> = {}): MessageEvent => ({
  type: 'Received',
  source: 'SMTP',
  connector: 'Default Frontend',
  sender: 'x@example.org',
  recipients,
  size: 1234,
  messageId: '<abc@example.org>',
  subject: 'Quarterly report',
  internalId: 42,
  clientIp: '127.0.0.1',
  clientHostname: 'client.example.org',
  queuedAt: T0 + 5,
  ...extra,
});

/** One row per line: the columns a reader checks first. */
const brief = (rows: TrackingRow[]) =>
  rows.map((r) => `${r.EventId}/${r.Source} ${r.Recipients.join(',')}${r.RelatedRecipientAddress ? ` <- ${r.RelatedRecipientAddress}` : ''}`);

describe('projection: event → rows', () => {
  it('shows a local delivery as RECEIVE → SUBMIT → RESOLVE → DELIVER, every row carrying the message’s facts', () => {
    const rows = projectMessage('M1', [
      at(received(['alice.smith@contoso.test', 'bob@contoso.test']), 10, 'fe1'),
      at(
        {
          type: 'Submitted',
          source: 'QUEUE',
          recipients: ['alice@contoso.test', 'bob@contoso.test'],
          resolved: [{ address: 'alice@contoso.test', original: 'alice.smith@contoso.test' }],
        },
        20,
      ),
      at({ type: 'Routed', hop: 'mailbox:DB01', recipients: ['alice@contoso.test', 'bob@contoso.test'] }, 21),
      at({ type: 'Delivered', hop: 'mailbox:DB01', recipients: ['alice@contoso.test', 'bob@contoso.test'] }, 30, 'mbx1'),
    ]);
    expect(brief(rows)).toEqual([
      'RECEIVE/SMTP alice.smith@contoso.test,bob@contoso.test',
      'SUBMIT/QUEUE alice@contoso.test,bob@contoso.test',
      'RESOLVE/ROUTING alice@contoso.test <- alice.smith@contoso.test',
      'RESOLVE/ROUTING bob@contoso.test',
      'DELIVER/STOREDRIVER alice@contoso.test,bob@contoso.test',
    ]);
    expect(rows[0]).toEqual({
      Timestamp: '2026-11-24T10:00:00.005Z',
      ClientIp: '127.0.0.1',
      ClientHostname: 'client.example.org',
      ServerHostname: 'fe1',
      ConnectorId: 'fe1\\Default Frontend',
      Source: 'SMTP',
      EventId: 'RECEIVE',
      InternalMessageId: 42,
      MessageId: '<abc@example.org>',
      NetworkMessageId: 'M1',
      Recipients: ['alice.smith@contoso.test', 'bob@contoso.test'],
      RecipientStatus: [],
      TotalBytes: 1234,
      RecipientCount: 2,
      MessageSubject: 'Quarterly report',
      Sender: 'x@example.org',
      ReturnPath: 'x@example.org',
    });
    for (const row of rows)
      expect(row).toMatchObject({
        Sender: 'x@example.org',
        MessageId: '<abc@example.org>',
        InternalMessageId: 42,
        NetworkMessageId: 'M1',
        MessageSubject: 'Quarterly report',
      });
    expect(rows[4]).toMatchObject({ ServerHostname: 'mbx1', Timestamp: '2026-11-24T10:00:00.030Z', RecipientCount: 2 });
  });

  it('gives a Submitted that carries its Reception the same rows as a Received and a Submitted apart', () => {
    const submitted = {
      type: 'Submitted' as const,
      source: 'QUEUE' as const,
      recipients: ['alice@contoso.test', 'bob@contoso.test'],
      resolved: [{ address: 'alice@contoso.test', original: 'alice.smith@contoso.test' }],
      routes: [{ hop: 'mailbox:DB01', recipients: ['alice@contoso.test', 'bob@contoso.test'] }],
    };
    const { type: _type, ...reception } = received(['alice.smith@contoso.test', 'bob@contoso.test']) as Extract<MessageEvent, { type: 'Received' }>;
    const delivered = at({ type: 'Delivered', hop: 'mailbox:DB01', recipients: ['alice@contoso.test', 'bob@contoso.test'] }, 30, 'mbx1');
    // The hub (hub1) writes the one event; the frontend fe1 accepted the message.
    const together = projectMessage('M1', [at({ ...submitted, received: { ...reception, acceptedBy: 'fe1' } }, 20), delivered]);
    const apart = projectMessage('M1', [at(received(['alice.smith@contoso.test', 'bob@contoso.test']), 10, 'fe1'), at(submitted, 20), delivered]);
    expect(together).toEqual(apart);
    expect(together[0]).toMatchObject({
      EventId: 'RECEIVE',
      ServerHostname: 'fe1',
      ConnectorId: 'fe1\\Default Frontend',
      Timestamp: '2026-11-24T10:00:00.005Z',
    });
    expect(together[1]).toMatchObject({ EventId: 'SUBMIT', ServerHostname: 'hub1', Timestamp: '2026-11-24T10:00:00.020Z' });
  });

  it('ends remote mail in SEND with its send connector, and shows DEFER, FAIL and the DSN with their reasons', () => {
    const rows = projectMessage('M2', [
      at(received(['a@example.net', 'b@example.net']), 10),
      at({ type: 'Submitted', source: 'QUEUE', recipients: ['a@example.net', 'b@example.net'], resolved: [] }, 20),
      at({ type: 'Routed', hop: 'smtp:Internet:example.net', recipients: ['a@example.net', 'b@example.net'], connector: 'Internet' }, 21),
      at(
        {
          type: 'Deferred',
          hop: 'mail.deliver.remote.internet_example_net',
          recipients: ['a@example.net', 'b@example.net'],
          reason: '451 4.4.1 later',
          nextAttempt: T0 + 60_000,
        },
        30,
      ),
      at({ type: 'Delivered', hop: 'mail.deliver.remote.internet_example_net', recipients: ['a@example.net'] }, 40),
      at({ type: 'Failed', hop: 'mail.deliver.remote.internet_example_net', recipients: ['b@example.net'], reason: '550 5.1.1 no such user' }, 41),
      at({ type: 'DsnGenerated', kind: 'failure', recipients: ['b@example.net'], dsnId: 'M2-failure-x' }, 42),
      at({ type: 'DsnSuppressed', kind: 'delay', recipients: ['b@example.net'], reason: 'NOTIFY excludes it' }, 43),
    ]);
    expect(brief(rows)).toEqual([
      'RECEIVE/SMTP a@example.net,b@example.net',
      'SUBMIT/QUEUE a@example.net,b@example.net',
      'RESOLVE/ROUTING a@example.net,b@example.net',
      'DEFER/SMTP a@example.net,b@example.net',
      'SEND/SMTP a@example.net',
      'FAIL/SMTP b@example.net',
      'DSN/DSN b@example.net',
    ]);
    expect(rows[3]!.RecipientStatus).toEqual(['451 4.4.1 later', '451 4.4.1 later']);
    expect(rows[4]).toMatchObject({ ConnectorId: 'Internet', EventId: 'SEND' });
    expect(rows[5]!.RecipientStatus).toEqual(['550 5.1.1 no such user']);
    expect(rows[6]).toMatchObject({ Reference: ['M2-failure-x'], MessageInfo: 'failure' });
  });

  it('takes the send connector from the routes Submitted carries, as from a Routed', () => {
    const rows = projectMessage('M2b', [
      at(received(['a@example.net']), 10),
      at(
        {
          type: 'Submitted',
          source: 'QUEUE',
          recipients: ['a@example.net'],
          resolved: [],
          routes: [{ hop: 'smtp:Internet:example.net', recipients: ['a@example.net'], connector: 'Internet' }],
        },
        20,
      ),
      at({ type: 'Delivered', hop: 'mail.deliver.remote.internet_example_net', recipients: ['a@example.net'] }, 40),
    ]);
    expect(brief(rows)).toEqual(['RECEIVE/SMTP a@example.net', 'SUBMIT/QUEUE a@example.net', 'RESOLVE/ROUTING a@example.net', 'SEND/SMTP a@example.net']);
    expect(rows[3]).toMatchObject({ ConnectorId: 'Internet', EventId: 'SEND' });
  });

  it('maps the categorizer’s failures to ROUTING and the rarer events to their Exchange ids', () => {
    const rows = projectMessage('M3', [
      at(
        received(['nobody@contoso.test', 'alice@contoso.test'], { source: 'PICKUP', connector: undefined, clientIp: undefined, clientHostname: undefined }),
        10,
      ),
      at({ type: 'Failed', hop: 'categorizer', recipients: ['nobody@contoso.test'], reason: '5.1.10 RESOLVER.ADR.RecipientNotFound' }, 20),
      at({ type: 'DuplicateSuppressed', hop: 'mailbox:DB01', recipients: ['alice@contoso.test'] }, 30),
      at({ type: 'DuplicateSuppressed', hop: 'mail.deliver.remote.x', recipients: ['alice@contoso.test'] }, 31),
      at({ type: 'Resubmitted', source: 'SAFETYNET', recipients: ['alice@contoso.test'] }, 40),
      at({ type: 'Poisoned', stage: 'categorizer', crashes: 2 }, 50),
    ]);
    expect(brief(rows)).toEqual([
      'RECEIVE/PICKUP nobody@contoso.test,alice@contoso.test',
      'FAIL/ROUTING nobody@contoso.test',
      'DUPLICATEDELIVER/STOREDRIVER alice@contoso.test',
      'DUPLICATEDELIVER/REDUNDANCY alice@contoso.test',
      'RESUBMIT/SAFETYNET alice@contoso.test',
      'POISONMESSAGE/POISONMESSAGE nobody@contoso.test,alice@contoso.test',
    ]);
    expect(rows[0]!.ConnectorId).toBeUndefined();
    expect(rows[0]!.ClientIp).toBeUndefined();
    expect(rows[5]!.MessageInfo).toBe('categorizer; crashes=2');
  });

  it('puts RECEIVE first when the hub’s Submitted was appended before Received, across interleaved messages', () => {
    const p = new TrackingProjection();
    const submitted: MessageEvent = { type: 'Submitted', source: 'QUEUE', recipients: ['a@contoso.test'], resolved: [] };
    expect(p.push('A', at(submitted, 20))).toEqual([]);
    expect(brief(p.push('B', at(received(['b@contoso.test'], { subject: 'B' }), 21)))).toEqual(['RECEIVE/SMTP b@contoso.test']);
    const rowsA = p.push('A', at(received(['a@contoso.test'], { subject: 'A' }), 22));
    expect(brief(rowsA)).toEqual(['RECEIVE/SMTP a@contoso.test', 'SUBMIT/QUEUE a@contoso.test', 'RESOLVE/ROUTING a@contoso.test']);
    expect(rowsA.map((r) => r.MessageSubject)).toEqual(['A', 'A', 'A']);
    // The RECEIVE time is when the submit queue acknowledged the message, before the hub took it.
    expect(rowsA[0]!.Timestamp < rowsA[1]!.Timestamp).toBe(true);
    expect(p.flush()).toEqual([]);
  });

  it('lets rows of a message without a Received event out at flush, without its facts', () => {
    const p = new TrackingProjection();
    expect(p.push('C', at({ type: 'Delivered', hop: 'mailbox:DB01', recipients: ['a@contoso.test'] }, 10))).toEqual([]);
    const rows = p.flush();
    expect(brief(rows)).toEqual(['DELIVER/STOREDRIVER a@contoso.test']);
    expect(rows[0]!.Sender).toBeUndefined();
    expect(p.flush()).toEqual([]);
  });
});

describe('filters', () => {
  const rows = projectMessage('M4', [
    at(received(['Alice@contoso.test']), 10),
    at({ type: 'Submitted', source: 'QUEUE', recipients: ['alice@contoso.test'], resolved: [] }, 20),
    at({ type: 'Delivered', hop: 'mailbox:DB01', recipients: ['alice@contoso.test'] }, 30),
  ]);
  const ids = (q: Parameters<typeof matchesRow>[0]) => rows.filter((r) => matchesRow(q, r)).map((r) => r.EventId);
  it.each([
    [{}, ['RECEIVE', 'SUBMIT', 'RESOLVE', 'DELIVER']],
    [{ sender: 'X@Example.org' }, ['RECEIVE', 'SUBMIT', 'RESOLVE', 'DELIVER']],
    [{ sender: 'y@example.org' }, []],
    [{ recipients: ['nobody@x', 'ALICE@contoso.test'] }, ['RECEIVE', 'SUBMIT', 'RESOLVE', 'DELIVER']],
    [{ messageId: 'abc@example.org' }, ['RECEIVE', 'SUBMIT', 'RESOLVE', 'DELIVER']],
    [{ messageId: '<ABC@example.org>' }, ['RECEIVE', 'SUBMIT', 'RESOLVE', 'DELIVER']],
    [{ messageId: '<other@example.org>' }, []],
    [{ internalMessageId: 42 }, ['RECEIVE', 'SUBMIT', 'RESOLVE', 'DELIVER']],
    [{ internalMessageId: 43 }, []],
    [{ networkMessageId: 'm4' }, ['RECEIVE', 'SUBMIT', 'RESOLVE', 'DELIVER']],
    [{ eventId: 'DELIVER' as const }, ['DELIVER']],
    [{ source: 'QUEUE' as const }, ['SUBMIT']],
    [{ subject: 'quarterly' }, ['RECEIVE', 'SUBMIT', 'RESOLVE', 'DELIVER']],
    [{ subject: 'annual' }, []],
    [{ start: new Date(T0 + 20) }, ['SUBMIT', 'RESOLVE', 'DELIVER']],
    [{ end: new Date(T0 + 20) }, ['RECEIVE', 'SUBMIT', 'RESOLVE']],
  ])('%o → %o', (q, expected) => {
    expect(ids(q)).toEqual(expected);
  });
  it('reads ISO and Exchange’s month-first times, and nothing else', () => {
    expect(parseTrackingTime('2026-11-24T10:00:00Z')?.toISOString()).toBe('2026-11-24T10:00:00.000Z');
    expect(parseTrackingTime('11/24/2026 10:00:00')?.getMonth()).toBe(10);
    expect(parseTrackingTime('yesterday')).toBeUndefined();
    expect(parseTrackingTime('2026-13-45')).toBeUndefined();
  });
});

describe('formatting', () => {
  const [receive, deliver] = projectMessage('M5', [
    at(received(['a@contoso.test', 'b@contoso.test'], { subject: 'Hi, "you"' }), 10),
    at({ type: 'Delivered', hop: 'mailbox:DB01', recipients: ['a@contoso.test', 'b@contoso.test'], response: '250 2.0.0 OK' }, 30),
  ]) as [TrackingRow, TrackingRow];

  it('writes JSON with every property in Get-MessageTrackingLog’s order', () => {
    const [first] = JSON.parse(trackingJson([receive])) as Array<Record<string, unknown>>;
    expect(Object.keys(first!)).toEqual([...TRACKING_FIELDS]);
    expect(first).toMatchObject({ EventId: 'RECEIVE', ServerIp: null, Recipients: ['a@contoso.test', 'b@contoso.test'] });
  });

  it('writes CSV with a header of property names, `;` between values and quoted commas and quotes', () => {
    const lines = trackingCsv([receive, deliver]).split('\r\n');
    expect(lines[0]).toBe(TRACKING_FIELDS.join(','));
    expect(lines[1]).toBe(
      '2026-11-24T10:00:00.005Z,127.0.0.1,client.example.org,,hub1,,hub1\\Default Frontend,SMTP,RECEIVE,42,<abc@example.org>,M5,a@contoso.test;b@contoso.test,,1234,2,,,"Hi, ""you""",x@example.org,x@example.org,,',
    );
    expect(lines[2]).toContain(',250 2.0.0 OK;250 2.0.0 OK,');
    expect(lines[3]).toBe('');
  });

  it('prints a table with the time and Exchange’s default columns', () => {
    expect(trackingTable([deliver]).split('\n')).toEqual([
      'Timestamp                EventId Source      Sender        Recipients                       MessageSubject',
      '---------                ------- ------      ------        ----------                       --------------',
      '2026-11-24T10:00:00.030Z DELIVER STOREDRIVER x@example.org {a@contoso.test, b@contoso.test} Hi, "you"',
      '',
    ]);
    expect(trackingTable([])).toBe('no matching tracking events\n');
  });

  it('writes daily MSGTRK files with Exchange’s header lines', () => {
    expect(msgtrkFileName(new Date('2026-11-24T23:59:59Z'))).toBe('MSGTRK20261124-1.LOG');
    expect(msgtrkHeader(new Date('2026-11-24T10:00:00Z'), { version: '1.2.3' }).split('\r\n')).toEqual([
      '#Software: Transit',
      '#Version: 1.2.3',
      '#Log-type: Message Tracking Log',
      '#Date: 2026-11-24T10:00:00.000Z',
      `#Fields: date-time,client-ip,client-hostname,server-ip,server-hostname,source-context,connector-id,source,event-id,internal-message-id,message-id,network-message-id,recipient-address,recipient-status,total-bytes,recipient-count,related-recipient-address,reference,message-subject,sender-address,return-path,message-info,directionality,tenant-id,original-client-ip,original-server-ip,custom-data,transport-traffic-type,log-id,schema-version`,
      '',
    ]);
    const line = msgtrkLine(deliver);
    expect(line.split(',')).toHaveLength(MSGTRK_FIELDS.length + 1); // the subject's comma is inside quotes
    expect(
      line.startsWith(
        '2026-11-24T10:00:00.030Z,,,,hub1,,,STOREDRIVER,DELIVER,42,<abc@example.org>,M5,a@contoso.test;b@contoso.test,250 2.0.0 OK;250 2.0.0 OK,1234,2,,,"Hi, ""you""",x@example.org,x@example.org,,,,,,,,,\r\n',
      ),
    ).toBe(true);
  });

  it('splits files by UTC day and rolls to the next number before the size limit', () => {
    const nextDay = { ...deliver, Timestamp: '2026-11-25T00:00:01.000Z' };
    const files = msgtrkFiles([receive, deliver, nextDay]);
    expect([...files.keys()]).toEqual(['MSGTRK20261124-1.LOG', 'MSGTRK20261125-1.LOG']);
    expect(
      files
        .get('MSGTRK20261124-1.LOG')!
        .split('\r\n')
        .filter((l) => l && !l.startsWith('#')),
    ).toHaveLength(2);
    expect(files.get('MSGTRK20261125-1.LOG')).toContain('#Date: 2026-11-25T00:00:01.000Z');
    const small = msgtrkFiles([receive, deliver], { maxFileSize: msgtrkHeader(new Date()).length + msgtrkLine(receive).length + 1 });
    expect([...small.keys()]).toEqual(['MSGTRK20261124-1.LOG', 'MSGTRK20261124-2.LOG']);
    expect(small.get('MSGTRK20261124-2.LOG')!.startsWith('#Software: Transit\r\n')).toBe(true);
  });
});
