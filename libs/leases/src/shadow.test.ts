/** RecentShadows, the hub's memory of the shadows it kept lately: bounded by age and by bytes, oldest dropped first. */
import { describe, expect, it } from 'vitest';
import { RecentShadows } from './shadow.ts';

const items = (bytes: number) => [{ subject: 'mail.deliver.mailbox.db01', seq: 1, item: new Uint8Array(bytes) }];

describe('RecentShadows', () => {
  it('returns what was kept within the age limit, oldest first', () => {
    const r = new RecentShadows(60_000, 1 << 20);
    r.remember('a', items(10), 1000);
    r.remember('b', items(10), 30_000);
    r.remember('c', items(10), 61_500);
    expect(r.recent(61_500).map((k) => k.messageId)).toEqual(['b', 'c']);
    expect(r.recent(95_000).map((k) => k.messageId)).toEqual(['c']);
    expect(r.bytes).toBe(10);
  });

  it('drops the oldest when the items exceed the byte limit', () => {
    const r = new RecentShadows(60_000, 100);
    for (const id of ['a', 'b', 'c', 'd']) r.remember(id, items(40), 1000);
    expect(r.recent(1000).map((k) => k.messageId)).toEqual(['c', 'd']);
    expect(r.bytes).toBe(80);
  });

  it('stays bounded over many entries', () => {
    const r = new RecentShadows(1000, 1 << 30);
    for (let t = 0; t < 10_000; t++) r.remember(`m${t}`, items(1), t);
    const left = r.recent(9999);
    expect(left).toHaveLength(1001);
    expect(left[0]!.messageId).toBe('m8999');
  });
});
