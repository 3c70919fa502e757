/**
 * The SMTP-step decisions of a receive session (docs/exchange-behaviour.md §3, §7): EHLO, AUTH, MAIL FROM,
 * RCPT TO and the header rights at end of headers. Pure: the SMTP layer passes in the
 * connector, what the session proved and the configuration, and sends whatever reply
 * comes back. `transitctl test-connector` calls the same functions.
 */
import type { OrganizationConfig, ReceiveConnector } from '@transit/config';
import type { Directory } from './domains.ts';
import { domainOf, matchAcceptedDomain } from './domains.ts';
import { REPLIES, type Reply } from './replies.ts';
import type { ExtendedRight, SessionIdentity, SessionRights } from './rights.ts';

export type SessionView = { connector: ReceiveConnector; identity: SessionIdentity; rights: SessionRights; secure: boolean };
export type Decision = { ok: true; reply: Reply; reason?: string } | { ok: false; reply: Reply; reason: string };

const accept = (reply: Reply, reason?: string): Decision => (reason ? { ok: true, reply, reason } : { ok: true, reply });
const refuse = (reply: Reply, reason: string): Decision => ({ ok: false, reply, reason });

const DOMAIN = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$/i;
const ADDRESS_LITERAL = /^\[(IPv6:[0-9a-f:.]+|\d{1,3}(\.\d{1,3}){3})\]$/i;

/** RFC 5321 mailbox, bounded by Exchange's 571-character limit. */
export function isValidAddress(address: string): boolean {
  return address.length <= 571 && /^[^\s@<>()[\]\\,;:"]+@[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/i.test(address);
}

/** RequireEHLODomain: the EHLO/HELO argument must be a fully qualified domain or an address literal. */
export function decideHello(connector: ReceiveConnector, hostname: string): Decision {
  if (connector.RequireEHLODomain && !DOMAIN.test(hostname) && !ADDRESS_LITERAL.test(hostname)) {
    return refuse(REPLIES.invalidDomainName, `RequireEHLODomain is set and "${hostname}" is not a domain name`);
  }
  return accept(REPLIES.ok);
}

/** Which mechanisms make AUTH PLAIN/LOGIN available, and whether only after STARTTLS. */
export function basicAuthOffer(connector: ReceiveConnector): { offered: boolean; requiresTls: boolean } {
  const m = connector.AuthMechanism;
  const offered = m.includes('BasicAuth') || m.includes('ExchangeServer');
  return { offered, requiresTls: m.includes('BasicAuthRequireTLS') || (!m.includes('BasicAuth') && m.includes('ExchangeServer')) };
}

/** AUTH before credentials are checked. */
export function decideAuthStart(session: SessionView, mechanism: string): Decision {
  const offer = basicAuthOffer(session.connector);
  if (!offer.offered || !['PLAIN', 'LOGIN'].includes(mechanism.toUpperCase())) {
    return refuse(REPLIES.unrecognizedAuthType, `${mechanism} is not offered: AuthMechanism is ${session.connector.AuthMechanism.join(', ')}`);
  }
  if (session.identity.kind === 'user' || session.identity.kind === 'server')
    return refuse(REPLIES.authAlreadySpecified, 'the session is already authenticated');
  if (offer.requiresTls && !session.secure) return refuse(REPLIES.mustStartTls, 'BasicAuthRequireTLS: AUTH is allowed only after STARTTLS');
  return accept(REPLIES.ok);
}

/** After the credentials were verified: the account needs SMTP-Submit on this connector itself. */
export function decideAuthenticated(session: SessionView): Decision {
  if (!session.rights.connector.has('SMTP-Submit')) return refuse(REPLIES.authUnsuccessful, `the account lacks SMTP-Submit on ${session.connector.Name}`);
  return accept(REPLIES.authSuccessful);
}

function ownsAddress(identity: SessionIdentity, address: string): boolean {
  if (identity.kind !== 'user') return false;
  const a = identity.account;
  const mine = [a.PrimarySmtpAddress, ...(a.EmailAddresses ?? []), a.UserPrincipalName].filter((x): x is string => !!x).map((x) => x.toLowerCase());
  return mine.includes(address.toLowerCase());
}

export function decideMailFrom(session: SessionView, config: OrganizationConfig, sender: string): Decision {
  const { rights, identity } = session;
  if (session.connector.RequireTLS && !session.secure) return refuse(REPLIES.startTlsRequired, 'RequireTLS is set and the session has not issued STARTTLS');
  if (!rights.effective.has('SMTP-Submit')) {
    return identity.kind === 'anonymous'
      ? refuse(REPLIES.notAuthenticated, 'anonymous session lacks SMTP-Submit on this connector')
      : refuse(REPLIES.noSubmitPermission, 'the session lacks SMTP-Submit on this connector');
  }
  if (sender === '') return accept(REPLIES.senderOk, 'null sender');
  if (!isValidAddress(sender)) return refuse(REPLIES.invalidSender, 'sender address is not a valid mailbox');
  if (ownsAddress(identity, sender)) return accept(REPLIES.senderOk, 'the authenticated account owns this address');
  const cannot = identity.kind === 'anonymous' ? REPLIES.anonymousCannotSendAsSender : REPLIES.cannotSendAsSender;
  const accepted = matchAcceptedDomain(config.AcceptedDomains, domainOf(sender));
  if (accepted?.DomainType === 'Authoritative') {
    return rights.effective.has('SMTP-Accept-Authoritative-Domain-Sender')
      ? accept(REPLIES.senderOk, `SMTP-Accept-Authoritative-Domain-Sender allows senders in ${accepted.DomainName}`)
      : refuse(cannot, `sender domain ${accepted.DomainName} is authoritative and the session lacks SMTP-Accept-Authoritative-Domain-Sender`);
  }
  return rights.effective.has('SMTP-Accept-Any-Sender')
    ? accept(REPLIES.senderOk, 'SMTP-Accept-Any-Sender allows any sender')
    : refuse(
        cannot,
        `${domainOf(sender)} is not an authoritative domain, the sender is not the account's own address, and the session lacks SMTP-Accept-Any-Sender`,
      );
}

/** SIZE= at MAIL FROM and the byte count at end of DATA, against MaxMessageSize. */
export function decideMessageSize(session: SessionView, size: number): Decision {
  if (size <= session.connector.MaxMessageSize) return accept(REPLIES.ok);
  return session.rights.effective.has('Bypass-Message-Size-Limit')
    ? accept(REPLIES.ok, `over MaxMessageSize ${session.connector.MaxMessageSize}, allowed by Bypass-Message-Size-Limit`)
    : refuse(REPLIES.messageTooBig, `${size} bytes exceeds MaxMessageSize ${session.connector.MaxMessageSize} of ${session.connector.Name}`);
}

export function decideRcptTo(session: SessionView, config: OrganizationConfig, directory: Directory, recipient: string, recipientsSoFar: number): Decision {
  const max = session.connector.MaxRecipientsPerMessage;
  if (recipientsSoFar >= max) return refuse(REPLIES.tooManyRecipients, `more than MaxRecipientsPerMessage ${max}`);
  if (!isValidAddress(recipient)) return refuse(REPLIES.invalidRecipient, 'recipient address is not a valid mailbox');
  const domain = domainOf(recipient);
  const accepted = matchAcceptedDomain(config.AcceptedDomains, domain);
  if (!accepted) {
    return session.rights.effective.has('SMTP-Accept-Any-Recipient')
      ? accept(REPLIES.recipientOk, `relay allowed by SMTP-Accept-Any-Recipient`)
      : refuse(REPLIES.unableToRelay, `${domain} is not an accepted domain and the session lacks SMTP-Accept-Any-Recipient`);
  }
  if (accepted.DomainType === 'Authoritative' && !directory.find(recipient)) {
    return refuse(REPLIES.userUnknown, `no recipient ${recipient} in authoritative domain ${accepted.DomainName}`);
  }
  return accept(REPLIES.recipientOk, `${accepted.DomainName} is an accepted domain (${accepted.DomainType})`);
}

/** Transit's own header prefix, the counterpart of X-MS-Exchange-Organization-*. */
export const INTERNAL_HEADER_PREFIX = 'x-transit-organization-';

/** Which headers of a received message must be removed for lack of header rights. */
export function headerStripper(rights: ReadonlySet<ExtendedRight>): (name: string) => boolean {
  const routing = rights.has('Accept-Headers-Routing');
  const organization = rights.has('Accept-Headers-Organization');
  return (name) => {
    const n = name.toLowerCase();
    if (!routing && (n === 'received' || n.startsWith('resent-'))) return true;
    return !organization && n.startsWith(INTERNAL_HEADER_PREFIX);
  };
}

/** Exchange tarpits error replies to sessions it does not trust, to slow address harvesting. */
export function tarpitSeconds(session: Pick<SessionView, 'connector' | 'identity'>, replyCode: number): number {
  return replyCode >= 500 && session.identity.kind === 'anonymous' ? session.connector.TarpitInterval : 0;
}
