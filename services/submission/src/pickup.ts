/**
 * The pickup directory (docs/exchange-behaviour.md §12): plain RFC 5322 `.eml` files become messages.
 * Envelope sender from Sender, else From; recipients from To/Cc/Bcc; Bcc (and Received,
 * Resent-*) removed. A file is claimed by renaming it `.tmp` (atomic, so several replicas
 * may share the directory), deleted once queued, renamed `.bad` with a logged reason when
 * unusable (also when the content guard refuses it: a NUL or an over-long line will not go
 * away on retry), and put back as `.eml` when the queue is unavailable. Bare LFs are common in
 * files, so the guard normalizes line endings to CRLF (PICKUP_CONTENT_GUARD).
 * Security: this path skips receive connectors; the directory's permissions are the boundary.
 */
import { createReadStream } from 'node:fs';
import { mkdir, readdir, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import addressparser from 'nodemailer/lib/addressparser';
import type { Envelope } from '@transit/envelope';
import { ContentRefusedError, SMTP_MAX_LINE_LENGTH, headerFields, headerValue, rfc5322Date, splitHeader, type IngestGuard } from '@transit/ingest';
import { isValidAddress } from '@transit/policy';

export type PickupEnvelope = { sender: string; recipients: string[] };

/** The pickup and replay directories' content guard: line endings made CRLF, the RFC 5321 line limit a connector has at most. */
export const PICKUP_CONTENT_GUARD: IngestGuard = { lineEndings: 'Normalize', maxLineLength: SMTP_MAX_LINE_LENGTH };
export type PickupParse = { ok: true; envelope: PickupEnvelope } | { ok: false; reason: string };

const REMOVED_HEADERS = /^(bcc|received|resent-[a-z-]+):/i;

function addresses(value: string | undefined): string[] {
  if (!value) return [];
  return addressparser(value, { flatten: true })
    .map((a) => ('address' in a ? a.address : ''))
    .filter((a): a is string => !!a);
}

/** Derives the envelope from the header block; pure. */
export function parsePickupHeader(header: Buffer, maxRecipients: number): PickupParse {
  const sender = addresses(headerValue(header, 'Sender'))[0] ?? addresses(headerValue(header, 'From'))[0];
  if (!sender) return { ok: false, reason: 'no Sender or From address' };
  if (!isValidAddress(sender)) return { ok: false, reason: `sender ${sender} is not a valid address` };
  const recipients = [...new Set(['To', 'Cc', 'Bcc'].flatMap((h) => allHeaderValues(header, h).flatMap(addresses)))];
  if (recipients.length === 0) return { ok: false, reason: 'no recipients in To, Cc or Bcc' };
  if (recipients.length > maxRecipients) return { ok: false, reason: `${recipients.length} recipients exceed the limit of ${maxRecipients}` };
  const bad = recipients.find((r) => !isValidAddress(r));
  if (bad) return { ok: false, reason: `recipient ${bad} is not a valid address` };
  return { ok: true, envelope: { sender, recipients } };
}

function allHeaderValues(header: Buffer, name: string): string[] {
  const re = new RegExp(`^${name}:`, 'i');
  return headerFields(header)
    .filter((f) => re.test(f))
    .map((f) =>
      f
        .slice(name.length + 1)
        .replace(/\r?\n[ \t]+/g, ' ')
        .trim(),
    );
}

/** The header block without Bcc, Received and Resent-* fields (byte for byte otherwise), with a Date when it had none. */
export function stripPickupHeaders(header: Buffer, now: Date = new Date()): Buffer {
  const kept = headerFields(header)
    .filter((f) => !REMOVED_HEADERS.test(f))
    .join('');
  return Buffer.from((headerValue(kept, 'Date') ? '' : `Date: ${rfc5322Date(now)}\r\n`) + kept, 'latin1');
}

export type PickupOptions = {
  dir: string;
  maxRecipients: number;
  maxHeaderSize: number;
  submit: (file: string, envelope: PickupEnvelope, header: (h: Buffer) => Buffer) => Promise<Pick<Envelope, 'id'>>;
  /** How a file's header gives the envelope and is rewritten: the pickup rules by default, the replay directory's in replay.ts. */
  parse?: (header: Buffer, maxRecipients: number) => PickupParse;
  rewrite?: (header: Buffer) => Buffer;
  /**
   * A file modified less than this long ago (ms) is left for a later pass: a writer that
   * creates the .eml in place may not have finished it (Exchange relies on the writer's file
   * lock for this; Linux has none). Writing elsewhere and renaming it in needs no wait.
   */
  settleMs?: number;
  log: { info(o: object, m: string): void; warn(o: object, m: string): void; error(o: object, m: string): void };
};

/** How long a pickup file must have been left unchanged before a pass takes it (see PickupOptions.settleMs). */
export const PICKUP_SETTLE_MS = 1000;

/** Puts back files a previous run left claimed (a crash mid-way); they may be submitted twice, as in Exchange. */
export async function recoverClaimed(dir: string): Promise<number> {
  await mkdir(dir, { recursive: true });
  const leftovers = (await readdir(dir)).filter((f) => f.endsWith('.tmp'));
  for (const f of leftovers) await rename(join(dir, f), join(dir, f.slice(0, -4) + '.eml')).catch(() => undefined);
  return leftovers.length;
}

/** One pass over the directory; returns how many files were queued. */
export async function pickupPass(opts: PickupOptions, limit = 100): Promise<number> {
  const names = (await readdir(opts.dir))
    .filter((f) => f.toLowerCase().endsWith('.eml'))
    .sort()
    .slice(0, limit);
  let queued = 0;
  const settled = Date.now() - (opts.settleMs ?? PICKUP_SETTLE_MS);
  for (const name of names) {
    const base = join(opts.dir, name.slice(0, -4));
    const claimed = `${base}.tmp`;
    try {
      if ((await stat(join(opts.dir, name))).mtimeMs > settled) continue; // still being written, perhaps: the next pass takes it
      await rename(join(opts.dir, name), claimed);
    } catch {
      continue; // another replica took it
    }
    let parse: PickupParse;
    const file = createReadStream(claimed);
    try {
      const split = await splitHeader(file, opts.maxHeaderSize);
      parse = (opts.parse ?? parsePickupHeader)(split.header, opts.maxRecipients);
    } catch (err) {
      parse = { ok: false, reason: (err as Error).message };
    } finally {
      file.destroy(); // only the header was read: close the file
    }
    if (!parse.ok) {
      await rename(claimed, `${base}.bad`);
      opts.log.warn({ file: name, reason: parse.reason }, 'pickup file unusable; renamed .bad (BADMAIL)');
      continue;
    }
    try {
      const { id } = await opts.submit(claimed, parse.envelope, opts.rewrite ?? ((h) => stripPickupHeaders(h)));
      await unlink(claimed);
      queued++;
      opts.log.info({ file: name, id, recipients: parse.envelope.recipients.length }, 'pickup file queued');
    } catch (err) {
      if (err instanceof ContentRefusedError) {
        await rename(claimed, `${base}.bad`);
        opts.log.warn({ file: name, reason: err.message, code: err.code }, 'pickup file unusable; renamed .bad (BADMAIL)');
        continue;
      }
      await rename(claimed, join(opts.dir, name)).catch(() => undefined);
      opts.log.error({ file: name, err: (err as Error).message }, 'pickup file not queued; will retry');
      break; // the queue is unavailable: stop this pass
    }
  }
  return queued;
}
