import { describe, expect, it } from 'vitest';
import { oldestAgeSeconds } from './metrics.ts';

describe('oldestAgeSeconds', () => {
  const now = Date.parse('2025-01-01T00:01:00Z');
  it.each([
    ['an empty stream (JetStream reports the zero time)', { messages: 0, firstTs: '0001-01-01T00:00:00Z' }, 0],
    ['a stream whose first message is a minute old', { messages: 3, firstTs: '2025-01-01T00:00:00.000000000Z' }, 60],
    ['a first message stamped after now (clock skew between nodes)', { messages: 1, firstTs: '2025-01-01T00:02:00Z' }, 0],
    ['the zero time with messages', { messages: 1, firstTs: '0001-01-01T00:00:00Z' }, 0],
    ['an unreadable time', { messages: 1, firstTs: 'never' }, 0],
  ])('%s', (_what, state, seconds) => {
    expect(oldestAgeSeconds(state, now)).toBe(seconds);
  });
});
