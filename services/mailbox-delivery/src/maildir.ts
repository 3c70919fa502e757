/**
 * Maildir delivery (the tmp → new protocol): write into tmp/, fsync, rename into new/,
 * fsync the directory. The file name is derived from (message id, recipient) alone, so a
 * redelivered work item renames onto the same name instead of adding a second copy.
 * The bytes after Return-Path and Delivered-To are exactly the stored message.
 */
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { access, mkdir, open, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

/**
 * A recipient this mailbox store cannot take, ever: the recipient fails (Failed event and
 * a DSN) instead of the item being retried. `reply` is the SMTP reply quoted in the DSN.
 */
export class MaildirError extends Error {
  readonly code = 'MAILDIR';
  /** Enhanced status code for the DSN. */
  readonly status: string;
  readonly reply: string;
  constructor(message: string, status = '5.2.0', replyCode = 550) {
    super(message);
    this.name = 'MaildirError';
    this.status = status;
    this.reply = `${replyCode} ${status} ${message}`;
  }
}

/**
 * A write error that will not go away by retrying becomes a MaildirError: a quota (EDQUOT)
 * or file-size limit (EFBIG) is Exchange's "mailbox full", 552 5.2.2. Everything else — a
 * full disk (ENOSPC), permissions, I/O errors — is the store's fault, not the recipient's,
 * and is rethrown so the work item is retried.
 */
export function classifyWriteError(err: unknown, recipient: string): never {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'EDQUOT' || code === 'EFBIG') throw new MaildirError(`mailbox full: ${recipient} (${code})`, '5.2.2', 552);
  throw err;
}

/** `<base>/<domain>/<localpart>`; refuses addresses that would escape the base directory. */
export function mailboxPath(base: string, address: string): string {
  const at = address.lastIndexOf('@');
  const local = address.slice(0, at).toLowerCase();
  const domain = address.slice(at + 1).toLowerCase();
  const safe = (part: string) => part !== '' && part !== '.' && part !== '..' && !/[/\\\0]/.test(part);
  if (at <= 0 || !safe(local) || !safe(domain)) throw new MaildirError(`address ${JSON.stringify(address)} cannot name a mailbox directory`);
  return join(base, domain, local);
}

export function maildirFileName(messageId: string, receivedAt: number, recipient: string): string {
  const r = createHash('sha256').update(recipient.toLowerCase()).digest('hex').slice(0, 12);
  return `${Math.floor(receivedAt / 1000)}.${messageId}_${r}.transit`;
}

async function fsyncPath(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export type MaildirDelivery = { base: string; recipient: string; sender: string; messageId: string; receivedAt: number; body: Readable };

/**
 * Whether this message is already in the recipient's mailbox: in new/, or (when `read`
 * is asked, for Safety Net resubmissions) in cur/ where a mail client moved it.
 */
export async function alreadyInMailbox(base: string, recipient: string, messageId: string, receivedAt: number, read: boolean): Promise<boolean> {
  const dir = mailboxPath(base, recipient);
  const name = maildirFileName(messageId, receivedAt, recipient);
  if (
    await access(join(dir, 'new', name)).then(
      () => true,
      () => false,
    )
  )
    return true;
  if (!read) return false;
  return (await readdir(join(dir, 'cur')).catch(() => [] as string[])).some((f) => f === name || f.startsWith(`${name}:`));
}

/** Delivers one copy; resolves to the path in new/. */
export async function deliverToMaildir(d: MaildirDelivery): Promise<string> {
  const dir = mailboxPath(d.base, d.recipient);
  await Promise.all(['tmp', 'new', 'cur'].map((sub) => mkdir(join(dir, sub), { recursive: true }))).catch((err: unknown) =>
    classifyWriteError(err, d.recipient),
  );
  const name = maildirFileName(d.messageId, d.receivedAt, d.recipient);
  const tmp = join(dir, 'tmp', `${name}.${process.pid}`);
  const final = join(dir, 'new', name);
  const added = `Return-Path: <${d.sender}>\r\nDelivered-To: ${d.recipient}\r\n`;
  try {
    const out = createWriteStream(tmp, { flags: 'w', mode: 0o600 });
    out.write(added);
    await pipeline(d.body, out);
    await fsyncPath(tmp);
    await rename(tmp, final);
    await fsyncPath(join(dir, 'new'));
  } catch (err) {
    await rm(tmp, { force: true });
    classifyWriteError(err, d.recipient);
  }
  return final;
}
