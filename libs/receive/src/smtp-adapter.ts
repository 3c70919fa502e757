/**
 * Two deliberate adaptations of smtp-server's connection (checked by tests against the
 * installed version), applied once, in this one place:
 *
 * 1. Greeting and connector choice. smtp-server waits a fixed 100 ms before every 220
 *    (early-talker detection), which caps connection-per-message clients at sessions/0.1 s
 *    (PERFORMANCE.md). Transit chooses the receive connector as the connection opens and
 *    waits that connector's GreetingDelay (0 by default, as Exchange), and greets with the
 *    connector's FQDN and banner.
 * 2. Exact replies. smtp-server prefixes an enhanced status code chosen by the numeric code
 *    (e.g. every 550 becomes 5.1.1). Transit's reply table already carries Exchange's exact
 *    enhanced code, so a reply text that starts with one is sent as is; smtp-server's own
 *    stock texts for successful steps are replaced by the table's Exchange wording.
 */
import { REPLIES, replyText, type Reply } from '@transit/policy';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';

export type ConnectionOpening =
  | { accept: true; name: string; banner: string; greetingDelayMs: number }
  | { accept: false; code: number; text: string };

/** What the adapter reads off smtp-server's connection object. */
export type ConnectionView = { id: string; localAddress: string; localPort: number; remoteAddress: string; remotePort: number };

export type OpenHook = (conn: ConnectionView) => ConnectionOpening;

type Internals = ConnectionView & {
  name: string;
  _server: { options: { transitOnOpen?: OpenHook; maxClients?: number }; connections: Set<unknown> };
  _setListeners: (this: Internals, cb: () => void) => void;
  connectionReady: (this: Internals) => void;
  send: (this: Internals, code: number, data?: string | string[], context?: string | false) => void;
  close: (this: Internals) => void;
  _sendGreeting: (this: Internals) => void;
  transitBanner?: string;
};

const ENHANCED = /^[245]\.\d{1,3}\.\d{1,3}( |$)/;

/** smtp-server's stock reply (code|text|context) → the reply Exchange sends for that step. */
const STOCK: ReadonlyMap<string, Reply> = new Map([
  ['250|Accepted|MAIL_FROM_OK', REPLIES.senderOk],
  ['250|Accepted|RCPT_TO_OK', REPLIES.recipientOk],
  ['221|Bye|', REPLIES.closing],
  ['354|End data with <CR><LF>.<CR><LF>|', REPLIES.startMailInput],
  ['250|OK|', REPLIES.ok],
]);
let installed = false;

export function installSmtpServerAdapter(): void {
  if (installed) return;
  installed = true;
  const proto = (SMTPConnection as { prototype: Internals & { init: (this: Internals) => void } }).prototype;
  for (const method of ['init', 'connectionReady', 'send', '_sendGreeting', '_setListeners'] as const) {
    if (typeof proto[method] !== 'function') throw new Error(`smtp-server changed: SMTPConnection.${method} is missing; review libs/receive/src/smtp-adapter.ts`);
  }
  const originalInit = proto.init;
  const originalSend = proto.send;
  const originalGreeting = proto._sendGreeting;

  proto.init = function (this: Internals) {
    const hook = this._server.options.transitOnOpen;
    if (!hook) return originalInit.call(this);
    this._setListeners(() => {
      const { maxClients } = this._server.options;
      if (maxClients && this._server.connections.size > maxClients) {
        this.send(421, '4.3.2 The maximum number of concurrent server connections has exceeded a limit, closing transmission channel');
        this.close();
        return;
      }
      const opening = hook(this);
      if (!opening.accept) {
        this.send(opening.code, opening.text);
        this.close();
        return;
      }
      this.name = opening.name;
      this.transitBanner = opening.banner;
      if (opening.greetingDelayMs > 0) setTimeout(() => this.connectionReady(), opening.greetingDelayMs).unref();
      else this.connectionReady();
    });
  };

  proto.send = function (this: Internals, code: number, data?: string | string[], context?: string | false) {
    if (Array.isArray(data) || (typeof data === 'string' && code === 250 && context === false)) {
      // EHLO/HELO greeting line: Exchange answers `<fqdn> Hello [<client ip>]`.
      const lines = Array.isArray(data) ? [...data] : [data];
      if (lines[0] && / Nice to meet you, /.test(lines[0])) {
        lines[0] = `${this.name} Hello [${this.remoteAddress}]`;
        return originalSend.call(this, code, Array.isArray(data) ? lines : lines[0], context);
      }
    }
    if (typeof data === 'string') {
      const stock = STOCK.get(`${code}|${data}|${context || ''}`);
      if (stock) return originalSend.call(this, code, replyText(stock), false);
      if (ENHANCED.test(data)) return originalSend.call(this, code, data, false);
    }
    return originalSend.call(this, code, data, context);
  };

  proto._sendGreeting = function (this: Internals) {
    if (this.transitBanner === undefined) return originalGreeting.call(this);
    this.send(220, this.transitBanner, false);
  };
}
