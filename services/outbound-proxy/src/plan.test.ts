import { emptyState, type MessageState } from '@transit/bus';
import type { DeliveryItem, Recipient } from '@transit/envelope';
import { describe, expect, it } from 'vitest';
import type { RecipientResult } from './outcome.ts';
import { planOutcome, planSend, type OutcomePlan, type OutcomeStep } from './plan.ts';

const HOP = 'mail.deliver.remote.internet_example_net';
const RECEIVED = 1_700_000_000_000;
const settings = { schedule: [60, 300], MessageExpirationTimeout: 3600, DelayNotificationTimeout: 600 };

type ItemOptions = { attempt?: number; delayNotified?: boolean; sender?: string };
const item = (recipients: Array<string | Recipient>, o: ItemOptions = {}): DeliveryItem => ({
  v: 1,
  envelope: {
    v: 1,
    id: 'M1',
    messageId: '<m1@contoso.test>',
    receivedAt: RECEIVED,
    sender: o.sender ?? 'bob@contoso.test',
    recipients: recipients.map((r) => (typeof r === 'string' ? { address: r } : r)),
    origin: { kind: 'smtp', serverHost: 'n1' },
    body: { kind: 'inline', data: new Uint8Array() },
    size: 10,
  },
  hop: { type: 'smtp', connector: 'Internet', domain: 'example.net', port: 25 },
  attempt: o.attempt ?? 0,
  notBefore: 0,
  ...(o.delayNotified === undefined ? {} : { delayNotified: o.delayNotified }),
});

const MX = 'mx.example.net';
const ok = (address: string): RecipientResult => ({ address, status: 'delivered', response: 'accepted', remoteMta: MX });
const no = (address: string, response = '550 5.1.1 no such user'): RecipientResult => ({ address, status: 'permanent', response, remoteMta: MX });
const later = (address: string, response = '451 4.4.1 try again later'): RecipientResult => ({ address, status: 'transient', response, remoteMta: MX });

/** Times relative to the message's arrival, in seconds, so rows read as "at +600s". */
const at = (ms: number) => `+${(ms - RECEIVED) / 1000}s`;
const list = (xs: string[]) => (xs.length ? xs.join(',') : '-');

/** One line per step, in order: what a row expects. */
function render(step: OutcomeStep): string {
  switch (step.kind) {
    case 'delivered':
      // The lease's release and the Delivered event are written together.
      return `release lease, delivered: ${list(step.recipients)}${step.event ? ` + Delivered ${list(step.event.recipients)}` : ''}`;
    case 'event': {
      const e = step.event;
      if (e.type === 'Failed') return `Failed ${list(e.recipients)}: ${e.reason}`;
      if (e.type === 'Deferred') return `Deferred ${list(e.recipients)}: ${e.reason}; next ${at(e.nextAttempt)}`;
      return e.type;
    }
    case 'notify': {
      const n = step.notification;
      const until = n.willRetryUntil ? ` until ${at(n.willRetryUntil.getTime())}` : '';
      return `${n.kind} DSN ${n.recipients.map((r) => `${r.address} ${r.status}`).join(', ')}${until}`;
    }
    case 'follow-up':
      return `follow-up attempt ${step.item.attempt} at ${at(step.item.notBefore)}: ${list(step.item.envelope.recipients.map((r) => r.address))}${step.item.delayNotified ? ' (delay notified)' : ''}`;
  }
}
const steps = (plan: OutcomePlan) => plan.steps.map(render);

type OutcomeRow = { name: string; item: DeliveryItem; results: RecipientResult[]; now: number; steps: string[]; summary: OutcomePlan['summary'] };

// Rows from what the worker did before this plan existed (main.ts's handleItem), one case each.
const outcomeRows: OutcomeRow[] = [
  {
    name: 'all delivered',
    item: item(['a@example.net', 'b@example.net']),
    results: [ok('a@example.net'), ok('b@example.net')],
    now: RECEIVED + 1000,
    steps: ['release lease, delivered: a@example.net,b@example.net + Delivered a@example.net,b@example.net'],
    summary: { delivered: 2, failed: 0, deferred: 0 },
  },
  {
    name: 'one 5xx, one 2xx: the refused one fails at once with a failure DSN',
    item: item(['a@example.net', 'b@example.net']),
    results: [ok('a@example.net'), no('b@example.net')],
    now: RECEIVED + 1000,
    steps: [
      'release lease, delivered: a@example.net + Delivered a@example.net',
      'Failed b@example.net: 550 5.1.1 no such user',
      'failure DSN b@example.net 5.1.1',
    ],
    summary: { delivered: 1, failed: 1, deferred: 0 },
  },
  {
    name: 'a 5xx without an enhanced status code: 5.0.0',
    item: item(['a@example.net']),
    results: [no('a@example.net', '554 go away')],
    now: RECEIVED + 1000,
    steps: ['release lease, delivered: -', 'Failed a@example.net: 554 go away', 'failure DSN a@example.net 5.0.0'],
    summary: { delivered: 0, failed: 1, deferred: 0 },
  },
  {
    name: 'all 4xx on the first attempt: one follow-up item on the schedule, no notification',
    item: item(['a@example.net', 'b@example.net']),
    results: [later('a@example.net'), later('b@example.net')],
    now: RECEIVED + 1000,
    steps: [
      'release lease, delivered: -',
      'follow-up attempt 1 at +61s: a@example.net,b@example.net',
      'Deferred a@example.net,b@example.net: 451 4.4.1 try again later; next +61s',
    ],
    summary: { delivered: 0, failed: 0, deferred: 2 },
  },
  {
    name: 'a later attempt holds on the last step of the schedule',
    item: item(['a@example.net'], { attempt: 7 }),
    results: [later('a@example.net')],
    now: RECEIVED + 100_000,
    steps: ['release lease, delivered: -', 'follow-up attempt 8 at +400s: a@example.net', 'Deferred a@example.net: 451 4.4.1 try again later; next +400s'],
    summary: { delivered: 0, failed: 0, deferred: 1 },
  },
  {
    name: '4xx past DelayNotificationTimeout: one delay DSN, and the follow-up says it was sent',
    item: item(['a@example.net'], { attempt: 3 }),
    results: [later('a@example.net')],
    now: RECEIVED + 700_000,
    steps: [
      'release lease, delivered: -',
      'delay DSN a@example.net 4.4.1 until +3600s',
      'follow-up attempt 4 at +1000s: a@example.net (delay notified)',
      'Deferred a@example.net: 451 4.4.1 try again later; next +1000s',
    ],
    summary: { delivered: 0, failed: 0, deferred: 1 },
  },
  {
    name: '4xx exactly at DelayNotificationTimeout: the delay DSN is due',
    item: item(['a@example.net'], { attempt: 1 }),
    results: [later('a@example.net')],
    now: RECEIVED + 600_000,
    steps: [
      'release lease, delivered: -',
      'delay DSN a@example.net 4.4.1 until +3600s',
      'follow-up attempt 2 at +900s: a@example.net (delay notified)',
      'Deferred a@example.net: 451 4.4.1 try again later; next +900s',
    ],
    summary: { delivered: 0, failed: 0, deferred: 1 },
  },
  {
    name: '4xx past DelayNotificationTimeout when the item says the delay DSN was sent: not again',
    item: item(['a@example.net'], { attempt: 4, delayNotified: true }),
    results: [later('a@example.net')],
    now: RECEIVED + 1_000_000,
    steps: [
      'release lease, delivered: -',
      'follow-up attempt 5 at +1300s: a@example.net (delay notified)',
      'Deferred a@example.net: 451 4.4.1 try again later; next +1300s',
    ],
    summary: { delivered: 0, failed: 0, deferred: 1 },
  },
  {
    name: 'a connection failure past DelayNotificationTimeout: the delay DSN says 4.0.0',
    item: item(['a@example.net'], { attempt: 2 }),
    results: [later('a@example.net', 'mx.example.net:25: connect ECONNREFUSED 192.0.2.1:25')],
    now: RECEIVED + 650_000,
    steps: [
      'release lease, delivered: -',
      'delay DSN a@example.net 4.0.0 until +3600s',
      'follow-up attempt 3 at +950s: a@example.net (delay notified)',
      'Deferred a@example.net: mx.example.net:25: connect ECONNREFUSED 192.0.2.1:25; next +950s',
    ],
    summary: { delivered: 0, failed: 0, deferred: 1 },
  },
  {
    name: '4xx when the message is as old as MessageExpirationTimeout: failed as 4.4.7, no delay DSN',
    item: item(['a@example.net'], { attempt: 10, delayNotified: true }),
    results: [later('a@example.net')],
    now: RECEIVED + 3_600_000,
    steps: ['release lease, delivered: -', 'Failed a@example.net: 550 4.4.7 Message expired: 451 4.4.1 try again later', 'failure DSN a@example.net 4.4.7'],
    summary: { delivered: 0, failed: 1, deferred: 0 },
  },
  {
    name: '4xx when the next step of the schedule would fall past MessageExpirationTimeout: one last attempt at the expiry',
    item: item(['a@example.net'], { attempt: 9, delayNotified: true }),
    results: [later('a@example.net')],
    now: RECEIVED + 3_400_000,
    steps: [
      'release lease, delivered: -',
      'follow-up attempt 10 at +3600s: a@example.net (delay notified)',
      'Deferred a@example.net: 451 4.4.1 try again later; next +3600s',
    ],
    summary: { delivered: 0, failed: 0, deferred: 1 },
  },
  {
    name: '4xx when the next attempt falls exactly at MessageExpirationTimeout: still retried',
    item: item(['a@example.net'], { attempt: 9, delayNotified: true }),
    results: [later('a@example.net')],
    now: RECEIVED + 3_300_000,
    steps: [
      'release lease, delivered: -',
      'follow-up attempt 10 at +3600s: a@example.net (delay notified)',
      'Deferred a@example.net: 451 4.4.1 try again later; next +3600s',
    ],
    summary: { delivered: 0, failed: 0, deferred: 1 },
  },
  {
    name: 'expiry with a 5xx in the same attempt: a Failed event per reason, one failure DSN for both',
    item: item(['a@example.net', 'b@example.net'], { attempt: 10 }),
    results: [no('a@example.net'), later('b@example.net')],
    now: RECEIVED + 3_700_000,
    steps: [
      'release lease, delivered: -',
      'Failed a@example.net: 550 5.1.1 no such user',
      'Failed b@example.net: 550 4.4.7 Message expired: 451 4.4.1 try again later',
      'failure DSN a@example.net 5.1.1, b@example.net 4.4.7',
    ],
    summary: { delivered: 0, failed: 2, deferred: 0 },
  },
  {
    name: '2xx, 5xx and 4xx past DelayNotificationTimeout: delivered, failed, then the delay notice, the follow-up and Deferred',
    item: item(['a@example.net', 'b@example.net', 'c@example.net'], { attempt: 3 }),
    results: [ok('a@example.net'), no('b@example.net'), later('c@example.net')],
    now: RECEIVED + 700_000,
    steps: [
      'release lease, delivered: a@example.net + Delivered a@example.net',
      'Failed b@example.net: 550 5.1.1 no such user',
      'failure DSN b@example.net 5.1.1',
      'delay DSN c@example.net 4.4.1 until +3600s',
      'follow-up attempt 4 at +1000s: c@example.net (delay notified)',
      'Deferred c@example.net: 451 4.4.1 try again later; next +1000s',
    ],
    summary: { delivered: 1, failed: 1, deferred: 1 },
  },
  {
    name: 'two recipients deferred for different reasons: one follow-up item, a Deferred event per reason',
    item: item(['a@example.net', 'b@example.net', 'c@example.net', 'd@example.net']),
    results: [later('a@example.net'), later('b@example.net', '452 4.2.2 mailbox full'), no('c@example.net'), no('d@example.net', '550 5.7.1 refused')],
    now: RECEIVED + 1000,
    steps: [
      'release lease, delivered: -',
      'Failed c@example.net: 550 5.1.1 no such user',
      'Failed d@example.net: 550 5.7.1 refused',
      'failure DSN c@example.net 5.1.1, d@example.net 5.7.1',
      'follow-up attempt 1 at +61s: a@example.net,b@example.net',
      'Deferred a@example.net: 451 4.4.1 try again later; next +61s',
      'Deferred b@example.net: 452 4.2.2 mailbox full; next +61s',
    ],
    summary: { delivered: 0, failed: 2, deferred: 2 },
  },
  {
    // submitDsn (libs/ingest) leaves such recipients out and records DsnSuppressed "NOTIFY excludes it" (test/dsn.test.ts).
    name: 'NOTIFY=NEVER: the failure DSN is asked for as ever; submitDsn suppresses it',
    item: item([{ address: 'a@example.net', notify: ['NEVER'] }]),
    results: [no('a@example.net')],
    now: RECEIVED + 1000,
    steps: ['release lease, delivered: -', 'Failed a@example.net: 550 5.1.1 no such user', 'failure DSN a@example.net 5.1.1'],
    summary: { delivered: 0, failed: 1, deferred: 0 },
  },
  {
    name: 'NOTIFY=FAILURE past DelayNotificationTimeout: the delay notice counts as done, so it is not weighed again',
    item: item([{ address: 'a@example.net', notify: ['FAILURE'] }], { attempt: 3 }),
    results: [later('a@example.net')],
    now: RECEIVED + 700_000,
    steps: [
      'release lease, delivered: -',
      'delay DSN a@example.net 4.4.1 until +3600s',
      'follow-up attempt 4 at +1000s: a@example.net (delay notified)',
      'Deferred a@example.net: 451 4.4.1 try again later; next +1000s',
    ],
    summary: { delivered: 0, failed: 0, deferred: 1 },
  },
  {
    // submitDsn records DsnSuppressed "null sender" instead (test/dsn.test.ts).
    name: 'null sender: the failure DSN is asked for as ever; submitDsn suppresses it',
    item: item(['a@example.net'], { sender: '' }),
    results: [no('a@example.net')],
    now: RECEIVED + 1000,
    steps: ['release lease, delivered: -', 'Failed a@example.net: 550 5.1.1 no such user', 'failure DSN a@example.net 5.1.1'],
    summary: { delivered: 0, failed: 1, deferred: 0 },
  },
];

describe('planOutcome', () => {
  it.each(outcomeRows)('$name', (row) => {
    const plan = planOutcome({ item: row.item, hop: HOP, results: row.results, settings, now: row.now });
    expect(steps(plan)).toEqual(row.steps);
    expect(plan.summary).toEqual(row.summary);
    expect(plan.outcome).toEqual({ kind: 'ack' });
  });

  it('quotes the remote answer and names the remote MTA in each DSN recipient, tagged by hop and attempt', () => {
    const plan = planOutcome({
      item: item(['a@example.net', 'b@example.net'], { attempt: 3 }),
      hop: HOP,
      results: [no('a@example.net'), later('b@example.net')],
      settings,
      now: RECEIVED + 700_000,
    });
    const notifications = plan.steps.flatMap((s) => (s.kind === 'notify' ? [s.notification] : []));
    expect(notifications).toEqual([
      { kind: 'failure', tag: `${HOP}-3`, recipients: [{ address: 'a@example.net', status: '5.1.1', diagnostic: '550 5.1.1 no such user', remoteMta: MX }] },
      {
        kind: 'delay',
        tag: `${HOP}-3`,
        willRetryUntil: new Date(RECEIVED + 3_600_000),
        recipients: [{ address: 'b@example.net', status: '4.4.1', diagnostic: '451 4.4.1 try again later', remoteMta: MX }],
      },
    ]);
  });

  it('narrows the follow-up item to the deferred recipients, keeping their DSN parameters, under an id per attempt', () => {
    const deferred: Recipient = { address: 'b@example.net', original: 'rfc822;B@example.net', notify: ['DELAY', 'FAILURE'] };
    const sent = item(['a@example.net', deferred]);
    const plan = planOutcome({ item: sent, hop: HOP, results: [ok('a@example.net'), later('b@example.net')], settings, now: RECEIVED + 1000 });
    const followUp = plan.steps.find((s) => s.kind === 'follow-up');
    expect(followUp).toEqual({
      kind: 'follow-up',
      subject: HOP,
      msgID: `M1:${HOP}:attempt-1`,
      item: { ...sent, envelope: { ...sent.envelope, recipients: [deferred] }, attempt: 1, notBefore: RECEIVED + 61_000, delayNotified: false },
    });
  });

  it('expires as 4.4.7 with the last error quoted', () => {
    const plan = planOutcome({
      item: item(['a@example.net'], { attempt: 9 }),
      hop: HOP,
      results: [later('a@example.net')],
      settings,
      now: RECEIVED + 3_600_000,
    });
    const notify = plan.steps.find((s) => s.kind === 'notify');
    expect(notify).toEqual({
      kind: 'notify',
      notification: {
        kind: 'failure',
        tag: `${HOP}-9`,
        recipients: [{ address: 'a@example.net', status: '4.4.7', diagnostic: '550 4.4.7 Message expired: 451 4.4.1 try again later', remoteMta: MX }],
      },
    });
  });
});

const deliveredIn = (...addresses: string[]): MessageState => {
  const state = emptyState('M1');
  for (const address of addresses) state.recipients[address.toLowerCase()] = { address, status: 'Delivered', deferrals: 0, dsn: [] };
  return state;
};
const withStatus = (address: string, status: 'Deferred' | 'Failed' | 'Routed'): MessageState => {
  const state = emptyState('M1');
  state.recipients[address.toLowerCase()] = { address, status, deferrals: 0, dsn: [] };
  return state;
};

type SendRow = {
  name: string;
  recipients: string[];
  claimed: string[];
  state?: MessageState;
  suppressed: string[] | undefined;
  send: string[] | undefined;
  final?: string[];
};

const sendRows: SendRow[] = [
  {
    name: 'a first attempt, nothing delivered yet: send to all',
    recipients: ['a@x.test', 'b@x.test'],
    claimed: [],
    suppressed: undefined,
    send: ['a@x.test', 'b@x.test'],
  },
  {
    name: 'the shadow state says one is delivered: DuplicateSuppressed, send to the other',
    recipients: ['a@x.test', 'b@x.test'],
    claimed: ['a@x.test'],
    suppressed: ['a@x.test'],
    send: ['b@x.test'],
  },
  {
    name: 'a redelivered item whose log says delivered (the shadow state missed it)',
    recipients: ['a@x.test', 'b@x.test'],
    claimed: [],
    state: deliveredIn('b@x.test'),
    suppressed: ['b@x.test'],
    send: ['a@x.test'],
  },
  {
    name: 'the log matches addresses case-insensitively and names them as the item does',
    recipients: ['Bob@X.test'],
    claimed: [],
    state: deliveredIn('bob@x.test'),
    suppressed: ['Bob@X.test'],
    send: undefined,
  },
  {
    name: 'all delivered, by the shadow state and the log: nothing to send',
    recipients: ['a@x.test', 'b@x.test'],
    claimed: ['a@x.test'],
    state: deliveredIn('a@x.test', 'b@x.test'),
    suppressed: ['a@x.test', 'b@x.test'],
    send: undefined,
  },
  {
    name: 'a redelivered item whose log says only deferred: sent again',
    recipients: ['a@x.test'],
    claimed: [],
    state: withStatus('a@x.test', 'Deferred'),
    suppressed: undefined,
    send: ['a@x.test'],
  },
  {
    // A bounce (5xx, expiry) or an administrator's Remove-Message is final: its DSN said so, a delivery now would contradict it.
    name: 'a redelivered item whose log says failed: not sent again, and nothing recorded',
    recipients: ['a@x.test', 'b@x.test'],
    claimed: [],
    state: withStatus('a@x.test', 'Failed'),
    suppressed: undefined,
    send: ['b@x.test'],
    final: ['a@x.test'],
  },
  {
    name: 'one delivered, one failed: DuplicateSuppressed for the delivered one, nothing to send',
    recipients: ['a@x.test', 'b@x.test'],
    claimed: ['b@x.test'],
    state: withStatus('a@x.test', 'Failed'),
    suppressed: ['b@x.test'],
    send: undefined,
    final: ['a@x.test'],
  },
];

describe('planSend', () => {
  it.each(sendRows)('$name', (row) => {
    const work = item(row.recipients);
    const plan = planSend({ item: work, hop: HOP, claimed: row.claimed, state: row.state });
    expect(plan.events).toEqual(row.suppressed ? [{ type: 'DuplicateSuppressed', hop: HOP, recipients: row.suppressed }] : []);
    expect(plan.send?.envelope.recipients.map((r) => r.address)).toEqual(row.send);
    expect(plan.final).toEqual(row.final ?? []);
    if (plan.send)
      expect(plan.send).toEqual({ ...work, envelope: { ...work.envelope, recipients: work.envelope.recipients.filter((r) => row.send!.includes(r.address)) } });
  });
});
