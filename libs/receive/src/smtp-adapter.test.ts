/**
 * The smtp-server adaptation is contained: Transit's listeners behave as Transit, a stock
 * SMTPServer in the same process behaves exactly as stock, no library prototype changes,
 * stock checks (maxClients) still apply, and the internals the subclasses rely on are still
 * there in the installed version (a failure here names what to review).
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { REPLIES, formatReply } from '@transit/policy';
import { freePort, smtpTranscript } from '@transit/testkit';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';
import { SMTPStream } from 'smtp-server/lib/smtp-stream.js';
import {
  MAX_AUTH_LINE,
  MAX_COMMAND_LINE,
  STOCK_REPLIES,
  TransitConnection,
  TransitSMTPServer,
  TransitStream,
  commandLineProblem,
  type ConnectionHooks,
} from './smtp-adapter.ts';

const servers: SMTPServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
});

const common: SMTPServerOptions = {
  logger: false,
  disableReverseLookup: true,
  authOptional: true,
  disabledCommands: ['STARTTLS'],
  hideENHANCEDSTATUSCODES: false,
  onData: (stream, _session, cb) => {
    stream.on('end', () => cb());
    stream.resume();
  },
};
const hooks: ConnectionHooks = { options: {}, maxProtocolErrors: 0, inactivityMs: 60_000 };

async function listen(server: SMTPServer): Promise<number> {
  const port = await freePort();
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', () => resolve()));
  return port;
}

const transitServer = (options: SMTPServerOptions = {}) =>
  new TransitSMTPServer(
    { ...common, ...options },
    { onOpen: () => ({ accept: true, name: 'mx.contoso.test', banner: 'mx.contoso.test Transit ESMTP ready', greetingDelayMs: 0, hooks }) },
  );

const dialogue = ['EHLO client.example.org', 'MAIL FROM:<a@example.org>', 'RCPT TO:<b@example.org>', 'DATA', 'DATA-BODY:Subject: x\r\n\r\nx\r\n.\r\n', 'QUIT'];

/** Every own property descriptor of the library's prototypes, to compare before and after. */
function prototypeShapes(): string {
  const describe = (proto: object) => Reflect.ownKeys(proto).map((k) => `${String(k)}:${String(Reflect.get(proto, k))}`);
  return JSON.stringify([SMTPServer.prototype, SMTPConnection.prototype, SMTPStream.prototype].map(describe));
}

describe('a Transit listener and a stock smtp-server in one process', () => {
  it('answers each as its own: Transit with the reply table, stock with its stock texts, and no prototype changes', async () => {
    const before = prototypeShapes();
    const transitPort = await listen(transitServer());
    const stockPort = await listen(new SMTPServer({ ...common }));

    const transit = await smtpTranscript({ host: '127.0.0.1', port: transitPort, lines: dialogue });
    const stock = await smtpTranscript({ host: '127.0.0.1', port: stockPort, lines: dialogue });

    expect(transit[0]).toBe('220 mx.contoso.test Transit ESMTP ready');
    expect(transit[1]!.split('\n')[0]).toBe('250-mx.contoso.test Hello [127.0.0.1]');
    expect(transit.slice(2)).toEqual([
      formatReply(REPLIES.senderOk),
      formatReply(REPLIES.recipientOk),
      formatReply(REPLIES.startMailInput),
      expect.stringMatching(/^250 /),
      formatReply(REPLIES.closing),
    ]);

    // Stock, exactly as smtp-server words it (its own enhanced codes and texts).
    expect(stock[0]).toMatch(/ ESMTP$/);
    expect(stock[1]!.split('\n')[0]).toMatch(/^250-.* Nice to meet you, \[127\.0\.0\.1\]$/);
    expect(stock.slice(2)).toEqual([
      '250 2.1.0 Accepted',
      '250 2.1.5 Accepted',
      '354 End data with <CR><LF>.<CR><LF>',
      '250 2.6.0 OK: message queued',
      '221 2.0.0 Bye',
    ]);
    // A Transit command-line limit does not reach the stock server either.
    const long = `NOOP ${'x'.repeat(600)}`;
    expect((await smtpTranscript({ host: '127.0.0.1', port: stockPort, lines: ['EHLO c.example.org', long] }))[2]).toMatch(/^250 /);
    expect((await smtpTranscript({ host: '127.0.0.1', port: transitPort, lines: ['EHLO c.example.org', long] }))[2]).toBe(formatReply(REPLIES.lineTooLong));

    expect(prototypeShapes()).toBe(before);
  });

  it("keeps smtp-server's maxClients check", async () => {
    const port = await listen(transitServer({ maxClients: 1 }));
    const first = smtpTranscript({
      host: '127.0.0.1',
      port,
      lines: ['EHLO a.example.org', 'NOOP'],
      beforeEntry: (i) => (i === 1 ? new Promise((r) => setTimeout(r, 500)) : undefined),
    });
    await new Promise((r) => setTimeout(r, 150));
    const second = await smtpTranscript({ host: '127.0.0.1', port, lines: ['EHLO b.example.org'], allowClose: true });
    expect(second[0]).toBe(formatReply(REPLIES.tooManyConnections));
    expect((await first)[0]).toMatch(/^220 /);
  });
});

describe('command lines', () => {
  const line = (s: string) => Buffer.from(s, 'latin1');
  it.each([
    ['a 510-octet command (512 with the CRLF)', `NOOP ${'x'.repeat(MAX_COMMAND_LINE - 5)}`, false, undefined],
    ['a 511-octet command', `NOOP ${'x'.repeat(MAX_COMMAND_LINE - 4)}`, false, REPLIES.lineTooLong],
    ['a 700-octet MAIL FROM', `MAIL FROM:<${'a'.repeat(680)}@example.org>`, false, REPLIES.lineTooLong],
    ['an AUTH PLAIN line of 12,288 octets', `AUTH PLAIN ${'A'.repeat(MAX_AUTH_LINE - 11)}`, false, undefined],
    ['an AUTH line over 12,288 octets', `AUTH PLAIN ${'A'.repeat(MAX_AUTH_LINE - 10)}`, false, REPLIES.lineTooLong],
    ['a long line inside an AUTH exchange', 'A'.repeat(4000), true, undefined],
    ['a NUL in MAIL FROM', 'MAIL FROM:<a\0b@example.org>', false, REPLIES.invalidCommandCharacter],
    ['a bare CR splitting a command (CR/LF injection)', 'MAIL FROM:<a@example.org>\rRCPT TO:<b@example.org>', false, REPLIES.invalidCommandCharacter],
    ['a plain command', 'MAIL FROM:<a@example.org> SIZE=100', false, undefined],
  ])('%s', (_name, text, inAuth, expected) => {
    expect(commandLineProblem(line(text), inAuth)).toBe(expected);
  });

  it('are refused with the table reply on a live Transit listener, and the session goes on', async () => {
    const port = await listen(transitServer());
    const replies = await smtpTranscript({
      host: '127.0.0.1',
      port,
      lines: [
        'EHLO c.example.org',
        `MAIL FROM:<${'a'.repeat(680)}@example.org>`,
        'MAIL FROM:<a\0b@example.org>',
        'MAIL FROM:<a@example.org>\rRCPT TO:<b@example.org>',
        'MAIL FROM:<a@example.org>',
      ],
    });
    expect(replies.slice(2)).toEqual([
      formatReply(REPLIES.lineTooLong),
      formatReply(REPLIES.invalidCommandCharacter),
      formatReply(REPLIES.invalidCommandCharacter),
      formatReply(REPLIES.senderOk),
    ]);
  });
});

describe('the installed smtp-server still has what the adapter relies on', () => {
  const require = createRequire(import.meta.url);
  const pkgDir = dirname(require.resolve('smtp-server/package.json'));

  it('is the pinned version', async () => {
    const installed = (JSON.parse(await readFile(join(pkgDir, 'package.json'), 'utf8')) as { version: string }).version;
    const root = JSON.parse(await readFile(join(import.meta.dirname, '../../../package.json'), 'utf8')) as { dependencies: Record<string, string> };
    expect(
      root.dependencies['smtp-server'],
      'smtp-server must be pinned to an exact version (libs/receive/src/smtp-adapter.ts depends on its internals)',
    ).toMatch(/^\d+\.\d+\.\d+$/);
    expect(installed).toBe(root.dependencies['smtp-server']);
  });

  it.each([
    [SMTPServer.prototype, 'SMTPServer', ['connect', '_handleProxy', '_expectsProxyHeader', '_onError', '_onClientConnect']],
    [
      SMTPConnection.prototype,
      'SMTPConnection',
      [
        'init',
        '_setListeners',
        'connectionReady',
        'send',
        'close',
        '_sendGreeting',
        '_onCommand',
        '_armTimeout',
        '_whenWritable',
        '_createParser',
        'handler_EHLO',
        'handler_HELO',
      ],
    ],
    [SMTPStream.prototype, 'SMTPStream', ['_write', '_endDataMode', 'startDataMode']],
  ] as const)('%s methods', (proto, name, methods) => {
    for (const method of methods)
      expect(
        typeof (proto as unknown as Record<string, unknown>)[method],
        `smtp-server changed: ${name}.${method} is gone; review libs/receive/src/smtp-adapter.ts`,
      ).toBe('function');
  });

  // The subclasses re-implement these stock bodies (to make Transit's classes, and to keep
  // stock's maxClients check); a changed body must be reviewed and the fingerprint updated.
  const fingerprint = (fn: unknown) => createHash('sha256').update(String(fn).replace(/\s+/g, ' ')).digest('hex').slice(0, 16);
  it.each([
    ['SMTPServer.connect', SMTPServer.prototype, 'connect', '760cd6611cf58d7f'],
    ['SMTPConnection.init', SMTPConnection.prototype, 'init', '67b68fcaf9a0a35f'],
    ['SMTPConnection._createParser', SMTPConnection.prototype, '_createParser', '969851c58da15fb6'],
  ] as const)('%s is the body TransitSMTPServer/TransitConnection re-implement', (name, proto, method, expected) => {
    expect(
      fingerprint(Object.getOwnPropertyDescriptor(proto, method)?.value),
      `smtp-server changed ${name}, which libs/receive/src/smtp-adapter.ts re-implements: review it, then update this fingerprint`,
    ).toBe(expected);
  });

  it('still words each reply that STOCK_REPLIES translates', async () => {
    const sources = (
      await Promise.all(['smtp-connection.js', 'smtp-stream.js', 'sasl.js', 'smtp-server.js'].map((f) => readFile(join(pkgDir, 'dist/esm', f), 'utf8')))
    ).join('\n');
    for (const key of STOCK_REPLIES.keys()) {
      const text = key.split('|')[1]!.replace(/^Error: /, '');
      // One text is assembled from parts (HELO/EHLO or LHLO): each part must still be there.
      const parts = text === 'send HELO/EHLO first' ? ["'Error: send '", "'HELO/EHLO'", "' first'"] : [text];
      expect(
        parts.every((part) => sources.includes(part)),
        `smtp-server no longer says "${text}"; review STOCK_REPLIES in libs/receive/src/smtp-adapter.ts`,
      ).toBe(true);
    }
  });

  it('makes Transit connections and parsers', async () => {
    let seen: unknown;
    const server = new TransitSMTPServer({ ...common }, { onOpen: (conn) => ((seen = conn), { accept: false, reply: REPLIES.serviceNotAvailable }) });
    const port = await listen(server);
    const replies = await smtpTranscript({ host: '127.0.0.1', port, lines: [], allowClose: true });
    expect(replies[0]).toBe(formatReply(REPLIES.serviceNotAvailable));
    expect(seen).toBeInstanceOf(TransitConnection);
    expect((seen as TransitConnection)._parser).toBeInstanceOf(TransitStream);
  });
});
