/**
 * Mailbox Transport Submission: turns files in the pickup directory into messages on
 * `mail.submit` (through the same ingest path as SMTP, so "durable before done" holds).
 * Polls every PickupDirectoryPollInterval; several replicas may share one directory.
 */
import { createReadStream } from 'node:fs';
import { BodyStore } from '@transit/bus';
import { ingestMessage, rfc5322Date } from '@transit/ingest';
import { runService } from '@transit/service';
import { PICKUP_CONTENT_GUARD, pickupPass, recoverClaimed, type PickupOptions } from './pickup.ts';
import { parseReplayHeader, stripReplayHeaders } from './replay.ts';

await runService('submission', async (ctx) => {
  const bodies = new BodyStore(ctx.bus);
  const fqdn = ctx.settings.nodeName;
  const dir = ctx.settings.pickupDir;
  const recovered = await recoverClaimed(dir);
  if (recovered) ctx.log.warn({ recovered }, 'pickup files left claimed by a previous run were put back');
  ctx.facts.pickupDir = dir;
  const replayDir = ctx.settings.replayDir;
  if (await recoverClaimed(replayDir)) ctx.log.warn({ dir: replayDir }, 'replay files left claimed by a previous run were put back');
  ctx.facts.replayDir = replayDir;

  // Limits come from the live configuration at each pass (getters), so a change applies without a restart.
  const opts = {
    dir,
    get maxRecipients() {
      return ctx.config.TransportSettings.PickupDirectoryMaxRecipientsPerMessage;
    },
    get maxHeaderSize() {
      return ctx.config.TransportSettings.PickupDirectoryMaxHeaderSize;
    },
    log: ctx.log,
    submit: async (file: string, envelope: { sender: string; recipients: string[] }, rewriteHeader: (h: Buffer) => Buffer) => {
      const content = createReadStream(file);
      try {
        return await ingestMessage(
          { bus: ctx.bus, bodies, nodeName: ctx.settings.nodeName, log: ctx.log, publishBudgetMs: ctx.settings.publishBudgetMs },
          {
            sender: envelope.sender,
            recipients: envelope.recipients.map((address) => ({ address })),
            origin: { kind: 'pickup', serverHost: ctx.settings.nodeName },
            content,
            fqdn,
            maxHeaderSize: ctx.config.TransportSettings.PickupDirectoryMaxHeaderSize,
            inlineMaxBytes: ctx.config.TransportSettings.InlineBodyMaxBytes,
            guard: PICKUP_CONTENT_GUARD,
            rewriteHeader,
            prependHeaders: (id) => `Received: from pickup directory by ${fqdn} (Transit) id ${id}; ${rfc5322Date(new Date())}\r\n`,
          },
        );
      } finally {
        content.destroy(); // ingest leaves a refused stream open (for SMTP to drain); a file is closed here
      }
    },
  };

  // The replay directory: the same pass with the X-Sender/X-Receiver rules (the getters above stay live).
  const replayOpts: PickupOptions = Object.defineProperties(
    { ...opts, dir: replayDir, parse: parseReplayHeader, rewrite: stripReplayHeaders },
    {
      maxRecipients: Object.getOwnPropertyDescriptor(opts, 'maxRecipients')!,
      maxHeaderSize: Object.getOwnPropertyDescriptor(opts, 'maxHeaderSize')!,
    },
  );

  let stopping = false;
  let running: Promise<unknown> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;
  const schedule = () => {
    timer = setTimeout(() => {
      running = pickupPass(opts)
        .then(() => pickupPass(replayOpts))
        .catch((err: unknown) => ctx.log.error({ err: (err as Error).message }, 'pickup pass failed'))
        .finally(() => {
          if (!stopping) schedule();
        });
    }, ctx.config.TransportSettings.PickupDirectoryPollInterval);
  };
  schedule();
  return {
    stop: async () => {
      stopping = true;
      clearTimeout(timer);
      await running;
    },
  };
});
