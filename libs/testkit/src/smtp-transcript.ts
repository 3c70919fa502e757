/**
 * A raw SMTP dialogue for tests that assert exact reply lines, byte for byte what a
 * client would see: no client library in between to retry, pipeline or reinterpret.
 */
import { connect, type Socket } from 'node:net';
import { connect as connectTls } from 'node:tls';
import { TestkitError } from './errors.ts';

export type TranscriptOptions = {
  host: string;
  port: number;
  /** Source address, e.g. '127.0.0.2', for connectors scoped by remote IP. */
  localAddress?: string;
  /**
   * Each entry is sent with CRLF appended, then one complete reply is read. An entry
   * 'DATA-BODY:<text>' sends <text> exactly as given (already dot-stuffed, ending with
   * CRLF.CRLF for the server to answer). An entry 'DATA-PART:<text>' sends <text> and reads
   * no reply: a message sent in parts, with `beforeEntry` able to pause between them.
   */
  lines: string[];
  /** Awaited before each entry is sent (e.g. to hold a session in the middle of DATA). */
  beforeEntry?: (index: number) => Promise<void> | void;
  /** Bound on the whole dialogue; default 10 s. */
  timeoutMs?: number;
  /** The server may close the connection (e.g. after a 421): return the replies so far instead of failing. */
  allowClose?: boolean;
  /**
   * An entry 'STARTTLS' answered with 220 upgrades the connection: TLS is negotiated (any
   * certificate accepted) and the entries after it are sent encrypted. Without this, the
   * command is sent like any other line and the dialogue stays in plain text.
   */
  startTls?: boolean;
};

const DATA_BODY = 'DATA-BODY:';
const DATA_PART = 'DATA-PART:';
const CLOSED = '(closed)';

/** Returns the greeting and then one reply per entry; a multi-line reply's lines joined with '\n'; with allowClose, '(closed)' marks where the server hung up. */
export async function smtpTranscript(opts: TranscriptOptions): Promise<string[]> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const peer = `${opts.host}:${opts.port}`;
  const plain = connect({ host: opts.host, port: opts.port, localAddress: opts.localAddress });
  /** The plain socket, or the TLS socket over it after STARTTLS. */
  let socket: Socket = plain;
  let buffer = '';
  let failure: Error | undefined;
  let ended = false;
  let wake: (() => void) | undefined;
  const notify = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  const onData = (chunk: Buffer) => {
    buffer += chunk.toString('latin1');
    notify();
  };
  const onError = (err: NodeJS.ErrnoException) => {
    if (opts.allowClose && (err.code === 'ECONNRESET' || err.code === 'EPIPE')) ended = true;
    else failure ??= err;
    notify();
  };
  plain.on('data', onData);
  plain.on('error', onError);
  const closed = new Promise<void>((resolve) =>
    plain.once('close', () => {
      ended = true;
      notify();
      resolve();
    }),
  );
  const upgrade = async () => {
    plain.off('data', onData);
    const secure = connectTls({ socket: plain, rejectUnauthorized: false });
    secure.on('data', onData);
    secure.on('error', onError);
    socket = secure;
    await new Promise<void>((resolve) => {
      secure.once('secureConnect', () => resolve());
      secure.once('error', () => resolve()); // reported by onError; the next read fails with it
    });
  };
  const timer = setTimeout(() => {
    failure ??= new TestkitError('TIMEOUT', `SMTP dialogue with ${peer} timed out after ${timeoutMs}ms`);
    socket.destroy();
    notify();
  }, timeoutMs);

  const replies: string[] = [];
  const readReply = async (): Promise<string> => {
    for (;;) {
      const reply = takeReply();
      if (reply !== undefined) return reply;
      if (ended && !failure && opts.allowClose) return CLOSED;
      if (failure || ended) {
        const why = failure ? failure.message : `${peer} closed the connection`;
        throw new TestkitError(
          failure instanceof TestkitError ? failure.code : 'CONNECTION',
          `${why}; replies so far: ${JSON.stringify(replies)}; unread: ${JSON.stringify(buffer)}`,
        );
      }
      await new Promise<void>((resolve) => (wake = resolve));
    }
  };
  // A reply is complete at its first line whose 4th character is a space (or that is just the code).
  const takeReply = (): string | undefined => {
    const lines: string[] = [];
    let consumed = 0;
    for (;;) {
      const eol = buffer.indexOf('\n', consumed);
      if (eol < 0) return undefined;
      const line = buffer.slice(consumed, eol).replace(/\r$/, '');
      consumed = eol + 1;
      lines.push(line);
      if (line.length === 3 || line[3] === ' ') {
        buffer = buffer.slice(consumed);
        return lines.join('\n');
      }
    }
  };

  try {
    replies.push(await readReply());
    for (const [index, line] of opts.lines.entries()) {
      if (replies.at(-1) === CLOSED) break;
      await opts.beforeEntry?.(index);
      if (line.startsWith(DATA_PART)) {
        socket.write(line.slice(DATA_PART.length));
        continue;
      }
      socket.write(line.startsWith(DATA_BODY) ? line.slice(DATA_BODY.length) : `${line}\r\n`);
      replies.push(await readReply());
      if (opts.startTls && /^starttls$/i.test(line) && replies.at(-1)!.startsWith('220')) await upgrade();
    }
    return replies;
  } finally {
    clearTimeout(timer);
    socket.destroy();
    plain.destroy();
    await closed;
  }
}

export type SmtpDialogue = {
  /** The greeting the server sent. */
  greeting: string;
  /** Sends a line (CRLF appended) and resolves with the last line of the next complete reply. */
  say(line: string): Promise<string>;
  /** Everything received so far, raw (for replies the server sends on its own, e.g. a timeout). */
  received(): string;
  socket: Socket;
};

/** An SMTP session kept open across steps (for tests where something happens between commands). */
export async function openSmtpDialogue(opts: { host: string; port: number; localAddress?: string; timeoutMs?: number }): Promise<SmtpDialogue> {
  const socket = connect({ host: opts.host, port: opts.port, localAddress: opts.localAddress });
  let buffer = '';
  let all = '';
  const waiters: Array<() => void> = [];
  socket.on('data', (d: Buffer) => {
    buffer += d.toString('latin1');
    all += d.toString('latin1');
    waiters.splice(0).forEach((w) => w());
  });
  socket.on('close', () => waiters.splice(0).forEach((w) => w()));
  socket.on('error', () => undefined);
  const next = async (): Promise<string> => {
    const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
    for (;;) {
      const m = /^(\d{3}) [^\r\n]*\r\n/m.exec(buffer);
      if (m) {
        const last = m[0].trimEnd();
        buffer = buffer.slice(m.index + m[0].length);
        return last;
      }
      if (socket.destroyed || Date.now() > deadline)
        throw new TestkitError('CONNECTION', `no complete reply from ${opts.host}:${opts.port}; received ${JSON.stringify(all)}`);
      await new Promise<void>((resolve) => {
        waiters.push(resolve);
        setTimeout(resolve, 200).unref();
      });
    }
  };
  const greeting = await next();
  return {
    greeting,
    socket,
    received: () => all,
    say: async (line) => {
      socket.write(`${line}\r\n`);
      return next();
    },
  };
}
