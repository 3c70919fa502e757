import { parseOrganizationConfig, type ReceiveConnector } from '@transit/config';
import { describe, expect, it } from 'vitest';
import {
  Directory,
  PRINCIPALS,
  decideMailFrom,
  decideRcptTo,
  formatReply,
  matchAcceptedDomain,
  parseIpRange,
  queuedReply,
  rightsOf,
  routeRecipient,
  selectReceiveConnector,
  sessionPrincipal,
} from './index.ts';

const config = parseOrganizationConfig({
  Organization: { Name: 'Contoso' },
  AcceptedDomains: [
    { DomainName: 'contoso.test', DomainType: 'Authoritative', Default: true },
    { DomainName: '*.fabrikam.test', DomainType: 'InternalRelay' },
    { DomainName: 'partner.test', DomainType: 'ExternalRelay' },
  ],
  Mailboxes: [
    { Name: 'Alice', PrimarySmtpAddress: 'alice@contoso.test', EmailAddresses: ['alice.smith@contoso.test'] },
    { Name: 'Fab', PrimarySmtpAddress: 'fab@fabrikam.test', Database: 'DB02' },
  ],
  ReceiveConnectors: [
    { Name: 'Default Frontend', TransportRole: 'FrontendTransport', Bindings: ['0.0.0.0:25', '[::]:25'], PermissionGroups: ['AnonymousUsers', 'ExchangeServers'] },
    { Name: 'Relay LAN', TransportRole: 'FrontendTransport', Bindings: ['0.0.0.0:25'], RemoteIPRanges: ['192.168.1.0-192.168.1.255'], AuthMechanism: ['ExternalAuthoritative'], PermissionGroups: ['ExchangeServers'] },
    { Name: 'Relay Printer', TransportRole: 'FrontendTransport', Bindings: ['0.0.0.0:25'], RemoteIPRanges: ['192.168.1.75'], AuthMechanism: ['ExternalAuthoritative'], PermissionGroups: ['ExchangeServers'] },
    { Name: 'Relay Subnet', TransportRole: 'FrontendTransport', Bindings: ['0.0.0.0:25'], RemoteIPRanges: ['10.0.0.0/8'], PermissionGroups: ['Partners'] },
    { Name: 'Specific Binding', TransportRole: 'FrontendTransport', Bindings: ['10.1.1.1:25'], PermissionGroups: ['AnonymousUsers'] },
    { Name: 'V6 Only', TransportRole: 'FrontendTransport', Bindings: ['[::]:26'], RemoteIPRanges: ['2001:db8::/32'], PermissionGroups: ['AnonymousUsers'] },
    { Name: 'Disabled', TransportRole: 'FrontendTransport', Bindings: ['0.0.0.0:27'], Enabled: false, PermissionGroups: ['AnonymousUsers'] },
    { Name: 'Client Frontend', TransportRole: 'FrontendTransport', Bindings: ['0.0.0.0:587'], PermissionGroups: ['ExchangeUsers'] },
  ],
  SendConnectors: [
    { Name: 'Internet', AddressSpaces: ['SMTP:*;1'] },
    { Name: 'Fabrikam', AddressSpaces: ['*.fabrikam.test;5'], DNSRoutingEnabled: false, SmartHosts: ['mx.fabrikam.test'] },
    { Name: 'Fabrikam cheap', AddressSpaces: ['*.fabrikam.test;2'], DNSRoutingEnabled: false, SmartHosts: ['mx2.fabrikam.test'] },
    { Name: 'Sales exact', AddressSpaces: ['sales.fabrikam.test'], DNSRoutingEnabled: false, SmartHosts: ['sales.fabrikam.test'] },
  ],
});
const directory = new Directory(config.Mailboxes);
const connector = (name: string): ReceiveConnector => config.ReceiveConnectors.find((c) => c.Name === name)!;
const session = (name: string) => {
  const c = connector(name);
  const principal = sessionPrincipal(c);
  return { principal, rights: rightsOf(c, principal) };
};

describe('IP ranges', () => {
  it.each([
    ['192.168.1.75', 1n],
    ['192.168.1.0/24', 256n],
    ['192.168.1.0-192.168.1.255', 256n],
    ['0.0.0.0/0', 1n << 32n],
    ['2001:db8::/32', 1n << 96n],
    ['::ffff:10.0.0.1', 1n],
    ['::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 1n << 128n],
  ])('parses %s as an interval of %s addresses', (spec, size) => {
    const r = parseIpRange(spec)!;
    expect(r.hi - r.lo + 1n).toBe(size);
  });
  it.each(['300.1.1.1', '10.0.0.0/33', '10.0.0.9-10.0.0.1', '10.0.0.1-::1', 'bogus'])('rejects %s', (spec) => {
    expect(parseIpRange(spec)).toBeUndefined();
  });
});

describe('receive connector selection', () => {
  it.each([
    ['192.168.1.75', '127.0.0.1', 25, 'Relay Printer'], // single IP beats the /24 range
    ['192.168.1.100', '127.0.0.1', 25, 'Relay LAN'], // range beats all addresses
    ['10.9.9.9', '127.0.0.1', 25, 'Relay Subnet'],
    ['203.0.113.9', '127.0.0.1', 25, 'Default Frontend'],
    ['::ffff:192.168.1.75', '::ffff:127.0.0.1', 25, 'Relay Printer'], // IPv4-mapped clients are IPv4
    ['203.0.113.9', '10.1.1.1', 25, 'Specific Binding'], // a specific local IP beats 0.0.0.0
    ['2001:db8::5', '::1', 26, 'V6 Only'],
    ['203.0.113.9', '127.0.0.1', 587, 'Client Frontend'],
  ])('client %s on %s:%d gets %s', (remoteIp, localIp, localPort, expected) => {
    expect(selectReceiveConnector(config.ReceiveConnectors, { remoteIp, localIp, localPort })?.Name).toBe(expected);
  });
  it.each([
    ['no connector on the port', '203.0.113.9', 2600],
    ['a disabled connector', '203.0.113.9', 27],
    ['an IPv4 client on an IPv6-only range', '203.0.113.9', 26],
  ])('refuses %s', (_name, remoteIp, localPort) => {
    expect(selectReceiveConnector(config.ReceiveConnectors, { remoteIp, localIp: '127.0.0.1', localPort })).toBeUndefined();
  });
});

describe('rights', () => {
  it('gives anonymous users on Default Frontend exactly the AnonymousUsers rights', () => {
    expect([...session('Default Frontend').rights].sort()).toEqual(['Accept-Headers-Routing', 'SMTP-Accept-Any-Sender', 'SMTP-Accept-Authoritative-Domain-Sender', 'SMTP-Submit']);
  });
  it('makes ExternalAuthoritative sessions externally secured servers that may relay', () => {
    const s = session('Relay LAN');
    expect(s.principal).toBe(PRINCIPALS.externallySecured);
    expect(s.rights.has('SMTP-Accept-Any-Recipient')).toBe(true);
    expect(s.rights.has('Accept-Headers-Organization')).toBe(false);
  });
  it('gives anonymous sessions nothing on Client Frontend', () => {
    expect(session('Client Frontend').rights.size).toBe(0);
  });
});

describe('MAIL FROM', () => {
  it.each([
    ['Default Frontend', 'x@example.org', '250 2.1.0 Sender OK'],
    ['Default Frontend', '', '250 2.1.0 Sender OK'],
    ['Default Frontend', 'alice@contoso.test', '250 2.1.0 Sender OK'], // AnonymousUsers has Authoritative-Domain-Sender since 2013
    ['Default Frontend', 'not an address', '501 5.1.7 Invalid address'],
    ['Client Frontend', 'x@example.org', '530 5.7.1 Client was not authenticated'],
    ['Relay Subnet', 'x@example.org', '530 5.7.1 Client was not authenticated'], // Partners admits partner servers, not anonymous
  ])('on %s, MAIL FROM:<%s> gets %s', (name, sender, reply) => {
    expect(formatReply(decideMailFrom(session(name), config, sender).reply)).toBe(reply);
  });
  it('refuses an authoritative-domain sender to a partner server (Partners lack the right)', () => {
    const partner = { principal: PRINCIPALS.partnerServers, rights: rightsOf(connector('Relay Subnet'), PRINCIPALS.partnerServers) };
    expect(formatReply(decideMailFrom(partner, config, 'alice@contoso.test').reply)).toBe('550 5.7.1 Client does not have permissions to send as this sender');
    expect(formatReply(decideMailFrom(partner, config, 'x@example.org').reply)).toBe('250 2.1.0 Sender OK');
  });
});

describe('RCPT TO', () => {
  it.each([
    ['Default Frontend', 'alice@contoso.test', '250 2.1.5 Recipient OK'],
    ['Default Frontend', 'ALICE.SMITH@contoso.test', '250 2.1.5 Recipient OK'],
    ['Default Frontend', 'nobody@contoso.test', '550 5.1.1 User unknown'],
    ['Default Frontend', 'someone@example.net', '550 5.7.54 SMTP; Unable to relay recipient in non-accepted domain'],
    ['Default Frontend', 'anyone@sub.fabrikam.test', '250 2.1.5 Recipient OK'], // InternalRelay: unknown recipients relay on
    ['Default Frontend', 'anyone@partner.test', '250 2.1.5 Recipient OK'],
    ['Relay LAN', 'someone@example.net', '250 2.1.5 Recipient OK'],
    ['Relay LAN', 'nobody@contoso.test', '550 5.1.1 User unknown'],
    ['Default Frontend', 'bad@@x', '501 5.1.3 Invalid address'],
  ])('on %s, RCPT TO:<%s> gets %s', (name, rcpt, reply) => {
    expect(formatReply(decideRcptTo(session(name), config, directory, rcpt, 0, 200).reply)).toBe(reply);
  });
  it('answers 452 4.5.3 past MaxRecipientsPerMessage', () => {
    expect(formatReply(decideRcptTo(session('Default Frontend'), config, directory, 'alice@contoso.test', 200, 200).reply)).toBe('452 4.5.3 Too many recipients');
  });
  it('explains a refusal', () => {
    const d = decideRcptTo(session('Default Frontend'), config, directory, 'someone@example.net', 0, 200);
    expect(d.ok === false && d.reason).toMatch(/lacks SMTP-Accept-Any-Recipient/);
  });
});

describe('accepted domains and routing', () => {
  it('matches exact before wildcard and wildcards cover the parent', () => {
    expect(matchAcceptedDomain(config.AcceptedDomains, 'fabrikam.test')?.DomainName).toBe('*.fabrikam.test');
    expect(matchAcceptedDomain(config.AcceptedDomains, 'a.b.fabrikam.test')?.DomainName).toBe('*.fabrikam.test');
    expect(matchAcceptedDomain(config.AcceptedDomains, 'notfabrikam.test')).toBeUndefined();
  });
  it.each([
    ['alice.smith@contoso.test', 'mailbox:alice@contoso.test'],
    ['nobody@contoso.test', 'unknown-recipient'],
    ['fab@fabrikam.test', 'mailbox:fab@fabrikam.test'],
    ['other@fabrikam.test', 'smtp:Fabrikam cheap'], // lower cost wins among equal address spaces
    ['x@sales.fabrikam.test', 'smtp:Sales exact'], // exact beats wildcard
    ['x@example.net', 'smtp:Internet'],
    ['x@partner.test', 'smtp:Internet'],
  ])('routes %s to %s', (address, expected) => {
    const route = routeRecipient(config, directory, address);
    const text = route.kind === 'mailbox' ? `mailbox:${route.mailbox.PrimarySmtpAddress}` : route.kind === 'smtp' ? `smtp:${route.connector.Name}` : route.kind;
    expect(text).toBe(expected);
  });
  it('is unreachable without a send connector', () => {
    const bare = { ...config, SendConnectors: [] };
    expect(routeRecipient(bare, directory, 'x@example.net')).toEqual({ kind: 'unreachable', domain: 'example.net' });
  });
});

describe('replies', () => {
  it('formats the queued reply like Exchange', () => {
    expect(formatReply(queuedReply('<m@x>', 42, 'fe1.contoso.test'))).toBe('250 2.6.0 <m@x> [InternalId=42, Hostname=fe1.contoso.test] Queued mail for delivery');
  });
});
