/**
 * Every SMTP reply Transit sends on its own account, defined once (docs/architecture.md,
 * "Principles").
 * Codes and texts follow Exchange (docs/exchange-behaviour.md §7), so administrators and their runbooks
 * recognise them.
 */
export type Reply = { code: number; enhanced: string; text: string };

const r = (code: number, enhanced: string, text: string): Reply => ({ code, enhanced, text });

export const REPLIES = {
  ok: r(250, '2.0.0', 'OK'),
  closing: r(221, '2.0.0', 'Service closing transmission channel'),
  startMailInput: r(354, '', 'Start mail input; end with <CRLF>.<CRLF>'),
  senderOk: r(250, '2.1.0', 'Sender OK'),
  recipientOk: r(250, '2.1.5', 'Recipient OK'),
  notAuthenticated: r(530, '5.7.1', 'Client was not authenticated'),
  noSubmitPermission: r(550, '5.7.1', 'Client does not have permissions to submit to this server'),
  cannotSendAsSender: r(550, '5.7.1', 'Client does not have permissions to send as this sender'),
  anonymousCannotSendAsSender: r(550, '5.7.1', 'Anonymous client does not have permissions to send as this sender'),
  authSuccessful: r(235, '2.7.0', 'Authentication successful'),
  authUnsuccessful: r(535, '5.7.3', 'Authentication unsuccessful'),
  unrecognizedAuthType: r(504, '5.7.4', 'Unrecognized authentication type'),
  authAlreadySpecified: r(503, '5.5.2', 'Auth command already specified'),
  mustStartTls: r(530, '5.7.0', 'Must issue a STARTTLS command first'),
  startTlsRequired: r(451, '5.7.3', 'STARTTLS is required to send mail'),
  startTlsReady: r(220, '2.0.0', 'SMTP server ready'),
  invalidDomainName: r(501, '5.5.4', 'Invalid domain name'),
  unrecognizedCommand: r(500, '5.3.3', 'Unrecognized command'),
  tooManyConnections: r(421, '4.3.2', 'The maximum number of concurrent server connections has exceeded a limit, closing transmission channel'),
  tooManyErrors: r(421, '4.7.0', 'Too many errors on this connection, closing transmission channel'),
  connectionTimedOut: r(421, '4.4.1', 'Connection timed out'),
  unableToRelay: r(550, '5.7.54', 'SMTP; Unable to relay recipient in non-accepted domain'),
  userUnknown: r(550, '5.1.1', 'User unknown'),
  invalidRecipient: r(501, '5.1.3', 'Invalid address'),
  invalidSender: r(501, '5.1.7', 'Invalid address'),
  tooManyRecipients: r(452, '4.5.3', 'Too many recipients'),
  messageTooBig: r(552, '5.3.4', 'Message size exceeds fixed maximum message size'),
  headerTooBig: r(552, '5.3.4', 'Header size exceeds fixed maximum size'),
  // Message content (the DATA content guard, libs/ingest content-guard.ts): bare line endings are how SMTP smuggling works; the first text is Exchange's.
  contentBareLineFeed: r(554, '5.6.0', 'Invalid message content, contains bare linefeeds'),
  contentBareCarriageReturn: r(554, '5.6.0', 'Invalid message content, contains bare carriage returns'),
  contentNul: r(554, '5.6.0', 'Invalid message content, contains NUL characters'),
  contentLineTooLong: r(554, '5.6.0', 'Invalid message content, contains a line longer than the maximum line length'),
  serviceNotAvailable: r(421, '4.3.2', 'Service not available'),
  insufficientResources: r(452, '4.3.1', 'Insufficient system resources'),
  queueUnavailable: r(451, '4.3.0', 'Temporary server error. Please try again later'),
  notRedundant: r(451, '4.4.0', 'Message failed to be made redundant'),
  timeoutWaitingForClient: r(451, '4.7.0', 'Timeout waiting for client input'),
  // Command lines (RFC 5321 §4.5.3.1.4: 512 octets with the CRLF; AUTH lines up to 12,288, RFC 4954 §4).
  lineTooLong: r(500, '5.5.2', 'Line too long'),
  lineTooLongClosing: r(421, '4.7.0', 'Line too long, closing transmission channel'),
  invalidCommandCharacter: r(500, '5.5.2', 'Syntax error, command contains a NUL or bare CR'),
  // RFC 5321 §4.1.1.11: a parameter Transit does not implement (REQUIRETLS: not offered until outbound honours it).
  parameterNotImplemented: r(555, '5.5.4', 'MAIL FROM/RCPT TO parameters not recognized or not implemented'),
  // An unauthenticated client that did not wait for the reply to its end of data (RFC 2920 §3.1; Postfix 3.9's smtpd_forbid_unauth_pipelining).
  protocolSynchronization: r(554, '5.5.0', 'SMTP protocol synchronization error, closing transmission channel'),
  // PROXY protocol (Transit's own; Exchange has none): a load balancer's header from someone else, or none from a load balancer.
  proxyHeaderNotAccepted: r(421, '4.7.0', 'PROXY protocol header not accepted from this address, closing transmission channel'),
  proxyHeaderRequired: r(421, '4.7.0', 'Valid PROXY protocol header required, closing transmission channel'),
} as const satisfies Record<string, Reply>;

export type ReplyName = keyof typeof REPLIES;

/** The text after the code: `5.7.54 SMTP; Unable to relay ...` (what smtp-server is handed). */
export function replyText(reply: Reply): string {
  return reply.enhanced ? `${reply.enhanced} ${reply.text}` : reply.text;
}

export function formatReply(reply: Reply): string {
  return `${reply.code} ${replyText(reply)}`;
}

/** `250 2.6.0 <message-id> [InternalId=<n>, Hostname=<fqdn>] Queued mail for delivery`. */
export function queuedReply(messageId: string, internalId: number, hostname: string): Reply {
  return r(250, '2.6.0', `${messageId} [InternalId=${internalId}, Hostname=${hostname}] Queued mail for delivery`);
}
