import { existsSync } from 'node:fs';
import { connect as tcpConnect, type Socket } from 'node:net';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { Redis } from 'ioredis';
import { createTransport } from 'nodemailer';
import { SMTPServer } from 'smtp-server';
import { afterAll, describe, expect, it } from 'vitest';
import { startNats, startRedis, startSmtpSink, smtpTranscript, waitFor, type NatsHandle, type RedisHandle, type SmtpSink } from './index.ts';

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('startNats', () => {
  let nats: NatsHandle | undefined;
  afterAll(async () => {
    await nats?.cleanup();
  });

  it('accepts NATS clients on a loopback port, with JetStream enabled', async () => {
    nats = await startNats();
    expect(nats.url).toBe(`nats://127.0.0.1:${nats.port}`);
    const nc = await connect({ servers: nats.url });
    try {
      const jsm = await jetstreamManager(nc);
      const account = await jsm.getAccountInfo();
      expect(account.streams).toBe(0);
    } finally {
      await nc.close();
    }
  });

  it('keeps a JetStream stream across restart() on the same port and store, with a new pid', async () => {
    const handle = nats!;
    let nc = await connect({ servers: handle.url });
    await (await jetstreamManager(nc)).streams.add({ name: 'T', subjects: ['t.>'] });
    await nc.close();

    const before = handle.pid;
    await handle.restart();
    expect(handle.pid).not.toBe(before);
    expect(processExists(before)).toBe(false);

    nc = await connect({ servers: handle.url });
    try {
      const info = await (await jetstreamManager(nc)).streams.info('T');
      expect(info.config.subjects).toEqual(['t.>']);
    } finally {
      await nc.close();
    }
  });

  it('kill() ends the process at once, and the stream survives the SIGKILL too', async () => {
    const handle = nats!;
    const pid = handle.pid;
    await handle.kill();
    expect(processExists(pid)).toBe(false);
    await handle.restart();
    const nc = await connect({ servers: handle.url });
    try {
      const info = await (await jetstreamManager(nc)).streams.info('T');
      expect(info.config.name).toBe('T');
    } finally {
      await nc.close();
    }
  });

  it('cleanup() stops the server (twice is harmless) and removes the store directory', async () => {
    const handle = nats!;
    const pid = handle.pid;
    await handle.cleanup();
    await handle.stop();
    expect(processExists(pid)).toBe(false);
    expect(existsSync(handle.storeDir)).toBe(false);
  });
});

describe('startRedis', () => {
  let redis: RedisHandle | undefined;
  afterAll(async () => {
    await redis?.cleanup();
  });

  it('answers PING on a loopback port and stops by its pid', async () => {
    redis = await startRedis();
    expect(redis.url).toBe(`redis://127.0.0.1:${redis.port}`);
    const client = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    try {
      expect(await client.ping()).toBe('PONG');
    } finally {
      await client.quit();
    }
    const pid = redis.pid;
    await redis.stop();
    expect(processExists(pid)).toBe(false);
  });
});

describe('startSmtpSink and smtpTranscript', () => {
  let sink: SmtpSink | undefined;
  afterAll(async () => {
    await sink?.close();
  });

  it('records a message sent by nodemailer, with its envelope', async () => {
    sink = await startSmtpSink({ rejectRecipient: (rcpt) => (rcpt === 'nobody@example.net' ? { code: 550, message: '5.1.1 no such user' } : undefined) });
    const transport = createTransport({ host: '127.0.0.1', port: sink.port, secure: false, ignoreTLS: true });
    try {
      await transport.sendMail({
        envelope: { from: 'alice@example.org', to: ['bob@example.net'] },
        raw: 'From: alice@example.org\r\nTo: bob@example.net\r\nSubject: hello\r\n\r\nbody text\r\n',
      });
    } finally {
      transport.close();
    }
    const [msg] = await sink.waitFor(1);
    expect(msg!.mailFrom).toBe('alice@example.org');
    expect(msg!.rcptTo).toEqual(['bob@example.net']);
    expect(msg!.data.toString()).toMatch(/Subject: hello\r\n\r\nbody text\r\n$/);
  });

  it('gives the exact replies of a raw dialogue, including a refused recipient', async () => {
    const s = sink!;
    const replies = await smtpTranscript({
      host: s.host,
      port: s.port,
      lines: [
        'EHLO x',
        'MAIL FROM:<a@example.org>',
        'RCPT TO:<nobody@example.net>',
        'RCPT TO:<b@example.net>',
        'DATA',
        'DATA-BODY:Subject: raw\r\n\r\n..dot\r\n.\r\n',
        'QUIT',
      ],
    });
    expect(replies).toHaveLength(8);
    expect(replies[0]).toMatch(/^220 /);
    const ehlo = replies[1]!.split('\n');
    expect(ehlo.every((l) => l.startsWith('250'))).toBe(true);
    expect(ehlo.at(-1)).toMatch(/^250 /);
    expect(replies[2]).toMatch(/^250 /);
    expect(replies[3]).toBe('550 5.1.1 no such user');
    expect(replies[4]).toMatch(/^250 /);
    expect(replies[5]).toMatch(/^354 /);
    expect(replies[6]).toMatch(/^250 /);
    expect(replies[7]).toMatch(/^221 /);

    const [, raw] = await s.waitFor(2);
    expect(raw!.rcptTo).toEqual(['b@example.net']);
    expect(raw!.data.toString()).toBe('Subject: raw\r\n\r\n.dot\r\n');
  });

  it('says how many messages arrived when waitFor gives up', async () => {
    await expect(sink!.waitFor(99, 50)).rejects.toThrow(/timed out after 50ms .* it has received 2$/);
  });
});

describe('startSmtpSink with recordWire', () => {
  let sink: SmtpSink | undefined;
  afterAll(async () => {
    await sink?.close();
  });

  it('keeps each DATA payload byte for byte as sent, terminator included, across chunks and messages on one connection', async () => {
    sink = await startSmtpSink({ recordWire: true });
    const first = 'Subject: one\r\n\r\n..dot\r\n.\r\n';
    const replies = await smtpTranscript({
      host: sink.host,
      port: sink.port,
      lines: [
        'EHLO x',
        'MAIL FROM:<a@example.org>',
        'RCPT TO:<b@example.net>',
        'DATA',
        `DATA-PART:${first.slice(0, 22)}`, // the payload split inside its CRLF.CRLF
        `DATA-BODY:${first.slice(22)}`,
        'MAIL FROM:<a@example.org>',
        'RCPT TO:<b@example.net>',
        'DATA',
        'DATA-BODY:.\r\n', // an empty message
        'QUIT',
      ],
    });
    expect(replies.filter((r) => r.startsWith('250 ')).length).toBeGreaterThanOrEqual(6);
    const [one, two] = await sink.waitFor(2);
    expect(one!.wire!.toString('latin1')).toBe(first);
    expect(one!.data.toString('latin1')).toBe('Subject: one\r\n\r\n.dot\r\n');
    expect(two!.wire!.toString('latin1')).toBe('.\r\n');
  });

  it('records nothing extra without the option', async () => {
    const plain = await startSmtpSink();
    try {
      await smtpTranscript({
        host: plain.host,
        port: plain.port,
        lines: ['EHLO x', 'MAIL FROM:<a@example.org>', 'RCPT TO:<b@example.net>', 'DATA', 'DATA-BODY:x\r\n.\r\n', 'QUIT'],
      });
      const [msg] = await plain.waitFor(1);
      expect(msg!.wire).toBeUndefined();
    } finally {
      await plain.close();
    }
  });
});

describe('startSmtpSink with a large message', () => {
  it('records a payload of many socket reads whole, and reads no faster than readBytesPerSecond', async () => {
    const rate = 2 * 1024 * 1024;
    const sink = await startSmtpSink({ recordWire: true, readBytesPerSecond: rate });
    const transport = createTransport({ host: sink.host, port: sink.port, secure: false, ignoreTLS: true });
    try {
      const line = 'x'.repeat(76) + '\r\n';
      const raw = Buffer.from(`Subject: big\r\n\r\n${line.repeat(8 * 1024)}`, 'latin1'); // 640 KiB
      const t0 = performance.now();
      await transport.sendMail({ envelope: { from: 'a@example.org', to: ['b@example.net'] }, raw });
      const elapsed = performance.now() - t0;
      const [msg] = await sink.waitFor(1);
      expect(msg!.data.equals(raw)).toBe(true);
      expect(msg!.wire!.equals(Buffer.concat([raw, Buffer.from('.\r\n')]))).toBe(true);
      // A lower bound only: all but the last 64 KiB read of the payload waited for the rate.
      expect(elapsed).toBeGreaterThanOrEqual(((raw.length - 64 * 1024) / rate) * 1000 * 0.9);
    } finally {
      transport.close();
      await sink.close();
    }
  });
});

describe('startSmtpSink: was a 250 confirmed?', () => {
  /** Speaks SMTP over a raw socket, waiting for each reply; `after` runs once the final dot is written (before its 250 is read). */
  async function dialogue(port: number, end: (socket: Socket) => Promise<void>) {
    const socket = tcpConnect(port, '127.0.0.1');
    let buffered = '';
    const reply = () =>
      new Promise<string>((resolve) => {
        const check = () => {
          const m = /(^|\n)(\d{3}) [^\n]*\n/.exec(buffered);
          if (!m) return;
          buffered = buffered.slice(m.index + m[0].length);
          socket.off('data', onData);
          resolve(m[2]!);
        };
        const onData = (c: Buffer) => {
          buffered += c.toString('latin1');
          check();
        };
        socket.on('data', onData);
        check();
      });
    await reply();
    for (const line of ['EHLO x', 'MAIL FROM:<a@example.org>', 'RCPT TO:<b@example.net>', 'DATA']) {
      socket.write(`${line}\r\n`);
      await reply();
    }
    socket.write('Subject: x\r\n\r\nbody\r\n.\r\n');
    await end(socket);
    return { socket, reply };
  }

  it('calls a message unconfirmed when the client vanished after its final dot, and confirmed when it went on or is still there', async () => {
    const sink = await startSmtpSink();
    try {
      // Vanished: the dot, then the connection is destroyed without another byte.
      await dialogue(sink.port, async (socket) => {
        await sink.waitFor(1);
        socket.destroy();
      });
      await waitFor(() => sink.unconfirmed(sink.messages[0]!) || undefined, { timeoutMs: 5000, what: 'the vanished client noticed' });

      // Went on: read the 250, then QUIT.
      const { socket, reply } = await dialogue(sink.port, () => Promise.resolve());
      expect(await reply()).toBe('250');
      await sink.waitFor(2);
      expect(sink.unconfirmed(sink.messages[1]!)).toBe(false); // still connected
      socket.write('QUIT\r\n');
      await reply();
      await new Promise((r) => socket.once('close', r));
      expect(sink.unconfirmed(sink.messages[1]!)).toBe(false);
      expect(sink.unconfirmed(sink.messages[0]!)).toBe(true);
    } finally {
      await sink.close();
    }
  });
});

describe('smtpTranscript with startTls', () => {
  it('upgrades the dialogue after a 220 to STARTTLS and reads the encrypted replies', async () => {
    // smtp-server with its built-in test certificate; REQUIRETLS shown, which it only lists on a secure session.
    const server = new SMTPServer({ logger: false, authOptional: true, disableReverseLookup: true, hideREQUIRETLS: false, closeTimeout: 1_000 });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    const { port } = server.server.address() as { port: number };
    try {
      const replies = await smtpTranscript({ host: '127.0.0.1', port, startTls: true, lines: ['EHLO x', 'STARTTLS', 'EHLO x', 'QUIT'] });
      const features = (reply: string) => reply.split('\n').map((l) => l.slice(4));
      expect(features(replies[1]!)).toContain('STARTTLS');
      expect(features(replies[1]!)).not.toContain('REQUIRETLS');
      expect(replies[2]).toMatch(/^220 /);
      expect(features(replies[3]!)).not.toContain('STARTTLS');
      expect(features(replies[3]!)).toContain('REQUIRETLS');
      expect(replies[4]).toMatch(/^221 /);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});

describe('waitFor', () => {
  it('returns the first defined value the probe gives', async () => {
    let calls = 0;
    const value = await waitFor(() => (++calls >= 3 ? calls : undefined), { timeoutMs: 5_000, intervalMs: 1, what: 'three calls' });
    expect(value).toBe(3);
  });

  it('names what it waited for when it times out', async () => {
    await expect(waitFor(() => undefined, { timeoutMs: 20, intervalMs: 5, what: 'nothing' })).rejects.toThrow('timed out after 20ms waiting for nothing');
  });
});
