/**
 * The SMTP-step decisions of a receive session (EXCHANGE.md §3): MAIL FROM and RCPT TO.
 * Pure: the SMTP layer passes in the connector, the session's rights and the configuration,
 * and sends whatever reply comes back.
 */
import type { OrganizationConfig } from '@transit/config';
import type { Directory} from './domains.ts';
import { domainOf, matchAcceptedDomain } from './domains.ts';
import { REPLIES, type Reply } from './replies.ts';
import { PRINCIPALS, type ExtendedRight, type Principal } from './rights.ts';

export type SessionView = { principal: Principal; rights: ReadonlySet<ExtendedRight> };
export type Decision = { ok: true; reply: Reply } | { ok: false; reply: Reply; reason: string };

const accept = (reply: Reply): Decision => ({ ok: true, reply });
const refuse = (reply: Reply, reason: string): Decision => ({ ok: false, reply, reason });

/** RFC 5321 mailbox, bounded by Exchange's 571-character limit. */
export function isValidAddress(address: string): boolean {
  return address.length <= 571 && /^[^\s@<>()[\]\\,;:"]+@[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/i.test(address);
}

export function decideMailFrom(session: SessionView, config: OrganizationConfig, sender: string): Decision {
  if (!session.rights.has('SMTP-Submit')) {
    return session.principal === PRINCIPALS.anonymous
      ? refuse(REPLIES.notAuthenticated, 'anonymous session lacks SMTP-Submit on this connector')
      : refuse(REPLIES.noSubmitPermission, `${session.principal} lacks SMTP-Submit on this connector`);
  }
  if (sender === '') return accept(REPLIES.senderOk);
  if (!isValidAddress(sender)) return refuse(REPLIES.invalidSender, 'sender address is not a valid mailbox');
  const accepted = matchAcceptedDomain(config.AcceptedDomains, domainOf(sender));
  if (accepted?.DomainType === 'Authoritative' && !session.rights.has('SMTP-Accept-Authoritative-Domain-Sender')) {
    return refuse(REPLIES.cannotSendAsSender, `sender domain ${accepted.DomainName} is authoritative and the session lacks SMTP-Accept-Authoritative-Domain-Sender`);
  }
  return accept(REPLIES.senderOk);
}

export function decideRcptTo(session: SessionView, config: OrganizationConfig, directory: Directory, recipient: string, recipientsSoFar: number, maxRecipients: number): Decision {
  if (recipientsSoFar >= maxRecipients) return refuse(REPLIES.tooManyRecipients, `more than ${maxRecipients} recipients`);
  if (!isValidAddress(recipient)) return refuse(REPLIES.invalidRecipient, 'recipient address is not a valid mailbox');
  const domain = domainOf(recipient);
  const accepted = matchAcceptedDomain(config.AcceptedDomains, domain);
  if (!accepted) {
    return session.rights.has('SMTP-Accept-Any-Recipient')
      ? accept(REPLIES.recipientOk)
      : refuse(REPLIES.unableToRelay, `${domain} is not an accepted domain and the session lacks SMTP-Accept-Any-Recipient`);
  }
  if (accepted.DomainType === 'Authoritative' && !directory.find(recipient)) {
    return refuse(REPLIES.userUnknown, `no recipient ${recipient} in authoritative domain ${accepted.DomainName}`);
  }
  return accept(REPLIES.recipientOk);
}
