export { REPLIES, formatReply, queuedReply, replyText, type Reply, type ReplyName } from './replies.ts';
export { intervalContains, normalizeIp, parseIp, parseIpRange, type IpInterval } from './ip.ts';
export { parseBinding, selectReceiveConnector, type Binding, type ConnectionFacts } from './connectors.ts';
export { EXTENDED_RIGHTS, PERMISSION_GROUP_GRANTS, PRINCIPALS, rightsOf, sessionPrincipal, type ExtendedRight, type Principal } from './rights.ts';
export { Directory, domainOf, matchAcceptedDomain, parseAddressSpace, routeRecipient, selectSendConnector, type RecipientRoute } from './domains.ts';
export { decideMailFrom, decideRcptTo, isValidAddress, type Decision, type SessionView } from './session.ts';
