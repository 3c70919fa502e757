/**
 * The directory as Exchange administrators name it: accounts (mailboxes and users without
 * mailboxes), groups, and the well-known security principals of receive-connector
 * permissions. Lookups are case-insensitive and accept every way an administrator writes a
 * name: `Name`, `DOMAIN\Name`, `DOMAIN\SamAccountName`, a UPN or a primary SMTP address.
 */

export const WELL_KNOWN_PRINCIPALS = {
  anonymous: 'NT AUTHORITY\\ANONYMOUS LOGON',
  authenticatedUsers: 'NT AUTHORITY\\Authenticated Users',
  externallySecured: 'MS Exchange\\Externally Secured Servers',
  hubTransportServers: 'MS Exchange\\Hub Transport Servers',
  legacyInterop: 'MS Exchange\\ExchangeLegacyInterop',
  partnerServers: 'MS Exchange\\Partner Servers',
} as const;
export type WellKnownPrincipal = (typeof WELL_KNOWN_PRINCIPALS)[keyof typeof WELL_KNOWN_PRINCIPALS];

export type DirectoryAccount = {
  Name: string;
  UserPrincipalName?: string | undefined;
  SamAccountName?: string | undefined;
  PasswordHash?: string | undefined;
  PrimarySmtpAddress?: string;
  EmailAddresses?: string[];
};
export type DirectoryGroupEntry = { Name: string; Members: string[] };

type DirectorySource = {
  Organization: { Name: string; NetBiosName?: string | undefined };
  AcceptedDomains: ReadonlyArray<{ DomainName: string; Default: boolean }>;
  Mailboxes: readonly DirectoryAccount[];
  Users: readonly DirectoryAccount[];
  Groups: readonly DirectoryGroupEntry[];
};

export type DirectoryIndex = { netBiosName: string; accounts: readonly DirectoryAccount[]; groups: readonly DirectoryGroupEntry[] };

export type DirectoryObject = { kind: 'account'; account: DirectoryAccount } | { kind: 'group'; group: DirectoryGroupEntry };
export type SecurityPrincipal = { kind: 'well-known'; name: WellKnownPrincipal } | DirectoryObject;

export function directoryOf(cfg: DirectorySource): DirectoryIndex {
  const defaultDomain = cfg.AcceptedDomains.find((d) => d.Default)?.DomainName.replace(/^\*\./, '') ?? cfg.Organization.Name;
  const netBiosName = cfg.Organization.NetBiosName ?? defaultDomain.split('.')[0]!.toUpperCase();
  return { netBiosName, accounts: [...cfg.Mailboxes, ...cfg.Users], groups: cfg.Groups };
}

/** Strips `DOMAIN\` when DOMAIN is the organisation's; undefined for another domain. */
function localPart(dir: DirectoryIndex, name: string): string | undefined {
  const slash = name.indexOf('\\');
  if (slash < 0) return name.trim().toLowerCase();
  return name.slice(0, slash).trim().toLowerCase() === dir.netBiosName.toLowerCase()
    ? name
        .slice(slash + 1)
        .trim()
        .toLowerCase()
    : undefined;
}

/** The account a logon name (UPN, `DOMAIN\user`, primary SMTP address, or bare logon name) belongs to. */
export function findLogon(dir: DirectoryIndex, login: string): DirectoryAccount | undefined {
  const name = localPart(dir, login);
  if (name === undefined || name === '') return undefined;
  return dir.accounts.find(
    (a) => a.UserPrincipalName?.toLowerCase() === name || a.SamAccountName?.toLowerCase() === name || a.PrimarySmtpAddress?.toLowerCase() === name,
  );
}

export function resolveDirectoryName(dir: DirectoryIndex, name: string): DirectoryObject | undefined {
  const bare = localPart(dir, name);
  if (bare === undefined) return undefined;
  const group = dir.groups.find((g) => g.Name.toLowerCase() === bare);
  if (group) return { kind: 'group', group };
  const account = dir.accounts.find((a) => a.Name.toLowerCase() === bare) ?? findLogon(dir, name);
  return account ? { kind: 'account', account } : undefined;
}

export function resolvePrincipal(dir: DirectoryIndex, name: string): SecurityPrincipal | undefined {
  const wellKnown = Object.values(WELL_KNOWN_PRINCIPALS).find((p) => p.toLowerCase() === name.trim().toLowerCase());
  return wellKnown ? { kind: 'well-known', name: wellKnown } : resolveDirectoryName(dir, name);
}

/** Every group the account belongs to, directly or through nested groups (loops are harmless). */
export function groupsOf(dir: DirectoryIndex, account: DirectoryAccount): DirectoryGroupEntry[] {
  const found: DirectoryGroupEntry[] = [];
  const isMember = (group: DirectoryGroupEntry, target: DirectoryObject) =>
    group.Members.some((m) => {
      const r = resolveDirectoryName(dir, m);
      return (
        r !== undefined &&
        (r.kind === 'account' ? target.kind === 'account' && r.account === target.account : target.kind === 'group' && r.group === target.group)
      );
    });
  const queue: DirectoryObject[] = [{ kind: 'account', account }];
  while (queue.length > 0) {
    const current = queue.shift()!;
    for (const g of dir.groups) {
      if (!found.includes(g) && isMember(g, current)) {
        found.push(g);
        queue.push({ kind: 'group', group: g });
      }
    }
  }
  return found;
}

/** How an account is written in permissions and logs: `CONTOSO\relay-office1`. */
export function accountIdentity(dir: DirectoryIndex, account: DirectoryAccount): string {
  return `${dir.netBiosName}\\${account.SamAccountName ?? account.Name}`;
}
