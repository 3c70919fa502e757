/**
 * Safety Net: delivered mailbox items are kept, and `transitctl safetynet resubmit` puts back
 * what a lost mailbox store no longer has, while copies still in the mailbox (new/ or read
 * into cur/) are suppressed as duplicates.
 */
import { execFile } from 'node:child_process';
import { readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';
import { smtpTranscript, waitFor } from '@transit/testkit';
import { messageEvents, waitForMaildirMessage } from './harness.ts';
import { useHarness } from './use-harness.ts';

const run = promisify(execFile);
const h = useHarness();

const resubmit = async (args: string[]) =>
  (
    await run(process.execPath, [join(import.meta.dirname, '../tools/transitctl/src/main.ts'), 'safetynet', 'resubmit', ...args], {
      env: { ...process.env, NATS_URL: h.cluster.natsUrl },
    })
  ).stdout;

it('resubmits what a mailbox lost, and only that', async () => {
  const since = new Date(Date.now() - 1000).toISOString();
  const marker = `safetynet-${Date.now()}`;
  const replies = await smtpTranscript({
    host: '127.0.0.1',
    port: h.cluster.port(25),
    lines: [
      'EHLO c.example.org',
      'MAIL FROM:<x@example.org>',
      'RCPT TO:<bob@contoso.test>',
      'DATA',
      `DATA-BODY:Subject: ${marker}\r\n\r\n${marker}\r\n.\r\n`,
      'QUIT',
    ],
  });
  expect(replies[5]).toMatch(/^250 2\.6\.0 /);
  await waitForMaildirMessage(h, 'bob@contoso.test', marker);
  const box = join(h.cluster.mailDir, 'contoso.test', 'bob');
  const fileName = async () => (await readdir(join(box, 'new'))).find((f) => f.includes('.transit'))!;
  const name = await fileName();
  const id = /^\d+\.(\w+)_/.exec(name)![1]!;
  const duplicates = async () => (await messageEvents(h, id)).filter((e) => e.type === 'DuplicateSuppressed').length;
  const copies = async () => (await h.maildirFiles('bob@contoso.test')).filter((f) => f.includes(marker)).length;

  // Still in the mailbox: resubmission changes nothing.
  expect(await resubmit(['--recipient', 'bob@contoso.test', '--since', since])).toMatch(/^resubmitted 1 message\(s\) for 1 recipient\(s\)/);
  await waitFor(async () => ((await duplicates()) >= 1 ? true : undefined), { timeoutMs: 15_000, what: 'a DuplicateSuppressed event' });
  expect(await copies()).toBe(1);

  // The mailbox store lost it: resubmission (by domain) brings it back, once.
  await rm(join(box, 'new', name));
  expect(await resubmit(['--recipient', 'contoso.test', '--since', since])).toMatch(/^resubmitted 1 message\(s\)/);
  await waitForMaildirMessage(h, 'bob@contoso.test', marker);
  expect(await copies()).toBe(1);

  // Read by a mail client (moved to cur/ with flags): still a duplicate.
  await rename(join(box, 'new', name), join(box, 'cur', `${name}:2,S`));
  await resubmit(['--recipient', 'bob@contoso.test', '--since', since]);
  await waitFor(async () => ((await duplicates()) >= 2 ? true : undefined), { timeoutMs: 15_000, what: 'a second DuplicateSuppressed event' });
  expect(await readdir(join(box, 'new'))).toEqual([]);

  // Outside the window: nothing.
  expect(await resubmit(['--recipient', 'bob@contoso.test', '--since', new Date(Date.now() + 60_000).toISOString()])).toMatch(/^resubmitted 0 message\(s\)/);
});
