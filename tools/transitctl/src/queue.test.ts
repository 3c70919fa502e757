import { describe, expect, it } from 'vitest';
import { CliError } from './objects.ts';
import { parseQueueCommand } from './queue.ts';

describe('transitctl queue / message', () => {
  it.each([
    [['queue', 'get'], { action: 'get-queue', filter: {} }],
    [['queue', 'get', 'Transit\\Poison'], { action: 'get-queue', filter: { identity: 'Transit\\Poison' } }],
    [['queue', 'get', '--filter', "Status -eq 'Retry'"], { action: 'get-queue', filter: { status: 'Retry' } }],
    [['queue', 'retry', 'remote.x'], { action: 'retry-queue', identity: 'remote.x', resubmit: false }],
    [['queue', 'suspend', 'remote.x'], { action: 'suspend-queue', identity: 'remote.x' }],
    [
      ['message', 'get', '--queue', 'Poison', '--sender', '*@example.org', '--status', 'retry', '--limit', '3'],
      { action: 'get-message', filter: { queue: 'Poison', sender: '*@example.org', status: 'Retry', resultSize: 3 } },
    ],
    [['message', 'remove', '01ABC'], { action: 'remove-message', id: '01ABC', withNdr: true }],
    [['message', 'remove', '01ABC', '--without-ndr'], { action: 'remove-message', id: '01ABC', withNdr: false }],
    [['message', 'export', '01ABC', '--path', 'm.eml'], { action: 'export-message', id: '01ABC', path: 'm.eml' }],
  ] as const)('%j', (args, request) => {
    expect(parseQueueCommand(args[0], args.slice(1))).toEqual(request);
  });

  it.each([
    [['queue', 'drain'], /queue verbs: get, retry, suspend, resume \(got "drain"\)/],
    [['queue', 'retry'], /queue retry takes 1 argument/],
    [['message', 'export', '01ABC'], /message export needs --path <file.eml>/],
    [['message', 'get', '--status', 'Sleeping'], /--status must be one of Active, Ready, Retry, Suspended, PendingRemove/],
    [['message', 'remove', '01ABC', '--with-ndr', '--without-ndr'], /exclude each other/],
    [['queue', 'get', '--filter', 'Velocity -gt 1'], /--filter: Get-Queue cannot filter on Velocity/],
    [['message', 'get', '--bogus'], /message get: Unknown option '--bogus'/],
  ] as const)('%j fails naming what is wrong', (args, message) => {
    expect(() => parseQueueCommand(args[0], args.slice(1))).toThrow(CliError);
    expect(() => parseQueueCommand(args[0], args.slice(1))).toThrow(message);
  });
});
