import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { MaildirError, deliverToMaildir, mailboxPath } from './maildir.ts';

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
});
