import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { MaildirError, classifyWriteError, deliverToMaildir, mailboxPath } from './maildir.ts';

const base = await mkdtemp(join(tmpdir(), 'maildir-'));
afterAll(() => rm(base, { recursive: true, force: true }));

describe('Maildir delivery', () => {
  it('writes into new/ with Return-Path and Delivered-To, leaves tmp/ empty, and a redelivery replaces rather than duplicates', async () => {
    const d = { base, recipient: 'Alice@Contoso.test', sender: 'x@example.org', messageId: 'ID1', receivedAt: 1_700_000_000_000 };
    const path = await deliverToMaildir({ ...d, body: Readable.from([Buffer.from('Subject: a\r\n\r\nbody\r\n')]) });
    await deliverToMaildir({ ...d, body: Readable.from([Buffer.from('Subject: a\r\n\r\nbody\r\n')]) });
    expect(await readFile(path, 'utf8')).toBe('Return-Path: <x@example.org>\r\nDelivered-To: Alice@Contoso.test\r\nSubject: a\r\n\r\nbody\r\n');
    const dir = join(base, 'contoso.test', 'alice');
    expect(await readdir(join(dir, 'new'))).toHaveLength(1);
    expect(await readdir(join(dir, 'tmp'))).toEqual([]);
    expect(await readdir(join(dir, 'cur'))).toEqual([]);
  });
  it.each(['../x@contoso.test', 'a@..', 'a/b@contoso.test', '@contoso.test'])('refuses %s as a mailbox directory', (address) => {
    expect(() => mailboxPath(base, address)).toThrow(MaildirError);
  });
  /** What `fn` throws. */
  const thrown = (fn: () => unknown): unknown => {
    try {
      fn();
    } catch (err) {
      return err;
    }
    return undefined;
  };
  it('says why in the reply a DSN quotes: 550 5.2.0 for an address that names no mailbox', () => {
    const caught = thrown(() => mailboxPath(base, 'a/b@contoso.test'));
    expect(caught).toBeInstanceOf(MaildirError);
    expect((caught as MaildirError).status).toBe('5.2.0');
    expect((caught as MaildirError).reply).toBe('550 5.2.0 address "a/b@contoso.test" cannot name a mailbox directory');
  });
  const errno = (code: string) => Object.assign(new Error(code), { code });
  it.each(['EDQUOT', 'EFBIG'])('turns %s into a full mailbox, 552 5.2.2, which fails the recipient', (code) => {
    const caught = thrown(() => classifyWriteError(errno(code), 'bob@contoso.test'));
    expect(caught).toBeInstanceOf(MaildirError);
    expect((caught as MaildirError).reply).toBe(`552 5.2.2 mailbox full: bob@contoso.test (${code})`);
  });
  it.each(['ENOSPC', 'EACCES', 'EIO'])('rethrows %s unchanged, so the work item is retried', (code) => {
    const original = errno(code);
    expect(() => classifyWriteError(original, 'bob@contoso.test')).toThrow(original);
    expect(() => classifyWriteError(original, 'bob@contoso.test')).not.toThrow(MaildirError);
  });
});
