/**
 * Deliberate adaptations of smtp-server's connection (checked by tests against the
 * installed version), applied once, in this one place:
 *
 * 1. Connector per connection. smtp-server has one set of options per listener; Exchange
 *    has one receive connector per connection (several may share a listener). When the
 *    connection opens Transit chooses the connector and gives the connection its own
 *    options object (AUTH, STARTTLS, SIZE, timeouts of that connector), layered over the
 *    listener's by prototype, and its own hooks (hello, protocol log, errors).
 * 2. Greeting. smtp-server waits a fixed 100 ms before every 220 (early-talker detection),
 *    which caps connection-per-message clients (PERFORMANCE.md). Transit waits the
 *    connector's GreetingDelay (0 by default, as Exchange) and greets with its banner.
 * 3. Exact replies. smtp-server prefixes an enhanced status code chosen by the numeric code
 *    (every 550 becomes 5.1.1). Transit's reply table carries Exchange's exact codes, so a
 *    reply that starts with one is sent as is, and smtp-server's stock texts are replaced
 *    by Exchange's wording for the same step.
 * 4. PROXY protocol per connection. smtp-server reads only v1, for a fixed list of peers
 *    per listener. Transit asks the engine about each new socket (`transitProxy`): a
 *    trusted load balancer's socket must first carry a v1 or v2 header, read by
 *    proxy-protocol.ts, and the session is created with the client it names; any other
 *    socket on such a listener has its first bytes screened, and a PROXY header there
 *    closes the connection. A listener without `transitProxy` works exactly as before.
 */
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import type { Writable } from 'node:stream';
import { REPLIES, formatReply, proxiedClient, replyText, type Reply } from '@transit/policy';
import { SMTPServer } from 'smtp-server';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';
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
  | { accept: true; name: string; banner: string; greetingDelayMs: number; hooks: ConnectionHooks }
  | { accept: false; reply: Reply };

/** What the engine may read and do on smtp-server's connection object. */
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
};

export type OpenHook = (conn: ConnectionView) => ConnectionOpening;

type ServerLike = { options: Record<string, unknown> & { transitOnOpen?: OpenHook }; connections: Set<unknown> };
type SocketOptions = { id?: string; remoteAddress?: string; remotePort?: number };
type ServerInternals = {
  options: Record<string, unknown> & { transitProxy?: ProxyHook };
  _expectsProxyHeader: (this: ServerInternals, socket: Socket) => boolean;
  _handleProxy: (this: ServerInternals, socket: Socket, callback: (err: Error | null, options?: SocketOptions) => void) => void;
};
type Handler = (this: Internals, command: Buffer, callback: () => void) => void;
type Internals = ConnectionView & {
  name: string;
  secure: boolean;
  _server: ServerLike;
  _socket: Socket;
  _parser: Writable & { _write: Writable['_write'] };
  _setListeners: (this: Internals, cb: () => void) => void;
  connectionReady: (this: Internals) => void;
  send: (this: Internals, code: number, data?: string | string[], context?: string | false) => void;
  close: (this: Internals) => void;
  _sendGreeting: (this: Internals) => void;
  _onCommand: (this: Internals, command: Buffer, callback: () => void) => void;
  _armTimeout: (this: Internals) => void;
  handler_EHLO: Handler;
  handler_HELO: Handler;
  transitBanner?: string;
  transitHooks?: ConnectionHooks;
  transitErrors?: number;
  transitClosing?: boolean;
};

const ENHANCED = /^[245]\.\d{1,3}\.\d{1,3}( |$)/;

/** smtp-server's stock replies (code|text, or code|text|context when the text is ambiguous) → Exchange's. */
const STOCK: ReadonlyMap<string, Reply> = new Map([
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
  ['503|Error: send HELO/EHLO first', { code: 503, enhanced: '5.5.2', text: 'Send hello first' }],
  ['503|Error: need MAIL command', { code: 503, enhanced: '5.5.2', text: 'Need mail command' }],
  ['503|Error: need RCPT command', { code: 503, enhanced: '5.5.2', text: 'Need rcpt command' }],
  ['503|Error: nested MAIL command', { code: 503, enhanced: '5.5.2', text: 'Sender already specified' }],
  ['501|Error: Bad sender address syntax', REPLIES.invalidSender],
  ['501|Error: Bad recipient address syntax', REPLIES.invalidRecipient],
  ['535|Error: Authentication credentials invalid', REPLIES.authUnsuccessful],
  ['535|Error: Username and Password not accepted', REPLIES.authUnsuccessful],
]);

function stockReply(code: number, data: string, context: string | false | undefined): Reply | undefined {
  if (code === 552 && data.startsWith('Error: message exceeds fixed maximum message size')) return REPLIES.messageTooBig;
  return STOCK.get(`${code}|${data}|${context || ''}`) ?? STOCK.get(`${code}|${data}`);
}

/** The engine's answer for each socket, asked once (smtp-server consults it twice before the session exists). */
const admissions = new WeakMap<Socket, ProxyAdmission>();
const proxiedSockets = new WeakMap<Socket, ProxiedConnection>();
const screenedSockets = new WeakSet<Socket>();

function admissionOf(server: ServerInternals, socket: Socket): ProxyAdmission | undefined {
  const hook = server.options.transitProxy;
  if (!hook) return undefined;
  let admission = admissions.get(socket);
  if (!admission) {
    admission = hook(socket);
    admissions.set(socket, admission);
  }
  return admission;
}

/** smtp-server's session id format, for sessions whose socket options Transit makes. */
const newSessionId = () => BigInt(`0x${randomBytes(10).toString('hex')}`).toString(32).padStart(16, '0');

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

/**
 * Holds a direct client's first bytes until they are clearly not the start of a PROXY
 * header (at most 11 bytes), then hands them and everything after to smtp-server's parser
 * untouched. A header closes the connection and its bytes never reach the parser.
 */
function screenFirstBytes(conn: Internals): void {
  const parser = conn._parser;
  const write = parser._write.bind(parser);
  let held: Buffer = Buffer.alloc(0);
  parser._write = function (chunk: Buffer, encoding: BufferEncoding, next: (error?: Error | null) => void) {
    held = held.length > 0 ? Buffer.concat([held, chunk]) : chunk;
    const start = proxyHeaderStart(held);
    if (start === 'undecided') return next();
    // Decided either way: the parser's own _write (from its prototype) takes over.
    delete (parser as Partial<typeof parser>)._write;
    if (start === undefined) return write(held, encoding, next);
    conn.transitHooks?.onProxyHeader?.(start.version);
    conn.closeWith(REPLIES.proxyHeaderNotAccepted);
    next();
  };
}

let installed = false;

export function installSmtpServerAdapter(): void {
  if (installed) return;
  installed = true;
  const proto = (SMTPConnection as { prototype: Internals & { init: (this: Internals) => void } }).prototype;
  for (const method of ['init', 'connectionReady', 'send', 'close', '_sendGreeting', '_setListeners', '_onCommand', '_armTimeout', 'handler_EHLO', 'handler_HELO'] as const) {
    if (typeof proto[method] !== 'function') throw new Error(`smtp-server changed: SMTPConnection.${method} is missing; review libs/receive/src/smtp-adapter.ts`);
  }
  const serverProto = SMTPServer.prototype as unknown as ServerInternals;
  for (const method of ['_expectsProxyHeader', '_handleProxy'] as const) {
    if (typeof serverProto[method] !== 'function') throw new Error(`smtp-server changed: SMTPServer.${method} is missing; review libs/receive/src/smtp-adapter.ts`);
  }
  const originalInit = proto.init;
  const originalSend = proto.send;
  const originalGreeting = proto._sendGreeting;
  const originalOnCommand = proto._onCommand;
  const originalExpectsProxyHeader = serverProto._expectsProxyHeader;
  const originalHandleProxy = serverProto._handleProxy;

  // Only a header-bound socket is "expecting a PROXY header": smtp-server then guards it
  // (counts it as pending, destroys it when the listener closes) until the session exists.
  serverProto._expectsProxyHeader = function (this: ServerInternals, socket: Socket) {
    const admission = admissionOf(this, socket);
    return admission ? admission.kind === 'header' : originalExpectsProxyHeader.call(this, socket);
  };

  serverProto._handleProxy = function (this: ServerInternals, socket: Socket, callback: (err: Error | null, options?: SocketOptions) => void) {
    const admission = admissionOf(this, socket);
    if (!admission || admission.kind !== 'header') {
      if (admission?.kind === 'screen') screenedSockets.add(socket);
      return originalHandleProxy.call(this, socket, callback);
    }
    const peer = { address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 };
    void readProxyHeader(socket, admission.timeoutMs).then((read) => {
      if (!read.ok) {
        admission.onRefused(read);
        refuseSocket(socket, REPLIES.proxyHeaderRequired);
        return callback(Object.assign(new Error(read.message), { code: `PROXY_${read.code}` }));
      }
      const client = proxiedClient(read.header, peer);
      proxiedSockets.set(socket, { loadBalancer: admission.loadBalancer, peerAddress: peer.address, peerPort: peer.port, header: read.header });
      callback(null, { id: newSessionId(), ...(client.from === 'header' ? { remoteAddress: client.address, remotePort: client.port } : {}) });
    });
  };

  proto.closeWith = function (this: Internals, reply: Reply) {
    if (this.transitClosing) return;
    this.transitClosing = true;
    this.transitHooks?.onSent?.(`${reply.code} ${replyText(reply)}`);
    originalSend.call(this, reply.code, replyText(reply), false);
    this.close();
  };

  proto.init = function (this: Internals) {
    const hook = this._server.options.transitOnOpen;
    if (!hook) return originalInit.call(this);
    (this as { proxied: ProxiedConnection | undefined }).proxied = proxiedSockets.get(this._socket);
    this._setListeners(() => {
      const opening = hook(this);
      if (!opening.accept) {
        this.closeWith(opening.reply);
        return;
      }
      this.name = opening.name;
      this.transitBanner = opening.banner;
      this.transitHooks = opening.hooks;
      this.transitErrors = 0;
      // Synchronously after the pipe is set up, so the screen sees the very first bytes.
      if (screenedSockets.has(this._socket)) screenFirstBytes(this);
      // This connection's own view of the options, over the listener's.
      const server = this._server;
      // Descriptors, not values: some options are getters that follow the session (TLS, rights).
      const options = Object.create(server.options, Object.getOwnPropertyDescriptors(opening.hooks.options)) as ServerLike['options'];
      this._server = Object.assign(Object.create(server) as ServerLike, { options });
      // smtp-server re-arms its idle timer from options.socketTimeout (after TLS, after a busy handler).
      options.socketTimeout = opening.hooks.inactivityMs;
      this._armTimeout();
      if (opening.greetingDelayMs > 0) setTimeout(() => this.connectionReady(), opening.greetingDelayMs).unref();
      else this.connectionReady();
    });
  };

  proto._onCommand = function (this: Internals, command: Buffer, callback: () => void) {
    this.transitHooks?.onReceived?.(command.toString('latin1'));
    return originalOnCommand.call(this, command, callback);
  };

  for (const name of ['handler_EHLO', 'handler_HELO'] as const) {
    const original = proto[name];
    proto[name] = function (this: Internals, command: Buffer, callback: () => void) {
      const hostname = command.toString('latin1').trim().split(/\s+/)[1] ?? '';
      const refusal = hostname ? this.transitHooks?.onHello?.(hostname) : undefined;
      if (refusal) {
        this.send(refusal.code, replyText(refusal), false);
        return callback();
      }
      return original.call(this, command, callback);
    };
  }

  proto.send = function (this: Internals, code: number, data?: string | string[], context?: string | false) {
    let text = data;
    if (Array.isArray(data) || (typeof data === 'string' && code === 250 && context === false)) {
      // EHLO/HELO greeting line: Exchange answers `<fqdn> Hello [<client ip>]`.
      const lines = Array.isArray(data) ? [...data] : [data];
      if (lines[0] && / Nice to meet you, /.test(lines[0])) {
        lines[0] = `${this.name} Hello [${this.remoteAddress}]`;
        text = Array.isArray(data) ? lines : lines[0];
      }
    } else if (typeof data === 'string') {
      const stock = stockReply(code, data, context);
      if (stock) {
        code = stock.code;
        text = replyText(stock);
      } else if (!ENHANCED.test(data) && code >= 400) {
        // smtp-server's own wording for a failure: keep the code, drop its invented enhanced status.
        text = data.replace(/^Error: /, '');
      }
    }
    const hooks = this.transitHooks;
    if (hooks?.onSent) {
      const lines = Array.isArray(text) ? text : [text ?? ''];
      lines.forEach((line, i) => hooks.onSent!(`${code}${i < lines.length - 1 ? '-' : ' '}${line}`));
    }
    originalSend.call(this, code, text, false);
    // Protocol errors: unknown commands, bad sequence, bad syntax; a refused address (5.1.x) is not one.
    const protocolError = code >= 500 && code <= 504 && !(typeof text === 'string' && text.startsWith('5.1.'));
    if (hooks && protocolError && hooks.maxProtocolErrors > 0) {
      this.transitErrors = (this.transitErrors ?? 0) + 1;
      if (this.transitErrors >= hooks.maxProtocolErrors) this.closeWith(REPLIES.tooManyErrors);
    }
  };

  proto._sendGreeting = function (this: Internals) {
    if (this.transitBanner === undefined) return originalGreeting.call(this);
    this.send(220, this.transitBanner, false);
  };
}
