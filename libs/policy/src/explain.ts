/**
 * "Which connector handled this connection, and why was this refused?" — answered from a
 * configuration with the very functions the receive engine runs (selection, rights, each
 * SMTP step). `transitctl test-connector` prints this; nothing here decides on its own.
 */
import { directoryOf, findLogon, type OrganizationConfig, type ReceiveConnector } from '@transit/config';
import { matchConnector, selectReceiveConnector } from './connectors.ts';
import { directoryFor } from './domains.ts';
import { formatReply } from './replies.ts';
import { describeIdentity, initialIdentity, sessionRights, type RightSource, type SessionIdentity } from './rights.ts';
import {
  decideAuthStart,
  decideAuthenticated,
  decideHello,
  decideMailFrom,
  decideMessageSize,
  decideRcptTo,
  type Decision,
  type SessionView,
} from './session.ts';

export type ExplainRequest = {
  remoteIp: string;
  /** The local endpoint the client connects to; a wildcard address matches only wildcard bindings. */
  localIp: string;
  localPort: number;
  /** A logon name; the explanation assumes its password is right. */
  user?: string;
  tls?: boolean;
  helo?: string;
  from?: string;
  to?: string[];
  size?: number;
};

export type CandidateReport = {
  connector: string;
  enabled: boolean;
  binding: 'specific' | 'wildcard' | 'none';
  range: string | undefined;
  rangeSize: bigint | undefined;
  chosen: boolean;
};
export type StepReport = { command: string; reply: string; reason: string | undefined; ok: boolean };
export type Explanation = {
  candidates: CandidateReport[];
  connector: ReceiveConnector | undefined;
  principal: string | undefined;
  rights: string[];
  sources: readonly RightSource[];
  steps: StepReport[];
};

export function explainSession(config: OrganizationConfig, req: ExplainRequest): Explanation {
  const facts = { localIp: req.localIp, localPort: req.localPort, remoteIp: req.remoteIp };
  const connector = selectReceiveConnector(config.ReceiveConnectors, facts);
  const candidates: CandidateReport[] = config.ReceiveConnectors.flatMap((c) => {
    const m = matchConnector(c, facts);
    return m ? [{ connector: c.Name, enabled: c.Enabled, binding: m.binding, range: m.range, rangeSize: m.rangeSize, chosen: c === connector }] : [];
  });
  const steps: StepReport[] = [];
  const step = (command: string, d: Decision) => {
    steps.push({ command, reply: formatReply(d.reply), reason: d.reason, ok: d.ok });
    return d.ok;
  };
  if (!connector) {
    steps.push({
      command: '(connect)',
      reply: '421 4.3.2 Service not available',
      reason: 'no enabled receive connector has a binding and a RemoteIPRanges entry matching this connection',
      ok: false,
    });
    return { candidates, connector, principal: undefined, rights: [], sources: [], steps };
  }

  let identity: SessionIdentity = initialIdentity(connector);
  let session: SessionView = { connector, identity, rights: sessionRights(config, connector, identity), secure: false };
  const done = () => ({
    candidates,
    connector,
    principal: describeIdentity(config, session.identity),
    rights: [...session.rights.effective].sort(),
    sources: session.rights.sources,
    steps,
  });

  if (!step(`EHLO ${req.helo ?? 'client.example'}`, decideHello(connector, req.helo ?? 'client.example'))) return done();
  if (req.tls) {
    const offered = connector.AuthMechanism.includes('Tls');
    steps.push({
      command: 'STARTTLS',
      reply: offered ? '220 2.0.0 SMTP server ready' : '500 5.3.3 Unrecognized command',
      reason: offered ? undefined : 'Tls is not in AuthMechanism',
      ok: offered,
    });
    session = { ...session, secure: offered };
  }
  if (req.user) {
    if (!step('AUTH LOGIN', decideAuthStart(session, 'LOGIN'))) return done();
    const account = findLogon(directoryOf(config), req.user);
    if (!account) {
      steps.push({
        command: `(credentials of ${req.user})`,
        reply: '535 5.7.3 Authentication unsuccessful',
        reason: `no account with logon name ${req.user}`,
        ok: false,
      });
      return done();
    }
    identity = { kind: 'user', account, login: req.user };
    const candidate: SessionView = { ...session, identity, rights: sessionRights(config, connector, identity) };
    if (!step(`(credentials of ${req.user}, assumed correct)`, decideAuthenticated(candidate))) return done();
    session = candidate;
  }
  const from = req.from ?? '';
  let ok = step(`MAIL FROM:<${from}>${req.size ? ` SIZE=${req.size}` : ''}`, decideMailFrom(session, config, from));
  if (ok && req.size) ok = step(`(SIZE=${req.size})`, decideMessageSize(session, req.size));
  if (!ok) return done();
  const directory = directoryFor(config);
  let accepted = 0;
  for (const rcpt of req.to ?? []) if (step(`RCPT TO:<${rcpt}>`, decideRcptTo(session, config, directory, rcpt, accepted))) accepted++;
  return done();
}
