import { parseOrganizationConfig } from '@transit/config';
import type { Envelope } from '@transit/envelope';
import { Directory } from '@transit/policy';
import { describe, expect, it } from 'vitest';
import { categorize } from './categorize.ts';

const config = parseOrganizationConfig({
  Organization: { Name: 'C' },
  AcceptedDomains: [{ DomainName: 'contoso.test', Default: true }],
  Mailboxes: [
    { Name: 'A', PrimarySmtpAddress: 'alice@contoso.test', EmailAddresses: ['alice.smith@contoso.test'] },
    { Name: 'B', PrimarySmtpAddress: 'bob@contoso.test', Database: 'DB02' },
  ],
  SendConnectors: [
    { Name: 'Internet', AddressSpaces: ['*'] },
    { Name: 'Partner', AddressSpaces: ['partner.test'], DNSRoutingEnabled: false, SmartHosts: ['10.0.0.5:2525'] },
  ],
});
const envelope = (...to: string[]): Envelope => ({
  v: 1,
  id: 'ID1',
  messageId: '<m@x>',
  receivedAt: 0,
  sender: 'x@example.org',
  recipients: to.map((address) => ({ address })),
  origin: { kind: 'smtp', serverHost: 'n' },
  body: { kind: 'inline', data: new Uint8Array() },
  size: 0,
});

describe('categorize', () => {
  it('splits recipients by next hop and resolves aliases to the primary address once', () => {
    const r = categorize(
      config,
      new Directory(config.Mailboxes),
      envelope(
        'alice.smith@contoso.test',
        'alice@contoso.test',
        'bob@contoso.test',
        'a@example.net',
        'b@example.net',
        'c@example.org',
        'p@partner.test',
        'nobody@contoso.test',
      ),
    );
    const view = Object.fromEntries(r.groups.map((g) => [g.subject, g.recipients.map((x) => x.address)]));
    expect(view).toEqual({
      'mail.deliver.mailbox.db01': ['alice@contoso.test'],
      'mail.deliver.mailbox.db02': ['bob@contoso.test'],
      'mail.deliver.remote.internet_example_net': ['a@example.net', 'b@example.net'],
      'mail.deliver.remote.internet_example_org': ['c@example.org'],
      'mail.deliver.remote.partner_10_0_0_5_2525': ['p@partner.test'],
    });
    expect(r.groups[0]!.recipients[0]!.original).toBe('alice.smith@contoso.test');
    expect(r.groups.find((g) => g.hop.type === 'smtp' && g.hop.connector === 'Partner')!.hop).toEqual({
      type: 'smtp',
      connector: 'Partner',
      domain: 'partner.test',
      smartHosts: ['10.0.0.5:2525'],
      port: 25,
    });
    expect(r.unroutable.map((u) => [u.recipient.address, u.code])).toEqual([['nobody@contoso.test', '5.1.10']]);
    // What message tracking's RESOLVE row names: only addresses that resolved to another one.
    expect(r.resolved).toEqual([{ address: 'alice@contoso.test', original: 'alice.smith@contoso.test' }]);
  });
  it('reports recipients without any send connector as unroutable', () => {
    const bare = { ...config, SendConnectors: [] };
    expect(categorize(bare, new Directory(bare.Mailboxes), envelope('a@example.net')).unroutable[0]!.code).toBe('5.4.4');
  });
});
