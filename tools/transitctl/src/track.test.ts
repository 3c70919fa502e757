import { describe, expect, it } from 'vitest';
import { parseTrackArgs } from './track.ts';

describe('transitctl track options', () => {
  it('become a Get-MessageTrackingLog query', () => {
    expect(
      parseTrackArgs([
        '--sender',
        'x@example.org',
        '--recipient',
        'a@contoso.test,b@contoso.test',
        '--recipient',
        'c@contoso.test',
        '--event',
        'deliver',
        '--source',
        'storedriver',
        '--internal-id',
        '7',
        '--subject',
        'hi',
        '--start',
        '2026-11-24T10:00:00Z',
        '--limit',
        '5',
        '--csv',
      ]),
    ).toEqual({
      query: {
        sender: 'x@example.org',
        recipients: ['a@contoso.test', 'b@contoso.test', 'c@contoso.test'],
        eventId: 'DELIVER',
        source: 'STOREDRIVER',
        internalMessageId: 7,
        subject: 'hi',
        start: new Date('2026-11-24T10:00:00Z'),
        resultSize: 5,
      },
      output: 'csv',
    });
    expect(parseTrackArgs([])).toEqual({ query: { resultSize: 1000 }, output: 'table' });
    expect(parseTrackArgs(['--limit', 'unlimited', '--json', '--log-dir', '/tmp/x'])).toEqual({ query: {}, output: 'json', logDir: '/tmp/x' });
  });

  it.each([
    [['--bogus'], /^track: Unknown option '--bogus' \(options: --sender, /],
    [['--sender'], /^track: Option '--sender <value>' argument missing/],
    [['--event', 'sent'], /^--event must be one of RECEIVE, .* \(got "sent"\)$/],
    [['--start', 'monday'], /^--start must be a date and time, e\.g\. 2026-11-24T10:00:00Z \(got "monday"\)$/],
    [['--start', '2026-11-25T00:00:00Z', '--end', '2026-11-24T00:00:00Z'], /^track: --start is after --end$/],
    [['--limit', '0'], /^--limit must be a whole number from 1, or unlimited \(got "0"\)$/],
    [['--internal-id', 'x1'], /^--internal-id must be the InternalId of a 250 reply, a whole number \(got "x1"\)$/],
    [['--json', '--csv'], /^track: --json and --csv exclude each other$/],
    [['stray'], /^track: Unexpected argument 'stray'/],
  ])('%j is refused, naming the option', (args, message) => {
    expect(() => parseTrackArgs(args)).toThrow(message);
  });
});
