/**
 * Mailbox Transport Submission: turns files in the pickup directory into messages on
 * `mail.submit` (through the same ingest path as SMTP, so "durable before done" holds).
 * Polls every PickupDirectoryPollInterval; several replicas may share one directory.
 */
import { createReadStream } from 'node:fs';
import { BodyStore } from '@transit/bus';
import { ingestMessage, rfc5322Date } from '@transit/ingest';
import { runService } from '@transit/service';
import { pickupPass, recoverClaimed } from './pickup.ts';

await runService('submission', async (ctx) => {
  const bodies = new BodyStore(ctx.bus);
  const ts = ctx.config.TransportSettings;
  const fqdn = ctx.settings.nodeName;
  const dir = ctx.settings.pickupDir;
  const recovered = await recoverClaimed(dir);
  if (recovered) ctx.log.warn({ recovered }, 'pickup files left claimed by a previous run were put back');
  ctx.facts.pickupDir = dir;

  const opts = {
    dir,
    maxRecipients: ts.PickupDirectoryMaxRecipientsPerMessage,
    maxHeaderSize: ts.PickupDirectoryMaxHeaderSize,
    log: ctx.log,
    submit: (file: string, envelope: { sender: string; recipients: string[] }, rewriteHeader: (h: Buffer) => Buffer) =>
      ingestMessage(
        { bus: ctx.bus, bodies, nodeName: ctx.settings.nodeName, log: ctx.log },
        {
          sender: envelope.sender,
          recipients: envelope.recipients.map((address) => ({ address })),
          origin: { kind: 'pickup', serverHost: ctx.settings.nodeName },
          content: createReadStream(file),
          fqdn,
          maxHeaderSize: ts.PickupDirectoryMaxHeaderSize,
          inlineMaxBytes: ts.InlineBodyMaxBytes,
          rewriteHeader,
          prependHeaders: (id) => `Received: from pickup directory by ${fqdn} (Transit) id ${id}; ${rfc5322Date(new Date())}\r\n`,
        },
      ),
  };

  let stopping = false;
  let running: Promise<unknown> = Promise.resolve();
  const timer = setInterval(() => {
    if (stopping) return;
    running = running.then(() => pickupPass(opts)).catch((err: unknown) => ctx.log.error({ err: (err as Error).message }, 'pickup pass failed'));
  }, ts.PickupDirectoryPollInterval);
  return {
    stop: async () => {
      stopping = true;
      clearInterval(timer);
      await running;
    },
  };
});
