import { describe, expect, it } from 'vitest';
import { foldMessage, type Hold, type MessageEvent, type StoredEvent } from '@transit/bus';
import { findQueue, projectMessages, projectQueues, queueRates, subjectOfIdentity, type PendingItem, type QueueInputs, type RateSample } from './project.ts';
import { FilterError, parseMessageFilter, parseQueueFilter } from './filter.ts';
import { hopSubject, rateSamples } from './read.ts';

const NOW = Date.parse('2026-11-24T10:00:00Z');
const REMOTE = 'mail.deliver.remote.internet_fabrikam_test';
const MAILBOX = 'mail.deliver.mailbox.db01';

let seq = 0;
const item = (id: string, subject: string, over: Partial<PendingItem> = {}): PendingItem => ({
  stream: subject === 'mail.submit' ? 'MAIL_SUBMIT' : 'MAIL_DELIVER',
  seq: ++seq,
  subject,
  envelope: {
    id,
    messageId: `<${id}@example.org>`,
    sender: 'x@example.org',
    recipients: [{ address: `${id}@fabrikam.test` }],
    size: 100,
    receivedAt: NOW - 60_000,
  },
  ...(subject.startsWith('mail.deliver.remote')
    ? { hop: { type: 'smtp' as const, connector: 'Internet', domain: 'fabrikam.test', port: 25 } }
    : subject.startsWith('mail.deliver.mailbox')
      ? { hop: { type: 'mailbox' as const, database: 'DB01' } }
      : {}),
  attempt: 0,
  notBefore: 0,
  ...over,
});
const events = (id: string, list: MessageEvent[]) =>
  foldMessage(
    id,
    list.map((e, i): StoredEvent => ({ ...e, at: NOW - 1000 + i, node: 'n1', seq: i + 1 })),
  );

function inputs(over: Partial<QueueInputs> = {}): QueueInputs {
  return { now: NOW, submit: [], deliver: [], poison: [], counts: {}, safetyNetCount: 0, unreachable: [], holds: new Map(), states: new Map(), ...over };
}

describe('projectQueues', () => {
  it('lists Submission, one queue per next hop, Unreachable, Poison and SafetyNet with Exchange identities', () => {
    const rows = projectQueues(
      inputs({
        submit: [item('s1', 'mail.submit')],
        deliver: [item('m1', MAILBOX), item('r1', REMOTE)],
        counts: { 'mail.submit': 1, [MAILBOX]: 1, [REMOTE]: 1 },
        safetyNetCount: 7,
      }),
    );
    expect(rows.map((r) => [r.Identity, r.DeliveryType, r.NextHopDomain, r.Status, r.MessageCount])).toEqual([
      ['Transit\\Submission', 'Undefined', 'Submission', 'Active', 1],
      ['Transit\\mailbox.db01', 'SmtpDeliveryToMailbox', 'DB01', 'Active', 1],
      ['Transit\\remote.internet_fabrikam_test', 'DnsConnectorDelivery', 'fabrikam.test', 'Active', 1],
      ['Transit\\Unreachable', 'Undefined', 'Unreachable', 'Ready', 0],
      ['Transit\\Poison', 'Undefined', 'Poison', 'Ready', 0],
      ['Transit\\SafetyNet', 'Undefined', 'SafetyNet', 'Ready', 7],
    ]);
    expect(rows[2]?.NextHopConnector).toBe('Internet');
  });

  it('shows a deferred queue as Retry with its last error and next retry time from the event log', () => {
    const next = NOW + 300_000;
    const state = events('r1', [
      { type: 'Received', source: 'SMTP', sender: 'x@example.org', recipients: ['r1@fabrikam.test'], size: 100, subject: 'Hi' },
      { type: 'Deferred', hop: REMOTE, recipients: ['r1@fabrikam.test'], reason: '451 4.7.1 greylisted', nextAttempt: next },
    ]);
    const rows = projectQueues(
      inputs({ deliver: [item('r1', REMOTE, { attempt: 1, notBefore: next })], counts: { [REMOTE]: 1 }, states: new Map([['r1', state]]) }),
    );
    const q = rows.find((r) => r.Identity === 'Transit\\remote.internet_fabrikam_test');
    expect(q).toMatchObject({ Status: 'Retry', LastError: '451 4.7.1 greylisted', NextRetryTime: new Date(next).toISOString(), MessageCount: 1 });
    const [m] = projectMessages(inputs({ deliver: [item('r1', REMOTE, { attempt: 1, notBefore: next })], states: new Map([['r1', state]]) }), {
      queue: 'remote.internet_fabrikam_test',
    });
    expect(m).toMatchObject({
      MessageId: 'r1',
      Status: 'Retry',
      RetryCount: 1,
      LastError: '451 4.7.1 greylisted',
      Subject: 'Hi',
      Identity: 'Transit\\remote.internet_fabrikam_test\\r1',
    });
  });

  it('shows holds: a suspended queue (even empty), suspended and removed messages', () => {
    const holds = new Map<string, Hold>([
      [`queue.${REMOTE}`, { state: 'Suspended', at: NOW }],
      ['message.a', { state: 'Suspended', at: NOW }],
      ['message.b', { state: 'Removed', at: NOW }],
    ]);
    const rows = projectQueues(inputs({ holds }));
    expect(rows.find((r) => r.Subject === REMOTE)).toMatchObject({ Status: 'Suspended', MessageCount: 0 });
    const msgs = projectMessages(inputs({ holds, deliver: [item('a', MAILBOX), item('b', MAILBOX), item('c', MAILBOX)] }));
    expect(msgs.map((m) => [m.MessageId, m.Status])).toEqual([
      ['a', 'Suspended'],
      ['b', 'PendingRemove'],
      ['c', 'Ready'],
    ]);
  });

  it('counts from stream info when not every item was read, and lists poison messages as suspended', () => {
    const rows = projectQueues(
      inputs({ deliver: [item('a', MAILBOX)], counts: { [MAILBOX]: 5000 }, poison: [{ ...item('p', 'mail.poison.mail_deliver'), stream: 'MAIL_POISON' }] }),
    );
    expect(rows.find((r) => r.Subject === MAILBOX)?.MessageCount).toBe(5000);
    expect(rows.find((r) => r.Identity === 'Transit\\Poison')?.MessageCount).toBe(1);
    expect(projectMessages(inputs({ poison: [item('p', 'mail.poison.mail_deliver')] }), { queue: 'Poison' })).toMatchObject([
      { MessageId: 'p', Status: 'Suspended', Queue: 'Transit\\Poison' },
    ]);
  });

  it('filters messages by sender (wildcards), status and id (Exchange identity form too)', () => {
    const all = inputs({ deliver: [item('a', MAILBOX), item('b', REMOTE, { notBefore: NOW + 1 })] });
    expect(projectMessages(all, { sender: '*@EXAMPLE.org' })).toHaveLength(2);
    expect(projectMessages(all, { sender: 'y@*' })).toHaveLength(0);
    expect(projectMessages(all, { status: 'Retry' }).map((m) => m.MessageId)).toEqual(['b']);
    expect(projectMessages(all, { id: 'Transit\\mailbox.db01\\a' }).map((m) => m.MessageId)).toEqual(['a']);
    expect(projectMessages(all, { queue: 'nonexistent' })).toEqual([]);
  });
});

describe('IncomingRate and OutgoingRate', () => {
  const sample = (subject: string, direction: 'in' | 'out', messageId: string, ago: number): RateSample => ({ subject, direction, messageId, at: NOW - ago });

  it('counts distinct messages in and out per queue over the last minute, per second', () => {
    const rates = queueRates(
      [
        ...Array.from({ length: 30 }, (_, i) => sample(REMOTE, 'in', `r${i}`, i * 1000)),
        ...Array.from({ length: 6 }, (_, i) => sample(REMOTE, 'out', `r${i}`, i * 1000)),
        // One message's recipients failing one by one count once.
        sample(MAILBOX, 'out', 'm1', 1000),
        sample(MAILBOX, 'out', 'm1', 2000),
        // Outside the window (and from the future: another node's clock) it does not count.
        sample(MAILBOX, 'in', 'old', 60_000),
        sample(MAILBOX, 'in', 'later', -5000),
      ],
      NOW,
    );
    expect(rates.get(REMOTE)).toEqual({ IncomingRate: 0.5, OutgoingRate: 0.1 });
    expect(rates.get(MAILBOX)).toEqual({ IncomingRate: 0, OutgoingRate: 0.017 });
  });

  it('maps the hops events name to their queues: Routed carries the categorizer group key, delivery the subject or mailbox:<db>', () => {
    expect(hopSubject('mailbox:DB01')).toBe(MAILBOX);
    expect(hopSubject('smtp:Internet:fabrikam.test', 'Internet')).toBe(REMOTE);
    expect(hopSubject('smtp:Sink:127.0.0.1:2525', 'Sink')).toBe('mail.deliver.remote.sink_127_0_0_1_2525');
    expect(hopSubject('smtp:Sink:127.0.0.1:2525')).toBe('mail.deliver.remote.sink_127_0_0_1_2525');
    expect(hopSubject(REMOTE)).toBe(REMOTE);
    expect(hopSubject('categorizer')).toBeUndefined();
    expect(rateSamples({ type: 'Routed', hop: 'smtp:Internet:fabrikam.test', connector: 'Internet', recipients: ['a@fabrikam.test'] }, 'a', 5)).toEqual([
      { subject: REMOTE, direction: 'in', messageId: 'a', at: 5 },
    ]);
    // Submitted leaves Submission, and carries the categorizer's routes into their queues.
    expect(
      rateSamples(
        {
          type: 'Submitted',
          source: 'QUEUE',
          recipients: ['a@fabrikam.test', 'b@contoso.test'],
          resolved: [],
          routes: [
            { hop: 'smtp:Internet:fabrikam.test', connector: 'Internet', recipients: ['a@fabrikam.test'] },
            { hop: 'mailbox:DB01', recipients: ['b@contoso.test'] },
          ],
        },
        'a',
        4,
      ),
    ).toEqual([
      { subject: 'mail.submit', direction: 'out', messageId: 'a', at: 4 },
      { subject: REMOTE, direction: 'in', messageId: 'a', at: 4 },
      { subject: MAILBOX, direction: 'in', messageId: 'a', at: 4 },
    ]);
    // With its Reception (the hub records it with Submitted), the message also came into Submission, when the queue took it.
    expect(
      rateSamples(
        {
          type: 'Submitted',
          source: 'QUEUE',
          recipients: ['b@contoso.test'],
          resolved: [],
          received: { source: 'SMTP', sender: 's@x', recipients: ['b@contoso.test'], size: 1, queuedAt: 3 },
        },
        'a',
        4,
      ),
    ).toEqual([
      { subject: 'mail.submit', direction: 'in', messageId: 'a', at: 3 },
      { subject: 'mail.submit', direction: 'out', messageId: 'a', at: 4 },
    ]);
    expect(rateSamples({ type: 'Delivered', hop: REMOTE, recipients: ['a@fabrikam.test'] }, 'a', 6)).toEqual([
      { subject: REMOTE, direction: 'out', messageId: 'a', at: 6 },
    ]);
    expect(rateSamples({ type: 'Failed', hop: 'mailbox:DB01', recipients: ['b@contoso.test'], reason: '550' }, 'b', 7)).toMatchObject([
      { subject: MAILBOX, direction: 'out' },
    ]);
    expect(rateSamples({ type: 'Failed', hop: 'categorizer', recipients: ['c@nowhere.test'], reason: '5.4.4' }, 'c', 8)).toEqual([]);
    expect(rateSamples({ type: 'Deferred', hop: REMOTE, recipients: ['a@fabrikam.test'], reason: '451', nextAttempt: 9 }, 'a', 8)).toEqual([]);
  });

  it('shows the rates on Submission and the delivery queues when they were read, and not otherwise', () => {
    const rates = [sample(REMOTE, 'in', 'r1', 1000), sample('mail.submit', 'in', 'r1', 2000), sample('mail.submit', 'out', 'r1', 1500)];
    const rows = projectQueues(inputs({ deliver: [item('r1', REMOTE), item('m1', MAILBOX)], rates }));
    expect(rows.find((r) => r.Subject === REMOTE)).toMatchObject({ IncomingRate: 0.017, OutgoingRate: 0 });
    expect(rows.find((r) => r.Subject === MAILBOX)).toMatchObject({ IncomingRate: 0, OutgoingRate: 0 });
    expect(rows.find((r) => r.Identity === 'Transit\\Submission')).toMatchObject({ IncomingRate: 0.017, OutgoingRate: 0.017 });
    expect(rows.find((r) => r.Identity === 'Transit\\Poison')).not.toHaveProperty('IncomingRate');
    expect(projectQueues(inputs({ deliver: [item('r1', REMOTE)] }))[1]).not.toHaveProperty('IncomingRate');
  });
});

describe('Shadow queue', () => {
  const leases = [
    { owner: 'n1/100', messageId: 'r1', stream: 'MAIL_DELIVER', seq: 0, subject: REMOTE, since: NOW - 5000 },
    { owner: 'n2/200', messageId: 'gone', stream: 'MAIL_DELIVER', seq: 999, subject: REMOTE },
  ];

  it('lists the leased work items as Transit\\Shadow when Redis was read', () => {
    const r1 = item('r1', REMOTE);
    const lease = { ...leases[0]!, seq: r1.seq };
    const rows = projectQueues(inputs({ deliver: [r1], leases: [lease, leases[1]!] }));
    expect(rows.at(-1)).toEqual({ Identity: 'Transit\\Shadow', DeliveryType: 'ShadowRedundancy', NextHopDomain: 'Shadow', Status: 'Active', MessageCount: 2 });
    expect(projectQueues(inputs({ leases: [] })).at(-1)).toMatchObject({ Identity: 'Transit\\Shadow', Status: 'Ready', MessageCount: 0 });
    expect(projectQueues(inputs()).map((r) => r.Identity)).not.toContain('Transit\\Shadow');

    const msgs = projectMessages(inputs({ deliver: [r1], leases: [lease, leases[1]!] }), { queue: 'Shadow' });
    expect(msgs).toEqual([
      expect.objectContaining({
        Identity: 'Transit\\Shadow\\r1',
        MessageId: 'r1',
        FromAddress: 'x@example.org',
        Recipients: ['r1@fabrikam.test'],
        Status: 'Active',
        Queue: 'Transit\\Shadow',
        LeaseOwner: 'n1/100',
        LeasedSince: new Date(NOW - 5000).toISOString(),
      }),
      expect.objectContaining({ MessageId: 'gone', Status: 'Active', LeaseOwner: 'n2/200' }),
    ]);
    expect(msgs[1]).not.toHaveProperty('LeasedSince');
    // Listed in its delivery queue as well, as Exchange lists a shadow copy.
    expect(projectMessages(inputs({ deliver: [r1], leases: [lease] }), { id: 'r1' }).map((m) => m.Queue)).toEqual([
      'Transit\\remote.internet_fabrikam_test',
      'Transit\\Shadow',
    ]);
  });
});

describe('identities', () => {
  it('finds a queue by identity, short name or next-hop domain, without case', () => {
    const rows = projectQueues(inputs({ deliver: [item('r1', REMOTE)] }));
    expect(findQueue(rows, 'transit\\REMOTE.internet_fabrikam_test')?.Subject).toBe(REMOTE);
    expect(findQueue(rows, 'remote.internet_fabrikam_test')?.Subject).toBe(REMOTE);
    expect(findQueue(rows, 'fabrikam.test')?.Subject).toBe(REMOTE);
    expect(findQueue(rows, 'submission')?.Identity).toBe('Transit\\Submission');
    expect(subjectOfIdentity('Transit\\remote.internet_fabrikam_test')).toBe(REMOTE);
    expect(subjectOfIdentity('Submission')).toBe('mail.submit');
    expect(subjectOfIdentity('Transit\\Poison')).toBeUndefined();
  });
});

describe('-Filter expressions', () => {
  it.each([
    [`Status -eq 'Retry'`, { status: 'Retry' }],
    [`DeliveryType -eq "DnsConnectorDelivery" -and MessageCount -gt 10`, { deliveryType: 'DnsConnectorDelivery', minMessageCount: 11 }],
    [`{NextHopDomain -like '*.test'}`, { nextHopDomain: '*.test' }],
    [`status -eq retry`, { status: 'Retry' }],
  ])('Get-Queue %s', (text, filter) => expect(parseQueueFilter(text)).toEqual(filter));

  it('Get-Message filters', () => {
    expect(parseMessageFilter(`FromAddress -like '*@example.org' -and Status -eq 'Suspended'`)).toEqual({ sender: '*@example.org', status: 'Suspended' });
  });

  it.each([
    [`Status -eq 'Sleeping'`, /Status must be one of Active, Ready, Retry, Suspended/],
    [`Velocity -gt 1`, /cannot filter on Velocity/],
    [`Status = 'Retry'`, /is not of the form Property -eq 'value'/],
    [`MessageCount -gt many`, /whole number/],
    [`Status -like 'R*'`, /Status takes -eq/],
  ])('refuses %s', (text, message) => {
    expect(() => parseQueueFilter(text)).toThrow(FilterError);
    expect(() => parseQueueFilter(text)).toThrow(message);
  });
});
