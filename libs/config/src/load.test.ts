import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  retrySchedule,
  directoryOf,
  findLogon,
  groupsOf,
  hashPassword,
  parseIpRange,
  parseOrganizationConfig,
  parseOrganizationYaml,
  resolvePrincipal,
  verifyPassword,
} from './index.ts';

const minimal = {
  Organization: { Name: 'T' },
  AcceptedDomains: [{ DomainName: 'contoso.test', Default: true }],
};

const balanced = (lb: Record<string, unknown>, more: Record<string, unknown>[] = []) => ({
  ...connector({}),
  LoadBalancers: [{ Name: 'haproxy', Bindings: ['0.0.0.0:25'], RemoteIPRanges: ['10.0.0.0/24'], ...lb }, ...more],
});

const connector = (over: Record<string, unknown>) => ({
  ...minimal,
  ReceiveConnectors: [{ Name: 'C', TransportRole: 'FrontendTransport', Bindings: ['0.0.0.0:25'], ...over }],
});

describe('organisation configuration', () => {
  it('loads the example organisation with Exchange defaults filled in', async () => {
    const cfg = parseOrganizationYaml(await readFile(new URL('../../../config/examples/contoso.yaml', import.meta.url), 'utf8'));
    expect(cfg.AcceptedDomains[0]).toEqual({ DomainName: 'contoso.test', DomainType: 'Authoritative', Default: true });
    expect(cfg.Mailboxes.map((m) => m.PrimarySmtpAddress)).toEqual(['alice@contoso.test', 'bob@contoso.test']);
    const df = cfg.ReceiveConnectors.find((c) => c.Name === 'Default Frontend')!;
    expect(df.MaxMessageSize).toBe(37_748_736);
    expect(df.MaxRecipientsPerMessage).toBe(200);
    expect(df.RemoteIPRanges).toHaveLength(2);
    expect(cfg.TransportSettings.InlineBodyMaxBytes).toBe(256 * 1024);
  });

  it.each([
    ['None combined', connector({ AuthMechanism: ['None', 'Tls'] }), /ReceiveConnectors\.0\.AuthMechanism: None cannot be combined/],
    ['BasicAuthRequireTLS alone', connector({ AuthMechanism: ['BasicAuthRequireTLS'] }), /requires BasicAuth and Tls/],
    [
      'ExternalAuthoritative without ExchangeServers',
      connector({ AuthMechanism: ['ExternalAuthoritative'], PermissionGroups: ['AnonymousUsers'] }),
      /requires PermissionGroups/,
    ],
    ['a bad binding', connector({ Bindings: ['25'] }), /Bindings\.0: expected IPv4:port/],
    [
      'a bad binding beside another connector',
      {
        ...minimal,
        ReceiveConnectors: [
          { Name: 'A', TransportRole: 'FrontendTransport', Bindings: ['25'] },
          { Name: 'B', TransportRole: 'FrontendTransport', Bindings: ['0.0.0.0:25', '25'] },
        ],
      },
      /ReceiveConnectors\.0\.Bindings\.0: expected IPv4:port/,
    ],
    ['a banner without 220', connector({ Banner: 'hello' }), /Banner must start/],
    ['no default domain', { ...minimal, AcceptedDomains: [{ DomainName: 'a.test' }] }, /exactly one accepted domain must be Default \(found 0\)/],
    [
      'an address used twice',
      {
        ...minimal,
        Mailboxes: [
          { Name: 'A', PrimarySmtpAddress: 'a@contoso.test' },
          { Name: 'B', PrimarySmtpAddress: 'x@contoso.test', EmailAddresses: ['A@contoso.test'] },
        ],
      },
      /A@contoso.test of B is already used by A/,
    ],
    ['an unknown field (a typo)', connector({ MaxRecipientsPerMesage: 10 }), /ReceiveConnectors\.0: Unrecognized key: "MaxRecipientsPerMesage"/],
    ['a bad remote range', connector({ RemoteIPRanges: ['10.0.0.0/33'] }), /RemoteIPRanges\.0: expected an IP address, a CIDR block/],
    [
      'ExternalAuthoritative with BasicAuth',
      connector({ AuthMechanism: ['ExternalAuthoritative', 'BasicAuth'], PermissionGroups: ['ExchangeServers'] }),
      /ExternalAuthoritative can only be combined with Tls/,
    ],
    ['RequireTLS without Tls', connector({ AuthMechanism: ['None'], RequireTLS: true }), /RequireTLS needs Tls/],
    ['a plaintext password', { ...minimal, Users: [{ Name: 'u', PasswordHash: 'secret' }] }, /PasswordHash: expected a hash/],
    [
      'an unknown extended right',
      { ...minimal, ...connector({}), Permissions: [{ Identity: 'C', User: 'NT AUTHORITY\\ANONYMOUS LOGON', ExtendedRights: ['ms-Exch-SMTP-Fly'] }] },
      /unknown extended right ms-Exch-SMTP-Fly/,
    ],
    [
      'a permission on a missing connector',
      { ...minimal, ...connector({}), Permissions: [{ Identity: 'Nope', User: 'NT AUTHORITY\\ANONYMOUS LOGON', ExtendedRights: ['ms-Exch-SMTP-Submit'] }] },
      /Permissions\.0\.Identity: no receive connector Nope/,
    ],
    [
      'a permission for a missing user',
      { ...minimal, ...connector({}), Permissions: [{ Identity: 'C', User: 'CONTOSO\\ghost', ExtendedRights: ['ms-Exch-SMTP-Submit'] }] },
      /Permissions\.0\.User: no security principal CONTOSO\\ghost/,
    ],
    [
      'a group with an unknown member',
      { ...minimal, Groups: [{ Name: 'G', Members: ['ghost'] }] },
      /Groups\.0\.Members\.0: no user, mailbox or group named ghost/,
    ],
    [
      'two connectors with the same binding and ranges',
      {
        ...minimal,
        ReceiveConnectors: [
          { Name: 'A', TransportRole: 'FrontendTransport', Bindings: ['0.0.0.0:25'] },
          { Name: 'B', TransportRole: 'FrontendTransport', Bindings: ['0.0.0.0:25'] },
        ],
      },
      /B and A have the same binding and the same RemoteIPRanges/,
    ],
    [
      'partially overlapping ranges on one binding',
      {
        ...minimal,
        ReceiveConnectors: [
          { Name: 'A', TransportRole: 'FrontendTransport', Bindings: ['0.0.0.0:25'], RemoteIPRanges: ['10.0.0.0/24'] },
          { Name: 'B', TransportRole: 'FrontendTransport', Bindings: ['0.0.0.0:25'], RemoteIPRanges: ['10.0.0.128-10.0.1.5'] },
        ],
      },
      /RemoteIPRanges of B and A partially overlap/,
    ],
    [
      'a load balancer on a binding no connector has',
      balanced({ Bindings: ['0.0.0.0:25', '0.0.0.0:2526'] }),
      /LoadBalancers\.0\.Bindings\.1: no receive connector has binding 0\.0\.0\.0:2526/,
    ],
    [
      'a load balancer on the right port but another address',
      balanced({ Bindings: ['10.0.0.1:25'] }),
      /LoadBalancers\.0\.Bindings\.0: no receive connector has binding 10\.0\.0\.1:25/,
    ],
    ['a load balancer with a bad binding', balanced({ Bindings: ['25'] }), /LoadBalancers\.0\.Bindings\.0: expected IPv4:port/],
    [
      'a load balancer with a bad range',
      balanced({ RemoteIPRanges: ['10.0.0.0/40'] }),
      /LoadBalancers\.0\.RemoteIPRanges\.0: expected an IP address, a CIDR block/,
    ],
    ['a load balancer without ranges (whom to trust must be said)', balanced({ RemoteIPRanges: undefined }), /LoadBalancers\.0\.RemoteIPRanges: /],
    ['a load balancer without bindings', balanced({ Bindings: [] }), /LoadBalancers\.0\.Bindings: /],
    ['a typo in a load balancer', balanced({ RemoteIpRanges: ['10.0.0.1'] }), /LoadBalancers\.0: Unrecognized key: "RemoteIpRanges"/],
    [
      'two load balancers with one name',
      balanced({}, [{ Name: 'HAProxy', Bindings: ['0.0.0.0:25'], RemoteIPRanges: ['10.0.1.0/24'] }]),
      /LoadBalancers\.1\.Name: duplicate load balancer name HAProxy/,
    ],
    [
      'a smart-host connector without hosts',
      { ...minimal, SendConnectors: [{ Name: 'S', AddressSpaces: ['*'], DNSRoutingEnabled: false }] },
      /SmartHosts: a connector without DNS routing/,
    ],
    [
      'a TLS authentication level without RequireTLS',
      { ...minimal, SendConnectors: [{ Name: 'S', AddressSpaces: ['*'], TlsAuthLevel: 'CertificateValidation' }] },
      /SendConnectors\.0\.TlsAuthLevel: TlsAuthLevel can only be set when RequireTLS is true/,
    ],
    [
      'a TlsDomain without DomainValidation',
      { ...minimal, SendConnectors: [{ Name: 'S', AddressSpaces: ['*'], RequireTLS: true, TlsAuthLevel: 'CertificateValidation', TlsDomain: 'contoso.com' }] },
      /SendConnectors\.0\.TlsDomain: TlsDomain can only be set when TlsAuthLevel is DomainValidation/,
    ],
    [
      'BasicAuth without smart hosts',
      {
        ...minimal,
        SendConnectors: [
          { Name: 'S', AddressSpaces: ['*'], SmartHostAuthMechanism: 'BasicAuth', AuthenticationCredential: { UserName: 'u', PasswordFile: '/run/secrets/p' } },
        ],
      },
      /SendConnectors\.0\.SmartHostAuthMechanism: BasicAuth applies to smart hosts only/,
    ],
    [
      'a credential without BasicAuth',
      {
        ...minimal,
        SendConnectors: [
          {
            Name: 'S',
            AddressSpaces: ['*'],
            SmartHosts: ['relay.test'],
            DNSRoutingEnabled: false,
            AuthenticationCredential: { UserName: 'u', PasswordFile: '/p' },
          },
        ],
      },
      /SendConnectors\.0\.AuthenticationCredential: AuthenticationCredential is used only with SmartHostAuthMechanism BasicAuth/,
    ],
    [
      'a password written into the configuration',
      {
        ...minimal,
        SendConnectors: [
          {
            Name: 'S',
            AddressSpaces: ['*'],
            SmartHosts: ['relay.test'],
            DNSRoutingEnabled: false,
            SmartHostAuthMechanism: 'BasicAuth',
            AuthenticationCredential: { UserName: 'u', Password: 'secret' },
          },
        ],
      },
      /SendConnectors\.0\.AuthenticationCredential: Unrecognized key: "Password"/,
    ],
    [
      'an unknown TLS authentication level',
      { ...minimal, SendConnectors: [{ Name: 'S', AddressSpaces: ['*'], RequireTLS: true, TlsAuthLevel: 'Strict' }] },
      /SendConnectors\.0\.TlsAuthLevel: /,
    ],
    [
      'a connection inactivity timeout of more than a day',
      { ...minimal, SendConnectors: [{ Name: 'S', AddressSpaces: ['*'], ConnectionInactivityTimeOut: '1.00:00:01' }] },
      /SendConnectors\.0\.ConnectionInactivityTimeOut: /,
    ],
  ])('refuses %s, naming the field', (_name, doc, message) => {
    expect(() => parseOrganizationConfig(doc)).toThrow(ConfigError);
    expect(() => parseOrganizationConfig(doc)).toThrow(message);
  });

  it('accepts the organisation shipped in the Kubernetes ConfigMap', async () => {
    const { parseAllDocuments } = await import('yaml');
    const text = await readFile(new URL('../../../deploy/k8s/base/transit-config.yaml', import.meta.url), 'utf8');
    const maps = parseAllDocuments(text).map((d) => d.toJS() as { data?: Record<string, string> });
    const org = maps.find((m) => m.data?.['organization.yaml'])!.data!['organization.yaml']!;
    expect(parseOrganizationYaml(org, 'deploy/k8s/base/transit-config.yaml').ReceiveConnectors.length).toBeGreaterThan(0);
  });

  it('reports YAML syntax errors as configuration errors', () => {
    expect(() => parseOrganizationYaml('a: [', 'x.yaml')).toThrow(/x.yaml is not valid YAML/);
  });

  it.each([
    ['nested ranges on one binding', ['0.0.0.0-255.255.255.255'], ['10.0.0.0/8'], ['0.0.0.0:25'], ['0.0.0.0:25']],
    ['identical ranges on different local IPs', ['10.0.0.0/8'], ['10.0.0.0/8'], ['0.0.0.0:25'], ['192.168.1.10:25']],
    ['identical ranges on different ports', ['10.0.0.0/8'], ['10.0.0.0/8'], ['0.0.0.0:25'], ['0.0.0.0:2525']],
  ])('accepts %s', (_name, ra, rb, ba, bb) => {
    const doc = {
      ...minimal,
      ReceiveConnectors: [
        { Name: 'A', TransportRole: 'FrontendTransport', Bindings: ba, RemoteIPRanges: ra },
        { Name: 'B', TransportRole: 'FrontendTransport', Bindings: bb, RemoteIPRanges: rb },
      ],
    };
    expect(parseOrganizationConfig(doc).ReceiveConnectors).toHaveLength(2);
  });

  it('accepts load balancers on connector bindings (however the address is written), none by default', () => {
    expect(parseOrganizationConfig(connector({})).LoadBalancers).toEqual([]);
    const cfg = parseOrganizationConfig({
      ...minimal,
      ReceiveConnectors: [
        { Name: 'C', TransportRole: 'FrontendTransport', Bindings: ['0.0.0.0:25', '[::]:25'] },
        { Name: 'Off', TransportRole: 'FrontendTransport', Bindings: ['0.0.0.0:26'], Enabled: false },
      ],
      LoadBalancers: [
        {
          Name: 'haproxy',
          Bindings: ['0.0.0.0:25', '[0:0::0]:25', '0.0.0.0:26'],
          RemoteIPRanges: ['10.0.0.0/24', '2001:db8::5', '10.0.1.1-10.0.1.9'],
          Comment: 'edge pair',
        },
      ],
    });
    expect(cfg.LoadBalancers).toEqual([
      {
        Name: 'haproxy',
        Bindings: ['0.0.0.0:25', '[0:0::0]:25', '0.0.0.0:26'],
        RemoteIPRanges: ['10.0.0.0/24', '2001:db8::5', '10.0.1.1-10.0.1.9'],
        Comment: 'edge pair',
      },
    ]);
  });

  it('applies Usage defaults at creation, then forgets Usage', () => {
    const cfg = parseOrganizationConfig(connector({ Usage: 'Internal' }));
    expect(cfg.ReceiveConnectors[0]!.PermissionGroups).toEqual(['ExchangeLegacyServers', 'ExchangeServers']);
    expect(cfg.ReceiveConnectors[0]!.AuthMechanism).toEqual(['Tls', 'ExchangeServer']);
    expect('Usage' in cfg.ReceiveConnectors[0]!).toBe(false);
  });

  it('defaults BareLineFeedHandling to Reject where anonymous clients can reach a connector, Normalize elsewhere', async () => {
    const cfg = parseOrganizationYaml(await readFile(new URL('../../../config/examples/contoso.yaml', import.meta.url), 'utf8'));
    const handling = Object.fromEntries(cfg.ReceiveConnectors.map((c) => [c.Name, c.BareLineFeedHandling]));
    expect(handling).toMatchObject({
      'Default Frontend': 'Reject',
      'Client Frontend': 'Normalize',
      'Outbound Proxy Frontend': 'Normalize',
      Default: 'Normalize',
      'Client Proxy': 'Normalize',
      'Application Relay': 'Normalize',
    });
    expect(cfg.ReceiveConnectors.every((c) => c.MaxLineLength === 1000)).toBe(true);
  });

  it.each<[string, Record<string, unknown>, 'Reject' | 'Normalize']>([
    ['anonymous, like Default Frontend', { PermissionGroups: ['AnonymousUsers', 'ExchangeLegacyServers', 'ExchangeServers'] }, 'Reject'],
    ['Usage Internet', { Usage: 'Internet' }, 'Reject'],
    ['only ExchangeServers', { PermissionGroups: ['ExchangeServers'] }, 'Normalize'],
    ['no PermissionGroups (None)', {}, 'Normalize'],
    ['Usage Client', { Usage: 'Client' }, 'Normalize'],
    ['explicit Normalize on an anonymous connector', { PermissionGroups: ['AnonymousUsers'], BareLineFeedHandling: 'Normalize' }, 'Normalize'],
    ['explicit Reject on a server connector', { PermissionGroups: ['ExchangeServers'], BareLineFeedHandling: 'Reject' }, 'Reject'],
  ])('BareLineFeedHandling: %s', (_name, over, expected) => {
    expect(parseOrganizationConfig(connector(over)).ReceiveConnectors[0]!.BareLineFeedHandling).toBe(expected);
  });

  it.each([
    ['MaxLineLength above 1000', { MaxLineLength: 1001 }, /ReceiveConnectors\.0\.MaxLineLength: Too big/],
    ['MaxLineLength below 80', { MaxLineLength: 79 }, /ReceiveConnectors\.0\.MaxLineLength: Too small/],
    ['MaxLineLength not a whole number', { MaxLineLength: 500.5 }, /ReceiveConnectors\.0\.MaxLineLength/],
    [
      'an unknown BareLineFeedHandling',
      { BareLineFeedHandling: 'Strip' },
      /ReceiveConnectors\.0\.BareLineFeedHandling: Invalid option: expected one of "Reject"\|"Normalize"/,
    ],
  ])('refuses %s', (_name, over, message) => {
    expect(() => parseOrganizationConfig(connector(over))).toThrow(message);
  });

  it('keeps the content guard settings through export and apply (JSON and YAML)', async () => {
    const { stringify } = await import('yaml');
    const cfg = parseOrganizationConfig(connector({ PermissionGroups: ['AnonymousUsers'], BareLineFeedHandling: 'Normalize', MaxLineLength: 80 }));
    const again = parseOrganizationYaml(stringify(cfg));
    expect(parseOrganizationConfig(JSON.parse(JSON.stringify(cfg)))).toEqual(cfg);
    expect(again).toEqual(cfg);
    expect(again.ReceiveConnectors[0]).toMatchObject({ BareLineFeedHandling: 'Normalize', MaxLineLength: 80 });
  });

  it('reads Exchange time spans and sizes', () => {
    const c = parseOrganizationConfig(
      connector({
        ConnectionTimeout: '00:10:00',
        ConnectionInactivityTimeout: '00:05:00',
        TarpitInterval: '00:00:00',
        MaxMessageSize: '36 MB (37,748,736 bytes)',
        MaxHeaderSize: '64KB',
      }),
    ).ReceiveConnectors[0]!;
    expect([c.ConnectionTimeout, c.ConnectionInactivityTimeout, c.TarpitInterval, c.MaxMessageSize, c.MaxHeaderSize]).toEqual([
      600, 300, 0, 37_748_736, 65_536,
    ]);
  });
});

describe('retry schedule', () => {
  it("follows Exchange's intervals by default, and an explicit schedule when given", () => {
    const ts = parseOrganizationConfig(minimal).TransportSettings;
    expect(retrySchedule(ts)).toEqual([60, 60, 60, 60, 300, 300, 300, 300, 300, 300, 600]);
    const tuned = parseOrganizationConfig({
      ...minimal,
      TransportSettings: {
        GlitchRetryCount: 1,
        GlitchRetryInterval: '00:00:30',
        TransientFailureRetryCount: 2,
        TransientFailureRetryInterval: '00:02:00',
        OutboundConnectionFailureRetryInterval: '00:15:00',
      },
    }).TransportSettings;
    expect(retrySchedule(tuned)).toEqual([30, 120, 120, 900]);
    expect(retrySchedule(parseOrganizationConfig({ ...minimal, TransportSettings: { TransientRetrySchedule: [1] } }).TransportSettings)).toEqual([1]);
  });
});

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

describe('directory', () => {
  const cfg = parseOrganizationConfig({
    ...minimal,
    Mailboxes: [{ Name: 'Alice', PrimarySmtpAddress: 'alice@contoso.test', UserPrincipalName: 'alice@corp.contoso.test', SamAccountName: 'asmith' }],
    Users: [{ Name: 'Office Relay', SamAccountName: 'relay-office1' }],
    Groups: [
      { Name: 'Relay Accounts', Members: ['Office Relay', 'Inner'] },
      { Name: 'Inner', Members: ['CONTOSO\\asmith', 'Relay Accounts'] },
    ],
  });
  const dir = directoryOf(cfg);
  it.each([
    ['alice@corp.contoso.test', 'Alice'], // UPN
    ['CONTOSO\\asmith', 'Alice'], // DOMAIN\user
    ['contoso\\ASMITH', 'Alice'],
    ['alice@contoso.test', 'Alice'], // primary SMTP address
    ['CONTOSO\\relay-office1', 'Office Relay'],
    ['relay-office1', 'Office Relay'],
    ['FABRIKAM\\asmith', undefined], // another domain
    ['nobody', undefined],
  ])('finds the logon %s as %s', (login, name) => {
    expect(findLogon(dir, login)?.Name).toBe(name);
  });
  it('resolves principals and nested group membership without looping', () => {
    expect(resolvePrincipal(dir, 'nt authority\\anonymous logon')).toEqual({ kind: 'well-known', name: 'NT AUTHORITY\\ANONYMOUS LOGON' });
    expect(resolvePrincipal(dir, 'CONTOSO\\Relay Accounts')?.kind).toBe('group');
    expect(
      groupsOf(dir, findLogon(dir, 'asmith')!)
        .map((g) => g.Name)
        .sort(),
    ).toEqual(['Inner', 'Relay Accounts']);
  });
});

describe('credentials', () => {
  it('stores a salted scrypt hash and verifies only the right password', async () => {
    const cost = { N: 1024, r: 8, p: 1 };
    const a = await hashPassword('correct horse', cost);
    const b = await hashPassword('correct horse', cost);
    expect(a).toMatch(/^\$scrypt\$N=1024,r=8,p=1\$/);
    expect(a).not.toBe(b); // salted
    expect(a).not.toContain('correct horse');
    expect(await verifyPassword('correct horse', a)).toBe(true);
    expect(await verifyPassword('correct horsE', a)).toBe(false);
    expect(await verifyPassword('correct horse', 'garbage')).toBe(false);
  });
});
