import { receiveConnectorSchema, sendConnectorSchema, type OrganizationConfig } from '@transit/config';
import { describe, expect, it } from 'vitest';
import { connector, contoso, deepFreeze, last, runScript } from './fixture.ts';
import { EmsError, runEmsLine } from './index.ts';
import { RECEIVE_CONNECTOR_PROPERTIES } from './receive.ts';
import { SEND_CONNECTOR_PROPERTIES } from './routing.ts';

const run = (line: string, config: OrganizationConfig = contoso()) => runEmsLine(line, config);
const after = (script: string) => last(runScript(script, contoso())).config;

describe('Get-ReceiveConnector', () => {
  it('lists every connector as Exchange’s default table', () => {
    const r = run('Get-ReceiveConnector');
    expect(r.changed).toBe(false);
    expect(r.output.text.split('\n')).toEqual([
      'Identity          Bindings                  Enabled',
      '--------          --------                  -------',
      'Default Frontend  {0.0.0.0:25, [::]:25}     True',
      'Client Frontend   {0.0.0.0:587, [::]:587}   True',
      'Client Proxy      {0.0.0.0:465, [::]:465}   True',
      'Default           {0.0.0.0:2525, [::]:2525} True',
      'Application Relay {0.0.0.0:25}              True',
    ]);
    expect(r.output.objects[0]).toMatchObject({ Identity: 'Default Frontend', Name: 'Default Frontend', MaxMessageSize: 37_748_736 });
  });

  it.each([
    ['get-receiveconnector "default frontend*"', ['Default Frontend']], // case-insensitive cmdlet and wildcard identity
    ['Get-ReceiveConnector *Frontend', ['Default Frontend', 'Client Frontend']],
    ['Get-ReceiveConnector -Identity "Client Proxy"', ['Client Proxy']],
    ['Get-ReceiveConnector "EXCH01\\Client Proxy"', ['Client Proxy']], // the server part does not restrict
    ['Get-ReceiveConnector "*\\Default"', ['Default']],
    ['Get-ReceiveConnector -Server EXCH01', ['Default Frontend', 'Client Frontend', 'Client Proxy', 'Default', 'Application Relay']],
  ])('%s', (line, names) => {
    expect(run(line).output.objects.map((o) => o.Name)).toEqual(names);
  });

  it('says when a server part or -Server is only informational', () => {
    expect(run('Get-ReceiveConnector "EXCH01\\Client Proxy"').warnings).toEqual([
      'EXCH01\\Client Proxy: the server part EXCH01 is informational in a Transit cluster (every node serves every connector of its role); matched Client Proxy',
    ]);
    expect(run('Get-ReceiveConnector -Server EXCH01').warnings[0]).toMatch(/^-Server EXCH01 is informational in a Transit cluster/);
  });

  it('fails like Exchange when nothing matches, listing what exists', () => {
    expect(() => run('Get-ReceiveConnector "Relay*"')).toThrow(
      "Get-ReceiveConnector: the operation couldn't be performed because object 'Relay*' couldn't be found (receive connectors: Default Frontend, Client Frontend, Client Proxy, Default, Application Relay)",
    );
  });

  it('prints every property with Format-List, sizes and time spans as Exchange writes them', () => {
    const text = run('Get-ReceiveConnector "Client Proxy" | Format-List').output.text;
    expect(text).toContain(
      'Identity                      : Client Proxy\nName                          : Client Proxy\nTransportRole                 : HubTransport\n',
    );
    expect(text).toContain('AuthMechanism                 : {Tls, BasicAuth, BasicAuthRequireTLS, ExchangeServer, Integrated}');
    expect(text).toContain('MaxMessageSize                : 36 MB (37,748,736 bytes)');
    expect(text).toContain('ConnectionTimeout             : 00:10:00');
    // Identity, then every property the connector has (Server, Fqdn, Banner and Comment are unset).
    expect(text.split('\n')).toHaveLength(1 + Object.keys(RECEIVE_CONNECTOR_PROPERTIES).length - 4);
  });

  it.each([
    [
      'Get-ReceiveConnector "Client Proxy" | fl Name,*Auth*',
      'Name               : Client Proxy\nAuthMechanism      : {Tls, BasicAuth, BasicAuthRequireTLS, ExchangeServer, Integrated}\nAuthTarpitInterval : 00:00:05',
    ],
    [
      'Get-ReceiveConnector "Client Proxy" | ft Name,MaxMessageSize',
      'Name         MaxMessageSize\n----         --------------\nClient Proxy 36 MB (37,748,736 bytes)',
    ],
    ['Get-ReceiveConnector "Client Proxy" | Format-Table -Property Identity', 'Identity\n--------\nClient Proxy'],
  ])('%s', (line, text) => {
    expect(run(line).output.text).toBe(text);
  });
});

describe('New-ReceiveConnector', () => {
  it.each([
    [
      '-Custom',
      'New-ReceiveConnector "Relay" -Custom -Bindings 0.0.0.0:25 -RemoteIPRanges 10.0.0.5',
      {
        Bindings: ['0.0.0.0:25'],
        RemoteIPRanges: ['10.0.0.5'],
        PermissionGroups: ['None'],
        AuthMechanism: ['Tls'],
        TransportRole: 'FrontendTransport',
        BareLineFeedHandling: 'Normalize',
        MaxLineLength: 1000,
      },
    ],
    [
      'no usage is Custom',
      'New-ReceiveConnector -Name Relay -Bindings 0.0.0.0:25 -RemoteIPRanges 10.0.0.5',
      { PermissionGroups: ['None'], AuthMechanism: ['Tls'] },
    ],
    [
      '-Usage Client (default binding 587)',
      'New-ReceiveConnector Relay -Usage Client -RemoteIPRanges 10.0.0.0/8',
      { Bindings: ['0.0.0.0:587'], PermissionGroups: ['ExchangeUsers'], AuthMechanism: ['Tls', 'BasicAuth', 'BasicAuthRequireTLS', 'Integrated'] },
    ],
    [
      '-Internet (all IPv4)',
      'New-ReceiveConnector Relay -Internet -Bindings 10.1.1.1:25',
      { RemoteIPRanges: ['0.0.0.0-255.255.255.255'], PermissionGroups: ['AnonymousUsers'], AuthMechanism: ['Tls'], BareLineFeedHandling: 'Reject' },
    ],
    [
      '-Internal on a hub (default binding 25)',
      'New-ReceiveConnector Relay -Internal -TransportRole HubTransport -RemoteIPRanges 10.0.0.0/8',
      {
        Bindings: ['0.0.0.0:25'],
        TransportRole: 'HubTransport',
        PermissionGroups: ['ExchangeLegacyServers', 'ExchangeServers'],
        AuthMechanism: ['Tls', 'ExchangeServer'],
        BareLineFeedHandling: 'Normalize',
      },
    ],
    ['-Partner', 'New-ReceiveConnector Relay -Partner -Bindings 0.0.0.0:2526', { PermissionGroups: ['Partners'], AuthMechanism: ['Tls'] }],
    [
      'explicit groups and an edit of the usage defaults',
      'New-ReceiveConnector Relay -Client -RemoteIPRanges 10.0.0.0/8 -Bindings 0.0.0.0:588 -AuthMechanism @{Remove="Integrated"}',
      { Bindings: ['0.0.0.0:588'], AuthMechanism: ['Tls', 'BasicAuth', 'BasicAuthRequireTLS'] },
    ],
    [
      'every property as a parameter, with Exchange sizes and time spans',
      'New-ReceiveConnector Relay -Custom -Bindings "0.0.0.0:2526","[::]:2526" -RemoteIPRanges @("10.0.0.0/24", "10.0.1.0-10.0.1.9") -Server EXCH01 -Fqdn relay.contoso.test -Banner "220 relay.contoso.test ready" -Comment "for printers" -MaxMessageSize 25MB -MaxHeaderSize "64 KB (65,536 bytes)" -MaxRecipientsPerMessage 500 -ConnectionTimeout 00:05:00 -ConnectionInactivityTimeout 00:01:30 -TarpitInterval 00:00:00 -RequireTLS $true -ProtocolLoggingLevel verbose -Enabled:$false -GreetingDelay 500 -BareLineFeedHandling reject -MaxLineLength 900',
      {
        Server: 'EXCH01',
        Bindings: ['0.0.0.0:2526', '[::]:2526'],
        RemoteIPRanges: ['10.0.0.0/24', '10.0.1.0-10.0.1.9'],
        Fqdn: 'relay.contoso.test',
        Banner: '220 relay.contoso.test ready',
        Comment: 'for printers',
        MaxMessageSize: 26_214_400,
        MaxHeaderSize: 65_536,
        MaxRecipientsPerMessage: 500,
        ConnectionTimeout: 300,
        ConnectionInactivityTimeout: 90,
        TarpitInterval: 0,
        RequireTLS: true,
        ProtocolLoggingLevel: 'Verbose',
        Enabled: false,
        GreetingDelay: 500,
        BareLineFeedHandling: 'Reject',
        MaxLineLength: 900,
      },
    ],
  ])('%s', (_name, line, expected) => {
    const r = run(line);
    expect(r.changed).toBe(true);
    expect(connector(r.config, 'Relay')).toMatchObject(expected);
  });

  it('warns that Integrated is only accepted, and that a connector without groups admits nobody', () => {
    expect(run('New-ReceiveConnector Relay -Client -RemoteIPRanges 10.0.0.0/8').warnings).toEqual([
      'Relay: Integrated (NTLM/Kerberos) is accepted for compatibility but Transit does not offer NTLM or Kerberos; clients must use BasicAuth over TLS',
    ]);
    expect(run('New-ReceiveConnector Relay -Custom -Bindings 0.0.0.0:25 -RemoteIPRanges 10.0.0.5').warnings[0]).toMatch(
      /^Relay: PermissionGroups is None, so no session has any right here/,
    );
  });

  it.each([
    ['Custom without bindings', 'New-ReceiveConnector Relay -Custom -RemoteIPRanges 10.0.0.5', 'New-ReceiveConnector: a Custom connector needs -Bindings'],
    [
      'no usage and nothing else',
      'New-ReceiveConnector Relay',
      'New-ReceiveConnector: a Custom connector needs -Bindings and -RemoteIPRanges (without -Usage or a usage switch such as -Internet, a connector is Custom)',
    ],
    ['Client without remote ranges', 'New-ReceiveConnector Relay -Client', 'New-ReceiveConnector: a Client connector needs -RemoteIPRanges'],
    ['Internet without bindings', 'New-ReceiveConnector Relay -Usage Internet', 'New-ReceiveConnector: a Internet connector needs -Bindings'],
    [
      'two usages',
      'New-ReceiveConnector Relay -Usage Client -Internet -Bindings 0.0.0.0:25',
      'New-ReceiveConnector: choose one usage type, not Client and Internet',
    ],
    [
      'an unknown usage',
      'New-ReceiveConnector Relay -Usage Relay',
      'New-ReceiveConnector: -Usage Relay is not valid: expected one of Client, Custom, Internal, Internet, Partner',
    ],
    [
      'an ambiguous prefix',
      'New-ReceiveConnector Relay -Inter -Bindings 0.0.0.0:25',
      'New-ReceiveConnector: parameter -Inter is ambiguous (-Internal, -Internet)',
    ],
    [
      'an unknown parameter',
      'New-ReceiveConnector Relay -Foo 1',
      /^New-ReceiveConnector: parameter -Foo is not supported \(supported: -Name, -Server, -TransportRole, /,
    ],
    ['a missing name', 'New-ReceiveConnector -Custom -Bindings 0.0.0.0:25 -RemoteIPRanges 10.0.0.5', 'New-ReceiveConnector: -Name is required'],
    [
      'a bad auth mechanism',
      'New-ReceiveConnector Relay -Custom -Bindings 0.0.0.0:25 -RemoteIPRanges 10.0.0.5 -AuthMechanism Tls,Kerberos',
      /-AuthMechanism Kerberos is not valid: expected one of None, Tls, Integrated/,
    ],
    [
      'a bad size',
      'New-ReceiveConnector Relay -Custom -Bindings 0.0.0.0:25 -RemoteIPRanges 10.0.0.5 -MaxMessageSize unlimited',
      /-MaxMessageSize unlimited is not valid: expected a size such as 25MB/,
    ],
    [
      'a bad time span',
      'New-ReceiveConnector Relay -Custom -Bindings 0.0.0.0:25 -RemoteIPRanges 10.0.0.5 -ConnectionTimeout 10min',
      /-ConnectionTimeout 10min is not valid: expected a time span such as 00:05:00/,
    ],
    [
      'a bad boolean',
      'New-ReceiveConnector Relay -Custom -Bindings 0.0.0.0:25 -RemoteIPRanges 10.0.0.5 -Enabled yes',
      'New-ReceiveConnector: -Enabled yes is not valid: expected $true or $false',
    ],
    [
      'a bad number',
      'New-ReceiveConnector Relay -Custom -Bindings 0.0.0.0:25 -RemoteIPRanges 10.0.0.5 -MaxRecipientsPerMessage many',
      /-MaxRecipientsPerMessage many is not valid: expected a whole number/,
    ],
    ['a missing value', 'New-ReceiveConnector Relay -Custom -Bindings', 'New-ReceiveConnector: missing a value for -Bindings'],
    [
      'a parameter given twice',
      'New-ReceiveConnector Relay -Custom -Bindings 0.0.0.0:25 -Bind 0.0.0.0:26',
      'New-ReceiveConnector: parameter -Bindings is given more than once',
    ],
    [
      'a schema violation (bad binding), with its field path',
      'New-ReceiveConnector Relay -Custom -Bindings 25 -RemoteIPRanges 10.0.0.5',
      /^New-ReceiveConnector: nothing was changed: the configuration after New-ReceiveConnector is invalid:[\s\S]*binding[\s\S]*25/i,
    ],
    [
      'a duplicate name',
      'New-ReceiveConnector default -Custom -Bindings 0.0.0.0:2600 -RemoteIPRanges 10.0.0.5',
      /ReceiveConnectors\.5 \(default\)\.Name: duplicate connector name default/,
    ],
    [
      'a second connector on the same binding and ranges (Internal on frontend 25)',
      'New-ReceiveConnector Relay -Internal',
      /nothing was changed: .*\n {2}ReceiveConnectors\.5 \(Relay\)\.RemoteIPRanges: Relay and Default Frontend have the same binding and the same RemoteIPRanges/,
    ],
  ])('refuses %s', (_name, line, message) => {
    expect(() => run(line)).toThrow(EmsError);
    expect(() => run(line)).toThrow(message);
  });
});

describe('Set-ReceiveConnector and Remove-ReceiveConnector', () => {
  const relay = 'New-ReceiveConnector "Relay" -Custom -Bindings 0.0.0.0:25 -RemoteIPRanges 10.0.0.4,10.0.0.5 -PermissionGroups AnonymousUsers\n';

  it.each([
    ['a unique prefix (-AuthM)', 'Set-ReceiveConnector Relay -AuthM Tls,BasicAuth', { AuthMechanism: ['Tls', 'BasicAuth'] }],
    [
      'hashtable Add/Remove',
      'Set-ReceiveConnector Relay -RemoteIPRanges @{Add="10.0.0.6","10.0.0.7"; Remove="10.0.0.4"}',
      { RemoteIPRanges: ['10.0.0.5', '10.0.0.6', '10.0.0.7'] },
    ],
    [
      'a multi-line hashtable',
      'Set-ReceiveConnector Relay -PermissionGroups @{\n  add="ExchangeUsers"\n  remove="anonymoususers"\n}',
      { PermissionGroups: ['ExchangeUsers'] },
    ],
    [
      'sizes in Exchange’s form',
      'Set-ReceiveConnector Relay -MaxMessageSize "36 MB (37,748,736 bytes)" -MaxHeaderSize 128KB',
      { MaxMessageSize: 37_748_736, MaxHeaderSize: 131_072 },
    ],
    [
      'time spans',
      'Set-ReceiveConnector Relay -ConnectionTimeout 1.00:00:00 -ConnectionInactivityTimeout 00:05:00',
      { ConnectionTimeout: 86_400, ConnectionInactivityTimeout: 300 },
    ],
    ['-Param:value and -Confirm:$false', 'Set-ReceiveConnector -Identity:Relay -Enabled:$false -Confirm:$false', { Enabled: false }],
    [
      'the transport role and server',
      'Set-ReceiveConnector Relay -TransportRole hubtransport -Server EXCH02',
      { TransportRole: 'HubTransport', Server: 'EXCH02' },
    ],
    ['piped from a wildcard Get', 'Get-ReceiveConnector "Rel*" | Set-ReceiveConnector -RequireEHLODomain $true', { RequireEHLODomain: true }],
    [
      'the content guard properties',
      'Set-ReceiveConnector Relay -BareLineFeedHandling normalize -MaxLineLength 500',
      { BareLineFeedHandling: 'Normalize', MaxLineLength: 500 },
    ],
  ])('%s', (_name, line, expected) => {
    expect(connector(after(relay + line), 'Relay')).toMatchObject(expected);
  });

  it('clears an optional property with $null', () => {
    expect(connector(after(`${relay}Set-ReceiveConnector Relay -Comment "x"`), 'Relay').Comment).toBe('x');
    expect('Comment' in connector(after(`${relay}Set-ReceiveConnector Relay -Comment "x"\nSet-ReceiveConnector Relay -Comment $null`), 'Relay')).toBe(false);
  });

  it('renames a connector and moves its permission entries with it', () => {
    const config = after(
      `${relay}Add-ADPermission Relay -User "NT AUTHORITY\\ANONYMOUS LOGON" -ExtendedRights ms-Exch-SMTP-Accept-Any-Recipient\nSet-ReceiveConnector Relay -Name "Printer Relay"`,
    );
    expect(config.ReceiveConnectors.map((c) => c.Name)).toContain('Printer Relay');
    expect(config.Permissions).toEqual([
      { Identity: 'Printer Relay', User: 'NT AUTHORITY\\ANONYMOUS LOGON', ExtendedRights: ['SMTP-Accept-Any-Recipient'], Deny: false },
    ]);
  });

  it('removes a connector with its permission entries', () => {
    const results = runScript(
      `${relay}Add-ADPermission Relay -User "NT AUTHORITY\\ANONYMOUS LOGON" -ExtendedRights SMTP-Accept-Any-Recipient\nRemove-ReceiveConnector Relay -Confirm:$false`,
      contoso(),
    );
    const r = last(results);
    expect(r.changed).toBe(true);
    expect(r.output.text).toBe('');
    expect(r.config.ReceiveConnectors.map((c) => c.Name)).not.toContain('Relay');
    expect(r.config.Permissions).toEqual([]);
    expect(run('Get-ReceiveConnector "Client*" | Remove-ReceiveConnector').config.ReceiveConnectors.map((c) => c.Name)).toEqual([
      'Default Frontend',
      'Default',
      'Application Relay',
    ]);
  });

  it('warns on Integrated, on removing what is absent, and on a change that changes nothing', () => {
    expect(run('Set-ReceiveConnector "Client Proxy" -AuthMechanism @{Remove="BasicAuthRequireTLS"}').warnings).toEqual([
      'Client Proxy: Integrated (NTLM/Kerberos) is accepted for compatibility but Transit does not offer NTLM or Kerberos; clients must use BasicAuth over TLS',
    ]);
    expect(run('Set-ReceiveConnector Default -Bindings @{Remove="0.0.0.0:9"}').warnings).toEqual([
      'Set-ReceiveConnector -Bindings: 0.0.0.0:9 was not there to remove',
      'Set-ReceiveConnector: the command completed but no settings of Default were modified',
    ]);
    expect(run('Set-ReceiveConnector Default -Bindings @{Remove="0.0.0.0:9"}').changed).toBe(false);
  });

  it.each([
    [
      'several connectors by one wildcard identity',
      'Set-ReceiveConnector "*Frontend" -Enabled $false',
      "Set-ReceiveConnector: the operation couldn't be performed because '*Frontend' matches multiple entries",
    ],
    [
      '-Auth, ambiguous as in Exchange',
      'Set-ReceiveConnector Default -Auth Tls',
      'Set-ReceiveConnector: parameter -Auth is ambiguous (-AuthMechanism, -AuthTarpitInterval)',
    ],
    ['an ambiguous prefix', 'Set-ReceiveConnector Default -Max 5', /^Set-ReceiveConnector: parameter -Max is ambiguous \(-MaxMessageSize, -MaxHeaderSize, /],
    [
      'a hashtable key other than Add/Remove',
      'Set-ReceiveConnector Default -Bindings @{Replace="0.0.0.0:26"}',
      'Set-ReceiveConnector: -Bindings @{Replace=…} is not valid: a hashtable takes only Add and Remove',
    ],
    ['a list for a single value', 'Set-ReceiveConnector Default -Fqdn a,b', 'Set-ReceiveConnector: -Fqdn a,b is not valid: expected a single value'],
    [
      '-Identity with pipeline input',
      'Get-ReceiveConnector Default | Set-ReceiveConnector Default -Enabled $false',
      'Set-ReceiveConnector: give either -Identity or pipeline input, not both',
    ],
    ['no identity', 'Set-ReceiveConnector -Enabled $false', 'Set-ReceiveConnector: -Identity is required'],
    [
      'what looks like the next command',
      'Set-ReceiveConnector Default -Enabled $false Get-ReceiveConnector',
      /accepts argument 'Get-ReceiveConnector' \(it looks like the next command/,
    ],
    [
      'a rename onto an existing name',
      'Set-ReceiveConnector "Client Proxy" -Name Default',
      /nothing was changed: .*\n {2}ReceiveConnectors\.3 \(Default\)\.Name: duplicate connector name Default/,
    ],
    ['a line limit above RFC 5321’s', 'Set-ReceiveConnector Default -MaxLineLength 1001', /ReceiveConnectors\.3 \(Default\)\.MaxLineLength: Too big/],
    ['an unknown bare line feed handling', 'Set-ReceiveConnector Default -BareLineFeedHandling Strip', /-BareLineFeedHandling Strip is not valid/],
    [
      'an invalid combination',
      'Set-ReceiveConnector Default -AuthMechanism None,Tls',
      /ReceiveConnectors\.3 \(Default\)\.AuthMechanism: None cannot be combined with other mechanisms/,
    ],
    [
      'a removal of something absent',
      'Remove-ReceiveConnector Relay',
      /^Remove-ReceiveConnector: the operation couldn't be performed because object 'Relay' couldn't be found/,
    ],
  ])('refuses %s', (_name, line, message) => {
    expect(() => run(line)).toThrow(message);
  });
});

describe('Add-ADPermission, Remove-ADPermission, Get-ADPermission', () => {
  const anon = 'NT AUTHORITY\\ANONYMOUS LOGON';

  it.each([
    [
      'by -Identity',
      `Add-ADPermission -Identity "Application Relay" -User "${anon}" -ExtendedRights ms-Exch-SMTP-Submit`,
      [{ Identity: 'Application Relay', User: anon, ExtendedRights: ['SMTP-Submit'], Deny: false }],
    ],
    [
      'positional identity, bare right names in any case',
      `Add-ADPermission "Client Frontend" -User relay1 -ExtendedRights smtp-submit,SMTP-ACCEPT-ANY-SENDER`,
      [{ Identity: 'Client Frontend', User: 'CONTOSO\\relay1', ExtendedRights: ['SMTP-Submit', 'SMTP-Accept-Any-Sender'], Deny: false }],
    ],
    [
      'a UPN names the account',
      `Add-ADPermission "Client Frontend" -User relay1@contoso.test -ExtendedRights ms-Exch-Bypass-Anti-Spam`,
      [{ Identity: 'Client Frontend', User: 'CONTOSO\\relay1', ExtendedRights: ['Bypass-Anti-Spam'], Deny: false }],
    ],
    [
      'a deny',
      `Add-ADPermission "Default Frontend" -User "${anon}" -ExtendedRights ms-Exch-SMTP-Accept-Any-Sender -Deny`,
      [{ Identity: 'Default Frontend', User: anon, ExtendedRights: ['SMTP-Accept-Any-Sender'], Deny: true }],
    ],
    [
      'a second grant merges into the entry',
      `Add-ADPermission "Client Proxy" -User "contoso\\relay accounts" -ExtendedRights ms-Exch-SMTP-Submit\nAdd-ADPermission "Client Proxy" -User "CONTOSO\\Relay Accounts" -ExtendedRights ms-Exch-SMTP-Submit,ms-Exch-SMTP-Accept-Any-Recipient`,
      [{ Identity: 'Client Proxy', User: 'CONTOSO\\Relay Accounts', ExtendedRights: ['SMTP-Submit', 'SMTP-Accept-Any-Recipient'], Deny: false }],
    ],
    [
      'from New-ReceiveConnector through the pipeline',
      `New-ReceiveConnector Relay -Custom -Bindings 0.0.0.0:25 -RemoteIPRanges 10.0.0.5 -PermissionGroups AnonymousUsers | Add-ADPermission -User "${anon}" -ExtendedRights ms-Exch-SMTP-Accept-Any-Recipient`,
      [{ Identity: 'Relay', User: anon, ExtendedRights: ['SMTP-Accept-Any-Recipient'], Deny: false }],
    ],
    [
      'Remove-ADPermission takes away one right and drops an emptied entry',
      `Add-ADPermission "Client Proxy" -User relay1 -ExtendedRights ms-Exch-SMTP-Submit,ms-Exch-SMTP-Accept-Any-Sender\nAdd-ADPermission "Default" -User relay1 -ExtendedRights ms-Exch-SMTP-Submit\nGet-ReceiveConnector "Client Proxy" | Remove-ADPermission -User CONTOSO\\relay1 -ExtendedRights ms-Exch-SMTP-Submit -Confirm:$false\nRemove-ADPermission Default -User relay1 -ExtendedRights ms-Exch-SMTP-Submit`,
      [{ Identity: 'Client Proxy', User: 'CONTOSO\\relay1', ExtendedRights: ['SMTP-Accept-Any-Sender'], Deny: false }],
    ],
  ])('%s', (_name, script, permissions) => {
    expect(after(script).Permissions).toEqual(permissions);
  });

  it('lists the rights a connector’s permission groups imply, then its entries', () => {
    const config = after(`Add-ADPermission "Client Frontend" -User relay1 -ExtendedRights ms-Exch-SMTP-Accept-Any-Sender`);
    const r = run('Get-ADPermission "Client Frontend"', config);
    expect(r.output.text.split('\n')).toEqual([
      'Identity        User                             Deny  Inherited Rights',
      '--------        ----                             ----  --------- ------',
      'Client Frontend NT AUTHORITY\\Authenticated Users False False     ms-Exch-Accept-Headers-Routing',
      'Client Frontend NT AUTHORITY\\Authenticated Users False False     ms-Exch-Bypass-Anti-Spam',
      'Client Frontend NT AUTHORITY\\Authenticated Users False False     ms-Exch-SMTP-Accept-Any-Recipient',
      'Client Frontend NT AUTHORITY\\Authenticated Users False False     ms-Exch-SMTP-Submit',
      'Client Frontend CONTOSO\\relay1                   False False     ms-Exch-SMTP-Accept-Any-Sender',
    ]);
    expect(r.output.objects.at(-1)).toEqual({
      Identity: 'Client Frontend',
      User: 'CONTOSO\\relay1',
      Deny: false,
      Inherited: false,
      Rights: 'ms-Exch-SMTP-Accept-Any-Sender',
      Source: 'Add-ADPermission',
    });
    expect(r.output.objects[0]).toMatchObject({ Source: 'PermissionGroups ExchangeUsers' });
  });

  it.each([
    ['-User filters by principal', `Get-ADPermission "Default Frontend" -User "nt authority\\anonymous logon"`, 4],
    ['piped, all matching connectors', 'Get-ReceiveConnector "*Frontend" | Get-ADPermission -User "MS Exchange\\Externally Secured Servers"', 9],
    ['a Custom-only connector has none', 'Get-ADPermission "Default Frontend" -User relay1', 0],
  ])('Get-ADPermission %s', (_name, line, count) => {
    expect(run(line).output.objects).toHaveLength(count);
  });

  it('says when a grant is already there', () => {
    const config = after(`Add-ADPermission Default -User relay1 -ExtendedRights ms-Exch-SMTP-Submit`);
    const r = run('Add-ADPermission Default -User CONTOSO\\relay1 -ExtendedRights SMTP-Submit', config);
    expect(r.changed).toBe(false);
    expect(r.warnings).toEqual(['Add-ADPermission: CONTOSO\\relay1 already has ms-Exch-SMTP-Submit on Default']);
  });

  it.each([
    [
      'an unknown principal',
      'Add-ADPermission Default -User ghost -ExtendedRights ms-Exch-SMTP-Submit',
      /^Add-ADPermission: user or group "ghost" wasn't found; make sure you typed it correctly/,
    ],
    [
      'another domain’s account',
      'Add-ADPermission Default -User FABRIKAM\\relay1 -ExtendedRights ms-Exch-SMTP-Submit',
      /user or group "FABRIKAM\\relay1" wasn't found/,
    ],
    [
      'an unknown right',
      'Add-ADPermission Default -User relay1 -ExtendedRights ms-Exch-SMTP-Accept-XShadow',
      /^Add-ADPermission: -ExtendedRights ms-Exch-SMTP-Accept-XShadow is not an extended right Transit knows \(known: ms-Exch-SMTP-Submit, /,
    ],
    ['no rights', 'Add-ADPermission Default -User relay1', 'Add-ADPermission: -ExtendedRights is required'],
    ['no connector', 'Add-ADPermission -User relay1 -ExtendedRights ms-Exch-SMTP-Submit', 'Add-ADPermission: -Identity is required'],
    [
      'an unsupported parameter (-AccessRights)',
      'Add-ADPermission Default -User relay1 -AccessRights ExtendedRight',
      /^Add-ADPermission: parameter -AccessRights is not supported/,
    ],
    [
      'removing a right that comes from a permission group',
      'Remove-ADPermission "Client Frontend" -User "NT AUTHORITY\\Authenticated Users" -ExtendedRights ms-Exch-SMTP-Submit',
      'Remove-ADPermission: no Add-ADPermission entry on Client Frontend grants ms-Exch-SMTP-Submit to NT AUTHORITY\\Authenticated Users; ms-Exch-SMTP-Submit comes from PermissionGroups ExchangeUsers on Client Frontend: change its -PermissionGroups instead',
    ],
    [
      'removing what was never granted',
      'Remove-ADPermission Default -User relay1 -ExtendedRights ms-Exch-SMTP-Submit -Deny',
      'Remove-ADPermission: no Add-ADPermission entry on Default denies ms-Exch-SMTP-Submit to CONTOSO\\relay1',
    ],
  ])('refuses %s', (_name, line, message) => {
    expect(() => run(line)).toThrow(message);
  });
});

describe('accepted domains', () => {
  it('lists them as Exchange does, identity falling back to the domain name', () => {
    expect(run('Get-AcceptedDomain').output.text).toBe(
      'Name         DomainName   DomainType    Default\n----         ----------   ----------    -------\ncontoso.test contoso.test Authoritative True',
    );
  });

  it('creates, re-types, makes default and removes', () => {
    const results = runScript(
      `New-AcceptedDomain -Name Fabrikam -DomainName fabrikam.test -DomainType InternalRelay
Set-AcceptedDomain Fabrikam -DomainType externalrelay -MakeDefault $true
Get-AcceptedDomain fabrikam.test | Format-List
Remove-AcceptedDomain contoso.test`,
      contoso(),
    );
    expect(results[0]!.output.objects).toEqual([{ Name: 'Fabrikam', DomainName: 'fabrikam.test', DomainType: 'InternalRelay', Default: false }]);
    expect(results[2]!.output.text).toBe('Name       : Fabrikam\nDomainName : fabrikam.test\nDomainType : ExternalRelay\nDefault    : True');
    expect(last(results).config.AcceptedDomains).toEqual([{ Name: 'Fabrikam', DomainName: 'fabrikam.test', DomainType: 'ExternalRelay', Default: true }]);
  });

  it.each([
    ['removing the default', 'Remove-AcceptedDomain contoso.test', /is the default accepted domain; make another domain the default first/],
    [
      'a duplicate',
      'New-AcceptedDomain Contoso2 -DomainName CONTOSO.test',
      'New-AcceptedDomain: an accepted domain contoso.test (contoso.test) already exists',
    ],
    [
      'a bad domain type',
      'New-AcceptedDomain F -DomainName f.test -DomainType Relay',
      /-DomainType Relay is not valid: expected one of Authoritative, InternalRelay, ExternalRelay/,
    ],
    ['a bad domain name', 'New-AcceptedDomain F -DomainName "not a domain"', /AcceptedDomains\.1 \(F\)\.DomainName: expected a domain/],
    ['un-defaulting', 'Set-AcceptedDomain contoso.test -MakeDefault $false', /-MakeDefault \$false is not valid/],
    ['an unknown domain', 'Get-AcceptedDomain nope.test', /object 'nope.test' couldn't be found \(accepted domains: contoso.test\)/],
  ])('refuses %s', (_name, line, message) => {
    expect(() => run(line)).toThrow(message);
  });
});

describe('send connectors', () => {
  it('lists them', () => {
    expect(run('Get-SendConnector').output.text).toBe('Identity AddressSpaces Enabled\n-------- ------------- -------\nInternet {SMTP:*;1}    True');
  });

  it('creates a smart-host connector, turning DNS routing off and ignoring SourceTransportServers', () => {
    const r = run(
      'New-SendConnector -Name "To Partner" -Internet -AddressSpaces "partner.test;5" -SmartHosts mx1.partner.test,10.9.9.9 -Port 587 -MaxMessageSize 20MB -SourceTransportServers EXCH01,EXCH02',
    );
    expect(r.config.SendConnectors[1]).toEqual({
      Name: 'To Partner',
      AddressSpaces: ['partner.test;5'],
      DNSRoutingEnabled: false,
      SmartHosts: ['mx1.partner.test', '10.9.9.9'],
      Port: 587,
      MaxMessageSize: 20_971_520,
      ProtocolLoggingLevel: 'None',
      Enabled: true,
      RequireTLS: false,
      SmartHostAuthMechanism: 'None',
    });
    expect(r.warnings).toEqual([
      'New-SendConnector: -SourceTransportServers is ignored: every Transit HubTransport node sends through every send connector',
      'To Partner: DNSRoutingEnabled set to $false, so mail goes to the smart hosts mx1.partner.test, 10.9.9.9',
    ]);
    expect(r.output.text).toBe('Identity   AddressSpaces    Enabled\n--------   -------------    -------\nTo Partner {partner.test;5} True');
  });

  it('sets the TLS a connector requires of its next hop', () => {
    const r = run('Set-SendConnector Internet -RequireTLS $true -TlsAuthLevel DomainValidation -TlsDomain mail.fabrikam.test');
    expect(r.config.SendConnectors[0]).toMatchObject({ RequireTLS: true, TlsAuthLevel: 'DomainValidation', TlsDomain: 'mail.fabrikam.test' });
  });

  it('sets how long a connection may idle and how many messages it carries', () => {
    const r = run('Set-SendConnector Internet -ConnectionInactivityTimeOut 00:05:00 -SmtpMaxMessagesPerConnection 50');
    expect(r.config.SendConnectors[0]).toMatchObject({ ConnectionInactivityTimeOut: 300, SmtpMaxMessagesPerConnection: 50 });
    expect(() => run('Set-SendConnector Internet -ConnectionInactivityTimeOut 2.00:00:00')).toThrow(/ConnectionInactivityTimeOut/);
    expect(() => run('Set-SendConnector Internet -SmtpMaxMessagesPerConnection 0')).toThrow(/SmtpMaxMessagesPerConnection/);
  });

  it('edits and removes', () => {
    const results = runScript(
      `Set-SendConnector Internet -AddressSpaces @{Add="*.contoso.test;10"} -Fqdn mail.contoso.test -Enabled $false
Get-SendConnector Internet | Set-SendConnector -Port 2525
New-SendConnector Spare -AddressSpaces * -Usage Custom
Get-SendConnector Spare | Remove-SendConnector`,
      contoso(),
    );
    expect(results[1]!.config.SendConnectors).toEqual([
      {
        Name: 'Internet',
        AddressSpaces: ['SMTP:*;1', '*.contoso.test;10'],
        DNSRoutingEnabled: true,
        SmartHosts: [],
        Port: 2525,
        Fqdn: 'mail.contoso.test',
        MaxMessageSize: 37_748_736,
        ProtocolLoggingLevel: 'None',
        Enabled: false,
        RequireTLS: false,
        SmartHostAuthMechanism: 'None',
      },
    ]);
    expect(last(results).config.SendConnectors.map((c) => c.Name)).toEqual(['Internet']);
  });

  it.each([
    ['no address spaces', 'New-SendConnector Spare', /-AddressSpaces is required/],
    [
      'DNS routing off without smart hosts',
      'Set-SendConnector Internet -DNSRoutingEnabled $false',
      /SendConnectors\.0 \(Internet\)\.SmartHosts: a connector without DNS routing needs at least one smart host/,
    ],
    ['an unknown connector', 'Remove-SendConnector Outbound', /object 'Outbound' couldn't be found \(send connectors: Internet\)/],
    [
      'a credential on a shell line (the password would be stored)',
      'Set-SendConnector Internet -AuthenticationCredential "relay:secret"',
      /-AuthenticationCredential is not taken from a shell line .*PasswordFile/,
    ],
    [
      'BasicAuth without a credential',
      'Set-SendConnector Internet -SmartHosts relay.partner.test -SmartHostAuthMechanism BasicAuth',
      /SendConnectors\.0 \(Internet\)\.AuthenticationCredential: BasicAuth needs AuthenticationCredential/,
    ],
    [
      'a TLS authentication level without RequireTLS',
      'Set-SendConnector Internet -TlsAuthLevel CertificateValidation',
      /SendConnectors\.0 \(Internet\)\.TlsAuthLevel: TlsAuthLevel can only be set when RequireTLS is true/,
    ],
  ])('refuses %s', (_name, line, message) => {
    expect(() => run(line)).toThrow(message);
  });
});

describe('lines and pipelines', () => {
  it.each([
    [
      'an unknown cmdlet',
      'New-TransportRule -Name x',
      /^New-TransportRule is not supported by transitctl ems \(supported: Get-ReceiveConnector, New-ReceiveConnector, .*, Format-List, Format-Table\)$/,
    ],
    ['a formatter first', 'fl', 'fl formats the output of a pipeline, so it must come last, after a Get- cmdlet'],
    ['a formatter in the middle', 'Get-ReceiveConnector | fl | Set-ReceiveConnector -Enabled $false', /Format-List|fl formats the output/],
    [
      'objects of the wrong kind',
      'Get-AcceptedDomain | Set-ReceiveConnector -Enabled $false',
      'Get-AcceptedDomain writes AcceptedDomain objects, but Set-ReceiveConnector takes ReceiveConnector objects from the pipeline',
    ],
    ['a cmdlet that takes no input', 'Get-ReceiveConnector | Get-SendConnector', 'Get-SendConnector does not take pipeline input; give it -Identity instead'],
    [
      'a Set piped onwards',
      'Set-ReceiveConnector Default -Enabled $false | Get-ADPermission',
      'Set-ReceiveConnector writes no objects, but Get-ADPermission takes ReceiveConnector objects from the pipeline',
    ],
    [
      'a mangled line that is still wrong',
      'Get - ReceiveConnector "default frontend*" | Add - ADPermission - User ghost - ExtendedRights ms - Exch - SMTP - Submit',
      /user or group "ghost" wasn't found.*\n {2}\(read as: Get-ReceiveConnector "default frontend\*" \| Add-ADPermission -User ghost -ExtendedRights ms-Exch-SMTP-Submit\)/,
    ],
  ])('refuses %s', (_name, line, message) => {
    expect(() => run(line)).toThrow(EmsError);
    expect(() => run(line)).toThrow(message);
  });

  it('never modifies the configuration it is given', () => {
    const input = deepFreeze(contoso());
    const snapshot = structuredClone(input);
    const lines = [
      'New-ReceiveConnector Relay -Custom -Bindings 0.0.0.0:25 -RemoteIPRanges 10.0.0.5 -PermissionGroups AnonymousUsers',
      'Set-ReceiveConnector "Default Frontend" -Name "Internet Frontend" -RemoteIPRanges @{Add="10.0.0.0/8"} -MaxMessageSize 10MB',
      'Get-ReceiveConnector "client proxy" | Add-ADPermission -User "contoso\\relay accounts" -ExtendedRights ms-Exch-SMTP-Submit',
      'Remove-ReceiveConnector Default',
      'New-AcceptedDomain F -DomainName f.test',
      'Set-AcceptedDomain contoso.test -DomainType InternalRelay',
      'Set-SendConnector Internet -AddressSpaces @{Add="x.test"}',
      'Remove-SendConnector Internet',
    ];
    for (const line of lines) {
      const r = runEmsLine(line, input);
      expect(r.changed, line).toBe(true);
      expect(r.config).not.toBe(input);
    }
    expect(input).toEqual(snapshot);
  });

  it('applies nothing of a line whose later stage fails', () => {
    const input = contoso();
    expect(() =>
      runEmsLine(
        'New-ReceiveConnector Relay -Custom -Bindings 0.0.0.0:25 -RemoteIPRanges 10.0.0.5 | Add-ADPermission -User ghost -ExtendedRights ms-Exch-SMTP-Submit',
        input,
      ),
    ).toThrow(/"ghost" wasn't found/);
    expect(() => runEmsLine('Get-ReceiveConnector * | Set-ReceiveConnector -MaxMessageSize 1KB', input)).toThrow(/MaxMessageSize: Too small/);
    expect(input.ReceiveConnectors.map((c) => c.Name)).not.toContain('Relay');
    expect(input.ReceiveConnectors.every((c) => c.MaxMessageSize === 37_748_736)).toBe(true);
  });

  it('offers every schema property as a parameter', () => {
    expect(Object.keys(RECEIVE_CONNECTOR_PROPERTIES).sort()).toEqual(Object.keys(receiveConnectorSchema.out.shape).sort());
    // AuthenticationCredential only from the organisation file: a shell line would put the password in the configuration.
    expect(Object.keys(SEND_CONNECTOR_PROPERTIES).sort()).toEqual(
      Object.keys(sendConnectorSchema.shape)
        .filter((k) => k !== 'AuthenticationCredential')
        .sort(),
    );
  });
});
