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
 */
import type { Socket } from 'node:net';
import { REPLIES, replyText, type Reply } from '@transit/policy';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';

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
};

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
  /** Sends a final reply and closes the connection. */
  closeWith(reply: Reply): void;
};

export type OpenHook = (conn: ConnectionView) => ConnectionOpening;

type ServerLike = { options: Record<string, unknown> & { transitOnOpen?: OpenHook }; connections: Set<unknown> };
type Handler = (this: Internals, command: Buffer, callback: () => void) => void;
type Internals = ConnectionView & {
  name: string;
  secure: boolean;
  _server: ServerLike;
  _socket: Socket;
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

let installed = false;

export function installSmtpServerAdapter(): void {
  if (installed) return;
  installed = true;
  const proto = (SMTPConnection as { prototype: Internals & { init: (this: Internals) => void } }).prototype;
  for (const method of ['init', 'connectionReady', 'send', 'close', '_sendGreeting', '_setListeners', '_onCommand', '_armTimeout', 'handler_EHLO', 'handler_HELO'] as const) {
    if (typeof proto[method] !== 'function') throw new Error(`smtp-server changed: SMTPConnection.${method} is missing; review libs/receive/src/smtp-adapter.ts`);
  }
  const originalInit = proto.init;
  const originalSend = proto.send;
  const originalGreeting = proto._sendGreeting;
  const originalOnCommand = proto._onCommand;

  proto.closeWith = function (this: Internals, reply: Reply) {
    if (this.transitClosing) return;
    this.transitClosing = true;
    originalSend.call(this, reply.code, replyText(reply), false);
    this.close();
  };

  proto.init = function (this: Internals) {
    const hook = this._server.options.transitOnOpen;
    if (!hook) return originalInit.call(this);
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
