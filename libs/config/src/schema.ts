/**
 * The organisation's transport configuration, in Exchange's own vocabulary so an
 * administrator recognises every name (ReceiveConnector, AcceptedDomain, PermissionGroups).
 * The zod schemas are the single source of truth: types, defaults and validation messages
 * all come from here. Defaults are Exchange's cmdlet defaults (docs/exchange-behaviour.md §2).
 */
import { z } from 'zod';
import { directoryOf, resolveDirectoryName, resolvePrincipal } from './directory.ts';
import { intervalsPartiallyOverlap, parseBinding, parseIp, parseIpRange } from './ip.ts';

export const AUTH_MECHANISMS = ['None', 'Tls', 'Integrated', 'BasicAuth', 'BasicAuthRequireTLS', 'ExchangeServer', 'ExternalAuthoritative'] as const;
export type AuthMechanism = (typeof AUTH_MECHANISMS)[number];

export const PERMISSION_GROUPS = ['None', 'AnonymousUsers', 'ExchangeUsers', 'ExchangeServers', 'ExchangeLegacyServers', 'Partners', 'Custom'] as const;
export type PermissionGroup = (typeof PERMISSION_GROUPS)[number];

/** Extended rights on receive connectors, without Exchange's `ms-Exch-` prefix (docs/exchange-behaviour.md §3). */
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

/** `ms-Exch-SMTP-Submit`, `MS-EXCH-smtp-submit` and `SMTP-Submit` all name the same right. */
export function normalizeExtendedRight(name: string): ExtendedRight | undefined {
  const bare = name
    .trim()
    .replace(/^ms-exch-/i, '')
    .toLowerCase();
  return EXTENDED_RIGHTS.find((r) => r.toLowerCase() === bare);
}

export const RECEIVE_CONNECTOR_USAGES = ['Client', 'Custom', 'Internal', 'Internet', 'Partner'] as const;
export type ReceiveConnectorUsage = (typeof RECEIVE_CONNECTOR_USAGES)[number];

/** What `New-ReceiveConnector -Usage <type>` fills in (docs/exchange-behaviour.md §2). Usage exists only at creation. */
export const USAGE_DEFAULTS: Record<ReceiveConnectorUsage, { PermissionGroups: PermissionGroup[]; AuthMechanism: AuthMechanism[] }> = {
  Client: { PermissionGroups: ['ExchangeUsers'], AuthMechanism: ['Tls', 'BasicAuth', 'BasicAuthRequireTLS', 'Integrated'] },
  Custom: { PermissionGroups: ['None'], AuthMechanism: ['Tls'] },
  Internal: { PermissionGroups: ['ExchangeLegacyServers', 'ExchangeServers'], AuthMechanism: ['Tls', 'ExchangeServer'] },
  Internet: { PermissionGroups: ['AnonymousUsers'], AuthMechanism: ['Tls'] },
  Partner: { PermissionGroups: ['Partners'], AuthMechanism: ['Tls'] },
};

const MB = 1024 * 1024;

/** A time span as seconds: a number, or Exchange's `hh:mm:ss` / `d.hh:mm:ss`. */
export function parseTimeSpan(value: unknown): unknown {
  if (typeof value !== 'string') return value;
  const m = /^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})$/.exec(value.trim());
  if (!m) return /^\d+$/.test(value.trim()) ? Number(value) : value;
  return Number(m[1] ?? 0) * 86_400 + Number(m[2]) * 3600 + Number(m[3]) * 60 + Number(m[4]);
}
const seconds = (min: number, max: number, fallback: number) => z.preprocess(parseTimeSpan, z.number().int().min(min).max(max)).default(fallback);

/** Exchange writes sizes as `36 MB (37,748,736 bytes)`, `10MB`, `64KB` or a byte count. */
export function parseByteSize(value: unknown): unknown {
  if (typeof value !== 'string') return value;
  const exact = /\(([\d,]+) bytes\)/.exec(value);
  if (exact) return Number(exact[1]!.replace(/,/g, ''));
  const m = /^\s*([\d.]+)\s*(B|KB|MB|GB)?\s*$/i.exec(value);
  if (!m) return value;
  const unit = { B: 1, KB: 1024, MB: MB, GB: 1024 * MB }[(m[2] ?? 'B').toUpperCase() as 'B'];
  return Math.round(Number(m[1]) * unit);
}
const bytes = (min: number, max: number, fallback: number) => z.preprocess(parseByteSize, z.number().int().min(min).max(max)).default(fallback);

const bindingSchema = z.string().refine((b) => {
  try {
    const parsed = parseBinding(b);
    return parsed.port >= 1 && parsed.port <= 65535 && parseIp(parsed.host) !== undefined;
  } catch {
    return false;
  }
}, 'expected IPv4:port or [IPv6]:port, e.g. 0.0.0.0:25 or [::]:25');

const remoteRangeSchema = z
  .string()
  .refine((r) => parseIpRange(r) !== undefined, 'expected an IP address, a CIDR block (a.b.c.d/n) or a range (a-b) of one family');

const ALL_REMOTE = ['0.0.0.0-255.255.255.255', '::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'];

/** Usage applies Exchange's per-usage defaults to fields the document leaves out, then disappears. */
function applyUsage(input: unknown): unknown {
  if (!input || typeof input !== 'object' || !('Usage' in input)) return input;
  const { Usage, ...rest } = input as Record<string, unknown> & { Usage: unknown };
  const defaults = USAGE_DEFAULTS[Usage as ReceiveConnectorUsage];
  if (!defaults) return input;
  return { PermissionGroups: defaults.PermissionGroups, AuthMechanism: defaults.AuthMechanism, ...rest };
}

/**
 * BareLineFeedHandling's default follows who can reach the connector: Reject where anonymous
 * clients can (the smuggling attacker is one), Normalize for authenticated clients and
 * servers, whose software often writes bare LFs. A value written in the document wins.
 */
function applyBareLineFeedDefault(input: unknown): unknown {
  if (!input || typeof input !== 'object' || (input as { BareLineFeedHandling?: unknown }).BareLineFeedHandling !== undefined) return input;
  const groups = (input as { PermissionGroups?: unknown }).PermissionGroups;
  const anonymous = Array.isArray(groups) && groups.includes('AnonymousUsers');
  return { ...input, BareLineFeedHandling: anonymous ? 'Reject' : 'Normalize' };
}

export const receiveConnectorSchema = z.preprocess(
  (input) => applyBareLineFeedDefault(applyUsage(input)),
  z
    .strictObject({
      Name: z
        .string()
        .min(1)
        .regex(/^[^\\]+$/, 'a connector name cannot contain "\\" (write the server in Server)'),
      /** The server part of the identity `Server\Name`; optional, informational in a cluster. */
      Server: z.string().min(1).optional(),
      TransportRole: z.enum(['FrontendTransport', 'HubTransport']),
      Bindings: z.array(bindingSchema).min(1),
      RemoteIPRanges: z.array(remoteRangeSchema).min(1).default(ALL_REMOTE),
      AuthMechanism: z.array(z.enum(AUTH_MECHANISMS)).min(1).default(['Tls']),
      PermissionGroups: z.array(z.enum(PERMISSION_GROUPS)).min(1).default(['None']),
      Fqdn: z.string().optional(),
      Banner: z.string().regex(/^220 /, 'Banner must start with "220 "').optional(),
      Comment: z.string().optional(),
      MaxMessageSize: bytes(64 * 1024, 2048 * MB, 36 * MB),
      MaxHeaderSize: bytes(1, 2048 * 1024, 256 * 1024),
      /**
       * Transit extension: a bare LF or bare CR in DATA (what SMTP smuggling sends) is refused
       * with 554 5.6.0 (Reject) or stored as CRLF (Normalize). NUL is refused either way.
       * Default: Reject if PermissionGroups includes AnonymousUsers, else Normalize.
       */
      BareLineFeedHandling: z.enum(['Reject', 'Normalize']),
      /**
       * Transit extension: the longest text line accepted in DATA, in octets with its CRLF;
       * longer ones are refused with 554 5.6.0. RFC 5321 §4.5.3.1.6 sets 1000, and it can only
       * be lowered, so nothing longer than 998 octets and CRLF is ever accepted or relayed.
       */
      MaxLineLength: z.number().int().min(80).max(1000).default(1000),
      MaxRecipientsPerMessage: z.number().int().min(1).max(512_000).default(200),
      MaxInboundConnection: z.number().int().min(1).default(5000),
      MaxInboundConnectionPerSource: z.number().int().min(1).default(20),
      MaxProtocolErrors: z.number().int().min(0).default(5),
      MaxLogonFailures: z.number().int().min(0).default(3),
      ConnectionTimeout: seconds(1, 86_400, 600),
      ConnectionInactivityTimeout: seconds(1, 86_400, 300),
      TarpitInterval: seconds(0, 600, 5),
      AuthTarpitInterval: seconds(0, 600, 5),
      RequireTLS: z.boolean().default(false),
      RequireEHLODomain: z.boolean().default(false),
      /** Transit extension: pause before the 220 greeting to catch early talkers (ms). Exchange has none. */
      GreetingDelay: z.number().int().min(0).max(30_000).default(0),
      ProtocolLoggingLevel: z.enum(['None', 'Verbose']).default('None'),
      Enabled: z.boolean().default(true),
    })
    .superRefine((c, ctx) => {
      const auth = c.AuthMechanism;
      if (auth.includes('None') && auth.length > 1)
        ctx.addIssue({ code: 'custom', path: ['AuthMechanism'], message: 'None cannot be combined with other mechanisms' });
      if (auth.includes('BasicAuthRequireTLS') && !(auth.includes('BasicAuth') && auth.includes('Tls'))) {
        ctx.addIssue({ code: 'custom', path: ['AuthMechanism'], message: 'BasicAuthRequireTLS requires BasicAuth and Tls' });
      }
      if (auth.includes('ExternalAuthoritative')) {
        if (!c.PermissionGroups.includes('ExchangeServers'))
          ctx.addIssue({ code: 'custom', path: ['PermissionGroups'], message: 'ExternalAuthoritative requires PermissionGroups to include ExchangeServers' });
        if (auth.some((m) => m !== 'ExternalAuthoritative' && m !== 'Tls'))
          ctx.addIssue({ code: 'custom', path: ['AuthMechanism'], message: 'ExternalAuthoritative can only be combined with Tls' });
      }
      if (c.RequireTLS && !auth.includes('Tls')) ctx.addIssue({ code: 'custom', path: ['RequireTLS'], message: 'RequireTLS needs Tls in AuthMechanism' });
      if (c.PermissionGroups.includes('None') && c.PermissionGroups.length > 1) {
        ctx.addIssue({ code: 'custom', path: ['PermissionGroups'], message: 'None cannot be combined with other groups' });
      }
      if (c.ConnectionInactivityTimeout >= c.ConnectionTimeout) {
        ctx.addIssue({ code: 'custom', path: ['ConnectionInactivityTimeout'], message: 'must be shorter than ConnectionTimeout' });
      }
    }),
);
export type ReceiveConnector = z.output<typeof receiveConnectorSchema>;

export const acceptedDomainSchema = z.strictObject({
  Name: z.string().min(1).optional(),
  DomainName: z.string().regex(/^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/i, 'expected a domain, optionally starting with "*."'),
  DomainType: z.enum(['Authoritative', 'InternalRelay', 'ExternalRelay']).default('Authoritative'),
  Default: z.boolean().default(false),
});
export type AcceptedDomain = z.infer<typeof acceptedDomainSchema>;

const smtpAddress = z.string().regex(/^[^\s@<>]+@[^\s@<>]+$/, 'expected an SMTP address');
/** `$scrypt$N=..,r=..,p=..$salt$hash` as written by hashPassword; plaintext is never stored. */
const passwordHash = z
  .string()
  .regex(
    /^\$scrypt\$N=\d+,r=\d+,p=\d+\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/,
    'expected a hash from `transitctl user set --password` (plaintext passwords are never stored)',
  );

/** Who can log on: UserPrincipalName, `DOMAIN\SamAccountName` or (for mailboxes) the primary SMTP address. */
const accountFields = {
  UserPrincipalName: smtpAddress.optional(),
  SamAccountName: z
    .string()
    .min(1)
    .regex(/^[^\\@\s]+$/, 'a logon name without "\\", "@" or spaces')
    .optional(),
  PasswordHash: passwordHash.optional(),
};

export const mailboxSchema = z.strictObject({
  Name: z.string().min(1),
  PrimarySmtpAddress: smtpAddress,
  /** Secondary (proxy) addresses that resolve to this mailbox. */
  EmailAddresses: z.array(smtpAddress).default([]),
  Database: z.string().min(1).default('DB01'),
  ...accountFields,
});
export type Mailbox = z.infer<typeof mailboxSchema>;

/** A directory account without a mailbox, e.g. a relay account for an office or a device. */
export const userSchema = z.strictObject({ Name: z.string().min(1), ...accountFields });
export type DirectoryUser = z.infer<typeof userSchema>;

export const groupSchema = z.strictObject({
  Name: z.string().min(1),
  /** Names (or logon names) of users, mailboxes and other groups. */
  Members: z.array(z.string().min(1)).default([]),
});
export type DirectoryGroup = z.infer<typeof groupSchema>;

/** One Add-ADPermission entry on a receive connector. */
export const permissionSchema = z.strictObject({
  /** The receive connector: `Name` or `Server\Name`. */
  Identity: z.string().min(1),
  /** `NT AUTHORITY\ANONYMOUS LOGON`, `MS Exchange\Externally Secured Servers`, `CONTOSO\Relay Accounts`, a UPN... */
  User: z.string().min(1),
  ExtendedRights: z
    .array(z.string().transform((r, ctx) => normalizeExtendedRight(r) ?? (ctx.addIssue({ code: 'custom', message: `unknown extended right ${r}` }), z.NEVER)))
    .min(1),
  Deny: z.boolean().default(false),
});
export type PermissionEntry = z.infer<typeof permissionSchema>;

export const sendConnectorSchema = z
  .strictObject({
    Name: z.string().min(1),
    /** `*`, `contoso.com` or `*.contoso.com`, each optionally `;cost` (1-100). `SMTP:` prefix allowed. */
    AddressSpaces: z.array(z.string().min(1)).min(1),
    DNSRoutingEnabled: z.boolean().default(true),
    SmartHosts: z.array(z.string().min(1)).default([]),
    Port: z.number().int().min(1).max(65535).default(25),
    /** The name given in EHLO/HELO to the next hop (the node's name when unset). */
    Fqdn: z.string().optional(),
    MaxMessageSize: bytes(1, 2048 * MB, 36 * MB),
    ProtocolLoggingLevel: z.enum(['None', 'Verbose']).default('None'),
    Enabled: z.boolean().default(true),
    /** Send only over TLS (STARTTLS): a next hop that does not offer it, or fails the TlsAuthLevel check, is a transient failure. */
    RequireTLS: z.boolean().default(false),
    /** With RequireTLS: EncryptionOnly (the default: any certificate), CertificateValidation (a trusted chain), DomainValidation (and the name). */
    TlsAuthLevel: z.enum(['EncryptionOnly', 'CertificateValidation', 'DomainValidation']).optional(),
    /** With DomainValidation: the name the certificate must carry (`contoso.com` or `*.contoso.com`); the next hop's host name when unset. */
    TlsDomain: z.string().min(1).optional(),
    /** How the connector authenticates to its smart hosts: BasicAuth (AUTH PLAIN/LOGIN), BasicAuthRequireTLS (only after STARTTLS), or not at all. */
    SmartHostAuthMechanism: z.enum(['None', 'BasicAuth', 'BasicAuthRequireTLS', 'ExternalAuthoritative']).default('None'),
    /**
     * The account for BasicAuth. The password is never in the configuration: it is read from
     * `PasswordFile` on each outbound node (a mounted Kubernetes Secret, a file readable by
     * Transit only), so neither `transitctl export` nor a log can show it.
     */
    AuthenticationCredential: z.strictObject({ UserName: z.string().min(1), PasswordFile: z.string().min(1) }).optional(),
    /**
     * How long a connection to the next hop may be silent before it is closed (Exchange: 00:00:01 to 1.00:00:00). Unset: the
     * outbound node's TRANSIT_OUTBOUND_SOCKET_TIMEOUT_MS, 10 minutes by default as Exchange's.
     */
    ConnectionInactivityTimeOut: z.preprocess(parseTimeSpan, z.number().int().min(1).max(86_400)).optional(),
    /** Messages sent over one connection before it is closed and another opened. Unset: the node's TRANSIT_OUTBOUND_MAX_MESSAGES_PER_CONNECTION. */
    SmtpMaxMessagesPerConnection: z.number().int().min(1).max(2_147_483_647).optional(),
    /** Transit: connections open at once to each next hop this connector routes to, across every outbound proxy. Unset: TransportSettings' MaxPerDomainOutboundConnections. */
    MaxPerDomainOutboundConnections: z.number().int().min(1).max(10_000).optional(),
    /** Transit: messages per minute to each next hop this connector routes to, across every outbound proxy (0: none). Unset: TransportSettings' MaxPerDomainOutboundMessagesPerMinute. */
    MaxPerDomainOutboundMessagesPerMinute: z.number().int().min(0).max(1_000_000).optional(),
  })
  .superRefine((c, ctx) => {
    const basic = c.SmartHostAuthMechanism === 'BasicAuth' || c.SmartHostAuthMechanism === 'BasicAuthRequireTLS';
    if (basic && !c.AuthenticationCredential) {
      ctx.addIssue({
        code: 'custom',
        path: ['AuthenticationCredential'],
        message: `${c.SmartHostAuthMechanism} needs AuthenticationCredential (UserName and PasswordFile)`,
      });
    }
    if (basic && c.SmartHosts.length === 0) {
      ctx.addIssue({ code: 'custom', path: ['SmartHostAuthMechanism'], message: `${c.SmartHostAuthMechanism} applies to smart hosts only: give SmartHosts` });
    }
    if (c.AuthenticationCredential && !basic) {
      ctx.addIssue({
        code: 'custom',
        path: ['AuthenticationCredential'],
        message: 'AuthenticationCredential is used only with SmartHostAuthMechanism BasicAuth or BasicAuthRequireTLS',
      });
    }
    // Exchange refuses these on Set-SendConnector too.
    if (c.TlsAuthLevel && !c.RequireTLS) {
      ctx.addIssue({ code: 'custom', path: ['TlsAuthLevel'], message: 'TlsAuthLevel can only be set when RequireTLS is true' });
    }
    if (c.TlsDomain && c.TlsAuthLevel !== 'DomainValidation') {
      ctx.addIssue({ code: 'custom', path: ['TlsDomain'], message: 'TlsDomain can only be set when TlsAuthLevel is DomainValidation' });
    }
    if (!c.DNSRoutingEnabled && c.SmartHosts.length === 0) {
      ctx.addIssue({ code: 'custom', path: ['SmartHosts'], message: 'a connector without DNS routing needs at least one smart host' });
    }
  });
export type SendConnector = z.infer<typeof sendConnectorSchema>;

export const transportSettingsSchema = z.strictObject({
  /** Bodies up to this size travel inline in the envelope; larger ones go to the object store. */
  InlineBodyMaxBytes: z
    .number()
    .int()
    .min(1024)
    .max(768 * 1024)
    .default(256 * 1024),
  /**
   * Exchange's retry intervals (docs/exchange-behaviour.md §9): GlitchRetryCount quick retries every
   * GlitchRetryInterval, then TransientFailureRetryCount every TransientFailureRetryInterval,
   * then every OutboundConnectionFailureRetryInterval until MessageExpirationTimeout.
   */
  GlitchRetryCount: z.number().int().min(0).max(15).default(4),
  GlitchRetryInterval: seconds(1, 3600, 60),
  TransientFailureRetryCount: z.number().int().min(0).max(15).default(6),
  TransientFailureRetryInterval: seconds(1, 12 * 3600, 5 * 60),
  OutboundConnectionFailureRetryInterval: seconds(1, 24 * 3600, 10 * 60),
  /** Transit: an explicit schedule (seconds between attempts, the last one repeating) instead of the intervals above. */
  TransientRetrySchedule: z.array(z.number().int().min(1)).min(1).optional(),
  /** After this long a message that still cannot be delivered is failed with 4.4.7 (Exchange: 2 days). */
  MessageExpirationTimeout: seconds(1, 90 * 86_400, 2 * 24 * 3600),
  /** After this long undelivered, the sender gets one delay notification (Exchange: 4 hours). */
  DelayNotificationTimeout: seconds(1, 90 * 86_400, 4 * 3600),
  /** With RET=FULL, a failure notification returns the whole message up to this size; beyond it, the headers only. */
  DsnMaxReturnedMessageBytes: bytes(0, 100 * MB, 10 * MB),
  PickupDirectoryPollInterval: z.number().int().min(100).default(5000),
  PickupDirectoryMaxRecipientsPerMessage: z.number().int().min(1).default(100),
  PickupDirectoryMaxHeaderSize: z
    .number()
    .int()
    .min(1024)
    .default(64 * 1024),
  /** SMTP connections open at once to one next hop (a domain, or a send connector's smart hosts), counted across every outbound proxy (Exchange: 20 per server). */
  MaxPerDomainOutboundConnections: z.number().int().min(1).max(10_000).default(20),
  /** Transit: messages per minute to one next hop, across every outbound proxy; 0 for no limit. */
  MaxPerDomainOutboundMessagesPerMinute: z.number().int().min(0).max(1_000_000).default(0),
});
export type TransportSettings = z.infer<typeof transportSettingsSchema>;

/** Seconds to wait before each retry: the explicit schedule, or the one Exchange's intervals make. */
export function retrySchedule(ts: TransportSettings): number[] {
  if (ts.TransientRetrySchedule) return ts.TransientRetrySchedule;
  return [
    ...new Array<number>(ts.GlitchRetryCount).fill(ts.GlitchRetryInterval),
    ...new Array<number>(ts.TransientFailureRetryCount).fill(ts.TransientFailureRetryInterval),
    ts.OutboundConnectionFailureRetryInterval,
  ];
}

/**
 * Transit extension (Exchange has no load-balancer protocol): a load balancer in front of
 * receive connectors that names the real client with a PROXY protocol header (v1 or v2).
 * It belongs to listening endpoints, not to connectors: the header has to be read before a
 * connector can be chosen, because the choice depends on the client's address.
 */
export const loadBalancerSchema = z.strictObject({
  Name: z.string().min(1),
  /** Receive-connector bindings (as written there, e.g. `0.0.0.0:25`) whose listeners take PROXY headers from this load balancer. */
  Bindings: z.array(bindingSchema).min(1),
  /** The load balancer's own addresses as the listeners see them (its source address toward them): only these may send a PROXY header, and they must. */
  RemoteIPRanges: z.array(remoteRangeSchema).min(1),
  Comment: z.string().optional(),
});
export type LoadBalancer = z.infer<typeof loadBalancerSchema>;

export const organizationConfigSchema = z
  .strictObject({
    Organization: z.strictObject({
      Name: z.string().min(1),
      /** The `DOMAIN` of `DOMAIN\user` logons; defaults to the first label of the default accepted domain. */
      NetBiosName: z.string().min(1).optional(),
    }),
    TransportSettings: transportSettingsSchema.default(() => transportSettingsSchema.parse({})),
    AcceptedDomains: z.array(acceptedDomainSchema).min(1),
    Mailboxes: z.array(mailboxSchema).default([]),
    Users: z.array(userSchema).default([]),
    Groups: z.array(groupSchema).default([]),
    ReceiveConnectors: z.array(receiveConnectorSchema).default([]),
    Permissions: z.array(permissionSchema).default([]),
    SendConnectors: z.array(sendConnectorSchema).default([]),
    LoadBalancers: z.array(loadBalancerSchema).default([]),
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
    uniqueNames(cfg.ReceiveConnectors, 'ReceiveConnectors', 'connector', ctx);
    uniqueNames(cfg.SendConnectors, 'SendConnectors', 'send connector', ctx);
    uniqueNames(cfg.LoadBalancers, 'LoadBalancers', 'load balancer', ctx);
    uniqueNames([...cfg.Mailboxes, ...cfg.Users, ...cfg.Groups], 'Users', 'directory object', ctx);
    for (const issue of bindingConflicts(cfg.ReceiveConnectors))
      ctx.addIssue({ code: 'custom', path: ['ReceiveConnectors', issue.index, 'RemoteIPRanges'], message: issue.message });
    const connectorBindings = new Set(cfg.ReceiveConnectors.flatMap((c) => c.Bindings.map(bindingKey)));
    cfg.LoadBalancers.forEach((lb, i) => {
      lb.Bindings.forEach((b, j) => {
        const key = bindingKey(b);
        if (key !== undefined && !connectorBindings.has(key))
          ctx.addIssue({ code: 'custom', path: ['LoadBalancers', i, 'Bindings', j], message: `no receive connector has binding ${b}` });
      });
    });
    const directory = directoryOf(cfg);
    cfg.Groups.forEach((g, i) => {
      g.Members.forEach((member, j) => {
        if (!resolveDirectoryName(directory, member))
          ctx.addIssue({ code: 'custom', path: ['Groups', i, 'Members', j], message: `no user, mailbox or group named ${member}` });
      });
    });
    cfg.Permissions.forEach((p, i) => {
      if (!findReceiveConnector(cfg.ReceiveConnectors, p.Identity))
        ctx.addIssue({ code: 'custom', path: ['Permissions', i, 'Identity'], message: `no receive connector ${p.Identity}` });
      if (!resolvePrincipal(directory, p.User)) ctx.addIssue({ code: 'custom', path: ['Permissions', i, 'User'], message: `no security principal ${p.User}` });
    });
  });
export type OrganizationConfig = z.infer<typeof organizationConfigSchema>;

/** One text per listening address and port (`[::]:25` and `[0::0]:25` are the same); undefined when invalid (reported on its own field). */
function bindingKey(binding: string): string | undefined {
  try {
    const b = parseBinding(binding);
    const ip = parseIp(b.host);
    return ip ? `${ip.family}|${ip.value}|${b.port}` : undefined;
  } catch {
    return undefined;
  }
}

function uniqueNames(items: readonly { Name: string }[], path: string, what: string, ctx: z.RefinementCtx): void {
  const names = new Set<string>();
  items.forEach((item, i) => {
    const key = item.Name.toLowerCase();
    if (names.has(key)) ctx.addIssue({ code: 'custom', path: [path, i, 'Name'], message: `duplicate ${what} name ${item.Name}` });
    names.add(key);
  });
}

/** `Name` or `Server\Name`, case-insensitive. */
export function findReceiveConnector<T extends { Name: string; Server?: string | undefined }>(connectors: readonly T[], identity: string): T | undefined {
  const slash = identity.lastIndexOf('\\');
  const server = slash >= 0 ? identity.slice(0, slash).toLowerCase() : undefined;
  const name = identity.slice(slash + 1).toLowerCase();
  return connectors.find((c) => c.Name.toLowerCase() === name && (server === undefined || !c.Server || c.Server.toLowerCase() === server));
}

/**
 * Exchange's rule (docs/exchange-behaviour.md §4): connectors of one role may share an exact local
 * binding only with different RemoteIPRanges, and ranges on a shared binding may nest but
 * never partially overlap.
 */
export function bindingConflicts(connectors: readonly ReceiveConnector[]): Array<{ index: number; message: string }> {
  const issues: Array<{ index: number; message: string }> = [];
  // Invalid bindings and ranges are reported on their own fields; they take no part here.
  const key = (b: string) => {
    try {
      const p = parseBinding(b);
      return `${p.family}|${p.host}|${p.port}`;
    } catch {
      return `invalid|${b}`;
    }
  };
  for (let i = 0; i < connectors.length; i++) {
    for (let j = 0; j < i; j++) {
      const a = connectors[j]!;
      const b = connectors[i]!;
      if (a.TransportRole !== b.TransportRole || (a.Server && b.Server && a.Server.toLowerCase() !== b.Server.toLowerCase())) continue;
      const shared = a.Bindings.map(key).filter((k) => !k.startsWith('invalid|') && b.Bindings.map(key).includes(k));
      if (shared.length === 0) continue;
      const ra = a.RemoteIPRanges.map((r) => parseIpRange(r)).filter((r) => r !== undefined);
      const rb = b.RemoteIPRanges.map((r) => parseIpRange(r)).filter((r) => r !== undefined);
      const same = (x: typeof ra, y: typeof ra) => x.every((p) => y.some((q) => p.family === q.family && p.lo === q.lo && p.hi === q.hi));
      if (same(ra, rb) && same(rb, ra)) {
        issues.push({
          index: i,
          message: `${b.Name} and ${a.Name} have the same binding and the same RemoteIPRanges; give one a specific local IP or different remote ranges`,
        });
        continue;
      }
      for (const x of ra) {
        const y = rb.find((r) => intervalsPartiallyOverlap(x, r));
        if (y) {
          issues.push({ index: i, message: `RemoteIPRanges of ${b.Name} and ${a.Name} partially overlap on a shared binding (ranges may nest, not overlap)` });
          break;
        }
      }
    }
  }
  return issues;
}
