/**
 * Transit's adaptation of smtp-server, contained in three subclasses that only Transit's
 * listeners use: `TransitSMTPServer` makes `TransitConnection`s, which read through a
 * `TransitStream`. No library prototype is touched, so any other SMTPServer in the same
 * process (the testkit's sink, a user's) behaves exactly as stock. smtp-server is pinned to
 * an exact version; smtp-adapter.test.ts fails with a clear message when an internal these
 * classes rely on changes shape.
 *
 * What differs from stock, and why:
 * 1. Connector per connection. smtp-server has one set of options per listener; Exchange has
 *    one receive connector per connection (several may share a listener). When the
 *    connection opens the engine chooses the connector and the connection gets its own
 *    options (AUTH, STARTTLS, SIZE, timeouts of that connector), layered over the listener's
 *    by prototype, and its own hooks (hello check, protocol log, errors). maxClients is
 *    checked first, as stock does.
 * 2. Greeting. Stock waits a fixed 100 ms before every 220 (early-talker detection), which
 *    caps connection-per-message clients (docs/performance.md). Transit waits the connector's
 *    GreetingDelay (0 by default, as Exchange) and greets with the connector's banner.
 * 3. Exact replies. Transit's replies come from the one reply table (libs/policy) through
 *    smtp-server's callbacks (`err.responseCode` and the text) and options (`heloResponse`).
 *    smtp-server still words a few replies itself (its parser, sequence and syntax errors);
 *    those are translated by STOCK_REPLIES below, the only place that matches its texts.
 *    Any other stock failure keeps its code and loses smtp-server's guessed enhanced code.
 * 4. PROXY protocol per connection. Stock reads only v1, for a fixed list of peers per
 *    listener. Transit asks the engine about each new socket: a trusted load balancer's
 *    socket must first carry a v1 or v2 header (proxy-protocol.ts), and the session is the
 *    client it names; any other socket on such a listener has its first bytes screened, and
 *    a PROXY header there closes the connection.
 * 5. Command lines. RFC 5321 §4.5.3.1.4 allows 512 octets with the CRLF; AUTH lines (and the
 *    lines of an AUTH exchange) up to 12,288 (RFC 4954 §4). Longer lines get `500 5.5.2 Line
 *    too long` (over 12,288 the parser gives up and the connection is closed with 421). A NUL
 *    or a bare CR inside a command line is refused: it is never part of a valid command and
 *    is how CR/LF injection into envelope fields is tried.
 * 6. Pipelining past the end of data (RFC 2920 §3.1: the end of data must be the last thing
 *    in a group). The stream notes input that arrived after `<CRLF>.<CRLF>` in the same read;
 *    the engine refuses such a message from an unauthenticated client, as Postfix 3.9's
 *    smtpd_forbid_unauth_pipelining does.
 */
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { REPLIES, formatReply, proxiedClient, replyText, type Reply } from '@transit/policy';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';
import { SMTPStream } from 'smtp-server/lib/smtp-stream.js';
import { proxyHeaderStart, readProxyHeader, type ProxyHeader, type ProxyRead } from './proxy-protocol.ts';

/** Per-connection behaviour chosen by the engine when the connection opens. */
export type ConnectionHooks = {
  /** Options that override the listener's for this connection (authMethods, size, ...). */
  options: Record<string, unknown>;
  /** EHLO/HELO argument check; a reply refuses the greeting. */
  onHello?: (hostname: string) => Reply | undefined;
  /** Every reply line sent and every command line received (for the protocol log). */
  onSent?: (line: string) => void;
  onReceived?: (line: string) => void;
  /** Protocol errors (500-504 replies) allowed before the connection is closed. */
  maxProtocolErrors: number;
  inactivityMs: number;
  /** A PROXY header arrived from a peer that may not send one (the connection is then closed with proxyHeaderNotAccepted). */
  onProxyHeader?: (version: 1 | 2) => void;
};

/** What a listener does with a new socket before smtp-server makes a session of it. */
export type ProxyAdmission =
  /** Plain SMTP, nothing looked at (no load balancer serves the listener). */
  | { kind: 'direct' }
  /** Plain SMTP from a direct client; a PROXY header in its first bytes closes the connection. */
  | { kind: 'screen' }
  /** A trusted load balancer: a valid header must come first, within timeoutMs. */
  | { kind: 'header'; loadBalancer: string; timeoutMs: number; onRefused: (failure: Extract<ProxyRead, { ok: false }>) => void };

export type ProxyHook = (socket: Socket) => ProxyAdmission;

/** A session that came through a load balancer: who relayed it and what it said. */
export type ProxiedConnection = { loadBalancer: string; peerAddress: string; peerPort: number; header: ProxyHeader };

export type ConnectionOpening =
  { accept: true; name: string; banner: string; greetingDelayMs: number; hooks: ConnectionHooks } | { accept: false; reply: Reply };

/** What the engine may read and do on a Transit connection. */
export type ConnectionView = {
  id: string;
  localAddress: string;
  localPort: number;
  remoteAddress: string;
  remotePort: number;
  readonly secure: boolean;
  /** Set when a trusted load balancer relayed the connection (remoteAddress is then the client it named). */
  readonly proxied: ProxiedConnection | undefined;
  /** Sends a final reply and closes the connection. */
  closeWith(reply: Reply): void;
  /** Closes the connection right after the next final reply (e.g. the one that refuses a message). */
  closeAfterReply(): void;
};

export type OpenHook = (conn: ConnectionView) => ConnectionOpening;

/** The engine's side of a Transit listener. */
export type TransitHooks = { onOpen: OpenHook; proxy?: ProxyHook };

/** The data stream of one DATA command, with what the stream saw at its end. */
export type TransitDataStream = NonNullable<ReturnType<SMTPStream['startDataMode']>> & {
  /** Input followed the end of data in the same read: the client did not wait for the reply. */
  pipelinedAfterData?: boolean;
};

/** RFC 5321 §4.5.3.1.4, without the CRLF. */
export const MAX_COMMAND_LINE = 510;
/** RFC 4954 §4: an AUTH command or response line, without the CRLF. */
export const MAX_AUTH_LINE = 12_288;

/** smtp-server's own texts for replies Transit words differently: code|text, or code|text|context when the text is ambiguous. */
export const STOCK_REPLIES: ReadonlyMap<string, Reply> = new Map([
  ['250|Accepted|MAIL_FROM_OK', REPLIES.senderOk],
  ['250|Accepted|RCPT_TO_OK', REPLIES.recipientOk],
  ['221|Bye', REPLIES.closing],
  ['354|End data with <CR><LF>.<CR><LF>', REPLIES.startMailInput],
  ['250|OK', REPLIES.ok],
  ['235|Authentication successful', REPLIES.authSuccessful],
  ['538|Error: Must issue a STARTTLS command first', REPLIES.mustStartTls],
  ['504|Error: Unrecognized authentication type', REPLIES.unrecognizedAuthType],
  ['503|Error: No identity changes permitted', REPLIES.authAlreadySpecified],
  ['220|Ready to start TLS', REPLIES.startTlsReady],
  ['500|Error: command not recognized', REPLIES.unrecognizedCommand],
  ['421|Timeout - closing connection', REPLIES.timeoutWaitingForClient],
  ['421|Server shutting down', REPLIES.serviceNotAvailable],
  ['421|Error: Command line too long', REPLIES.lineTooLongClosing],
  ['530|REQUIRETLS not permitted on non-TLS connections', REPLIES.parameterNotImplemented],
  ['503|Error: send HELO/EHLO first', { code: 503, enhanced: '5.5.2', text: 'Send hello first' }],
  ['503|Error: need MAIL command', { code: 503, enhanced: '5.5.2', text: 'Need mail command' }],
  ['503|Error: need RCPT command', { code: 503, enhanced: '5.5.2', text: 'Need rcpt command' }],
  ['503|Error: nested MAIL command', { code: 503, enhanced: '5.5.2', text: 'Sender already specified' }],
  ['501|Error: Bad sender address syntax', REPLIES.invalidSender],
  ['501|Error: Bad recipient address syntax', REPLIES.invalidRecipient],
  ['535|Error: Authentication credentials invalid', REPLIES.authUnsuccessful],
  ['535|Error: Username and Password not accepted', REPLIES.authUnsuccessful],
]);

/** smtp-server's replies whose text carries a variable part. */
function stockReply(code: number, data: string, context: string | false | undefined): Reply | undefined {
  if (code === 552 && data.startsWith('Error: message exceeds fixed maximum message size')) return REPLIES.messageTooBig;
  return STOCK_REPLIES.get(`${code}|${data}|${context || ''}`) ?? STOCK_REPLIES.get(`${code}|${data}`);
}

const ENHANCED = /^[245]\.\d{1,3}\.\d{1,3}( |$)/;

/** Why a command line is refused before smtp-server parses it, if it is. */
export function commandLineProblem(line: Buffer, inAuthExchange: boolean): Reply | undefined {
  const limit = inAuthExchange || /^AUTH( |$)/i.test(line.subarray(0, 5).toString('latin1')) ? MAX_AUTH_LINE : MAX_COMMAND_LINE;
  if (line.length > limit) return REPLIES.lineTooLong;
  if (line.includes(0) || line.includes(0x0d)) return REPLIES.invalidCommandCharacter;
  return undefined;
}

/** smtp-server's session id format, for sessions whose socket options Transit makes. */
const newSessionId = () =>
  BigInt(`0x${randomBytes(10).toString('hex')}`)
    .toString(32)
    .padStart(16, '0');

/** Answers a socket that never became a session, gives the line a moment to leave, then closes it. */
function refuseSocket(socket: Socket, reply: Reply): void {
  socket.on('error', () => undefined);
  if (socket.destroyed || !socket.writable) {
    socket.destroy();
    return;
  }
  socket.end(`${formatReply(reply)}\r\n`);
  setTimeout(() => socket.destroy(), 1000).unref();
}

/** What smtp-server's _handleProxy hands to connect(). */
type SocketOptions = Parameters<Parameters<SMTPServer['_handleProxy']>[1]>[1];
type Screen = { onHeader: (version: 1 | 2) => void };

/** smtp-server's parser, plus the PROXY screen and the note of input pipelined past the end of data. */
export class TransitStream extends SMTPStream {
  #screen: Screen | undefined;
  #held: Buffer = Buffer.alloc(0);

  /**
   * Holds a direct client's first bytes until they are clearly not the start of a PROXY
   * header (at most 11 bytes), then parses them and everything after untouched. A header
   * closes the connection and its bytes are never parsed.
   */
  screenFirstBytes(screen: Screen): void {
    this.#screen = screen;
  }

  override _write(chunk: Buffer, encoding: BufferEncoding, next: (error?: Error | null) => void): void {
    const screen = this.#screen;
    if (!screen) return super._write(chunk, encoding, next);
    this.#held = this.#held.length > 0 ? Buffer.concat([this.#held, chunk]) : chunk;
    const start = proxyHeaderStart(this.#held);
    if (start === 'undecided') return next();
    this.#screen = undefined;
    const held = this.#held;
    this.#held = Buffer.alloc(0);
    if (start === undefined) return super._write(held, encoding, next);
    screen.onHeader(start.version);
    next();
  }

  override _endDataMode(chunk: Buffer | false, remainder: Buffer, callback: (error?: Error | null) => void): void {
    if (remainder.length > 0 && this._dataStream) (this._dataStream as TransitDataStream).pipelinedAfterData = true;
    super._endDataMode(chunk, remainder, callback);
  }
}

/** One SMTP session on a Transit listener. */
export class TransitConnection extends SMTPConnection implements ConnectionView {
  proxied: ProxiedConnection | undefined;
  #banner: string | undefined;
  #hooks: ConnectionHooks | undefined;
  #errors = 0;
  #closing = false;
  #closeAfterReply = false;

  #transit(): TransitSMTPServer {
    return this._server as TransitSMTPServer;
  }

  closeWith(reply: Reply): void {
    if (this.#closing) return;
    this.#closing = true;
    this.#hooks?.onSent?.(formatReply(reply));
    super.send(reply.code, replyText(reply), false);
    this.close();
  }

  closeAfterReply(): void {
    this.#closeAfterReply = true;
  }

  override init(): void {
    const server = this.#transit();
    this.proxied = server.proxiedConnection(this._socket);
    this._setListeners(() => {
      // Stock's connection limit, before anything else.
      if (server.options.maxClients && server.connections.size > server.options.maxClients) return this.closeWith(REPLIES.tooManyConnections);
      const opening = server.transit.onOpen(this);
      if (!opening.accept) return this.closeWith(opening.reply);
      this.name = opening.name;
      this.#banner = opening.banner;
      this.#hooks = opening.hooks;
      // Synchronously after the pipe is set up, so the screen sees the very first bytes.
      if (server.screened(this._socket) && this._parser instanceof TransitStream) {
        this._parser.screenFirstBytes({
          onHeader: (version) => {
            this.#hooks?.onProxyHeader?.(version);
            this.closeWith(REPLIES.proxyHeaderNotAccepted);
          },
        });
      }
      // This connection's own view of the options, over the listener's. Descriptors, not
      // values: some options are getters that follow the session (TLS, rights).
      const options = Object.create(server.options, Object.getOwnPropertyDescriptors(opening.hooks.options)) as TransitSMTPServer['options'];
      // smtp-server re-arms its idle timer from options.socketTimeout (after TLS, after a busy handler).
      options.socketTimeout = opening.hooks.inactivityMs;
      this._server = Object.assign(Object.create(server) as TransitSMTPServer, { options });
      this._armTimeout();
      if (opening.greetingDelayMs > 0) setTimeout(() => this.connectionReady(), opening.greetingDelayMs).unref();
      else this.connectionReady();
    });
  }

  override _createParser(): SMTPStream {
    // As stock, with Transit's parser.
    const parser = new TransitStream({ maxCommandLength: this._server.options.maxCommandLength });
    parser.oncommand = (command: Buffer, callback?: () => void) => this._onCommand(command, callback);
    parser.on('error', (err: Error) => this.send(421, `Error: ${err.message}`));
    return parser;
  }

  override _sendGreeting(): void {
    if (this.#banner === undefined) return super._sendGreeting();
    this.send(220, this.#banner, false);
  }

  override _onCommand(command: Buffer, callback?: () => void): void {
    this.#hooks?.onReceived?.(command.toString('latin1'));
    // Stock discards input read during a TLS handshake and answers early talkers itself.
    if (this.#hooks && this._ready && !this._upgrading) {
      const problem = commandLineProblem(command, this._nextHandler !== false);
      if (problem) {
        // A refused AUTH continuation line ends the exchange.
        this._nextHandler = false;
        this.send(problem.code, replyText(problem), false);
        const next = callback ?? (() => undefined);
        setImmediate(() => this._whenWritable(next));
        return;
      }
    }
    super._onCommand(command, callback);
  }

  override handler_EHLO(command: Buffer, callback: () => void): void {
    if (this.#refusesHello(command, callback)) return;
    super.handler_EHLO(command, callback);
  }

  override handler_HELO(command: Buffer, callback: () => void): void {
    if (this.#refusesHello(command, callback)) return;
    super.handler_HELO(command, callback);
  }

  #refusesHello(command: Buffer, callback: () => void): boolean {
    const hostname = command.toString('latin1').trim().split(/\s+/)[1] ?? '';
    const refusal = hostname ? this.#hooks?.onHello?.(hostname) : undefined;
    if (!refusal) return false;
    this.send(refusal.code, replyText(refusal), false);
    callback();
    return true;
  }

  override send(code: number, data?: string | string[] | null, context?: string | false): void {
    let text = data ?? undefined;
    if (typeof data === 'string') {
      const stock = stockReply(code, data, context);
      if (stock) {
        code = stock.code;
        text = replyText(stock);
      } else if (!ENHANCED.test(data) && code >= 400) {
        // smtp-server's own wording for a failure: keep the code, drop its invented enhanced status.
        text = data.replace(/^Error: /, '');
      }
    }
    const hooks = this.#hooks;
    if (hooks?.onSent) {
      const lines = Array.isArray(text) ? text : [text ?? ''];
      lines.forEach((line, i) => hooks.onSent!(`${code}${i < lines.length - 1 ? '-' : ' '}${line}`));
    }
    super.send(code, text, false);
    if (this.#closeAfterReply && code >= 200 && code !== 354) {
      this.#closeAfterReply = false;
      this.close();
      return;
    }
    // Protocol errors: unknown commands, bad sequence, bad syntax; a refused address (5.1.x) is not one.
    const protocolError = code >= 500 && code <= 504 && !(typeof text === 'string' && text.startsWith('5.1.'));
    if (hooks && protocolError && hooks.maxProtocolErrors > 0) {
      this.#errors++;
      if (this.#errors >= hooks.maxProtocolErrors) this.closeWith(REPLIES.tooManyErrors);
    }
  }
}

/** An SMTPServer whose connections are TransitConnections, admitted by the engine's hooks. */
export class TransitSMTPServer extends SMTPServer {
  readonly transit: TransitHooks;
  /** The engine's answer for each socket, asked once (stock consults it twice before the session exists). */
  readonly #admissions = new WeakMap<Socket, ProxyAdmission>();
  readonly #proxied = new WeakMap<Socket, ProxiedConnection>();
  readonly #screened = new WeakSet<Socket>();

  constructor(options: SMTPServerOptions, transit: TransitHooks) {
    // `Nice to meet you` is stock's; Exchange answers `<fqdn> Hello [<client ip>]` (the client
    // host name is its bracketed address, since reverse lookups are off).
    super({ heloResponse: '%s Hello %s', ...options });
    this.transit = transit;
  }

  override connect(socket: Socket, socketOptions?: Parameters<SMTPServer['connect']>[1]): void {
    // As stock, with Transit's connection.
    const connection = new TransitConnection(this, socket, socketOptions);
    this.connections.add(connection);
    connection.on('error', (err: Error) => this._onError(err));
    connection.on('connect', (data: Parameters<SMTPServer['_onClientConnect']>[0]) => this._onClientConnect(data));
    connection.init();
  }

  proxiedConnection(socket: Socket): ProxiedConnection | undefined {
    return this.#proxied.get(socket);
  }

  screened(socket: Socket): boolean {
    return this.#screened.has(socket);
  }

  #admission(socket: Socket): ProxyAdmission | undefined {
    const hook = this.transit.proxy;
    if (!hook) return undefined;
    let admission = this.#admissions.get(socket);
    if (!admission) {
      admission = hook(socket);
      this.#admissions.set(socket, admission);
    }
    return admission;
  }

  // Only a header-bound socket is "expecting a PROXY header": stock then guards it (counts it
  // as pending, destroys it when the listener closes) until the session exists.
  override _expectsProxyHeader(socket: Socket): boolean {
    const admission = this.#admission(socket);
    return admission ? admission.kind === 'header' : super._expectsProxyHeader(socket);
  }

  override _handleProxy(socket: Socket, callback: (err: Error | null, socketOptions?: SocketOptions) => void): void {
    const admission = this.#admission(socket);
    if (!admission || admission.kind !== 'header') {
      if (admission?.kind === 'screen') this.#screened.add(socket);
      return super._handleProxy(socket, callback);
    }
    const peer = { address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 };
    void readProxyHeader(socket, admission.timeoutMs).then((read) => {
      if (!read.ok) {
        admission.onRefused(read);
        refuseSocket(socket, REPLIES.proxyHeaderRequired);
        return callback(Object.assign(new Error(read.message), { code: `PROXY_${read.code}` }));
      }
      const client = proxiedClient(read.header, peer);
      this.#proxied.set(socket, { loadBalancer: admission.loadBalancer, peerAddress: peer.address, peerPort: peer.port, header: read.header });
      callback(null, { id: newSessionId(), ...(client.from === 'header' ? { remoteAddress: client.address, remotePort: client.port } : {}) });
    });
  }
}
