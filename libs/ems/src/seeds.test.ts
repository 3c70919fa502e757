/**
 * Every receive-connector and permission line of five published how-to articles on Exchange
 * relay connectors (seeds 000-004, one describe block each; the lines are copied in below),
 * as the articles print them: mangled hyphens, typographic quotes, prompts and wrapped lines
 * included. Connectors an article made in the GUI are made first with the equivalent
 * New-ReceiveConnector line.
 */
import { describe, expect, it } from 'vitest';
import { EmsError } from './errors.ts';
import { connector, contoso, last, runScript } from './fixture.ts';
import { runEmsLine } from './index.ts';

const RELAY_RIGHTS_000 = [
  'SMTP-Submit',
  'SMTP-Accept-Any-Recipient',
  'SMTP-Accept-Any-Sender',
  'SMTP-Accept-Authoritative-Domain-Sender',
  'Accept-Headers-Routing',
];

describe('seed 000: authenticated SMTP relaying in Exchange 2013 (mangled hyphens)', () => {
  it('grants the relay group SMTP-Submit on Default Frontend', () => {
    const [r] = runScript(
      `Get - ReceiveConnector "default frontend*" |
    Add - ADPermission - User "contoso\\relay accounts" - ExtendedRights ms -
        Exch - SMTP - Submit`,
      contoso(),
    );
    expect(r!.config.Permissions).toEqual([{ Identity: 'Default Frontend', User: 'CONTOSO\\Relay Accounts', ExtendedRights: ['SMTP-Submit'], Deny: false }]);
    expect(r!.warnings[0]).toBe(
      'read as: Get-ReceiveConnector "default frontend*" | Add-ADPermission -User "contoso\\relay accounts" -ExtendedRights ms-Exch-SMTP-Submit (the line had spaces around its hyphens, as web pages print them)',
    );
  });

  it('grants the five relay rights on Client Proxy from a list spread over lines', () => {
    const [r] = runScript(
      `Get - ReceiveConnector "client proxy*" |
    Add - ADPermission - User "contoso\\relay accounts" - ExtendedRights ms -
        Exch - SMTP - Submit,
    ms - Exch - SMTP - Accept - Any - Recipient,
    ms - Exch - SMTP - Accept - Any - Sender,
    ms - Exch - SMTP - Accept - Authoritative - Domain - Sender,
    ms - Exch - Accept - Headers - Routing`,
      contoso(),
    );
    expect(r!.config.Permissions).toEqual([{ Identity: 'Client Proxy', User: 'CONTOSO\\Relay Accounts', ExtendedRights: RELAY_RIGHTS_000, Deny: false }]);
    expect(r!.output.text.split('\n').slice(2)).toHaveLength(5);
  });

  it('allows basic authentication without TLS on Default Frontend, warning about Integrated', () => {
    const [r] = runScript(
      `Get - ReceiveConnector "default frontend*" |
    Set - ReceiveConnector - AuthMechanism Tls,
    Integrated, BasicAuth, ExchangeServer`,
      contoso(),
    );
    expect(connector(r!.config, 'Default Frontend').AuthMechanism).toEqual(['Tls', 'Integrated', 'BasicAuth', 'ExchangeServer']);
    expect(r!.warnings).toContain(
      'Default Frontend: Integrated (NTLM/Kerberos) is accepted for compatibility but Transit does not offer NTLM or Kerberos; clients must use BasicAuth over TLS',
    );
  });

  it('refuses the protocol-logging block, whose four commands the page ran together, naming the cause', () => {
    const line = `Get - ReceiveConnector "Default FrontEnd*" |
    Set - ReceiveConnector –ProtocolLoggingLevel Verbose Get -
        FrontendTransportService |
    Set - FrontendTransportService -
        IntraOrgConnectorProtocolLoggingLevel verbose Get -
        ReceiveConnector "Default servername*" |
    Set - ReceiveConnector –ProtocolLoggingLevel Verbose Get -
        ReceiveConnector "Client Proxy*" |
    Set - ReceiveConnector –ProtocolLoggingLevel Verbose`;
    // Even split correctly, its second command is not a transport cmdlet transitctl ems knows.
    expect(() => runScript(line, contoso())).toThrow(
      /^Set-FrontendTransportService is not supported by transitctl ems \(supported: [^)]*\)\n {2}\(read as: Get-ReceiveConnector "Default FrontEnd\*" \| Set-ReceiveConnector -ProtocolLoggingLevel Verbose Get-FrontendTransportService \| /,
    );
  });

  it.each([
    ['Get-ReceiveConnector "Default FrontEnd*" | Set-ReceiveConnector –ProtocolLoggingLevel Verbose', 'Default Frontend'],
    ['Get-ReceiveConnector "Client Proxy*" | Set-ReceiveConnector –ProtocolLoggingLevel Verbose', 'Client Proxy'],
    ['Get-ReceiveConnector "Default" | Set-ReceiveConnector –ProtocolLoggingLevel Verbose', 'Default'], // "Default servername*" with the placeholder filled in
  ])('runs the block’s receive-connector lines one per line: %s', (line, name) => {
    const before = contoso();
    const r = runEmsLine(line, { ...before, ReceiveConnectors: before.ReceiveConnectors.map((c) => ({ ...c, ProtocolLoggingLevel: 'None' as const })) });
    expect(r.changed).toBe(true);
    expect(r.config.ReceiveConnectors.filter((c) => c.ProtocolLoggingLevel === 'Verbose').map((c) => c.Name)).toEqual([name]);
  });

  it.each([
    [
      'Get-FrontendTransportService | Set-FrontendTransportService -IntraOrgConnectorProtocolLoggingLevel verbose',
      /^Get-FrontendTransportService is not supported by transitctl ems \(supported: Get-ReceiveConnector, /,
    ],
    [
      'Get-ReceiveConnector "Default servername*" | Set-ReceiveConnector –ProtocolLoggingLevel Verbose',
      /object 'Default servername\*' couldn't be found \(receive connectors: Default Frontend, Client Frontend, Client Proxy, Default, Application Relay\)/,
    ],
  ])('explains the block’s other lines: %s', (line, message) => {
    expect(() => runEmsLine(line, contoso())).toThrow(message);
  });
});

describe('seed 001: Exchange 2016/2019 SMTP relay (ExternalAuthoritative connector)', () => {
  const article = `[PS] C:\\>New-ReceiveConnector -Name "SMTP Relay EXCH01" 
-Server EXCH01 -TransportRole FrontendTransport -Custom 
-Bindings 0.0.0.0:25 -RemoteIpRanges 10.38.96.15

[PS] C:\\>Set-ReceiveConnector "EXCH01\\SMTP Relay EXCH01" 
-AuthMechanism ExternalAuthoritative 
-PermissionGroups ExchangeServers
`;

  it('creates the connector and prints it as the article shows', () => {
    const [created, set] = runScript(article, contoso());
    expect(created!.output.text).toBe(
      ['Identity                 Bindings     Enabled', '--------                 --------     -------', 'EXCH01\\SMTP Relay EXCH01 {0.0.0.0:25} True'].join(
        '\n',
      ),
    );
    expect(set!.output.text).toBe('');
    expect(connector(set!.config, 'SMTP Relay EXCH01')).toMatchObject({
      Server: 'EXCH01',
      TransportRole: 'FrontendTransport',
      Bindings: ['0.0.0.0:25'],
      RemoteIPRanges: ['10.38.96.15'],
      AuthMechanism: ['ExternalAuthoritative'],
      PermissionGroups: ['ExchangeServers'],
    });
    expect(set!.warnings).toEqual([]); // the identity's server part is the connector's own
  });
});

describe('seed 002: relay connector in Exchange 2013 (anonymous relay)', () => {
  // The article creates "Relay E15MB1" in the EAC: Frontend Transport, Custom, port 25, one remote IP, Anonymous Users ticked.
  const setup = `New-ReceiveConnector "Relay E15MB1" -Server E15MB1 -TransportRole FrontendTransport -Custom -Bindings 0.0.0.0:25 -RemoteIPRanges 192.168.0.181
Set-ReceiveConnector "Relay E15MB1" -PermissionGroups AnonymousUsers`;

  it('grants ANONYMOUS LOGON the relay right and prints the entry', () => {
    const r = last(
      runScript(
        `${setup}\n[PS] C:\\>Get-ReceiveConnector "Relay E15MB1" | Add-ADPermission -User 'NT AUTHORITY\\Anonymous Logon' -ExtendedRights MS-Exch-SMTP-Accept-Any-Recipient`,
        contoso(),
      ),
    );
    expect(r.config.Permissions).toEqual([
      { Identity: 'Relay E15MB1', User: 'NT AUTHORITY\\ANONYMOUS LOGON', ExtendedRights: ['SMTP-Accept-Any-Recipient'], Deny: false },
    ]);
    expect(r.output.text.split('\n')).toEqual([
      'Identity            User                         Deny  Inherited Rights',
      '--------            ----                         ----  --------- ------',
      'E15MB1\\Relay E15MB1 NT AUTHORITY\\ANONYMOUS LOGON False False     ms-Exch-SMTP-Accept-Any-Recipient',
    ]);
  });

  it('gives Exchange’s error for the reader’s misspelt principal (comment 22)', () => {
    expect(() =>
      runScript(
        `${setup}\nGet-ReceiveConnector "Relay E15MB1" | Add-ADPermission -User 'NT AUTHORITY\\Anonymous Login' -ExtendedRights MS-Exch-SMTP-Accept-Any-Recipient`,
        contoso(),
      ),
    ).toThrow(/Add-ADPermission: user or group "NT AUTHORITY\\Anonymous Login" wasn't found/);
  });

  it('refuses the article’s Get-Service line as outside transitctl ems', () => {
    expect(() => runEmsLine('PS C:\\> Get-Service | Where DisplayName -like "*Transport*" | Select DisplayName', contoso())).toThrow(
      /^Get-Service is not supported by transitctl ems/,
    );
  });
});

describe('seed 003: application servers relaying off Exchange 2007', () => {
  it('grants the relay right on “CRM Application” written with typographic quotes', () => {
    const r = last(
      runScript(
        `New-ReceiveConnector "CRM Application" -Custom -Bindings 0.0.0.0:25 -RemoteIPRanges 10.0.0.21,10.0.0.22 -PermissionGroups AnonymousUsers
Get-ReceiveConnector “CRM Application” | Add-ADPermission -User “NT AUTHORITY\\ANONYMOUS LOGON” -ExtendedRights “ms-Exch-SMTP-Accept-Any-Recipient”`,
        contoso(),
      ),
    );
    expect(r.config.Permissions).toEqual([
      { Identity: 'CRM Application', User: 'NT AUTHORITY\\ANONYMOUS LOGON', ExtendedRights: ['SMTP-Accept-Any-Recipient'], Deny: false },
    ]);
  });
});

describe('seed 004: Exchange 2007 as an authenticated or anonymous relay', () => {
  const line =
    'Get-ReceiveConnector connector name | Add-ADPermission -User “NT AUTHORITY\\ANONYMOUS LOGON” -ExtendedRights “ms-Exch-SMTP-Accept-Any-Recipient”';

  it('refuses the article’s unquoted placeholder the way PowerShell does, with a hint', () => {
    expect(() => runEmsLine(line, contoso())).toThrow(EmsError);
    expect(() => runEmsLine(line, contoso())).toThrow(
      "Get-ReceiveConnector: a positional parameter cannot be found that accepts argument 'name' (-Identity is already 'connector'; quote a value that contains spaces)",
    );
  });

  it('runs it with the connector’s name quoted', () => {
    const r = last(
      runScript(
        `New-ReceiveConnector "Anonymous Relay" -Custom -Bindings 0.0.0.0:25 -RemoteIPRanges 192.168.1.50 -AuthMechanism Tls,BasicAuth -PermissionGroups AnonymousUsers
${line.replace('connector name', '"Anonymous Relay"')}`,
        contoso(),
      ),
    );
    expect(r.config.Permissions).toEqual([
      { Identity: 'Anonymous Relay', User: 'NT AUTHORITY\\ANONYMOUS LOGON', ExtendedRights: ['SMTP-Accept-Any-Recipient'], Deny: false },
    ]);
  });
});
