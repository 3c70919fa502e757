/** The test organisation, modelled on config/examples/contoso.yaml plus the seed articles' principals. */
import { parseOrganizationConfig, type OrganizationConfig } from '@transit/config';
import { runEmsLine, splitEmsScript, type EmsResult } from './index.ts';

export function contoso(): OrganizationConfig {
  return parseOrganizationConfig({
    Organization: { Name: 'Contoso' },
    AcceptedDomains: [{ DomainName: 'contoso.test', DomainType: 'Authoritative', Default: true }],
    Mailboxes: [
      { Name: 'Alice', PrimarySmtpAddress: 'alice@contoso.test', EmailAddresses: ['alice.smith@contoso.test'] },
      { Name: 'Bob', PrimarySmtpAddress: 'bob@contoso.test' },
    ],
    Users: [{ Name: 'relay1', SamAccountName: 'relay1', UserPrincipalName: 'relay1@contoso.test' }],
    Groups: [{ Name: 'Relay Accounts', Members: ['relay1'] }],
    ReceiveConnectors: [
      {
        Name: 'Default Frontend',
        TransportRole: 'FrontendTransport',
        Bindings: ['0.0.0.0:25', '[::]:25'],
        AuthMechanism: ['Tls', 'BasicAuth', 'BasicAuthRequireTLS', 'ExchangeServer', 'Integrated'],
        PermissionGroups: ['AnonymousUsers', 'ExchangeLegacyServers', 'ExchangeServers'],
        ProtocolLoggingLevel: 'Verbose',
      },
      {
        Name: 'Client Frontend',
        TransportRole: 'FrontendTransport',
        Bindings: ['0.0.0.0:587', '[::]:587'],
        AuthMechanism: ['Tls', 'BasicAuth', 'BasicAuthRequireTLS', 'Integrated'],
        PermissionGroups: ['ExchangeUsers'],
      },
      {
        Name: 'Client Proxy',
        TransportRole: 'HubTransport',
        Bindings: ['0.0.0.0:465', '[::]:465'],
        AuthMechanism: ['Tls', 'BasicAuth', 'BasicAuthRequireTLS', 'ExchangeServer', 'Integrated'],
        PermissionGroups: ['ExchangeServers', 'ExchangeUsers'],
      },
      {
        Name: 'Default',
        TransportRole: 'HubTransport',
        Bindings: ['0.0.0.0:2525', '[::]:2525'],
        AuthMechanism: ['Tls', 'BasicAuth', 'ExchangeServer', 'Integrated'],
        PermissionGroups: ['ExchangeLegacyServers', 'ExchangeServers', 'ExchangeUsers'],
        MaxRecipientsPerMessage: 5000,
      },
      {
        Name: 'Application Relay',
        TransportRole: 'FrontendTransport',
        Bindings: ['0.0.0.0:25'],
        RemoteIPRanges: ['127.0.0.2'],
        AuthMechanism: ['ExternalAuthoritative'],
        PermissionGroups: ['ExchangeServers'],
      },
    ],
    SendConnectors: [{ Name: 'Internet', AddressSpaces: ['SMTP:*;1'], DNSRoutingEnabled: true }],
  });
}

/** Runs script text line by line (as `transitctl ems` reads stdin), threading the configuration through. */
export function runScript(text: string, config: OrganizationConfig): EmsResult[] {
  const results: EmsResult[] = [];
  for (const line of splitEmsScript(text)) {
    const result = runEmsLine(line, config);
    results.push(result);
    config = result.config;
  }
  return results;
}

export const last = (results: EmsResult[]): EmsResult => results.at(-1)!;

export const connector = (config: OrganizationConfig, name: string) => config.ReceiveConnectors.find((c) => c.Name === name)!;

/** Freezes the configuration all the way down, so any mutation by the code under test throws. */
export function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    Object.values(value).forEach(deepFreeze);
    Object.freeze(value);
  }
  return value;
}
