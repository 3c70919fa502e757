/**
 * The receive-connector engine shared by every role that listens for SMTP (frontend 25/587
 * and custom connectors, hub 2525 and 465, outbound proxy 717). It opens one listener per
 * distinct local endpoint, chooses a connector for each connection from the live
 * configuration, enforces the connector's limits, asks libs/policy about every step, and
 * hands accepted messages to ingest. It never decides policy itself.
 *
 * Live configuration: each connection takes the snapshot current when it opens and keeps
 * it until it closes; a new revision opens listeners for new bindings and closes listeners
 * no connector uses any more, without a restart.
 *
 * Load balancers (PROXY protocol): a listener that a configured load balancer serves asks
 * libs/policy about each socket before the session exists. The load balancer's sockets
 * must start with a PROXY header and their sessions are the client it names, so connector
 * selection, rights, limits, logs, Received headers and the recorded origin all see the
 * client; other sockets are direct clients whose PROXY header is refused. The check
 * follows the live configuration per connection; listeners no load balancer serves skip it.
 */
import { timingSafeEqual } from 'node:crypto';
import { once } from 'node:events';
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import type { SMTPServer, SMTPServerAddress, SMTPServerAuthentication, SMTPServerDataStream, SMTPServerSession } from 'smtp-server';
import { BusUnavailableError, QueueFullError, SpanKind, annotate, inSpan, type BodyStore, type Bus } from '@transit/bus';
import {
  directoryOf,
  findLogon,
  parseBinding,
  verifyPassword,
  type ConfigSnapshot,
  type LiveConfig,
  type LoadBalancer,
  type OrganizationConfig,
  type ReceiveConnector,
  type RuntimeSettings,
} from '@transit/config';
import type { Envelope } from '@transit/envelope';
import { ContentRefusedError, contentRefusalReply, ingestMessage, removeHeaderFields, rfc5322Date } from '@transit/ingest';
import type { ProtocolLog, ProtocolLogSession } from '@transit/logs';
import { metrics } from '@transit/metrics';
import {
  REPLIES,
  basicAuthOffer,
  decideAuthStart,
  decideAuthenticated,
  decideHello,
  decideMailFrom,
  decideMessageSize,
  decideProxyPeer,
  decideRcptTo,
  describeIdentity,
  directoryFor,
  headerStripper,
  initialIdentity,
  loadBalancersOn,
  queuedReply,
  replyText,
  selectReceiveConnector,
  sessionPermissionsText,
  sessionRights,
  tarpitSeconds,
  type Decision,
  type Reply,
  type SessionIdentity,
  type SessionRights,
  type SessionView,
} from '@transit/policy';
import type { Logger } from '@transit/service';
import {
  TransitSMTPServer,
  type ConnectionHooks,
  type ConnectionOpening,
  type ConnectionView,
  type ProxyAdmission,
  type TransitDataStream,
} from './smtp-adapter.ts';
import type { TlsMaterial } from './tls.ts';

export type Endpoint = {
  host: string;
  port: number;
  configuredPort: number;
  connectors: ReceiveConnector[];
  /** The configured bindings this listener serves (several when wildcards move to listenHost). */
  bindings: string[];
  /** Load balancers whose Bindings name one of them: their PROXY headers are read here. */
  loadBalancers: LoadBalancer[];
};

/** Where each binding listens on this machine: wildcards move to listenHost, ports by the offset; and which load balancers serve it. */
export function planEndpoints(
  connectors: readonly ReceiveConnector[],
  settings: Pick<RuntimeSettings, 'listenHost' | 'portOffset'>,
  loadBalancers: readonly LoadBalancer[] = [],
): Endpoint[] {
  const byKey = new Map<string, Endpoint>();
  for (const connector of connectors) {
    if (!connector.Enabled) continue;
    for (const spec of connector.Bindings) {
      const b = parseBinding(spec);
      const host = b.wildcard && settings.listenHost ? settings.listenHost : b.host;
      const port = b.port + settings.portOffset;
      const key = `${host}|${port}`;
      const endpoint = byKey.get(key) ?? { host, port, configuredPort: b.port, connectors: [], bindings: [], loadBalancers: [] };
      if (!endpoint.connectors.includes(connector)) endpoint.connectors.push(connector);
      if (!endpoint.bindings.includes(spec)) endpoint.bindings.push(spec);
      byKey.set(key, endpoint);
    }
  }
  const endpoints = [...byKey.values()];
  if (loadBalancers.length > 0) for (const e of endpoints) e.loadBalancers = loadBalancersOn(loadBalancers, e.bindings);
  return endpoints;
}

const endpointKey = (e: Pick<Endpoint, 'host' | 'port'>) => `${e.host}|${e.port}`;

type SessionState = {
  snapshot: ConfigSnapshot;
  connector: ReceiveConnector;
  identity: SessionIdentity;
  rights: SessionRights;
  fqdn: string;
  conn: ConnectionView;
  logonFailures: number;
  protocolLog: ProtocolLogSession | undefined;
  timer: NodeJS.Timeout;
  sourceKey: string;
};

type DsnParams = { dsn?: { notify?: string[]; orcpt?: string } | null };
type Notify = NonNullable<Envelope['recipients'][number]['notify']>;

/** RFC 3461 parameters smtp-server parsed: NOTIFY and ORCPT per recipient. */
function dsnRecipient(r: SMTPServerAddress & DsnParams): Envelope['recipients'][number] {
  return { address: r.address, ...(r.dsn?.notify?.length ? { notify: r.dsn.notify as Notify } : {}), ...(r.dsn?.orcpt ? { original: r.dsn.orcpt } : {}) };
}

/** RET and ENVID from MAIL FROM. */
function dsnEnvelope(envelope: SMTPServerSession['envelope']): Envelope['dsn'] {
  const dsn = (envelope as { dsn?: { ret?: string | null; envid?: string | null } }).dsn;
  if (!dsn || (!dsn.ret && !dsn.envid)) return undefined;
  return { ...(dsn.ret === 'FULL' || dsn.ret === 'HDRS' ? { ret: dsn.ret } : {}), ...(dsn.envid ? { envid: dsn.envid } : {}) };
}

export type ReceiveEngineOptions = {
  /** Which of the configuration's receive connectors this role serves. */
  connectorsFor: (config: OrganizationConfig) => ReceiveConnector[];
  live: LiveConfig;
  settings: RuntimeSettings;
  bus: Bus;
  bodies: BodyStore;
  log: Logger;
  tls: TlsMaterial;
  protocolLog?: ProtocolLog;
};

export type ReceiveEngine = {
  endpoints(): Endpoint[];
  openSessions(): number;
  draining(): boolean;
  /** Stops the listeners; with drainMs, first lets open sessions finish (new ones get 421 4.3.2). */
  close(drainMs?: number): Promise<void>;
};

const smtpError = (reply: Reply): Error & { responseCode: number } => Object.assign(new Error(replyText(reply)), { responseCode: reply.code });

/** Commands smtp-server knows that Exchange does not (its jokes, and proxy commands we never trust). */
const NEVER_OFFERED = ['WIZ', 'SHELL', 'KILL', 'XCLIENT', 'XFORWARD'];

/** A hash to verify against when the logon name is unknown, so timing does not reveal which names exist. */
const UNKNOWN_USER_HASH = '$scrypt$N=16384,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';

export async function startReceiveEngine(opts: ReceiveEngineOptions): Promise<ReceiveEngine> {
  const { settings, log, live } = opts;
  const sessions = new Map<string, SessionState>();
  let draining = false;
  /** Until when MAIL FROM answers 452 4.3.1: the submit queue refused a message for lack of room (TRANSIT_BACK_PRESSURE_HOLD_MS after it). */
  let saturatedUntil = 0;
  const perConnector = new Map<string, number>();
  const perSource = new Map<string, number>();
  const servers = new Map<string, { server: SMTPServer; endpoint: Endpoint }>();
  const plans = new WeakMap<ConfigSnapshot, Map<string, Endpoint>>();

  const planFor = (snapshot: ConfigSnapshot): Map<string, Endpoint> => {
    let plan = plans.get(snapshot);
    if (!plan) {
      plan = new Map(planEndpoints(opts.connectorsFor(snapshot.config), settings, snapshot.config.LoadBalancers).map((e) => [endpointKey(e), e]));
      plans.set(snapshot, plan);
    }
    return plan;
  };

  const stateOf = (session: SMTPServerSession): SessionState => {
    const state = sessions.get(session.id);
    if (!state) throw smtpError(REPLIES.serviceNotAvailable);
    return state;
  };
  const view = (s: SessionState): SessionView => ({ connector: s.connector, identity: s.identity, rights: s.rights, secure: s.conn.secure });
  const bypassesSize = (s: SessionState) => s.rights.effective.has('Bypass-Message-Size-Limit');
  const connectorId = (c: ReceiveConnector) => `${c.Server ?? settings.nodeName}\\${c.Name}`;
  /** Counts a refusal the engine sends; "none" when no connector was chosen yet. */
  const refused = (connector: string, reply: Reply): Reply => {
    metrics.smtpRejections.inc({ connector, code: reply.enhanced });
    return reply;
  };

  /** Answers a decision through smtp-server's callback, after the tarpit delay when it is a refusal to an untrusted session. */
  const answer = (s: SessionState, decision: Decision, cb: (err?: Error | null) => void, what: string, extra: object = {}): void => {
    if (decision.ok) return cb();
    log.info({ connector: s.connector.Name, remote: s.conn.remoteAddress, reason: decision.reason, ...extra }, `${what} refused`);
    refused(s.connector.Name, decision.reply);
    const delay = tarpitSeconds(view(s), decision.reply.code);
    if (delay > 0) setTimeout(() => cb(smtpError(decision.reply)), delay * 1000).unref();
    else cb(smtpError(decision.reply));
  };

  const setPermissions = (s: SessionState) => {
    s.protocolLog?.info(sessionPermissionsText(s.rights.effective), 'Set Session Permissions');
  };

  function connectionOptions(connector: ReceiveConnector, conn: ConnectionView, state: () => SessionState | undefined): Record<string, unknown> {
    const offer = basicAuthOffer(connector);
    const tls = connector.AuthMechanism.includes('Tls');
    const options: Record<string, unknown> = {
      disabledCommands: [...NEVER_OFFERED, ...(offer.offered ? [] : ['AUTH']), ...(tls ? [] : ['STARTTLS'])],
      hideSTARTTLS: !tls,
      allowInsecureAuth: !offer.requiresTls,
    };
    Object.defineProperties(options, {
      // BasicAuthRequireTLS: AUTH is advertised only once the session is encrypted.
      authMethods: { enumerable: true, get: () => (offer.offered && (!offer.requiresTls || conn.secure) ? ['PLAIN', 'LOGIN'] : []) },
      // SIZE follows the session's rights: Bypass-Message-Size-Limit lifts the connector's limit.
      size: { enumerable: true, get: () => (state() && bypassesSize(state()!) ? 0 : connector.MaxMessageSize) },
    });
    return options;
  }

  const DIRECT: ProxyAdmission = { kind: 'direct' };
  const SCREEN: ProxyAdmission = { kind: 'screen' };

  /** Before the session exists: does this socket start with a PROXY header, must it not, or is the listener plain? */
  function admit(endpoint: Endpoint, socket: Socket): ProxyAdmission {
    const snapshot = live.current;
    if (snapshot.config.LoadBalancers.length === 0) return DIRECT;
    const loadBalancers = planFor(snapshot).get(endpointKey(endpoint))?.loadBalancers ?? [];
    const decision = decideProxyPeer(loadBalancers, socket.remoteAddress ?? '');
    if (decision.kind === 'direct') return DIRECT;
    if (decision.kind === 'untrusted') return SCREEN;
    return {
      kind: 'header',
      loadBalancer: decision.loadBalancer,
      // How long a trusted load balancer has to send its PROXY header (TRANSIT_PROXY_HEADER_TIMEOUT_MS; HAProxy sends it with the connection).
      timeoutMs: settings.proxyHeaderTimeoutMs,
      onRefused: (failure) => {
        const facts = {
          loadBalancer: decision.loadBalancer,
          peer: `${socket.remoteAddress}:${socket.remotePort}`,
          local: `${endpoint.host}:${endpoint.port}`,
          code: failure.code,
          reason: failure.message,
        };
        // Connect-and-close without a byte is a TCP health check, not a fault: no warning every few seconds.
        if (failure.code === 'CLOSED' && failure.received === 0)
          log.debug(facts, 'load balancer closed the connection before sending anything (a TCP health check)');
        else log.warn(facts, 'no valid PROXY header from a trusted load balancer; connection refused');
      },
    };
  }

  function onOpen(endpoint: Endpoint, conn: ConnectionView): ConnectionOpening {
    // Draining: tell new clients to go elsewhere (a load balancer has another frontend).
    if (draining) return { accept: false, reply: refused('none', REPLIES.serviceNotAvailable) };
    const snapshot = live.current;
    const candidates = planFor(snapshot).get(endpointKey(endpoint))?.connectors ?? [];
    const connector = selectReceiveConnector(candidates, { localIp: conn.localAddress, localPort: endpoint.configuredPort, remoteIp: conn.remoteAddress });
    if (!connector) {
      log.warn({ remote: conn.remoteAddress, local: `${conn.localAddress}:${conn.localPort}` }, 'no receive connector matches; connection refused');
      return { accept: false, reply: refused('none', REPLIES.serviceNotAvailable) };
    }
    const sourceKey = `${connector.Name}|${conn.remoteAddress}`;
    if (
      (perConnector.get(connector.Name) ?? 0) >= connector.MaxInboundConnection ||
      (perSource.get(sourceKey) ?? 0) >= connector.MaxInboundConnectionPerSource
    ) {
      log.warn({ connector: connector.Name, remote: conn.remoteAddress }, 'connection limit reached; connection refused');
      return { accept: false, reply: refused(connector.Name, REPLIES.tooManyConnections) };
    }
    perConnector.set(connector.Name, (perConnector.get(connector.Name) ?? 0) + 1);
    perSource.set(sourceKey, (perSource.get(sourceKey) ?? 0) + 1);

    const identity = initialIdentity(connector);
    const fqdn = connector.Fqdn ?? settings.nodeName;
    const protocolLog =
      connector.ProtocolLoggingLevel === 'Verbose'
        ? opts.protocolLog?.session(connectorId(connector), `${conn.localAddress}:${conn.localPort}`, `${conn.remoteAddress}:${conn.remotePort}`)
        : undefined;
    const state: SessionState = {
      snapshot,
      connector,
      identity,
      rights: sessionRights(snapshot.config, connector, identity),
      fqdn,
      conn,
      logonFailures: 0,
      protocolLog,
      sourceKey,
      timer: setTimeout(() => conn.closeWith(refused(connector.Name, REPLIES.connectionTimedOut)), connector.ConnectionTimeout * 1000).unref(),
    };
    sessions.set(conn.id, state);
    metrics.smtpSessions.inc({ connector: connector.Name });
    metrics.smtpSessionsOpen.inc({ connector: connector.Name });
    protocolLog?.connect();
    if (conn.proxied) {
      const p = conn.proxied;
      protocolLog?.info(`PROXY v${p.header.version} ${p.header.command} from load balancer ${p.loadBalancer} at ${p.peerAddress}:${p.peerPort}`, 'PROXY');
    }
    setPermissions(state);
    const hooks: ConnectionHooks = {
      options: connectionOptions(connector, conn, () => sessions.get(conn.id)),
      onHello: (hostname) => {
        const d = decideHello(connector, hostname);
        return d.ok ? undefined : refused(connector.Name, d.reply);
      },
      maxProtocolErrors: connector.MaxProtocolErrors,
      inactivityMs: connector.ConnectionInactivityTimeout * 1000,
      onProxyHeader: (version) => {
        log.warn(
          { connector: connector.Name, remote: `${conn.remoteAddress}:${conn.remotePort}`, local: `${conn.localAddress}:${conn.localPort}`, version },
          'PROXY header from an address that is not a configured load balancer; connection refused',
        );
        protocolLog?.info(`PROXY v${version} header from an address that is not a configured load balancer; connection refused`, 'PROXY');
      },
      ...(protocolLog ? { onSent: (line: string) => protocolLog.sent(line), onReceived: (line: string) => protocolLog.received(line) } : {}),
    };
    const banner = connector.Banner ? connector.Banner.slice(4) : `${fqdn} Transit ESMTP MAIL Service ready at ${rfc5322Date(new Date())}`;
    return { accept: true, name: fqdn, banner, greetingDelayMs: connector.GreetingDelay, hooks };
  }

  async function authenticate(s: SessionState, auth: SMTPServerAuthentication): Promise<SessionIdentity | undefined> {
    const login = auth.username ?? '';
    const password = auth.password ?? '';
    const mechanisms = s.connector.AuthMechanism;
    // ExchangeServer: Transit's own nodes log on as a machine account (`NODE$`) with the cluster secret.
    if (login.endsWith('$') && mechanisms.includes('ExchangeServer') && settings.clusterSecret) {
      const a = Buffer.from(password);
      const b = Buffer.from(settings.clusterSecret);
      return a.length === b.length && timingSafeEqual(a, b) ? { kind: 'server', name: login } : undefined;
    }
    if (!mechanisms.includes('BasicAuth')) return undefined;
    const account = findLogon(directoryOf(s.snapshot.config), login);
    const ok = await verifyPassword(password, account?.PasswordHash ?? UNKNOWN_USER_HASH);
    return ok && account?.PasswordHash ? { kind: 'user', account, login } : undefined;
  }

  function onAuth(auth: SMTPServerAuthentication, session: SMTPServerSession, cb: (err: Error | null | undefined, response?: { user: string }) => void): void {
    let s: SessionState;
    try {
      s = stateOf(session);
    } catch (err) {
      return cb(err as Error);
    }
    const start = decideAuthStart(view(s), auth.method);
    if (!start.ok) return cb(smtpError(refused(s.connector.Name, start.reply)));
    const fail = (reason: string) => {
      s.logonFailures++;
      log.info({ connector: s.connector.Name, remote: s.conn.remoteAddress, failures: s.logonFailures, reason }, 'AUTH refused');
      setTimeout(() => {
        cb(smtpError(refused(s.connector.Name, REPLIES.authUnsuccessful)));
        // At once, not on a later tick: the client's next command must not be read first.
        if (s.connector.MaxLogonFailures > 0 && s.logonFailures >= s.connector.MaxLogonFailures)
          s.conn.closeWith(refused(s.connector.Name, REPLIES.tooManyErrors));
      }, s.connector.AuthTarpitInterval * 1000).unref();
    };
    authenticate(s, auth).then(
      (identity) => {
        if (!identity) return fail('unknown logon name or wrong password');
        const rights = sessionRights(s.snapshot.config, s.connector, identity);
        const decision = decideAuthenticated({ ...view(s), identity, rights });
        if (!decision.ok) return fail(decision.reason);
        s.identity = identity;
        s.rights = rights;
        s.protocolLog?.info(describeIdentity(s.snapshot.config, identity), 'authenticated');
        setPermissions(s);
        log.info({ connector: s.connector.Name, remote: s.conn.remoteAddress, principal: describeIdentity(s.snapshot.config, identity) }, 'AUTH accepted');
        cb(null, { user: describeIdentity(s.snapshot.config, identity) });
      },
      (err: Error) => {
        log.error({ err: err.message }, 'AUTH failed internally');
        cb(smtpError(refused(s.connector.Name, { code: 454, enhanced: '4.7.0', text: 'Temporary authentication failure' })));
      },
    );
  }

  function createServer(endpoint: Endpoint): SMTPServer {
    const server = new TransitSMTPServer(
      {
        logger: false,
        disableReverseLookup: true,
        authOptional: true,
        authMethods: ['PLAIN', 'LOGIN'],
        key: opts.tls.key,
        cert: opts.tls.cert,
        hideENHANCEDSTATUSCODES: false,
        // RFC 3461: NOTIFY, ORCPT, RET and ENVID are kept with the message and honoured by its notifications.
        hideDSN: false,
        // Not offered until it is honoured end to end (recorded on the envelope, outbound refusing to send without verified TLS).
        hideREQUIRETLS: true,
        maxClients: 100_000,
        socketTimeout: 24 * 3600 * 1000,
        // After the drain, sessions still open get 421 at their next command and are cut soon after.
        closeTimeout: 2_000,
        onConnect: (_session, cb) => cb(),
        onSecure: (_socket, session, cb) => {
          sessions.get(session.id)?.protocolLog?.info('TLS negotiation succeeded', 'TLS');
          cb();
        },
        onAuth,
        onMailFrom: (address: SMTPServerAddress, session, cb) => {
          try {
            const s = stateOf(session);
            if (draining) {
              // The transaction that is under way has finished; the next one goes to another node.
              cb(smtpError(refused(s.connector.Name, REPLIES.serviceNotAvailable)));
              s.conn.closeWith(REPLIES.serviceNotAvailable);
              return;
            }
            if (Date.now() < saturatedUntil) return cb(smtpError(refused(s.connector.Name, REPLIES.insufficientResources)));
            const args = address.args;
            let decision = decideMailFrom(view(s), s.snapshot.config, address.address);
            // smtp-server takes REQUIRETLS on a TLS session even while it is not advertised; Transit does not honour it yet.
            if (decision.ok && args && args.REQUIRETLS !== undefined)
              decision = { ok: false, reply: REPLIES.parameterNotImplemented, reason: 'REQUIRETLS is not implemented' };
            if (decision.ok && args && args.SIZE) decision = decideMessageSize(view(s), Number(args.SIZE));
            answer(s, decision, cb, 'MAIL FROM', { sender: address.address });
          } catch (err) {
            cb(err as Error);
          }
        },
        onRcptTo: (address: SMTPServerAddress, session, cb) => {
          try {
            const s = stateOf(session);
            const decision = decideRcptTo(view(s), s.snapshot.config, directoryFor(s.snapshot.config), address.address, session.envelope.rcptTo.length);
            answer(s, decision, cb, 'RCPT TO', { rcpt: address.address });
          } catch (err) {
            cb(err as Error);
          }
        },
        onData: (stream: SMTPServerDataStream, session, cb) => {
          // Exactly one answer, whatever throws and wherever (smtp-server drains an unread stream itself).
          let answered = false;
          const once = (err: Error | null, text?: string) => {
            if (answered) return;
            answered = true;
            cb(err, text);
          };
          Promise.resolve()
            .then(() => receiveData(stream, session))
            .then(
              (text) => once(null, text),
              (err: unknown) => once(err instanceof Error ? err : smtpError(REPLIES.queueUnavailable)),
            );
        },
        onClose: (session) => {
          const s = sessions.get(session.id);
          if (!s) return;
          sessions.delete(session.id);
          clearTimeout(s.timer);
          metrics.smtpSessionsOpen.dec({ connector: s.connector.Name });
          const n = (perConnector.get(s.connector.Name) ?? 1) - 1;
          if (n > 0) perConnector.set(s.connector.Name, n);
          else perConnector.delete(s.connector.Name);
          const m = (perSource.get(s.sourceKey) ?? 1) - 1;
          if (m > 0) perSource.set(s.sourceKey, m);
          else perSource.delete(s.sourceKey);
          s.protocolLog?.disconnect();
        },
      },
      { onOpen: (conn: ConnectionView) => onOpen(endpoint, conn), proxy: (socket: Socket) => admit(endpoint, socket) },
    );
    server.on('error', (err) => log.error({ err: err.message }, 'SMTP listener error'));
    return server;
  }

  async function listen(endpoint: Endpoint): Promise<void> {
    const server = createServer(endpoint);
    await new Promise<void>((resolve, reject) => {
      server.server.once('error', reject);
      server.listen(endpoint.port, endpoint.host, () => resolve());
    });
    servers.set(endpointKey(endpoint), { server, endpoint });
    log.info({ address: `${endpoint.host}:${endpoint.port}`, connectors: endpoint.connectors.map((c) => c.Name) }, 'SMTP listener open');
  }

  const closeServer = (server: SMTPServer) => new Promise<void>((resolve) => server.close(() => resolve()));

  /** Brings the listeners in line with a configuration: open new endpoints, close unused ones. */
  async function reconcile(snapshot: ConfigSnapshot): Promise<void> {
    const plan = planFor(snapshot);
    for (const [key, entry] of servers) {
      if (!plan.has(key)) {
        servers.delete(key);
        log.info({ address: `${entry.endpoint.host}:${entry.endpoint.port}` }, 'SMTP listener closed: no connector uses it any more');
        void closeServer(entry.server);
      } else entry.endpoint = plan.get(key)!;
    }
    for (const [key, endpoint] of plan) {
      if (servers.has(key)) continue;
      try {
        await listen(endpoint);
      } catch (err) {
        log.error({ address: `${endpoint.host}:${endpoint.port}`, err: (err as Error).message }, 'could not open SMTP listener');
      }
    }
  }

  for (const endpoint of planFor(live.current).values()) await listen(endpoint);
  let reconciling = Promise.resolve();
  const unsubscribe = live.onChange((snapshot) => {
    reconciling = reconciling.then(() => reconcile(snapshot));
  });

  async function drain(stream: Readable): Promise<void> {
    if (stream.readableEnded) return;
    stream.resume();
    await once(stream, 'end');
  }

  /** A message's trace starts here: the SMTP transaction's span is the root, and publishing carries it on. */
  function receiveData(stream: SMTPServerDataStream, session: SMTPServerSession): Promise<string> {
    const s = stateOf(session);
    const attributes = {
      'transit.connector': s.connector.Name,
      'transit.principal': describeIdentity(s.snapshot.config, s.identity),
      'client.address': session.remoteAddress,
      'server.address': s.fqdn,
      'smtp.recipient_count': session.envelope.rcptTo.length,
    };
    return inSpan('SMTP DATA', { kind: SpanKind.SERVER, attributes }, async (span) => {
      try {
        const reply = await queueMessage(stream, session);
        span.setAttribute('smtp.reply_code', 250);
        return reply;
      } catch (err) {
        const code = (err as { responseCode?: number }).responseCode;
        if (code) span.setAttribute('smtp.reply_code', code);
        throw err;
      }
    });
  }

  async function queueMessage(stream: SMTPServerDataStream, session: SMTPServerSession): Promise<string> {
    const s = stateOf(session);
    const envelope = session.envelope;
    const sender = envelope.mailFrom ? envelope.mailFrom.address : '';
    const strip = headerStripper(s.rights.effective);
    try {
      const result = await ingestMessage(
        { bus: opts.bus, bodies: opts.bodies, nodeName: settings.nodeName, log, publishBudgetMs: settings.publishBudgetMs },
        {
          sender,
          recipients: envelope.rcptTo.map(dsnRecipient),
          dsn: dsnEnvelope(envelope),
          origin: {
            kind: 'smtp',
            connector: s.connector.Name,
            clientIp: session.remoteAddress,
            clientPort: session.remotePort,
            clientHelo: session.hostNameAppearsAs || undefined,
            serverHost: settings.nodeName,
            principal: describeIdentity(s.snapshot.config, s.identity),
            tls: session.secure,
          },
          content: stream,
          fqdn: s.fqdn,
          maxHeaderSize: s.connector.MaxHeaderSize,
          // Checked while DATA streams in: past a limit nothing more is stored, the rest is drained.
          guard: {
            lineEndings: s.connector.BareLineFeedHandling,
            maxLineLength: s.connector.MaxLineLength,
            maxBytes: bypassesSize(s) ? 0 : s.connector.MaxMessageSize,
          },
          inlineMaxBytes: s.snapshot.config.TransportSettings.InlineBodyMaxBytes,
          rewriteHeader: (header) => removeHeaderFields(header, strip),
          prependHeaders: (id) =>
            `Received: from ${session.hostNameAppearsAs || 'unknown'} ([${session.remoteAddress}]) by ${s.fqdn} (Transit) with ${session.transmissionType} id ${id}; ${rfc5322Date(new Date())}\r\n`,
          beforePublish: () => {
            if ((stream as TransitDataStream).pipelinedAfterData && s.identity.kind === 'anonymous') {
              log.info(
                { connector: s.connector.Name, remote: s.conn.remoteAddress },
                'commands pipelined after the end of data by an unauthenticated client; message refused, connection closed',
              );
              s.conn.closeAfterReply();
              return smtpError(refused(s.connector.Name, REPLIES.protocolSynchronization));
            }
            return undefined;
          },
        },
      );
      log.info(
        { connector: s.connector.Name, id: result.id, internalId: result.internalId, size: result.size, rcpts: envelope.rcptTo.length },
        'message queued',
      );
      annotate({ 'transit.message_id': result.id, 'transit.internal_id': result.internalId, 'transit.size': result.size });
      return replyText(queuedReply(result.messageId, result.internalId, s.fqdn));
    } catch (err) {
      await drain(stream);
      if (err instanceof ContentRefusedError) {
        log.info({ connector: s.connector.Name, remote: s.conn.remoteAddress, code: err.code, reason: err.message }, 'message content refused');
        throw smtpError(refused(s.connector.Name, contentRefusalReply(err.code)));
      }
      if ((err as { responseCode?: number }).responseCode) throw err;
      if (err instanceof QueueFullError) {
        saturatedUntil = Date.now() + settings.backPressureHoldMs;
        log.warn({ err: err.message }, 'submit queue full; answered 452 4.3.1 (back pressure)');
        throw smtpError(refused(s.connector.Name, REPLIES.insufficientResources));
      }
      // In a cluster the acknowledgement means "replicated"; without it the message was not made
      // redundant, which Exchange (RejectMessageOnShadowFailure) answers with 451 4.4.0.
      const reply = settings.streamReplicas > 1 && err instanceof BusUnavailableError ? REPLIES.notRedundant : REPLIES.queueUnavailable;
      log.warn({ err: (err as Error).message, bus: err instanceof BusUnavailableError }, `message not queued; answered ${reply.code} ${reply.enhanced}`);
      throw smtpError(refused(s.connector.Name, reply));
    }
  }

  return {
    endpoints: () => [...servers.values()].map((e) => e.endpoint),
    openSessions: () => sessions.size,
    draining: () => draining,
    close: async (drainMs = 0) => {
      unsubscribe();
      await reconciling;
      // Graceful drain: new sessions get 421 4.3.2, sessions finish the transaction they are in.
      draining = true;
      const deadline = Date.now() + drainMs;
      while (sessions.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      if (sessions.size > 0) log.warn({ sessions: sessions.size }, 'drain timeout: closing the remaining SMTP sessions with 421');
      await Promise.all([...servers.values()].map((e) => closeServer(e.server)));
      servers.clear();
    },
  };
}
