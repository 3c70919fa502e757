import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { ConfigError, parseOrganizationConfig, parseOrganizationYaml } from './index.ts';

const minimal = {
  Organization: { Name: 'T' },
  AcceptedDomains: [{ DomainName: 'contoso.test', Default: true }],
};

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
    ['ExternalAuthoritative without ExchangeServers', connector({ AuthMechanism: ['ExternalAuthoritative'], PermissionGroups: ['AnonymousUsers'] }), /requires PermissionGroups/],
    ['a bad binding', connector({ Bindings: ['25'] }), /Bindings\.0: expected IPv4:port/],
    ['a banner without 220', connector({ Banner: 'hello' }), /Banner must start/],
    ['no default domain', { ...minimal, AcceptedDomains: [{ DomainName: 'a.test' }] }, /exactly one accepted domain must be Default \(found 0\)/],
    ['an address used twice', { ...minimal, Mailboxes: [{ Name: 'A', PrimarySmtpAddress: 'a@contoso.test' }, { Name: 'B', PrimarySmtpAddress: 'x@contoso.test', EmailAddresses: ['A@contoso.test'] }] }, /A@contoso.test of B is already used by A/],
    ['a smart-host connector without hosts', { ...minimal, SendConnectors: [{ Name: 'S', AddressSpaces: ['*'], DNSRoutingEnabled: false }] }, /SmartHosts: a connector without DNS routing/],
  ])('refuses %s, naming the field', (_name, doc, message) => {
    expect(() => parseOrganizationConfig(doc)).toThrow(ConfigError);
    expect(() => parseOrganizationConfig(doc)).toThrow(message);
  });

  it('reports YAML syntax errors as configuration errors', () => {
    expect(() => parseOrganizationYaml('a: [', 'x.yaml')).toThrow(/x.yaml is not valid YAML/);
  });
});
