import { describe, expect, it } from 'vitest';
import type { TrackingRow } from '@transit/tracking';
import { contoso } from './fixture.ts';
import { EmsError, emsTrackingRequest, runEmsLine } from './index.ts';

const row: TrackingRow = {
  Timestamp: '2026-11-24T10:00:00.000Z',
  ServerHostname: 'mbx1',
  Source: 'STOREDRIVER',
  EventId: 'DELIVER',
  InternalMessageId: 7,
  MessageId: '<m@example.org>',
  NetworkMessageId: 'M1',
  Recipients: ['alice@contoso.test'],
  RecipientStatus: [],
  TotalBytes: 100,
  RecipientCount: 1,
  MessageSubject: 'Hello',
  Sender: 'x@example.org',
  ReturnPath: 'x@example.org',
};

describe('Get-MessageTrackingLog', () => {
  it('binds Exchange’s parameters into a query (prefixes, case, lists, times)', () => {
    const r = emsTrackingRequest(
      'Get-MessageTrackingLog -Recipients alice@contoso.test,bob@contoso.test -EventId deliver -Start "11/24/2026 09:00:00" -End 2026-11-25T00:00:00Z -ResultSize 10 -Sender x@example.org -MessageSubject hel -messageid "<m@example.org>" -InternalMessageId 7 -Source STOREDRIVER',
    );
    expect(r?.query).toEqual({
      recipients: ['alice@contoso.test', 'bob@contoso.test'],
      eventId: 'DELIVER',
      start: new Date(2026, 10, 24, 9, 0, 0),
      end: new Date('2026-11-25T00:00:00Z'),
      resultSize: 10,
      sender: 'x@example.org',
      subject: 'hel',
      messageId: '<m@example.org>',
      internalMessageId: 7,
      source: 'STOREDRIVER',
    });
    expect(r?.warnings).toEqual([]);
  });

  it('defaults -ResultSize to 1000, takes Unlimited, and says -Server is informational', () => {
    expect(emsTrackingRequest('Get-MessageTrackingLog')?.query).toEqual({ resultSize: 1000 });
    const r = emsTrackingRequest('Get-MessageTrackingLog -ResultSize Unlimited -Server EXCH01');
    expect(r?.query).toEqual({});
    expect(r?.warnings).toEqual(["-Server EXCH01 is informational: the message event log is the whole cluster's"]);
  });

  it.each([
    ['Get-MessageTrackingLog -EventId DELIVERED', /-EventId DELIVERED is not valid: expected one of RECEIVE, SUBMIT, /],
    ['Get-MessageTrackingLog -Start yesterday', /-Start "yesterday" is not valid: expected a date and time/],
    ['Get-MessageTrackingLog -ResultSize 0', /-ResultSize 0 is not valid: expected a whole number from 1, or Unlimited/],
    ['Get-MessageTrackingLog -Start 2026-11-25T00:00:00Z -End 2026-11-24T00:00:00Z', /-Start is after -End/],
    ['Get-MessageTrackingLog -Recipient x@y -Foo 1', /parameter -Foo is not supported \(supported: -Start, -End, /],
    ['Get-MessageTrackingLog -InternalMessageId abc', /-InternalMessageId abc is not valid: expected a whole number/],
  ])('%s fails naming the parameter', (line, message) => {
    expect(() => emsTrackingRequest(line)).toThrow(EmsError);
    expect(() => emsTrackingRequest(line)).toThrow(message);
  });

  it('prints the rows as the shell does: its default table, or every property with Format-List', () => {
    const table = emsTrackingRequest('Get-MessageTrackingLog -EventId DELIVER')!.render([row]);
    expect(table.text.split('\n')).toEqual([
      'EventId Source      Sender        Recipients           MessageSubject',
      '------- ------      ------        ----------           --------------',
      'DELIVER STOREDRIVER x@example.org {alice@contoso.test} Hello',
    ]);
    expect(Object.keys(table.objects[0]!).slice(0, 9)).toEqual([
      'Timestamp',
      'ClientIp',
      'ClientHostname',
      'ServerIp',
      'ServerHostname',
      'SourceContext',
      'ConnectorId',
      'Source',
      'EventId',
    ]);
    const list = emsTrackingRequest('Get-MessageTrackingLog | fl Timestamp,EventId,Recipients')!.render([row]);
    expect(list.text).toBe('Timestamp  : 2026-11-24T10:00:00.000Z\nEventId    : DELIVER\nRecipients : {alice@contoso.test}');
  });

  it('is not a configuration cmdlet: other lines are left to runEmsLine, and runEmsLine refuses it', () => {
    expect(emsTrackingRequest('Get-ReceiveConnector')).toBeUndefined();
    expect(() => runEmsLine('Get-MessageTrackingLog -EventId FAIL', contoso())).toThrow(
      /reads the message event log on the bus, not the configuration: run it with transitctl ems/,
    );
    expect(() => emsTrackingRequest('Get-ReceiveConnector | Get-MessageTrackingLog')).toThrow(/does not take pipeline input/);
  });
});
