export { REPLIES, formatReply, queuedReply, replyText, type Reply, type ReplyName } from './replies.ts';
export { matchConnector, selectReceiveConnector, type ConnectionFacts, type ConnectorMatch } from './connectors.ts';
export {
  EXTENDED_RIGHTS,
  PERMISSION_GROUP_GRANTS,
  PRINCIPALS,
  clientProxyConnector,
  describeIdentity,
  initialIdentity,
  sessionPermissionsText,
  sessionRights,
  wellKnownPrincipalOf,
  type ExtendedRight,
  type Principal,
  type RightSource,
  type SessionIdentity,
  type SessionRights,
} from './rights.ts';
export {
  Directory,
  directoryFor,
  domainOf,
  matchAcceptedDomain,
  parseAddressSpace,
  routeRecipient,
  selectSendConnector,
  type RecipientRoute,
} from './domains.ts';
export {
  INTERNAL_HEADER_PREFIX,
  basicAuthOffer,
  decideAuthStart,
  decideAuthenticated,
  decideHello,
  decideMailFrom,
  decideMessageSize,
  decideRcptTo,
  headerStripper,
  isValidAddress,
  tarpitSeconds,
  type Decision,
  type SessionView,
} from './session.ts';
export { explainSession, type CandidateReport, type ExplainRequest, type Explanation, type StepReport } from './explain.ts';
export { decideProxyPeer, loadBalancersOn, proxiedClient, type ProxyHeaderFacts, type ProxyPeerDecision } from './proxy.ts';
