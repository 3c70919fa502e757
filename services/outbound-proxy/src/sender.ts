/**
 * SMTP delivery to a next hop with nodemailer's pooled transport: one pool per
 * destination host, raw bytes as stored (no re-composition), envelope from the work item.
 * The next hop gets CRLF line endings only, dot-stuffed: nodemailer's DataStream (>= 10.0.12)
 * turns every bare CR and bare LF into CRLF and stuffs dots; test/outbound-crlf.test.ts pins it.
 */
import { createHash } from 'node:crypto';
import { promises as dns } from 'node:dns';
import { readFile } from 'node:fs/promises';
import { connect as netConnect, isIP, type Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { checkServerIdentity, type ConnectionOptions, type PeerCertificate } from 'node:tls';
import { createTransport, type Transporter } from 'nodemailer';
import { environmentDefault, type RuntimeSettings, type SendConnector } from '@transit/config';
import type { NextHop } from '@transit/envelope';
import type { ProtocolLog, ProtocolLogSession } from '@transit/logs';
import type { DsnParams, SendReport } from './outcome.ts';
import type { DestinationShaper, HopLimits } from './shaping.ts';

/** How one next hop is shaped: its queue name (the key in Redis) and its limits. */
export type Shaping = { hop: string; limits: HopLimits };

/** A connection slot did not come free in time: every one the next hop may have is open (shaping.ts). */
export class ThrottledError extends Error {
  readonly code = 'ESHAPED';
  readonly retryInMs: number;
  constructor(message: string, retryInMs: number) {
    super(message);
    this.retryInMs = retryInMs;
  }
}

export type Destination = { host: string; port: number };

export function parseSmartHost(spec: string, defaultPort: number): Destination {
  const m = /^\[?([^\]]+?)\]?(?::(\d+))?$/.exec(spec.trim());
  if (!m) throw new Error(`invalid smart host ${spec}`);
  return { host: m[1]!, port: m[2] ? Number(m[2]) : defaultPort };
}

/** Smart hosts in order, or the domain's MX hosts by preference (the domain itself when it has none). */
export async function destinationsFor(hop: Extract<NextHop, { type: 'smtp' }>): Promise<Destination[]> {
  if (hop.smartHosts?.length) return hop.smartHosts.map((h) => parseSmartHost(h, hop.port));
  try {
    const mx = await dns.resolveMx(hop.domain);
    if (mx.length) return mx.sort((a, b) => a.priority - b.priority).map((r) => ({ host: r.exchange, port: hop.port }));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENODATA' && (err as NodeJS.ErrnoException).code !== 'ENOTFOUND') throw err;
  }
  return [{ host: hop.domain, port: hop.port }];
}

/**
 * destinationsFor, with a DNS server that fails or times out (ESERVFAIL, ETIMEOUT, ECONNREFUSED)
 * turned into the attempt's transient failure, deferred and expired on the schedule like any
 * other. Thrown, it would leave the worker retrying the item for ever, with no Deferred event,
 * no delay notice and no expiry.
 */
export async function lookUpDestinations(
  hop: Extract<NextHop, { type: 'smtp' }>,
  resolve: typeof destinationsFor = destinationsFor,
): Promise<{ destinations: Destination[] } | { failure: string }> {
  try {
    return { destinations: await resolve(hop) };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    return { failure: `451 4.4.0 DNS query failed for ${hop.domain}: ${code}` };
  }
}

type SmtpError = Error & { responseCode?: number; response?: string; code?: string; rejectedErrors?: SmtpError[]; rejected?: string[] };

type LogEntry = { sid?: string; tnx?: string; localAddress?: string; localPort?: number; remoteAddress?: string; remotePort?: number };

/**
 * A bunyan-shaped logger for nodemailer that turns its transaction log into an SMTP Send
 * protocol log: one session per SMTP connection (nodemailer's `sid`), our commands as `>`,
 * the server's replies as `<`. nodemailer logs message data only as a byte count.
 */
export function sendProtocolLogger(
  log: ProtocolLog,
  connectorId: string,
): Record<'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal', (entry: LogEntry, message: string, ...args: unknown[]) => void> {
  const sessions = new Map<string, ProtocolLogSession>();
  const handle = (entry: LogEntry, message: string) => {
    if (!entry.sid || typeof message !== 'string') return;
    let session = sessions.get(entry.sid);
    if (entry.tnx === 'network') {
      if (!session && entry.remoteAddress) {
        session = log.session(connectorId, `${entry.localAddress}:${entry.localPort}`, `${entry.remoteAddress}:${entry.remotePort}`);
        sessions.set(entry.sid, session);
        session.connect();
      } else if (session && /closed/i.test(message)) {
        session.disconnect();
        sessions.delete(entry.sid);
      }
      return;
    }
    if (!session) return;
    if (entry.tnx === 'client') session.sent(message);
    else if (entry.tnx === 'server') message.split(/\r?\n/).forEach((line) => session.received(line));
  };
  const ignore = () => undefined;
  return { trace: ignore, debug: handle, info: handle, warn: ignore, error: ignore, fatal: ignore };
}

export type SendLogging = { log: ProtocolLog; connectorId: string } | undefined;

/** How a send connector talks to its next hop: the EHLO name and the TLS it insists on. */
export type SendPolicy = Pick<SendConnector, 'Name' | 'Fqdn' | 'RequireTLS' | 'TlsAuthLevel' | 'TlsDomain'> &
  Partial<Pick<SendConnector, 'SmartHostAuthMechanism' | 'AuthenticationCredential' | 'ConnectionInactivityTimeOut' | 'SmtpMaxMessagesPerConnection'>>;

/**
 * nodemailer's TLS options for a connector's policy towards `dest`. Without RequireTLS,
 * STARTTLS is used when offered and any certificate is taken (opportunistic, as Exchange's
 * default send connector does). With it, a next hop that does not offer STARTTLS fails the
 * attempt, and TlsAuthLevel decides what the certificate must prove: EncryptionOnly nothing,
 * CertificateValidation a chain to a trusted root (the system's, plus NODE_EXTRA_CA_CERTS),
 * DomainValidation that and the name: TlsDomain, else the host name connected to.
 */
export function tlsOptionsFor(policy: SendPolicy | undefined, dest: Destination): { requireTLS: boolean; tls: ConnectionOptions } {
  // BasicAuthRequireTLS sends the password only inside TLS: it requires STARTTLS as RequireTLS does.
  const required = policy?.RequireTLS === true || policy?.SmartHostAuthMechanism === 'BasicAuthRequireTLS';
  const level = required ? (policy.TlsAuthLevel ?? 'EncryptionOnly') : undefined;
  if (level === undefined || level === 'EncryptionOnly') return { requireTLS: level !== undefined, tls: { rejectUnauthorized: false } };
  if (level === 'CertificateValidation') return { requireTLS: true, tls: { rejectUnauthorized: true, checkServerIdentity: () => undefined } };
  const name = policy?.TlsDomain ?? dest.host;
  return {
    requireTLS: true,
    tls: {
      rejectUnauthorized: true,
      ...(isIP(name) ? {} : { servername: name }),
      checkServerIdentity: (_host: string, cert: PeerCertificate) => checkServerIdentity(name, cert),
    },
  };
}

/** The pool's sizes and timeouts (TRANSIT_OUTBOUND_*, libs/config settings.ts). */
export type PoolSettings = Pick<
  RuntimeSettings,
  'outboundMaxConnections' | 'outboundMaxMessagesPerConnection' | 'outboundConnectionTimeoutMs' | 'outboundGreetingTimeoutMs' | 'outboundSocketTimeoutMs'
>;

/** The register's defaults of the pool's settings (libs/config settings.ts), without reading the environment. */
export function defaultPoolSettings(): PoolSettings {
  return {
    outboundMaxConnections: environmentDefault('outboundMaxConnections'),
    outboundMaxMessagesPerConnection: environmentDefault('outboundMaxMessagesPerConnection'),
    outboundConnectionTimeoutMs: environmentDefault('outboundConnectionTimeoutMs'),
    outboundGreetingTimeoutMs: environmentDefault('outboundGreetingTimeoutMs'),
    outboundSocketTimeoutMs: environmentDefault('outboundSocketTimeoutMs'),
  };
}

/** A connector's pool to one destination host for one next hop: messages in flight on it, and when it was last used. */
type Pool = { transport: Transporter; busy: number; usedAt: number; hop?: string };

/** A pool not used for this long is closed, which frees its connection slots (shaping.ts); at once when another proxy waits for one. */
const POOL_IDLE_MS = 10_000;
const SWEEP_MS = 1_000;

export class SmtpSender {
  readonly #pools = new Map<string, Pool>();
  readonly #heloName: string;
  readonly #settings: PoolSettings;
  readonly #shaper: DestinationShaper | undefined;
  readonly #sweep: NodeJS.Timeout;
  /** `pool`: the service passes this process's settings (ctx.settings); left out, the register's defaults. `shaper`: cluster-wide connection limits. */
  constructor(heloName: string, pool: PoolSettings = defaultPoolSettings(), shaper?: DestinationShaper) {
    this.#heloName = heloName;
    this.#settings = pool;
    this.#shaper = shaper;
    this.#sweep = setInterval(() => void this.#closeIdle(), SWEEP_MS);
    this.#sweep.unref();
  }

  async #closeIdle(): Promise<void> {
    for (const [key, p] of [...this.#pools]) {
      if (p.busy > 0) continue;
      const idle = Date.now() - p.usedAt;
      const close = idle >= POOL_IDLE_MS || (p.hop !== undefined && idle >= SWEEP_MS && (await this.#shaper?.wanted(p.hop).catch(() => false)));
      // Taken again while Redis answered: it stays.
      if (!close || p.busy > 0 || this.#pools.get(key) !== p) continue;
      this.#pools.delete(key);
      p.transport.close();
    }
  }

  /** A socket for nodemailer once `shaping` lets one more connection to its next hop be open; the slot is freed when it closes. */
  #shapedSocket(dest: Destination, shaping: Shaping, shaper: DestinationShaper) {
    // A message waits for a slot on the connection nodemailer opens for it; held back longer, it goes back to the queue.
    const waitMs = Math.min(this.#settings.outboundConnectionTimeoutMs, 10_000);
    return (_options: unknown, callback: (err: Error | null, socketOptions: { connection: Socket } | undefined) => void) => {
      shaper.acquire(shaping.hop, shaping.limits.maxConnections, waitMs).then(
        (slot) => {
          if (!slot) {
            callback(
              new ThrottledError(
                `${shaping.hop}: all ${shaping.limits.maxConnections} connections it may have (MaxPerDomainOutboundConnections) are open`,
                Math.min(waitMs, 5_000),
              ),
              undefined,
            );
            return;
          }
          const socket = netConnect({ host: dest.host, port: dest.port });
          socket.once('close', () => slot.release());
          const timer = setTimeout(
            () => socket.destroy(new Error(`connection to ${dest.host}:${dest.port} timed out`)),
            this.#settings.outboundConnectionTimeoutMs,
          );
          const failed = (err: Error) => {
            clearTimeout(timer);
            callback(Object.assign(err, { code: (err as NodeJS.ErrnoException).code ?? 'ECONNECTION' }), undefined);
          };
          socket.once('error', failed);
          socket.once('connect', () => {
            clearTimeout(timer);
            socket.removeListener('error', failed);
            callback(null, { connection: socket });
          });
        },
        (err: Error) => callback(err, undefined),
      );
    };
  }

  async #pool(dest: Destination, logging: SendLogging, policy: SendPolicy | undefined, shaping: Shaping | undefined): Promise<Pool> {
    const auth = await this.#auth(policy);
    // A pool per connector too: connectors to the same host may differ in TLS policy, EHLO name and account. The password
    // is in the key only as a digest (a changed password opens a new pool).
    const key = JSON.stringify([
      dest.host,
      dest.port,
      logging?.connectorId ?? '',
      policy?.Name,
      policy?.Fqdn,
      policy?.RequireTLS,
      policy?.TlsAuthLevel,
      policy?.TlsDomain,
      policy?.ConnectionInactivityTimeOut,
      policy?.SmtpMaxMessagesPerConnection,
      auth ? [auth.user, createHash('sha256').update(auth.pass).digest('hex')] : null,
      shaping ? [shaping.hop, shaping.limits.maxConnections] : null,
    ]);
    let t = this.#pools.get(key);
    if (!t) {
      const { requireTLS, tls } = tlsOptionsFor(policy, dest);
      const shaper = this.#shaper;
      const transport = createTransport({
        ...(shaping && shaper ? { getSocket: this.#shapedSocket(dest, shaping, shaper) } : {}),
        ...(auth ? { auth } : {}),
        ...(logging ? { logger: sendProtocolLogger(logging.log, logging.connectorId), debug: true } : {}),
        host: dest.host,
        port: dest.port,
        secure: false,
        pool: true,
        // No more than the next hop may have across the cluster: connections beyond that would only wait for a slot.
        maxConnections: Math.min(this.#settings.outboundMaxConnections, shaping?.limits.maxConnections ?? Infinity),
        maxMessages: policy?.SmtpMaxMessagesPerConnection ?? this.#settings.outboundMaxMessagesPerConnection,
        name: policy?.Fqdn ?? this.#heloName,
        connectionTimeout: this.#settings.outboundConnectionTimeoutMs,
        greetingTimeout: this.#settings.outboundGreetingTimeoutMs,
        socketTimeout: policy?.ConnectionInactivityTimeOut !== undefined ? policy.ConnectionInactivityTimeOut * 1000 : this.#settings.outboundSocketTimeoutMs,
        requireTLS,
        tls,
      });
      t = { transport, busy: 0, usedAt: Date.now(), ...(shaping ? { hop: shaping.hop } : {}) };
      this.#pools.set(key, t);
    }
    return t;
  }

  /** Resolves with per-recipient answers; rejects when the whole transaction failed (with responseCode when the server answered). */
  async send(
    dest: Destination,
    sender: string,
    recipients: string[],
    raw: Readable,
    logging?: SendLogging,
    policy?: SendPolicy,
    dsn?: DsnParams,
    shaping?: Shaping,
  ): Promise<SendReport> {
    const pool = await this.#pool(dest, logging, policy, shaping);
    pool.busy++;
    try {
      const info = (await pool.transport.sendMail({ envelope: { from: sender, to: recipients }, raw, ...(dsn ? { dsn } : {}) })) as {
        accepted: string[];
        rejected: string[];
        rejectedErrors?: SmtpError[];
      };
      return { accepted: info.accepted.map(String), rejected: rejectedOf(info.rejected, info.rejectedErrors) };
    } catch (err) {
      const e = err as SmtpError;
      // Every recipient refused: nodemailer reports it as an envelope error, with per-recipient errors.
      if (e.code === 'EENVELOPE' && e.rejected?.length) return { accepted: [], rejected: rejectedOf(e.rejected, e.rejectedErrors) };
      throw err;
    } finally {
      pool.busy--;
      pool.usedAt = Date.now();
    }
  }

  /** Passwords read from their files, for a short while: a rotated Secret is picked up within the minute. */
  readonly #passwords = new Map<string, { pass: string; readAt: number }>();

  /** The account a BasicAuth connector logs on with; a password file that cannot be read fails the attempt (naming the file, not its content). */
  async #auth(policy: SendPolicy | undefined): Promise<{ user: string; pass: string } | undefined> {
    const mechanism = policy?.SmartHostAuthMechanism;
    const credential = policy?.AuthenticationCredential;
    if ((mechanism !== 'BasicAuth' && mechanism !== 'BasicAuthRequireTLS') || !credential) return undefined;
    const cached = this.#passwords.get(credential.PasswordFile);
    if (cached && Date.now() - cached.readAt < 60_000) return { user: credential.UserName, pass: cached.pass };
    let pass: string;
    try {
      pass = (await readFile(credential.PasswordFile, 'utf8')).replace(/\r?\n$/, '');
    } catch (err) {
      throw new Error(
        `send connector ${policy.Name}: cannot read the password file ${credential.PasswordFile} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
        {
          cause: err,
        },
      );
    }
    this.#passwords.set(credential.PasswordFile, { pass, readAt: Date.now() });
    return { user: credential.UserName, pass };
  }

  close(): void {
    clearInterval(this.#sweep);
    for (const t of this.#pools.values()) t.transport.close();
    this.#pools.clear();
  }
}

function rejectedOf(addresses: string[], errors: SmtpError[] | undefined): SendReport['rejected'] {
  return addresses.map((address, i) => {
    const e = errors?.[i];
    return { address: String(address), code: e?.responseCode, response: e?.response ?? e?.message ?? 'rejected' };
  });
}
