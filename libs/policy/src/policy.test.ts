import { findLogon, directoryOf, parseOrganizationConfig, type ReceiveConnector } from '@transit/config';
import { describe, expect, it } from 'vitest';
import {
  Directory,
  PERMISSION_GROUP_GRANTS,
  decideAuthStart,
  decideAuthenticated,
  decideHello,
  decideMailFrom,
  decideMessageSize,
  decideRcptTo,
  explainSession,
  formatReply,
  headerStripper,
  initialIdentity,
  matchAcceptedDomain,
  queuedReply,
  routeRecipient,
  selectReceiveConnector,
  sessionRights,
  tarpitSeconds,
  type SessionIdentity,
  type SessionView,
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
    { Name: 'Bob', PrimarySmtpAddress: 'bob@contoso.test', UserPrincipalName: 'bob@contoso.test', SamAccountName: 'bob' },
  ],
  Users: [
    { Name: 'relay1', SamAccountName: 'relay1', UserPrincipalName: 'relay1@contoso.test' },
    { Name: 'scanner', SamAccountName: 'scanner' },
  ],
  Groups: [
    { Name: 'Relay Accounts', Members: ['relay1', 'Nested'] },
    { Name: 'Nested', Members: ['scanner'] },
  ],
  ReceiveConnectors: [
    {
      Name: 'Default Frontend',
      TransportRole: 'FrontendTransport',
      Bindings: ['0.0.0.0:25', '[::]:25'],
      PermissionGroups: ['AnonymousUsers', 'ExchangeServers'],
    },
    {
      Name: 'Relay LAN',
      TransportRole: 'FrontendTransport',
      Bindings: ['0.0.0.0:25'],
      RemoteIPRanges: ['192.168.1.0-192.168.1.255'],
      AuthMechanism: ['ExternalAuthoritative'],
      PermissionGroups: ['ExchangeServers'],
    },
    {
      Name: 'Relay Printer',
      TransportRole: 'FrontendTransport',
      Bindings: ['0.0.0.0:25'],
      RemoteIPRanges: ['192.168.1.75'],
      AuthMechanism: ['ExternalAuthoritative'],
      PermissionGroups: ['ExchangeServers'],
    },
    { Name: 'Relay Subnet', TransportRole: 'FrontendTransport', Bindings: ['0.0.0.0:25'], RemoteIPRanges: ['10.0.0.0/8'], PermissionGroups: ['Partners'] },
    { Name: 'Specific Binding', TransportRole: 'FrontendTransport', Bindings: ['10.1.1.1:25'], PermissionGroups: ['AnonymousUsers'] },
    { Name: 'V6 Only', TransportRole: 'FrontendTransport', Bindings: ['[::]:26'], RemoteIPRanges: ['2001:db8::/32'], PermissionGroups: ['AnonymousUsers'] },
    { Name: 'Disabled', TransportRole: 'FrontendTransport', Bindings: ['0.0.0.0:27'], Enabled: false, PermissionGroups: ['AnonymousUsers'] },
    {
      Name: 'Client Frontend',
      TransportRole: 'FrontendTransport',
      Bindings: ['0.0.0.0:587'],
      AuthMechanism: ['Tls', 'BasicAuth', 'BasicAuthRequireTLS'],
      PermissionGroups: ['ExchangeUsers'],
    },
    { Name: 'Client Proxy', TransportRole: 'HubTransport', Bindings: ['0.0.0.0:465'], PermissionGroups: ['ExchangeServers', 'ExchangeUsers'] },
    {
      Name: 'Anon Relay',
      TransportRole: 'FrontendTransport',
      Bindings: ['0.0.0.0:2526'],
      RemoteIPRanges: ['172.16.0.0/12'],
      PermissionGroups: ['AnonymousUsers'],
    },
    {
      Name: 'Strict',
      TransportRole: 'FrontendTransport',
      Bindings: ['0.0.0.0:2527'],
      AuthMechanism: ['Tls', 'BasicAuth', 'BasicAuthRequireTLS'],
      PermissionGroups: ['ExchangeUsers'],
      RequireTLS: true,
      RequireEHLODomain: true,
      MaxMessageSize: 65536,
    },
    { Name: 'Custom', TransportRole: 'HubTransport', Bindings: ['0.0.0.0:2528'], AuthMechanism: ['BasicAuth'], PermissionGroups: ['None'] },
  ],
  Permissions: [
    // The seed 001 / 003 recipe: anonymous relay on a dedicated, IP-scoped connector.
    { Identity: 'Anon Relay', User: 'NT AUTHORITY\\ANONYMOUS LOGON', ExtendedRights: ['ms-Exch-SMTP-Accept-Any-Recipient'] },
    // The seed 000 recipe: Submit on the frontend, the rest on Client Proxy, for a group.
    { Identity: 'Default Frontend', User: 'CONTOSO\\Relay Accounts', ExtendedRights: ['ms-Exch-SMTP-Submit'] },
    {
      Identity: 'Client Proxy',
      User: 'contoso\\relay accounts',
      ExtendedRights: [
        'ms-Exch-SMTP-Submit',
        'ms-Exch-SMTP-Accept-Any-Recipient',
        'ms-Exch-SMTP-Accept-Any-Sender',
        'ms-Exch-SMTP-Accept-Authoritative-Domain-Sender',
        'ms-Exch-Accept-Headers-Routing',
      ],
    },
    { Identity: 'Custom', User: 'relay1@contoso.test', ExtendedRights: ['SMTP-Submit', 'SMTP-Accept-Any-Recipient'] },
    { Identity: 'Custom', User: 'CONTOSO\\scanner', ExtendedRights: ['SMTP-Submit'] },
    // Deny beats allow: the scanner (through Nested) may not relay even though its group may.
    { Identity: 'Client Proxy', User: 'CONTOSO\\Nested', ExtendedRights: ['SMTP-Accept-Any-Recipient'], Deny: true },
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
const user = (login: string): SessionIdentity => ({ kind: 'user', account: findLogon(directoryOf(config), login)!, login });
const session = (name: string, identity?: SessionIdentity, secure = false): SessionView => {
  const c = connector(name);
  const id = identity ?? initialIdentity(c);
  return { connector: c, identity: id, rights: sessionRights(config, c, id), secure };
};
const rightsList = (s: SessionView) => [...s.rights.effective].sort();

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
    expect(rightsList(session('Default Frontend'))).toEqual([
      'Accept-Headers-Routing',
      'SMTP-Accept-Any-Sender',
      'SMTP-Accept-Authoritative-Domain-Sender',
      'SMTP-Submit',
    ]);
  });
  it('makes ExternalAuthoritative sessions externally secured servers that may relay', () => {
    const s = session('Relay LAN');
    expect(s.identity.kind).toBe('externally-secured');
    expect(s.rights.effective.has('SMTP-Accept-Any-Recipient')).toBe(true);
    expect(s.rights.effective.has('Accept-Headers-Organization')).toBe(false);
  });
  it('gives anonymous sessions nothing on Client Frontend', () => {
    expect(session('Client Frontend').rights.effective.size).toBe(0);
  });
  it.each([
    // [connector, identity, expected effective rights]
    ['Client Frontend', 'bob', ['Accept-Headers-Routing', 'Bypass-Anti-Spam', 'SMTP-Accept-Any-Recipient', 'SMTP-Submit']],
    [
      'Anon Relay',
      undefined,
      ['Accept-Headers-Routing', 'SMTP-Accept-Any-Recipient', 'SMTP-Accept-Any-Sender', 'SMTP-Accept-Authoritative-Domain-Sender', 'SMTP-Submit'],
    ],
    ['Custom', 'relay1', ['SMTP-Accept-Any-Recipient', 'SMTP-Submit']],
    ['Custom', 'CONTOSO\\scanner', ['SMTP-Submit']],
    ['Custom', 'bob', []],
    ['Custom', undefined, []],
  ] as const)('on %s, %s holds %j', (name, login, expected) => {
    expect(rightsList(session(name, login ? user(login) : undefined))).toEqual(expected);
  });
  it('expands a group permission to its members, through nested groups, and lets deny beat allow', () => {
    const relay1 = session('Default Frontend', user('relay1'));
    expect(relay1.rights.connector.has('SMTP-Submit')).toBe(true); // from Default Frontend (Relay Accounts)
    expect(relay1.rights.effective.has('SMTP-Accept-Any-Recipient')).toBe(true); // from Client Proxy
    const scanner = session('Default Frontend', user('scanner'));
    expect(scanner.rights.connector.has('SMTP-Submit')).toBe(true); // Nested is in Relay Accounts
    expect(scanner.rights.effective.has('SMTP-Accept-Any-Recipient')).toBe(false); // denied to Nested on Client Proxy
    expect(scanner.rights.sources.some((s) => s.deny && s.via.includes('Nested'))).toBe(true);
  });
  it('says where every right came from', () => {
    const s = session('Default Frontend', user('relay1'));
    const any = s.rights.sources.filter((x) => x.right === 'SMTP-Accept-Any-Recipient').map((x) => `${x.connector}: ${x.via}`);
    expect(any).toContain('Client Proxy: PermissionGroups ExchangeUsers (NT AUTHORITY\\Authenticated Users)');
    expect(any).toContain('Client Proxy: Allow contoso\\relay accounts (Add-ADPermission)');
  });
  it('does not widen anonymous or hub sessions with Client Proxy rights', () => {
    expect(session('Default Frontend').rights.sources.every((x) => x.connector === 'Default Frontend')).toBe(true);
    expect(session('Client Proxy', { kind: 'server', name: 'EX01$' }).rights.effective.has('Accept-Headers-Organization')).toBe(true);
  });
});

describe('EHLO and AUTH', () => {
  it.each([
    ['Default Frontend', 'localhost', '250 2.0.0 OK'],
    ['Strict', 'mail.example.org', '250 2.0.0 OK'],
    ['Strict', '[192.0.2.1]', '250 2.0.0 OK'],
    ['Strict', 'localhost', '501 5.5.4 Invalid domain name'],
    ['Strict', 'bad_name!', '501 5.5.4 Invalid domain name'],
  ])('on %s, EHLO %s gets %s', (name, host, reply) => {
    expect(formatReply(decideHello(connector(name), host).reply)).toBe(reply);
  });
  it.each([
    ['Default Frontend', false, 'LOGIN', '504 5.7.4 Unrecognized authentication type'], // AuthMechanism Tls only: no AUTH
    ['Client Frontend', false, 'PLAIN', '530 5.7.0 Must issue a STARTTLS command first'],
    ['Relay LAN', false, 'PLAIN', '504 5.7.4 Unrecognized authentication type'],
    ['Strict', false, 'PLAIN', '530 5.7.0 Must issue a STARTTLS command first'],
    ['Strict', true, 'PLAIN', '250 2.0.0 OK'],
    ['Strict', true, 'CRAM-MD5', '504 5.7.4 Unrecognized authentication type'],
    ['Custom', false, 'LOGIN', '250 2.0.0 OK'],
  ])('on %s (TLS %s), AUTH %s gets %s', (name, secure, mechanism, reply) => {
    expect(formatReply(decideAuthStart(session(name, undefined, secure), mechanism).reply)).toBe(reply);
  });
  it('refuses a second AUTH', () => {
    expect(formatReply(decideAuthStart(session('Custom', user('relay1')), 'PLAIN').reply)).toBe('503 5.5.2 Auth command already specified');
  });
  it.each([
    ['Custom', 'relay1', '235 2.7.0 Authentication successful'],
    ['Custom', 'bob', '535 5.7.3 Authentication unsuccessful'], // valid password, but no SMTP-Submit on the connector
    ['Default Frontend', 'relay1', '235 2.7.0 Authentication successful'], // Submit granted to Relay Accounts (seed 000)
    ['Default Frontend', 'bob', '535 5.7.3 Authentication unsuccessful'], // Default Frontend has no ExchangeUsers group
    ['Client Frontend', 'bob', '235 2.7.0 Authentication successful'],
  ])('on %s, a verified %s gets %s', (name, login, reply) => {
    expect(formatReply(decideAuthenticated(session(name, user(login))).reply)).toBe(reply);
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
    const c = connector('Relay Subnet');
    // The rights Partners grants (Submit, Accept-Headers-Routing), as a partner server's session would hold them.
    const partner: SessionView = {
      connector: c,
      identity: { kind: 'server', name: 'p$' },
      secure: true,
      rights: { connector: new Set(['SMTP-Submit']), effective: new Set(['SMTP-Submit', 'Accept-Headers-Routing']), sources: [] },
    };
    expect(formatReply(decideMailFrom(partner, config, 'alice@contoso.test').reply)).toBe('550 5.7.1 Client does not have permissions to send as this sender');
    expect(formatReply(decideMailFrom(partner, config, 'x@example.org').reply)).toBe('550 5.7.1 Client does not have permissions to send as this sender');
  });
  it.each([
    ['Client Frontend', 'bob', 'bob@contoso.test', '250 2.1.0 Sender OK'], // own address
    ['Client Frontend', 'bob', 'alice@contoso.test', '550 5.7.1 Client does not have permissions to send as this sender'],
    ['Client Frontend', 'bob', 'bob@example.org', '550 5.7.1 Client does not have permissions to send as this sender'],
    ['Default Frontend', 'relay1', 'printer@example.org', '250 2.1.0 Sender OK'], // Accept-Any-Sender via Client Proxy
    ['Default Frontend', 'relay1', 'alice@contoso.test', '250 2.1.0 Sender OK'],
    ['Custom', 'relay1', 'app@example.org', '550 5.7.1 Client does not have permissions to send as this sender'],
    ['Custom', 'relay1', 'relay1@contoso.test', '250 2.1.0 Sender OK'], // its UPN
  ])('on %s, %s sending as %s gets %s', (name, login, sender, reply) => {
    expect(formatReply(decideMailFrom(session(name, user(login)), config, sender).reply)).toBe(reply);
  });
  it('answers anonymous spoofing with the anonymous text', () => {
    const c = connector('Custom');
    const anon: SessionView = {
      connector: c,
      identity: { kind: 'anonymous' },
      secure: false,
      rights: { connector: new Set(['SMTP-Submit']), effective: new Set(['SMTP-Submit']), sources: [] },
    };
    expect(formatReply(decideMailFrom(anon, config, 'alice@contoso.test').reply)).toBe(
      '550 5.7.1 Anonymous client does not have permissions to send as this sender',
    );
  });
  it('requires STARTTLS before MAIL FROM on a RequireTLS connector', () => {
    expect(formatReply(decideMailFrom(session('Strict', user('bob')), config, 'bob@contoso.test').reply)).toBe('451 5.7.3 STARTTLS is required to send mail');
    expect(formatReply(decideMailFrom(session('Strict', user('bob'), true), config, 'bob@contoso.test').reply)).toBe('250 2.1.0 Sender OK');
  });
});

describe('message size', () => {
  it.each([
    ['Strict', undefined, 65536, '250 2.0.0 OK'],
    ['Strict', undefined, 65537, '552 5.3.4 Message size exceeds fixed maximum message size'],
    ['Relay LAN', undefined, 100 * 1024 * 1024, '250 2.0.0 OK'], // externally secured: Bypass-Message-Size-Limit
    ['Default Frontend', undefined, 36 * 1024 * 1024 + 1, '552 5.3.4 Message size exceeds fixed maximum message size'],
  ])('on %s, %s sending %d bytes gets %s', (name, login, size, reply) => {
    expect(formatReply(decideMessageSize(session(name, login ? user(login) : undefined), size).reply)).toBe(reply);
  });
});

describe('header rights and tarpit', () => {
  it.each([
    ['Default Frontend', 'Received', false],
    ['Default Frontend', 'Resent-From', false],
    ['Default Frontend', 'X-Transit-Organization-Scl', true],
    ['Custom', 'Received', true], // relay1 on Custom lacks Accept-Headers-Routing
    ['Custom', 'resent-date', true],
    ['Custom', 'Subject', false],
    ['Relay LAN', 'X-Transit-Organization-Scl', true], // externally secured servers lack Accept-Headers-Organization
  ])('on %s, header %s is removed: %s', (name, header, removed) => {
    const s = name === 'Custom' ? session(name, user('relay1')) : session(name);
    expect(headerStripper(s.rights.effective)(header)).toBe(removed);
  });
  it('tarpits 5xx replies to anonymous sessions only', () => {
    expect(tarpitSeconds(session('Default Frontend'), 550)).toBe(5);
    expect(tarpitSeconds(session('Default Frontend'), 452)).toBe(0);
    expect(tarpitSeconds(session('Relay LAN'), 550)).toBe(0);
    expect(tarpitSeconds(session('Client Frontend', user('bob')), 550)).toBe(0);
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
    ['Anon Relay', 'someone@example.net', '250 2.1.5 Recipient OK'], // ANONYMOUS LOGON granted Accept-Any-Recipient
  ])('on %s, RCPT TO:<%s> gets %s', (name, rcpt, reply) => {
    expect(formatReply(decideRcptTo(session(name), config, directory, rcpt, 0).reply)).toBe(reply);
  });
  it('answers 452 4.5.3 past MaxRecipientsPerMessage', () => {
    expect(formatReply(decideRcptTo(session('Default Frontend'), config, directory, 'alice@contoso.test', 200).reply)).toBe('452 4.5.3 Too many recipients');
  });
  it('explains a refusal', () => {
    const d = decideRcptTo(session('Default Frontend'), config, directory, 'someone@example.net', 0);
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
    expect(formatReply(queuedReply('<m@x>', 42, 'fe1.contoso.test'))).toBe(
      '250 2.6.0 <m@x> [InternalId=42, Hostname=fe1.contoso.test] Queued mail for delivery',
    );
  });
});

describe('explainSession (transitctl test-connector)', () => {
  it('lists the candidates, chooses like the frontend, and gives each step its reply and reason', () => {
    const e = explainSession(config, {
      remoteIp: '192.168.1.75',
      localIp: '0.0.0.0',
      localPort: 25,
      from: 'scanner@example.org',
      to: ['someone@example.net', 'nobody@contoso.test'],
    });
    expect(e.candidates.filter((c) => c.range && c.binding !== 'none').map((c) => `${c.chosen ? '*' : ''}${c.connector}:${c.rangeSize}`)).toEqual([
      'Default Frontend:4294967296',
      'Relay LAN:256',
      '*Relay Printer:1',
    ]);
    expect(e.principal).toBe('MS Exchange\\Externally Secured Servers');
    expect(e.steps.map((s) => s.reply)).toEqual(['250 2.0.0 OK', '250 2.1.0 Sender OK', '250 2.1.5 Recipient OK', '550 5.1.1 User unknown']);
  });
  it('explains a refused relay and an unmatched connection', () => {
    const e = explainSession(config, { remoteIp: '203.0.113.9', localIp: '0.0.0.0', localPort: 25, from: 'x@example.org', to: ['someone@example.net'] });
    expect(e.steps.at(-1)).toMatchObject({ reply: '550 5.7.54 SMTP; Unable to relay recipient in non-accepted domain', ok: false });
    expect(e.steps.at(-1)!.reason).toMatch(/lacks SMTP-Accept-Any-Recipient/);
    expect(explainSession(config, { remoteIp: '203.0.113.9', localIp: '0.0.0.0', localPort: 26 }).steps[0]!.reply).toBe('421 4.3.2 Service not available');
  });
  it('authenticates a user and shows the Client Proxy grants', () => {
    const e = explainSession(config, {
      remoteIp: '203.0.113.9',
      localIp: '0.0.0.0',
      localPort: 587,
      tls: true,
      user: 'CONTOSO\\relay1',
      from: 'x@example.org',
      to: ['someone@example.net'],
    });
    expect(e.steps.map((s) => s.reply)).toEqual([
      '250 2.0.0 OK',
      '220 2.0.0 SMTP server ready',
      '250 2.0.0 OK',
      '235 2.7.0 Authentication successful',
      '250 2.1.0 Sender OK',
      '250 2.1.5 Recipient OK',
    ]);
    expect(explainSession(config, { remoteIp: '203.0.113.9', localIp: '0.0.0.0', localPort: 587, user: 'relay1' }).steps.at(-1)!.reply).toBe(
      '530 5.7.0 Must issue a STARTTLS command first',
    );
    expect(e.sources.some((s) => s.connector === 'Client Proxy' && s.right === 'SMTP-Accept-Any-Recipient')).toBe(true);
  });
});

describe('permission groups expand to exactly Exchange rights (docs/exchange-behaviour.md §2)', () => {
  const only = (groups: string[], auth: string[] = ['Tls']) =>
    parseOrganizationConfig({
      Organization: { Name: 'T' },
      AcceptedDomains: [{ DomainName: 't.test', Default: true }],
      Users: [{ Name: 'u' }],
      ReceiveConnectors: [{ Name: 'C', TransportRole: 'HubTransport', Bindings: ['0.0.0.0:25'], PermissionGroups: groups, AuthMechanism: auth }],
    });
  const all = [
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
  const noOrg = all.filter((r) => r !== 'Accept-Headers-Forest' && r !== 'Accept-Headers-Organization');
  it.each([
    ['AnonymousUsers', 'anonymous', ['Accept-Headers-Routing', 'SMTP-Accept-Any-Sender', 'SMTP-Accept-Authoritative-Domain-Sender', 'SMTP-Submit']],
    ['AnonymousUsers', 'user', []],
    ['ExchangeUsers', 'user', ['Accept-Headers-Routing', 'Bypass-Anti-Spam', 'SMTP-Accept-Any-Recipient', 'SMTP-Submit']],
    ['ExchangeUsers', 'anonymous', []],
    ['ExchangeServers', 'server', all],
    ['ExchangeServers', 'externally-secured', noOrg],
    ['ExchangeServers', 'anonymous', []],
    ['ExchangeLegacyServers', 'server', []], // legacy interop servers only; Transit nodes are not legacy
    ['Partners', 'anonymous', []],
    ['None', 'anonymous', []],
    ['None', 'user', []],
    ['Custom', 'user', []],
  ])('%s grants a %s session %j', (group, kind, expected) => {
    const cfg = only([group], group === 'ExchangeServers' && kind === 'externally-secured' ? ['ExternalAuthoritative'] : ['Tls']);
    const c = cfg.ReceiveConnectors[0]!;
    const identity: SessionIdentity =
      kind === 'user'
        ? { kind: 'user', account: cfg.Users[0]!, login: 'u' }
        : kind === 'server'
          ? { kind: 'server', name: 'N$' }
          : kind === 'externally-secured'
            ? { kind: 'externally-secured' }
            : { kind: 'anonymous' };
    expect([...sessionRights(cfg, c, identity).effective].sort()).toEqual([...expected].sort());
  });
  it('has the legacy and partner grants of the table', () => {
    expect([...PERMISSION_GROUP_GRANTS.ExchangeLegacyServers[0]!.rights].sort()).toEqual([...noOrg].sort());
    expect(PERMISSION_GROUP_GRANTS.ExchangeLegacyServers[0]!.principal).toBe('MS Exchange\\ExchangeLegacyInterop');
    expect([...PERMISSION_GROUP_GRANTS.Partners[0]!.rights].sort()).toEqual(['Accept-Headers-Routing', 'SMTP-Submit']);
    expect(PERMISSION_GROUP_GRANTS.Partners[0]!.principal).toBe('MS Exchange\\Partner Servers');
  });
});
