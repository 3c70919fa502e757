/**
 * Permission groups, principals and the extended rights they grant (EXCHANGE.md §2).
 * A session's rights are the union of the rights its principal holds on the connector.
 * Right names drop Exchange's `ms-Exch-` prefix.
 */
import type { PermissionGroup, ReceiveConnector } from '@transit/config';

export const EXTENDED_RIGHTS = [
  'SMTP-Submit',
  'SMTP-Accept-Any-Recipient',
  'SMTP-Accept-Any-Sender',
  'SMTP-Accept-Authoritative-Domain-Sender',
  'SMTP-Accept-Authentication-Flag',
  'SMTP-Accept-Exch50',
  'Accept-Headers-Routing',
  'Accept-Headers-Organization',
  'Accept-Headers-Forest',
  'Bypass-Anti-Spam',
  'Bypass-Message-Size-Limit',
] as const;
export type ExtendedRight = (typeof EXTENDED_RIGHTS)[number];

export const PRINCIPALS = {
  anonymous: 'NT AUTHORITY\\ANONYMOUS LOGON',
  authenticatedUsers: 'NT AUTHORITY\\Authenticated Users',
  externallySecured: 'MS Exchange\\Externally Secured Servers',
  hubTransportServers: 'MS Exchange\\Hub Transport Servers',
  legacyInterop: 'MS Exchange\\ExchangeLegacyInterop',
  partnerServers: 'MS Exchange\\Partner Servers',
} as const;
export type Principal = (typeof PRINCIPALS)[keyof typeof PRINCIPALS];

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

/** Which principal each group admits, and with which rights. */
export const PERMISSION_GROUP_GRANTS: Record<Exclude<PermissionGroup, 'None' | 'Custom'>, ReadonlyArray<{ principal: Principal; rights: readonly ExtendedRight[] }>> = {
  AnonymousUsers: [
    { principal: PRINCIPALS.anonymous, rights: ['Accept-Headers-Routing', 'SMTP-Accept-Any-Sender', 'SMTP-Accept-Authoritative-Domain-Sender', 'SMTP-Submit'] },
  ],
  ExchangeUsers: [
    { principal: PRINCIPALS.authenticatedUsers, rights: ['Accept-Headers-Routing', 'Bypass-Anti-Spam', 'SMTP-Accept-Any-Recipient', 'SMTP-Submit'] },
  ],
  ExchangeServers: [
    { principal: PRINCIPALS.hubTransportServers, rights: EXCHANGE_SERVER_RIGHTS },
    { principal: PRINCIPALS.externallySecured, rights: EXCHANGE_SERVER_RIGHTS.filter((r) => r !== 'Accept-Headers-Forest' && r !== 'Accept-Headers-Organization') },
  ],
  ExchangeLegacyServers: [
    { principal: PRINCIPALS.legacyInterop, rights: EXCHANGE_SERVER_RIGHTS.filter((r) => r !== 'Accept-Headers-Forest' && r !== 'Accept-Headers-Organization') },
  ],
  Partners: [{ principal: PRINCIPALS.partnerServers, rights: ['Accept-Headers-Routing', 'SMTP-Submit'] }],
};

/**
 * The principal an unauthenticated session has on a connector: on an ExternalAuthoritative
 * connector the link itself is trusted, so the session is an externally secured server.
 */
export function sessionPrincipal(connector: ReceiveConnector): Principal {
  return connector.AuthMechanism.includes('ExternalAuthoritative') ? PRINCIPALS.externallySecured : PRINCIPALS.anonymous;
}

export function rightsOf(connector: ReceiveConnector, principal: Principal): ReadonlySet<ExtendedRight> {
  const rights = new Set<ExtendedRight>();
  for (const group of connector.PermissionGroups) {
    if (group === 'None' || group === 'Custom') continue;
    for (const grant of PERMISSION_GROUP_GRANTS[group]) {
      if (grant.principal === principal) grant.rights.forEach((right) => rights.add(right));
    }
  }
  return rights;
}
