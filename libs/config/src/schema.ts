/**
 * The organisation's transport configuration, in Exchange's own vocabulary so an
 * administrator recognises every name (ReceiveConnector, AcceptedDomain, PermissionGroups).
 * The zod schemas are the single source of truth: types, defaults and validation messages
 * all come from here. Defaults are Exchange's cmdlet defaults (../shared/EXCHANGE.md §2).
 */
import { z } from 'zod';

export const AUTH_MECHANISMS = ['None', 'Tls', 'Integrated', 'BasicAuth', 'BasicAuthRequireTLS', 'ExchangeServer', 'ExternalAuthoritative'] as const;
export type AuthMechanism = (typeof AUTH_MECHANISMS)[number];

export const PERMISSION_GROUPS = ['None', 'AnonymousUsers', 'ExchangeUsers', 'ExchangeServers', 'ExchangeLegacyServers', 'Partners', 'Custom'] as const;
export type PermissionGroup = (typeof PERMISSION_GROUPS)[number];

const MB = 1024 * 1024;

const bindingPattern = /^(\d{1,3}(\.\d{1,3}){3}|\[[0-9a-fA-F:.]+\]):\d{1,5}$/;

export const receiveConnectorSchema = z
  .object({
    Name: z.string().min(1),
    TransportRole: z.enum(['FrontendTransport', 'HubTransport']),
    Bindings: z.array(z.string().regex(bindingPattern, 'expected IPv4:port or [IPv6]:port')).min(1),
    RemoteIPRanges: z.array(z.string().min(1)).min(1).default(['0.0.0.0-255.255.255.255', '::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff']),
    AuthMechanism: z.array(z.enum(AUTH_MECHANISMS)).min(1).default(['Tls']),
    PermissionGroups: z.array(z.enum(PERMISSION_GROUPS)).min(1).default(['None']),
    Fqdn: z.string().optional(),
    Banner: z.string().regex(/^220 /, 'Banner must start with "220 "').optional(),
    MaxMessageSize: z.number().int().min(64 * 1024).max(2048 * MB).default(36 * MB),
    MaxHeaderSize: z.number().int().min(1).max(2048 * 1024).default(256 * 1024),
    MaxRecipientsPerMessage: z.number().int().min(1).max(512_000).default(200),
    MaxInboundConnection: z.number().int().min(1).default(5000),
    ConnectionTimeout: z.number().int().min(1).default(600),
    ConnectionInactivityTimeout: z.number().int().min(1).default(300),
    /** Transit extension: pause before the 220 greeting to catch early talkers (ms). Exchange has none. */
    GreetingDelay: z.number().int().min(0).max(30_000).default(0),
    ProtocolLoggingLevel: z.enum(['None', 'Verbose']).default('None'),
    Enabled: z.boolean().default(true),
  })
  .superRefine((c, ctx) => {
    if (c.AuthMechanism.includes('None') && c.AuthMechanism.length > 1) {
      ctx.addIssue({ code: 'custom', path: ['AuthMechanism'], message: 'None cannot be combined with other mechanisms' });
    }
    if (c.AuthMechanism.includes('BasicAuthRequireTLS') && !(c.AuthMechanism.includes('BasicAuth') && c.AuthMechanism.includes('Tls'))) {
      ctx.addIssue({ code: 'custom', path: ['AuthMechanism'], message: 'BasicAuthRequireTLS requires BasicAuth and Tls' });
    }
    if (c.AuthMechanism.includes('ExternalAuthoritative') && !c.PermissionGroups.includes('ExchangeServers')) {
      ctx.addIssue({ code: 'custom', path: ['PermissionGroups'], message: 'ExternalAuthoritative requires PermissionGroups to include ExchangeServers' });
    }
    if (c.PermissionGroups.includes('None') && c.PermissionGroups.length > 1) {
      ctx.addIssue({ code: 'custom', path: ['PermissionGroups'], message: 'None cannot be combined with other groups' });
    }
    if (c.ConnectionInactivityTimeout >= c.ConnectionTimeout) {
      ctx.addIssue({ code: 'custom', path: ['ConnectionInactivityTimeout'], message: 'must be shorter than ConnectionTimeout' });
    }
  });
export type ReceiveConnector = z.infer<typeof receiveConnectorSchema>;

export const acceptedDomainSchema = z.object({
  DomainName: z.string().regex(/^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/i, 'expected a domain, optionally starting with "*."'),
  DomainType: z.enum(['Authoritative', 'InternalRelay', 'ExternalRelay']).default('Authoritative'),
  Default: z.boolean().default(false),
});
export type AcceptedDomain = z.infer<typeof acceptedDomainSchema>;

const smtpAddress = z.string().regex(/^[^\s@<>]+@[^\s@<>]+$/, 'expected an SMTP address');

export const mailboxSchema = z.object({
  Name: z.string().min(1),
  PrimarySmtpAddress: smtpAddress,
  /** Secondary (proxy) addresses that resolve to this mailbox. */
  EmailAddresses: z.array(smtpAddress).default([]),
  Database: z.string().min(1).default('DB01'),
});
export type Mailbox = z.infer<typeof mailboxSchema>;

export const sendConnectorSchema = z
  .object({
    Name: z.string().min(1),
    /** `*`, `contoso.com` or `*.contoso.com`, each optionally `;cost` (1-100). `SMTP:` prefix allowed. */
    AddressSpaces: z.array(z.string().min(1)).min(1),
    DNSRoutingEnabled: z.boolean().default(true),
    SmartHosts: z.array(z.string().min(1)).default([]),
    Port: z.number().int().min(1).max(65535).default(25),
    Fqdn: z.string().optional(),
    MaxMessageSize: z.number().int().min(1).default(36 * MB),
    Enabled: z.boolean().default(true),
  })
  .superRefine((c, ctx) => {
    if (!c.DNSRoutingEnabled && c.SmartHosts.length === 0) {
      ctx.addIssue({ code: 'custom', path: ['SmartHosts'], message: 'a connector without DNS routing needs at least one smart host' });
    }
  });
export type SendConnector = z.infer<typeof sendConnectorSchema>;

export const transportSettingsSchema = z.object({
  /** Bodies up to this size travel inline in the envelope; larger ones go to the object store. */
  InlineBodyMaxBytes: z.number().int().min(1024).max(768 * 1024).default(256 * 1024),
  /** Outbound retry schedule for transient failures (seconds between attempts). */
  TransientRetrySchedule: z.array(z.number().int().min(1)).min(1).default([60, 60, 60, 60, 300, 300, 300, 300, 300, 300, 600]),
  /** After this many seconds a message that still cannot be delivered is failed. */
  MessageExpirationTimeout: z.number().int().min(60).default(2 * 24 * 3600),
  PickupDirectoryPollInterval: z.number().int().min(100).default(5000),
  PickupDirectoryMaxRecipientsPerMessage: z.number().int().min(1).default(100),
  PickupDirectoryMaxHeaderSize: z.number().int().min(1024).default(64 * 1024),
});
export type TransportSettings = z.infer<typeof transportSettingsSchema>;

export const organizationConfigSchema = z
  .object({
    Organization: z.object({ Name: z.string().min(1) }),
    TransportSettings: transportSettingsSchema.default(() => transportSettingsSchema.parse({})),
    AcceptedDomains: z.array(acceptedDomainSchema).min(1),
    Mailboxes: z.array(mailboxSchema).default([]),
    ReceiveConnectors: z.array(receiveConnectorSchema).default([]),
    SendConnectors: z.array(sendConnectorSchema).default([]),
  })
  .superRefine((cfg, ctx) => {
    const defaults = cfg.AcceptedDomains.filter((d) => d.Default);
    if (defaults.length !== 1) {
      ctx.addIssue({ code: 'custom', path: ['AcceptedDomains'], message: `exactly one accepted domain must be Default (found ${defaults.length})` });
    }
    const seen = new Map<string, string>();
    cfg.Mailboxes.forEach((m, i) => {
      for (const address of [m.PrimarySmtpAddress, ...m.EmailAddresses]) {
        const key = address.toLowerCase();
        const owner = seen.get(key);
        if (owner) ctx.addIssue({ code: 'custom', path: ['Mailboxes', i], message: `address ${address} of ${m.Name} is already used by ${owner}` });
        seen.set(key, m.Name);
      }
    });
    const names = new Set<string>();
    cfg.ReceiveConnectors.forEach((c, i) => {
      const key = c.Name.toLowerCase();
      if (names.has(key)) ctx.addIssue({ code: 'custom', path: ['ReceiveConnectors', i, 'Name'], message: `duplicate connector name ${c.Name}` });
      names.add(key);
    });
  });
export type OrganizationConfig = z.infer<typeof organizationConfigSchema>;
