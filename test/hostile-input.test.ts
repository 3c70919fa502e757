/**
 * Hostile input at the door, against a real cluster: the ten bad endings of the published
 * SMTP-smuggling test set on each kind of connector (anonymous: refused; externally secured
 * and authenticated: normalised), with the stored (Maildir) and relayed (bytes on the sink's
 * socket) copies byte-checked; oversized DATA that must leave nothing in the object store;
 * header and line limits however the bytes are chunked; NUL and CR/LF injection in commands;
 * commands pipelined behind STARTTLS and behind the end of data.
 */
import { connect } from 'node:net';
import { connect as connectTls } from 'node:tls';
import { describe, expect, it } from 'vitest';
import { BODY_BUCKET, connectBus, receptionIn, type MessageEvent } from '@transit/bus';
import { hashPassword } from '@transit/config';
import { smtpTranscript, waitFor } from '@transit/testkit';
import { messageEvents, waitForMaildirMessage } from './harness.ts';
import { useHarness } from './use-harness.ts';

const BOB_PASSWORD = 'Bob-Hostile-Pw-1';
const h = useHarness(async () => {
  const bobHash = await hashPassword(BOB_PASSWORD, { N: 1024, r: 8, p: 1 });
  return {
    prepare: (config) => {
      const mailboxes = config.Mailboxes as Array<Record<string, unknown>>;
      Object.assign(
        mailboxes.find((m) => m.Name === 'Bob')!,
        { UserPrincipalName: 'bob@contoso.test', SamAccountName: 'bob', PasswordHash: bobHash },
      );
      const frontend = (config.ReceiveConnectors as Array<Record<string, unknown>>).find((c) => c.Name === 'Default Frontend')!;
      // Above the 256 KiB inline limit, so an oversized message has started into the object store when it is refused.
      Object.assign(frontend, { MaxMessageSize: 1024 * 1024, MaxHeaderSize: 16 * 1024 });
    },
  };
});

/** The ten bad endings of the public smtpsmug test set. */
const BAD_ENDINGS = ['\n.\n', '\r.\r', '\r.\n', '\n.\r', '\n.\r\n', '\r\n.\n', '\r.\r\n', '\r\n.\r', '\r\n\0.\r\n', '\r\n.\0\r\n'];
const printable = (s: string) => JSON.stringify(s);
/** Bare CR and bare LF become CRLF: the documented normalisation (docs/connectors.md). */
const normalised = (s: string) => s.replace(/\r\n|\r|\n/g, '\r\n');
const BARE = /\r(?!\n)|(?<!\r)\n/;

let counter = 0;
function smuggling(ending: string, rcpts: string[]): { marker: string; content: string } {
  const marker = `smug-${Date.now()}-${counter++}`;
  const content =
    `From: x@example.org\r\nTo: ${rcpts.join(', ')}\r\nSubject: ${marker}\r\nMessage-ID: <${marker}@example.org>\r\n\r\nfirst part${ending}` +
    `MAIL FROM:<attacker@example.org>\r\nRCPT TO:<alice@contoso.test>\r\nDATA\r\nSubject: smuggled ${marker}\r\n\r\nsmuggled\r\n`;
  return { marker, content };
}

const plainSession = (rcpts: string[], content: string, localAddress?: string) =>
  smtpTranscript({
    host: '127.0.0.1',
    port: h.cluster.port(25),
    localAddress,
    lines: ['EHLO client.example.org', 'MAIL FROM:<x@example.org>', ...rcpts.map((r) => `RCPT TO:<${r}>`), 'DATA', `DATA-BODY:${content}.\r\n`, 'QUIT'],
  });

const authenticatedSession = (rcpts: string[], content: string) =>
  smtpTranscript({
    host: '127.0.0.1',
    port: h.cluster.port(587),
    startTls: true,
    lines: [
      'EHLO client.example.org',
      'STARTTLS',
      'EHLO client.example.org',
      `AUTH PLAIN ${Buffer.from(`\0bob\0${BOB_PASSWORD}`).toString('base64')}`,
      'MAIL FROM:<bob@contoso.test>',
      ...rcpts.map((r) => `RCPT TO:<${r}>`),
      'DATA',
      `DATA-BODY:${content}.\r\n`,
      'QUIT',
    ],
  });

/** The message's events, once the cluster had time to record any (a control message sent after it has arrived). */
async function nothingStoredFor(marker: string): Promise<void> {
  const control = `control-${Date.now()}-${counter++}`;
  const replies = await plainSession(['alice@contoso.test'], `Subject: ${control}\r\n\r\n${control}\r\n`);
  expect(replies.at(-2)).toMatch(/^250 2\.6\.0 /);
  await waitForMaildirMessage(h, 'alice@contoso.test', control);
  for (const address of ['alice@contoso.test', 'bob@contoso.test']) expect((await h.maildirFiles(address)).filter((f) => f.includes(marker))).toEqual([]);
  expect(h.sink.messages.filter((m) => m.data.toString('latin1').includes(marker))).toEqual([]);
  // The Reception comes as a Received event or inside the hub's Submitted (libs/bus/src/events.ts).
  const receptions = (await messageEvents(h)).map((e) => receptionIn(e as MessageEvent)).filter((r) => r !== undefined);
  expect(receptions.filter((r) => r.subject === control)).toHaveLength(1); // the look does find what was stored
  expect(receptions.filter((r) => String(r.messageId).includes(marker))).toEqual([]);
}

/** What the sink's socket carried: CRLF only, every line starting with "." stuffed, and the unstuffed lines are `content`. */
function expectCleanWire(wire: Buffer | undefined, content: string): void {
  expect(wire).toBeDefined();
  const text = wire!.toString('latin1');
  expect(BARE.test(text), `bare CR or LF on the wire: ${printable(text)}`).toBe(false);
  expect(text.endsWith('\r\n.\r\n')).toBe(true);
  const lines = text.slice(0, -'.\r\n'.length).split('\r\n');
  expect(lines.filter((l) => l.startsWith('.') && !l.startsWith('..'))).toEqual([]);
  expect(text.slice(0, -'.\r\n'.length).replace(/^\./gm, '').endsWith(content)).toBe(true);
}

describe('the ten bad endings of SMTP smuggling', () => {
  it.each(BAD_ENDINGS)('anonymous Default Frontend refuses %j with 554 5.6.0 and stores nothing', async (ending) => {
    const { marker, content } = smuggling(ending, ['bob@contoso.test']);
    const replies = await plainSession(['bob@contoso.test'], content);
    expect(replies[5]).toMatch(/^554 5\.6\.0 /);
    expect(replies[6]).toBe('221 2.0.0 Service closing transmission channel');
    await nothingStoredFor(marker);
  });

  it.each(BAD_ENDINGS)('externally secured Application Relay normalises %j (NUL refused), in the Maildir and on the wire', async (ending) => {
    const { marker, content } = smuggling(ending, ['bob@contoso.test', 'someone@example.net']);
    const before = h.sink.messages.length;
    const replies = await plainSession(['bob@contoso.test', 'someone@example.net'], content, '127.0.0.2');
    if (ending.includes('\0')) {
      expect(replies[6]).toMatch(/^554 5\.6\.0 /);
      await nothingStoredFor(marker);
      return;
    }
    expect(replies[6]).toMatch(/^250 2\.6\.0 /);
    const expected = normalised(content);
    const stored = await waitForMaildirMessage(h, 'bob@contoso.test', marker);
    expect(BARE.test(stored), `bare CR or LF stored: ${printable(stored)}`).toBe(false);
    expect(stored.endsWith(expected)).toBe(true);
    const relayed = await waitFor(() => h.sink.messages.slice(before).find((m) => m.data.toString('latin1').includes(marker)), {
      timeoutMs: 20_000,
      what: `the relayed copy of ${marker}`,
    });
    expect(relayed.data.toString('latin1').endsWith(expected)).toBe(true);
    expectCleanWire(relayed.wire, expected);
    // One message: the smuggled one never became a message of its own.
    expect((await h.maildirFiles('alice@contoso.test')).filter((f) => f.includes(`smuggled ${marker}`))).toEqual([]);
  });

  it.each(BAD_ENDINGS)('authenticated Client Frontend normalises %j (NUL refused)', async (ending) => {
    const { marker, content } = smuggling(ending, ['alice@contoso.test']);
    const replies = await authenticatedSession(['alice@contoso.test'], content);
    expect(replies[4]).toMatch(/^235 /);
    if (ending.includes('\0')) {
      expect(replies[8]).toMatch(/^554 5\.6\.0 /);
      return;
    }
    expect(replies[8]).toMatch(/^250 2\.6\.0 /);
    const stored = await waitForMaildirMessage(h, 'alice@contoso.test', `Subject: ${marker}`);
    expect(stored.endsWith(normalised(content))).toBe(true);
  });
});

describe('limits while DATA streams in', () => {
  async function bodyBucket(): Promise<{ bytes: number; messages: number }> {
    const bus = await connectBus(h.cluster.natsUrl.split(','), 'test', 'once');
    try {
      const info = await bus.jsm.streams.info(`OBJ_${BODY_BUCKET}`);
      return { bytes: info.state.bytes, messages: info.state.messages };
    } finally {
      await bus.close();
    }
  }

  it('refuses oversized DATA from an anonymous client with 552 5.3.4, and the object store holds nothing of it', async () => {
    const marker = `big-${Date.now()}`;
    const before = await bodyBucket();
    const line = `${'x'.repeat(998)}\r\n`;
    const replies = await plainSession(['bob@contoso.test'], `Subject: ${marker}\r\n\r\n${line.repeat(3 * 1024)}`);
    expect(replies[5]).toBe('552 5.3.4 Message size exceeds fixed maximum message size');
    expect(await bodyBucket()).toEqual(before);
    await nothingStoredFor(marker);
  });

  it('holds MaxHeaderSize whether the header block arrives in one chunk or in many', async () => {
    const marker = `hdr-${Date.now()}`;
    const header = `Subject: ${marker}\r\n${`X-Filler: ${'y'.repeat(200)}\r\n`.repeat(90)}\r\nbody\r\n`; // ~18 KB > 16 KB
    const oneChunk = await plainSession(['bob@contoso.test'], header);
    expect(oneChunk[5]).toBe('552 5.3.4 Header size exceeds fixed maximum size');
    const parts = header.match(/[\s\S]{1,700}/g)!;
    const manyChunks = await smtpTranscript({
      host: '127.0.0.1',
      port: h.cluster.port(25),
      lines: [
        'EHLO c.example.org',
        'MAIL FROM:<x@example.org>',
        'RCPT TO:<bob@contoso.test>',
        'DATA',
        ...parts.map((p) => `DATA-PART:${p}`),
        'DATA-BODY:.\r\n',
      ],
      beforeEntry: () => new Promise((r) => setImmediate(r)),
    });
    expect(manyChunks.at(-1)).toBe('552 5.3.4 Header size exceeds fixed maximum size');
    await nothingStoredFor(marker);
  });

  it('accepts a 998-octet text line and refuses a 999-octet one (554 5.6.0)', async () => {
    const marker = `line-${Date.now()}`;
    const ok = await plainSession(['bob@contoso.test'], `Subject: ${marker}-ok\r\n\r\n${'a'.repeat(998)}\r\n`);
    expect(ok[5]).toMatch(/^250 2\.6\.0 /);
    const long = await plainSession(['bob@contoso.test'], `Subject: ${marker}\r\n\r\n${'a'.repeat(999)}\r\n`);
    expect(long[5]).toMatch(/^554 5\.6\.0 /);
    await waitForMaildirMessage(h, 'bob@contoso.test', `${marker}-ok`);
    expect((await h.maildirFiles('bob@contoso.test')).filter((f) => f.includes(`Subject: ${marker}\r\n`))).toEqual([]);
  });
});

describe('commands', () => {
  it('answers long lines, NUL, CR/LF injection and malformed addresses with their codes', async () => {
    const replies = await smtpTranscript({
      host: '127.0.0.1',
      port: h.cluster.port(25),
      lines: [
        'EHLO c.example.org',
        `NOOP ${'n'.repeat(700)}`,
        'MAIL FROM:<x\0y@example.org>',
        'MAIL FROM:<x@example.org>\rRCPT TO:<someone@example.net>',
        'MAIL FROM:<not an address>',
        'MAIL FROM:<x@example.org>',
        'RCPT TO:<bob@@contoso.test>',
        'RCPT TO:<bob@contoso.test>\rDATA',
        'QUIT',
      ],
    });
    expect(replies.slice(2)).toEqual([
      '500 5.5.2 Line too long',
      '500 5.5.2 Syntax error, command contains a NUL or bare CR',
      '500 5.5.2 Syntax error, command contains a NUL or bare CR',
      '501 5.1.7 Invalid address',
      '250 2.1.0 Sender OK',
      '501 5.1.3 Invalid address',
      '500 5.5.2 Syntax error, command contains a NUL or bare CR',
      '221 2.0.0 Service closing transmission channel',
    ]);
  });

  it('discards commands pipelined before the STARTTLS reply', async () => {
    const socket = connect({ host: '127.0.0.1', port: h.cluster.port(25) });
    let plain = '';
    socket.on('data', (d: Buffer) => (plain += d.toString('latin1')));
    await waitFor(() => (plain.includes('\r\n') ? true : undefined), { timeoutMs: 5000, what: 'the greeting' });
    socket.write('EHLO c.example.org\r\n');
    await waitFor(() => (/^250 /m.test(plain) ? true : undefined), { timeoutMs: 5000, what: 'the EHLO reply' });
    // The injected MAIL FROM rides in the same segment as STARTTLS.
    socket.write('STARTTLS\r\nMAIL FROM:<injected@example.org>\r\n');
    await waitFor(() => (/^220 2\.0\.0 /m.test(plain) ? true : undefined), { timeoutMs: 5000, what: 'the STARTTLS reply' });
    socket.removeAllListeners('data');
    const tls = connectTls({ socket, rejectUnauthorized: false });
    let secure = '';
    tls.on('data', (d: Buffer) => (secure += d.toString('latin1')));
    await new Promise<void>((resolve) => tls.once('secureConnect', () => resolve()));
    tls.write('EHLO c.example.org\r\nRCPT TO:<bob@contoso.test>\r\n');
    await waitFor(() => (/^503 /m.test(secure) || /^250 2\.1\.5/m.test(secure) ? true : undefined), { timeoutMs: 5000, what: 'the RCPT reply' });
    // No sender was taken over from before TLS: RCPT comes before any MAIL.
    expect(secure).toMatch(/^503 5\.5\.2 Need mail command\r\n/m);
    tls.end('QUIT\r\n');
  });

  it('refuses a message an unauthenticated client pipelined commands behind (554 5.5.0), and closes; a trusted relay may', async () => {
    const marker = `pipe-${Date.now()}`;
    const anonymous = await smtpTranscript({
      host: '127.0.0.1',
      port: h.cluster.port(25),
      allowClose: true,
      lines: [
        'EHLO c.example.org',
        'MAIL FROM:<x@example.org>',
        'RCPT TO:<bob@contoso.test>',
        'DATA',
        `DATA-BODY:Subject: ${marker}\r\n\r\nx\r\n.\r\nMAIL FROM:<x@example.org>\r\n`,
        'NOOP',
      ],
    });
    expect(anonymous[5]).toBe('554 5.5.0 SMTP protocol synchronization error, closing transmission channel');
    expect(anonymous[6]).toBe('(closed)');
    await nothingStoredFor(marker);

    const relay = await smtpTranscript({
      host: '127.0.0.1',
      port: h.cluster.port(25),
      localAddress: '127.0.0.2',
      lines: [
        'EHLO c.example.org',
        'MAIL FROM:<app@contoso.test>',
        'RCPT TO:<bob@contoso.test>',
        'DATA',
        `DATA-BODY:Subject: ${marker}-relay\r\n\r\nx\r\n.\r\nNOOP\r\n`,
        'QUIT',
      ],
    });
    expect(relay[5]).toMatch(/^250 2\.6\.0 /);
    await waitForMaildirMessage(h, 'bob@contoso.test', `${marker}-relay`);
  });
});
