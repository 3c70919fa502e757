/**
 * A real SMTP server (smtp-server) that plays the remote mail host: it records every
 * message it accepts, with its envelope, and can refuse chosen recipients at RCPT with
 * any reply the test names. STARTTLS only with `tls`, no authentication required, no size limit, DSN offered
 * (and each message's DSN parameters recorded) unless `dsn: false`. With
 * `recordWire`, it also keeps each message's DATA bytes exactly as they came off the
 * socket (smtp-server's `data` is already dot-unstuffed, which hides what was sent).
 *
 * It also tells whether the sender ever confirmed a message's 250 (`unconfirmed`): a client
 * that sent nothing more on the connection after the message's final dot, and then lost the
 * connection, may have died before it read the 250. SMTP has no two-phase commit, so a
 * correct sender sends such a message again (RFC 5321 section 6.1 prefers a duplicate to a
 * loss); a fault-injection run uses this to tell that unavoidable second copy from a real one.
 */
import type { Socket } from 'node:net';
import { SMTPServer, type SMTPServerAuthentication, type SMTPServerAuthenticationResponse, type SMTPServerSession } from 'smtp-server';
import { TestkitError } from './errors.ts';

export type ReceivedMessage = {
  mailFrom: string;
  rcptTo: string[];
  data: Buffer;
  /** With `recordWire`: the bytes the client sent after its DATA command, up to and including the CRLF.CRLF that ended them. */
  wire?: Buffer;
  /** The name the client gave in EHLO/HELO. */
  heloName: string;
  /** Whether the message came over TLS (after STARTTLS). */
  secure: boolean;
  /** The user the client logged on as (with `auth`), else undefined. */
  user?: string;
  /** RET and ENVID as the client gave them with MAIL FROM (empty when it gave neither, or with `dsn: false`). */
  dsn: { ret?: string; envid?: string };
  /** The client's address:port: messages with the same one came over the same connection. */
  remote: string;
  /** NOTIFY and ORCPT as the client gave them with each RCPT TO, in the order of `rcptTo`. */
  rcptDsn: Array<{ notify?: string[]; orcpt?: string }>;
};
export type SinkReply = { code: number; message: string };
export type SmtpSinkOptions = {
  port?: number;
  host?: string;
  /** The reply for a recipient the sink refuses at RCPT (e.g. 550 '5.1.1 no such user', or a 4xx); undefined accepts it. */
  /** Answer RCPT TO for chosen recipients with this reply (e.g. 550 or 451) instead of accepting. */
  rejectRecipient?: (rcpt: string) => SinkReply | undefined;
  /** Awaited before the sink answers a RCPT TO: holds the client mid-transaction (e.g. while a test kills it). */
  beforeRcptReply?: (rcpt: string, client: { address: string; port: number }) => Promise<void>;
  /** Keep each message's raw DATA bytes in `ReceivedMessage.wire`. */
  recordWire?: boolean;
  /** Read DATA no faster than this (bytes per second), as a slow destination does: the sender is held back by TCP. */
  readBytesPerSecond?: number;
  /** Offer STARTTLS with this certificate (PEM); without it the sink has no TLS. */
  tls?: { key: string; cert: string };
  /** Offer AUTH PLAIN and LOGIN (also without TLS) and accept this one account; a wrong logon gets 535 5.7.8. Sessions may still send without logging on. */
  auth?: { username: string; password: string };
  /** `false`: do not offer DSN (RFC 3461) in EHLO, as a next hop without it; offered by default. */
  dsn?: boolean;
};
export type SmtpSink = {
  readonly host: string;
  readonly port: number;
  /** Every accepted message, in arrival order. */
  readonly messages: ReceivedMessage[];
  /**
   * True when the client sent nothing after this message's final dot and the connection is
   * closed: it may have died before reading the 250. False while the connection is open, and
   * once the client sent anything more (it had read the reply).
   */
  unconfirmed(message: ReceivedMessage): boolean;
  /** Client connections open right now. */
  openConnections(): number;
  /** The most client connections that were open at once since the sink started. */
  peakConnections(): number;
  /** Resolves with a copy of `messages` once it holds at least `count`. */
  waitFor(count: number, timeoutMs?: number): Promise<ReceivedMessage[]>;
  close(): Promise<void>;
};

export async function startSmtpSink(opts: SmtpSinkOptions = {}): Promise<SmtpSink> {
  const host = opts.host ?? '127.0.0.1';
  const refuse = opts.rejectRecipient;
  const messages: ReceivedMessage[] = [];
  const arrivals = new Set<() => void>();
  const wires = new Map<string, WireRecorder>();
  /** Each message's connection and its place among that connection's DATA payloads. */
  const sources = new WeakMap<ReceivedMessage, { wire: WireRecorder; index: number }>();
  const peer = (address: string | undefined, port: number | undefined) => `${(address ?? '').replace(/^::ffff:/, '')}:${port ?? 0}`;

  const server = new SMTPServer({
    logger: false,
    authOptional: true,
    ...(opts.auth
      ? {
          authMethods: ['PLAIN', 'LOGIN'],
          allowInsecureAuth: true,
          onAuth(
            auth: SMTPServerAuthentication,
            _session: SMTPServerSession,
            callback: (err: Error | null | undefined, response?: SMTPServerAuthenticationResponse) => void,
          ) {
            if (auth.username === opts.auth!.username && auth.password === opts.auth!.password) return callback(null, { user: opts.auth!.username });
            callback(Object.assign(new Error('5.7.8 Authentication credentials invalid'), { responseCode: 535 }));
          },
        }
      : {}),
    ...(opts.tls ? { key: opts.tls.key, cert: opts.tls.cert } : { disabledCommands: ['STARTTLS'] }),
    disableReverseLookup: true,
    // smtp-server hides DSN unless told otherwise.
    hideDSN: opts.dsn === false,
    // A client that keeps its connection open (a pool) must not hold close() for the default 30 s.
    closeTimeout: 1_000,
    onRcptTo(address, session, callback) {
      const answer = () => {
        const reply = refuse?.(address.address);
        if (!reply) return callback();
        callback(Object.assign(new Error(reply.message), { responseCode: reply.code }));
      };
      if (!opts.beforeRcptReply) return answer();
      opts.beforeRcptReply(address.address, { address: session.remoteAddress, port: session.remotePort }).then(answer, (err: Error) => callback(err));
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      const rate = opts.readBytesPerSecond;
      stream.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        if (!rate) return;
        // Pausing the data stream stops smtp-server reading the socket: the client's writes wait.
        stream.pause();
        setTimeout(() => stream.resume(), (chunk.length / rate) * 1000);
      });
      stream.once('error', (err) => callback(err));
      stream.once('end', () => {
        const mailFrom = session.envelope.mailFrom;
        const message: ReceivedMessage = {
          mailFrom: mailFrom ? mailFrom.address : '',
          rcptTo: session.envelope.rcptTo.map((r) => r.address),
          data: Buffer.concat(chunks),
          heloName: session.hostNameAppearsAs,
          remote: peer(session.remoteAddress, session.remotePort),
          secure: session.secure,
          ...(typeof session.user === 'string' ? { user: session.user } : {}),
          dsn: {
            ...(session.envelope.dsn?.ret ? { ret: session.envelope.dsn.ret } : {}),
            ...(session.envelope.dsn?.envid ? { envid: session.envelope.dsn.envid } : {}),
          },
          rcptDsn: session.envelope.rcptTo.map((r) => ({
            ...(r.dsn?.notify?.length ? { notify: [...r.dsn.notify] } : {}),
            ...(r.dsn?.orcpt ? { orcpt: r.dsn.orcpt } : {}),
          })),
        };
        const wire = wires.get(peer(session.remoteAddress, session.remotePort));
        if (wire) sources.set(message, { wire, index: wire.accepted++ });
        if (opts.recordWire) message.wire = wire?.take() ?? Buffer.alloc(0);
        messages.push(message);
        for (const notify of arrivals) notify();
        callback();
      });
    },
  });

  // A listener beside smtp-server's own, on the same 'data' events. Paused first, so nothing
  // flows before smtp-server pipes the socket into its parser (that pipe resumes it).
  let open = 0;
  let peak = 0;
  server.server.on('connection', (socket: Socket) => {
    open++;
    peak = Math.max(peak, open);
    socket.once('close', () => open--);
    const key = peer(socket.remoteAddress, socket.remotePort);
    const recorder = new WireRecorder(opts.recordWire === true);
    wires.set(key, recorder);
    socket.pause();
    socket.on('data', (chunk: Buffer) => recorder.push(chunk));
    socket.once('close', () => {
      recorder.closed = true;
      if (wires.get(key) === recorder) wires.delete(key);
    });
  });

  let starting: ((err: Error) => void) | undefined;
  // smtp-server re-emits every connection's socket errors (a client that resets, a sender
  // the test SIGKILLs); unheard, one of those would crash the test process.
  server.on('error', (err) => starting?.(err));
  await new Promise<void>((resolve, reject) => {
    starting = reject;
    server.listen(opts.port ?? 0, host, () => resolve());
  });
  starting = undefined;
  const address = server.server.address();
  if (!address || typeof address !== 'object') throw new TestkitError('NOT_READY', `SMTP sink has no port on ${host}`);
  const port = address.port;

  let closing: Promise<void> | undefined;
  return {
    host,
    port,
    messages,
    openConnections: () => open,
    peakConnections: () => peak,
    unconfirmed: (message) => {
      const source = sources.get(message);
      return source !== undefined && source.wire.closed && source.wire.confirmed <= source.index;
    },
    waitFor: (count, timeoutMs = 20_000) =>
      new Promise((resolve, reject) => {
        const check = () => {
          if (messages.length < count) return;
          arrivals.delete(check);
          clearTimeout(timer);
          resolve(messages.slice());
        };
        const timer = setTimeout(() => {
          arrivals.delete(check);
          reject(
            new TestkitError(
              'TIMEOUT',
              `timed out after ${timeoutMs}ms waiting for ${count} message(s) at the SMTP sink on ${host}:${port}; it has received ${messages.length}`,
            ),
          );
        }, timeoutMs);
        arrivals.add(check);
        check();
      }),
    close: () => (closing ??= new Promise<void>((resolve) => server.close(() => resolve()))),
  };
}

const END_OF_DATA = Buffer.from('\r\n.\r\n');
const EMPTY = Buffer.alloc(0);

/**
 * Splits what a client sent on one connection into its DATA payloads: after a "DATA" command
 * line, everything up to the first CRLF.CRLF (an empty message is just ".CRLF"). Commands are
 * read as lines ending in LF; the sink offers neither BDAT nor TLS. A DATA the sink refuses
 * (no accepted recipient) would be taken as the start of a payload: clients such as
 * nodemailer do not send DATA then.
 */
class WireRecorder {
  #pending: Buffer = EMPTY;
  #inData = false;
  /** Of the payload under way: the chunks kept so far, and the last bytes seen (an end of data may begin in them). */
  readonly #parts: Buffer[] = [];
  #tail: Buffer = EMPTY;
  readonly #payloads: Buffer[] = [];
  /** Payloads that ended (final dot seen), and how many of them the client followed with more bytes. */
  #ended = 0;
  confirmed = 0;
  /** Messages the sink accepted on this connection (counted by onData, in the same order as the payloads). */
  accepted = 0;
  closed = false;

  readonly keep: boolean;

  constructor(keep: boolean) {
    this.keep = keep;
  }

  push(chunk: Buffer): void {
    // Bytes that arrive after a dot (a later read of the socket) show the client read the reply to it: nodemailer and
    // smtp-source send nothing after the dot before that reply.
    if (chunk.length) this.confirmed = this.#ended;
    let rest = chunk;
    while (rest.length > 0) {
      if (this.#inData) {
        rest = this.#payload(rest);
        continue;
      }
      this.#pending = this.#pending.length ? Buffer.concat([this.#pending, rest]) : rest;
      rest = EMPTY;
      for (;;) {
        const eol = this.#pending.indexOf(0x0a);
        if (eol < 0) break;
        const line = this.#pending.subarray(0, eol).toString('latin1').replace(/\r$/, '');
        this.#pending = this.#pending.subarray(eol + 1);
        if (/^data$/i.test(line.trim())) {
          this.#inData = true;
          // The command line's own CRLF: a payload that is just ".CRLF" ends there.
          this.#tail = END_OF_DATA.subarray(0, 2);
          rest = this.#pending;
          this.#pending = EMPTY;
          break;
        }
      }
    }
  }

  /**
   * Takes `chunk` into the payload under way and returns what follows its end (empty while it
   * goes on). Only the last four bytes seen are searched again, so a large message costs time
   * in proportion to its size.
   */
  #payload(chunk: Buffer): Buffer {
    const window = Buffer.concat([this.#tail, chunk]);
    const at = window.indexOf(END_OF_DATA);
    if (at < 0) {
      if (this.keep) this.#parts.push(chunk);
      this.#tail = Buffer.from(window.subarray(Math.max(0, window.length - (END_OF_DATA.length - 1))));
      return EMPTY;
    }
    const end = at + END_OF_DATA.length - this.#tail.length; // the payload's last byte is chunk[end - 1]
    if (this.keep) this.#payloads.push(Buffer.concat([...this.#parts.splice(0), chunk.subarray(0, end)]));
    this.#inData = false;
    this.#ended++;
    return chunk.subarray(end);
  }

  /** The oldest payload not yet taken. */
  take(): Buffer | undefined {
    return this.#payloads.shift();
  }
}
