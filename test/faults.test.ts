import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { createTransport } from 'nodemailer';
import { describe, expect, it } from 'vitest';
import { smtpTranscript, waitFor } from '@transit/testkit';
import { waitForMaildir, waitForMaildirMessage } from './harness.ts';
import { useHarness } from './use-harness.ts';

// The sink defers one recipient on its first attempt and refuses another for good.
let deferredOnce = false;
const h = useHarness({
  // Give up on an unreachable bus after 2 s (default 15 s) so the outage test answers quickly.
  env: { TRANSIT_PUBLISH_BUDGET_MS: '2000' },
  rejectRecipient: (rcpt) => {
    if (rcpt === 'gone@example.net') return { code: 550, message: '5.1.1 mailbox gone' };
    if (rcpt === 'later@example.net' && !deferredOnce) {
      deferredOnce = true;
      return { code: 451, message: '4.2.0 try later' };
    }
    return undefined;
  },
});

const send = (to: string, subject: string) =>
  smtpTranscript({
    host: '127.0.0.1',
    port: h.cluster.port(25),
    lines: ['EHLO client.example', 'MAIL FROM:<x@example.org>', `RCPT TO:<${to}>`, 'DATA', `DATA-BODY:Subject: ${subject}\r\n\r\n${subject}\r\n.\r\n`, 'QUIT'],
  });

describe('faults', () => {
  it('answers 4xx, never 250, while nats-server is down, and flows again when it returns without restarting Transit', async () => {
    await h.cluster.stopNats();
    const down = await send('bob@contoso.test', 'while-down');
    expect(down[5]).toMatch(/^4\d\d 4\.\d+\.\d+ /);
    expect(down.some((r) => r.startsWith('250 2.6.0'))).toBe(false);

    await h.cluster.startNats();
    // The services reconnect by themselves; the first attempts may still see the reconnect in progress.
    let after: string[] = [];
    for (let i = 0; i < 40; i++) {
      after = await send('bob@contoso.test', 'after-restart');
      if (after[5]?.startsWith('250')) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(after[5]).toMatch(/^250 2\.6\.0 /);
    const files = await waitForMaildir(h, 'bob@contoso.test', 1, 30_000);
    expect(files.filter((f) => f.includes('after-restart'))).toHaveLength(1);
    expect(files.some((f) => f.includes('while-down'))).toBe(false);
  });

  it('keeps mail queued in mail.submit while the hub is dead and delivers all of it once it is back', async () => {
    await h.cluster.killRole('hub');
    const n = 20;
    const transport = createTransport({ host: '127.0.0.1', port: h.cluster.port(25), secure: false, ignoreTLS: true, pool: true, maxConnections: 4 });
    const results = await Promise.all(
      Array.from({ length: n }, (_, i) =>
        transport.sendMail({
          envelope: { from: 'x@example.org', to: ['alice@contoso.test'] },
          raw: `Subject: queued ${i}\r\nMessage-ID: <queued-${i}@example.org>\r\n\r\nqueued ${i}\r\n`,
        }),
      ),
    );
    transport.close();
    expect(results.every((r) => r.response.startsWith('250 2.6.0'))).toBe(true);
    await new Promise((r) => setTimeout(r, 500));
    expect((await h.maildirFiles('alice@contoso.test')).filter((f) => f.includes('<queued-'))).toHaveLength(0); // nothing routed without a hub

    await h.cluster.startRole('hub');
    await waitForMaildir(h, 'alice@contoso.test', n, 30_000);
    const delivered = (await h.maildirFiles('alice@contoso.test')).filter((f) => f.includes('<queued-'));
    expect(new Set(delivered.map((f) => /<queued-(\d+)@/.exec(f)![1])).size).toBe(n);
    expect(delivered).toHaveLength(n); // every message once, none twice
  });

  it('delivers per recipient remotely: accepted once, 5xx failed, 4xx retried and then delivered', async () => {
    const before = h.sink.messages.length;
    const transport = createTransport({ host: '127.0.0.1', port: h.cluster.port(25), secure: false, ignoreTLS: true, localAddress: '127.0.0.2' });
    await transport.sendMail({
      envelope: { from: 'app@contoso.test', to: ['now@example.net', 'gone@example.net', 'later@example.net'] },
      raw: 'Subject: mixed\r\n\r\nmixed outcome\r\n',
    });
    transport.close();
    const got = await h.sink.waitFor(before + 2, 30_000);
    const fresh = got.slice(before);
    expect(fresh[0]!.rcptTo).toEqual(['now@example.net']); // the first attempt: one accepted, one refused, one deferred
    expect(fresh[1]!.rcptTo).toEqual(['later@example.net']); // the retry carries only the deferred recipient
    await new Promise((r) => setTimeout(r, 1500));
    expect(
      h.sink.messages
        .slice(before)
        .flatMap((m) => m.rcptTo)
        .sort(),
    ).toEqual(['later@example.net', 'now@example.net']);
  });

  it('terminates an undecodable submit item instead of retrying it, and mail behind it still flows', async () => {
    const nc = await connect({ servers: h.cluster.natsUrl });
    try {
      await jetstream(nc).publish('mail.submit', new Uint8Array([0xc1, 0x00, 0xff]), { msgID: 'garbage-1' });
      const sent = await send('bob@contoso.test', 'behind-garbage');
      expect(sent[5]).toMatch(/^250 2\.6\.0 /);
      await waitForMaildirMessage(h, 'bob@contoso.test', 'behind-garbage', 30_000);
      expect((await h.maildirFiles('bob@contoso.test')).filter((f) => f.includes('behind-garbage'))).toHaveLength(1);
      const jsm = await jetstreamManager(nc);
      // The garbage leaves the work queue (terminated), instead of waiting for redelivery.
      await waitFor(async () => ((await jsm.streams.info('MAIL_SUBMIT')).state.messages === 0 ? true : undefined), {
        timeoutMs: 5000,
        what: 'mail.submit to be empty',
      });
      const hub = await jsm.consumers.info('MAIL_SUBMIT', 'hub');
      expect(hub.num_ack_pending + hub.num_pending).toBe(0);
    } finally {
      await nc.close();
    }
  });
});
