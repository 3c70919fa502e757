import { createReadStream } from 'node:fs';
import { mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { guardContent } from '@transit/ingest';
import { PICKUP_CONTENT_GUARD, parsePickupHeader, pickupPass, stripPickupHeaders } from './pickup.ts';

const h = (s: string) => Buffer.from(s.replace(/\n/g, '\r\n'));

describe('pickup envelope', () => {
  it.each([
    ['Sender wins over From', 'Sender: s@contoso.test\nFrom: f@contoso.test\nTo: a@x.test\n', { sender: 's@contoso.test', recipients: ['a@x.test'] }],
    [
      'From when no Sender',
      'From: "F" <f@contoso.test>\nTo: a@x.test, "B" <b@x.test>\nCc: c@x.test\nBcc: d@x.test,\n e@x.test\n',
      { sender: 'f@contoso.test', recipients: ['a@x.test', 'b@x.test', 'c@x.test', 'd@x.test', 'e@x.test'] },
    ],
    ['duplicates once', 'From: f@contoso.test\nTo: a@x.test\nCc: a@x.test\n', { sender: 'f@contoso.test', recipients: ['a@x.test'] }],
  ])('%s', (_n, header, envelope) => {
    expect(parsePickupHeader(h(header), 100)).toEqual({ ok: true, envelope });
  });
  it.each([
    ['no sender', 'To: a@x.test\n', /no Sender or From/],
    ['no recipients', 'From: f@contoso.test\n', /no recipients/],
    ['too many', `From: f@contoso.test\nTo: ${Array.from({ length: 3 }, (_, i) => `r${i}@x.test`).join(', ')}\n`, /3 recipients exceed the limit of 2/],
  ])('refuses %s', (_n, header, reason) => {
    const r = parsePickupHeader(h(header), 2);
    expect(r.ok).toBe(false);
    expect(!r.ok && r.reason).toMatch(reason);
  });
  it('removes Bcc, Received and Resent-* fields (with their folded lines) and adds a Date when missing', () => {
    const out = stripPickupHeaders(
      h('Received: from a\n by b\nFrom: f@contoso.test\nBcc: d@x.test,\n e@x.test\nResent-From: z@x\nSubject: s\n'),
      new Date(Date.UTC(2026, 0, 2, 3, 4, 5)),
    ).toString();
    expect(out).toBe('Date: Fri, 2 Jan 2026 03:04:05 +0000\r\nFrom: f@contoso.test\r\nSubject: s\r\n');
    expect(stripPickupHeaders(h('Date: x\nFrom: f@contoso.test\n')).toString()).toBe('Date: x\r\nFrom: f@contoso.test\r\n');
  });
});

describe('pickup pass with the content guard', () => {
  it('normalizes bare LFs, and renames .bad what the guard refuses instead of retrying it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pickup-'));
    try {
      const head = 'From: app@contoso.test\nTo: bob@contoso.test\nSubject: s\n\n';
      await writeFile(join(dir, '1-bare-lf.eml'), head + 'hello\n.\nMAIL FROM:<x@y.test>\n');
      await writeFile(join(dir, '2-nul.eml'), head + 'a\0b\n');
      await writeFile(join(dir, '3-long-line.eml'), head + 'x'.repeat(999) + '\n');
      await writeFile(join(dir, '4-ok.eml'), head + 'x'.repeat(998) + '\n');
      const stored = new Map<string, string>();
      const warnings: string[] = [];
      const queued = await pickupPass({
        dir,
        settleMs: 0,
        maxRecipients: 10,
        maxHeaderSize: 64 * 1024,
        // What main.ts's ingestMessage does with the file: the same guard over the same stream.
        submit: async (file, _envelope) => {
          const out: Buffer[] = [];
          for await (const b of guardContent(createReadStream(file), { ...PICKUP_CONTENT_GUARD, maxHeaderSize: 64 * 1024 })) out.push(b);
          stored.set(file, Buffer.concat(out).toString('latin1'));
          return { id: file };
        },
        log: { info: () => undefined, warn: (o: object) => warnings.push(JSON.stringify(o)), error: () => undefined },
      });
      expect(queued).toBe(2);
      expect((await readdir(dir)).sort()).toEqual(['2-nul.bad', '3-long-line.bad']);
      expect([...stored.values()]).toEqual([
        'From: app@contoso.test\r\nTo: bob@contoso.test\r\nSubject: s\r\n\r\nhello\r\n.\r\nMAIL FROM:<x@y.test>\r\n',
        'From: app@contoso.test\r\nTo: bob@contoso.test\r\nSubject: s\r\n\r\n' + 'x'.repeat(998) + '\r\n',
      ]);
      expect(warnings.map((w) => (JSON.parse(w) as { code: string }).code)).toEqual(['NUL', 'LINE_TOO_LONG']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('leaves a file modified within settleMs for a later pass (a writer may not have finished it), then takes it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pickup-'));
    try {
      // What a pass could meet while a writer creates the file in place: the header cut short.
      await writeFile(join(dir, 'half.eml'), 'From: app@contoso.test\nTo: bo');
      const submitted: string[] = [];
      const pass = () =>
        pickupPass({
          dir,
          settleMs: 60_000,
          maxRecipients: 10,
          maxHeaderSize: 64 * 1024,
          submit: (_file, envelope) => {
            submitted.push(envelope.recipients.join());
            return Promise.resolve({ id: 'x' });
          },
          log: { info: () => undefined, warn: () => undefined, error: () => undefined },
        });
      expect(await pass()).toBe(0);
      expect(await readdir(dir)).toEqual(['half.eml']);
      // The writer finishes; once the file has been left alone for settleMs it is taken, whole.
      await writeFile(join(dir, 'half.eml'), 'From: app@contoso.test\nTo: bob@contoso.test\n\nhello\n');
      expect(await pass()).toBe(0);
      const past = new Date(Date.now() - 61_000);
      await utimes(join(dir, 'half.eml'), past, past);
      expect(await pass()).toBe(1);
      expect(submitted).toEqual(['bob@contoso.test']);
      expect(await readdir(dir)).toEqual([]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
