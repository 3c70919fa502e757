/**
 * Who a session is, and the extended rights it holds on its receive connector
 * (docs/exchange-behaviour.md §2-§3). Rights come from the connector's PermissionGroups and from
 * Add-ADPermission entries; an entry may name a well-known principal, a user or a group
 * the user belongs to. Deny beats allow. Every right remembers where it came from, so
 * `transitctl test-connector` can say why a session may or may not do something.
 *
 * Exchange evaluates an authenticated session received by a FrontendTransport connector
 * twice: SMTP-Submit at AUTH on the frontend connector, everything after on the backend
 * "Client Proxy" connector (HubTransport, port 465) it proxies to. Transit evaluates both
 * here, in one place: the AUTH check uses the connector's own rights, MAIL FROM and RCPT TO
 * the union of both connectors' rights, and the explanation names each source.
 */
import {
  EXTENDED_RIGHTS,
  WELL_KNOWN_PRINCIPALS,
  accountIdentity,
  directoryOf,
  findReceiveConnector,
  groupsOf,
  resolvePrincipal,
  type DirectoryAccount,
  type ExtendedRight,
  type OrganizationConfig,
  type PermissionGroup,
  type ReceiveConnector,
  type WellKnownPrincipal,
} from '@transit/config';

export { EXTENDED_RIGHTS, type ExtendedRight } from '@transit/config';

export const PRINCIPALS = WELL_KNOWN_PRINCIPALS;
export type Principal = WellKnownPrincipal;

const EXCHANGE_SERVER_RIGHTS: readonly ExtendedRight[] = [
  'Accept-Headers-Forest',
  'Accept-Headers-Organization',
  'Accept-Headers-Routing',
  'Bypass-Anti-Spam',
  'Bypass-Message-Size-Limit',
  'SMTP-Accept-Any-Recipient',
  'SMTP-Accept-Any-Sender',
  'SMTP-Accept-Authentication-Flag',
  'SMTP-Accept-Authoritative-Domain-Sender',
  'SMTP-Accept-Exch50',
  'SMTP-Submit',
];
const withoutOrgHeaders = EXCHANGE_SERVER_RIGHTS.filter((r) => r !== 'Accept-Headers-Forest' && r !== 'Accept-Headers-Organization');

/** Which principal each group admits, and with which rights (docs/exchange-behaviour.md §2). */
export const PERMISSION_GROUP_GRANTS: Record<
  Exclude<PermissionGroup, 'None' | 'Custom'>,
  ReadonlyArray<{ principal: Principal; rights: readonly ExtendedRight[] }>
> = {
  AnonymousUsers: [
    { principal: PRINCIPALS.anonymous, rights: ['Accept-Headers-Routing', 'SMTP-Accept-Any-Sender', 'SMTP-Accept-Authoritative-Domain-Sender', 'SMTP-Submit'] },
  ],
  ExchangeUsers: [
    { principal: PRINCIPALS.authenticatedUsers, rights: ['Accept-Headers-Routing', 'Bypass-Anti-Spam', 'SMTP-Accept-Any-Recipient', 'SMTP-Submit'] },
  ],
  ExchangeServers: [
    { principal: PRINCIPALS.hubTransportServers, rights: EXCHANGE_SERVER_RIGHTS },
    { principal: PRINCIPALS.externallySecured, rights: withoutOrgHeaders },
  ],
  ExchangeLegacyServers: [{ principal: PRINCIPALS.legacyInterop, rights: withoutOrgHeaders }],
  Partners: [{ principal: PRINCIPALS.partnerServers, rights: ['Accept-Headers-Routing', 'SMTP-Submit'] }],
};

/** What the session proved about itself. */
export type SessionIdentity =
  | { kind: 'anonymous' }
  /** An unauthenticated session on an ExternalAuthoritative connector: the link is trusted. */
  | { kind: 'externally-secured' }
  /** One of Transit's own nodes (ExchangeServer authentication). */
  | { kind: 'server'; name: string }
  | { kind: 'user'; account: DirectoryAccount; login: string };

/** The identity of a session before any AUTH: ExternalAuthoritative connectors trust the link. */
export function initialIdentity(connector: ReceiveConnector): SessionIdentity {
  return connector.AuthMechanism.includes('ExternalAuthoritative') ? { kind: 'externally-secured' } : { kind: 'anonymous' };
}

/** The well-known principal a session holds (for a user: Authenticated Users). */
export function wellKnownPrincipalOf(identity: SessionIdentity): Principal {
  switch (identity.kind) {
    case 'anonymous':
      return PRINCIPALS.anonymous;
    case 'externally-secured':
      return PRINCIPALS.externallySecured;
    case 'server':
      return PRINCIPALS.hubTransportServers;
    case 'user':
      return PRINCIPALS.authenticatedUsers;
  }
}

export function describeIdentity(config: OrganizationConfig, identity: SessionIdentity): string {
  if (identity.kind === 'user') return accountIdentity(directoryOf(config), identity.account);
  if (identity.kind === 'server') return `${PRINCIPALS.hubTransportServers} (${identity.name})`;
  return wellKnownPrincipalOf(identity);
}

export type RightSource = { right: ExtendedRight; connector: string; via: string; deny: boolean };

export type SessionRights = {
  /** Rights on the receiving connector alone (what AUTH checks for SMTP-Submit). */
  connector: ReadonlySet<ExtendedRight>;
  /** Rights for MAIL FROM, RCPT TO and DATA (the receiving connector plus, for users on a frontend, Client Proxy). */
  effective: ReadonlySet<ExtendedRight>;
  /** Every grant and deny that applied, for explanations. */
  sources: readonly RightSource[];
};

function grantsOn(config: OrganizationConfig, connector: ReceiveConnector, identity: SessionIdentity): RightSource[] {
  const principal = wellKnownPrincipalOf(identity);
  const out: RightSource[] = [];
  for (const group of connector.PermissionGroups) {
    if (group === 'None' || group === 'Custom') continue;
    for (const grant of PERMISSION_GROUP_GRANTS[group]) {
      if (grant.principal === principal)
        grant.rights.forEach((right) => out.push({ right, connector: connector.Name, via: `PermissionGroups ${group} (${principal})`, deny: false }));
    }
  }
  const directory = directoryOf(config);
  const groups = identity.kind === 'user' ? groupsOf(directory, identity.account) : [];
  for (const entry of config.Permissions) {
    if (!findReceiveConnector([connector], entry.Identity)) continue;
    const who = resolvePrincipal(directory, entry.User);
    const applies =
      who !== undefined &&
      ((who.kind === 'well-known' && who.name === principal) ||
        (who.kind === 'account' && identity.kind === 'user' && who.account === identity.account) ||
        (who.kind === 'group' && groups.includes(who.group)));
    if (applies)
      entry.ExtendedRights.forEach((right) =>
        out.push({ right, connector: connector.Name, via: `${entry.Deny ? 'Deny' : 'Allow'} ${entry.User} (Add-ADPermission)`, deny: entry.Deny }),
      );
  }
  return out;
}

function fold(sources: readonly RightSource[]): Set<ExtendedRight> {
  const allowed = new Set(sources.filter((s) => !s.deny).map((s) => s.right));
  for (const s of sources) if (s.deny) allowed.delete(s.right);
  return allowed;
}

/** The backend connector Exchange would proxy an authenticated frontend session to: HubTransport on 465 covering the client. */
export function clientProxyConnector(config: OrganizationConfig, connector: ReceiveConnector, identity: SessionIdentity): ReceiveConnector | undefined {
  if (identity.kind !== 'user' || connector.TransportRole !== 'FrontendTransport') return undefined;
  return config.ReceiveConnectors.find((c) => c.Enabled && c.TransportRole === 'HubTransport' && c.Bindings.some((b) => /:465$/.test(b)));
}

export function sessionRights(config: OrganizationConfig, connector: ReceiveConnector, identity: SessionIdentity): SessionRights {
  const own = grantsOn(config, connector, identity);
  const proxy = clientProxyConnector(config, connector, identity);
  const proxied = proxy ? grantsOn(config, proxy, identity) : [];
  const ownRights = fold(own);
  const effective = new Set([...ownRights, ...fold(proxied)]);
  return { connector: ownRights, effective, sources: [...own, ...proxied] };
}

/** The protocol log's "Set Session Permissions" line: `SMTPSubmit SMTPAcceptAnySender AcceptRoutingHeaders`. */
export function sessionPermissionsText(rights: ReadonlySet<ExtendedRight>): string {
  const names: Record<ExtendedRight, string> = {
    'SMTP-Submit': 'SMTPSubmit',
    'SMTP-Accept-Any-Recipient': 'SMTPAcceptAnyRecipient',
    'SMTP-Accept-Any-Sender': 'SMTPAcceptAnySender',
    'SMTP-Accept-Authoritative-Domain-Sender': 'SMTPAcceptAuthoritativeDomainSender',
    'SMTP-Accept-Authentication-Flag': 'SMTPAcceptAuthenticationFlag',
    'SMTP-Accept-Exch50': 'SMTPAcceptEXCH50',
    'Accept-Headers-Routing': 'AcceptRoutingHeaders',
    'Accept-Headers-Organization': 'AcceptOrganizationHeaders',
    'Accept-Headers-Forest': 'AcceptForestHeaders',
    'Bypass-Anti-Spam': 'BypassAntiSpam',
    'Bypass-Message-Size-Limit': 'BypassMessageSizeLimit',
  };
  return EXTENDED_RIGHTS.filter((r) => rights.has(r))
    .map((r) => names[r])
    .join(' ');
}
