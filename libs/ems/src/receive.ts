/**
 * Receive connectors (Get/New/Set/Remove-ReceiveConnector) and their extended rights
 * (Add/Remove/Get-ADPermission) on OrganizationConfig.ReceiveConnectors and .Permissions.
 * Principals are stored as the directory names them (`NT AUTHORITY\ANONYMOUS LOGON`,
 * `CONTOSO\Relay Accounts`) so later removals and listings match however they were typed.
 */
import {
  AUTH_MECHANISMS,
  EXTENDED_RIGHTS,
  PERMISSION_GROUPS,
  RECEIVE_CONNECTOR_USAGES,
  USAGE_DEFAULTS,
  WELL_KNOWN_PRINCIPALS,
  accountIdentity,
  directoryOf,
  findReceiveConnector,
  normalizeExtendedRight,
  resolvePrincipal,
  type ExtendedRight,
  type OrganizationConfig,
  type ReceiveConnector,
  type ReceiveConnectorUsage,
} from '@transit/config';
import { PERMISSION_GROUP_GRANTS } from '@transit/policy';
import {
  applyProperties,
  commit,
  identityPattern,
  isListEdit,
  notFound,
  requireString,
  stringArg,
  targets,
  type Arg,
  type Args,
  type Cmdlet,
  type Ctx,
  type Item,
  type ParamType,
} from './binding.ts';
import { EmsError } from './errors.ts';

/** Every property of the schema's ReceiveConnector is a parameter; `satisfies` keeps the two in step. */
export const RECEIVE_CONNECTOR_PROPERTIES = {
  Name: 'string',
  Server: 'string',
  TransportRole: { one: ['FrontendTransport', 'HubTransport'] satisfies ReceiveConnector['TransportRole'][] },
  Bindings: 'list',
  RemoteIPRanges: 'list',
  AuthMechanism: { many: AUTH_MECHANISMS },
  PermissionGroups: { many: PERMISSION_GROUPS },
  Fqdn: 'string',
  Banner: 'string',
  Comment: 'string',
  MaxMessageSize: 'bytes',
  MaxHeaderSize: 'bytes',
  BareLineFeedHandling: { one: ['Reject', 'Normalize'] satisfies ReceiveConnector['BareLineFeedHandling'][] },
  MaxLineLength: 'int',
  MaxRecipientsPerMessage: 'int',
  MaxInboundConnection: 'int',
  MaxInboundConnectionPerSource: 'int',
  MaxProtocolErrors: 'int',
  MaxLogonFailures: 'int',
  ConnectionTimeout: 'timespan',
  ConnectionInactivityTimeout: 'timespan',
  TarpitInterval: 'timespan',
  AuthTarpitInterval: 'timespan',
  RequireTLS: 'bool',
  RequireEHLODomain: 'bool',
  GreetingDelay: 'int',
  ProtocolLoggingLevel: { one: ['None', 'Verbose'] satisfies ReceiveConnector['ProtocolLoggingLevel'][] },
  Enabled: 'bool',
} as const satisfies Record<keyof ReceiveConnector, ParamType>;

/**
 * What each usage type needs at creation (docs/exchange-behaviour.md §2): a default binding or remote
 * range where Exchange has one; where it has none, the parameter is required, because
 * there is nothing sensible to listen on or admit.
 */
const USAGE_RULES: Record<ReceiveConnectorUsage, { Bindings?: string[]; RemoteIPRanges?: string[]; required: Array<'Bindings' | 'RemoteIPRanges'> }> = {
  Client: { Bindings: ['0.0.0.0:587'], required: ['RemoteIPRanges'] },
  Custom: { required: ['Bindings', 'RemoteIPRanges'] },
  Internal: { Bindings: ['0.0.0.0:25'], required: [] },
  Internet: { RemoteIPRanges: ['0.0.0.0-255.255.255.255'], required: ['Bindings'] },
  Partner: { required: ['Bindings'] },
};

const INTEGRATED = 'Integrated (NTLM/Kerberos) is accepted for compatibility but Transit does not offer NTLM or Kerberos; clients must use BasicAuth over TLS';

export const rcIdentity = (c: ReceiveConnector) => (c.Server ? `${c.Server}\\${c.Name}` : c.Name);
/** Properties in the schema's order (Server next to Name), as Format-List shows them. */
const rcItem = (c: ReceiveConnector): Item => ({
  kind: 'ReceiveConnector',
  key: c.Name,
  row: {
    Identity: rcIdentity(c),
    ...Object.fromEntries(Object.keys(RECEIVE_CONNECTOR_PROPERTIES).flatMap((k) => (k in c ? [[k, c[k as keyof ReceiveConnector]]] : []))),
  },
});
const byName = (ctx: Ctx, name: string) => ctx.config.ReceiveConnectors.find((c) => c.Name === name);
/** Does a Permissions entry's Identity (`Name` or `Server\Name`) name this connector? */
const entryOn = (identity: string, c: ReceiveConnector) => findReceiveConnector([c], identity) !== undefined;

function findConnectors(ctx: Ctx, cmdlet: string, identity: string): ReceiveConnector[] {
  const pattern = identityPattern(identity, true);
  const found = ctx.config.ReceiveConnectors.filter((c) => pattern.test(c.Name));
  if (found.length === 0) throw notFound(cmdlet, identity, 'receive connectors', ctx.config.ReceiveConnectors.map(rcIdentity));
  const server = pattern.server;
  if (server !== undefined && !server.includes('*')) {
    for (const c of found) {
      if (c.Server?.toLowerCase() !== server.toLowerCase()) {
        ctx.warnings.push(
          `${identity}: the server part ${server} is informational in a Transit cluster (every node serves every connector of its role); matched ${rcIdentity(c)}`,
        );
      }
    }
  }
  return found;
}

const connectorTargets = (ctx: Ctx, cmdlet: string, args: Args, input: Item[] | undefined, single: boolean) =>
  targets(
    cmdlet,
    args,
    input,
    (id) => findConnectors(ctx, cmdlet, id),
    (item) => byName(ctx, item.key),
    single,
  );

function warnIntegrated(ctx: Ctx, c: ReceiveConnector): void {
  if (c.AuthMechanism.includes('Integrated')) ctx.warnings.push(`${rcIdentity(c)}: ${INTEGRATED}`);
}

const getReceiveConnector: Cmdlet = {
  name: 'Get-ReceiveConnector',
  params: { Identity: 'string', Server: 'string' },
  positional: 'Identity',
  output: 'ReceiveConnector',
  run(ctx, args) {
    const identity = stringArg(args, 'Identity');
    const found = identity === undefined ? ctx.config.ReceiveConnectors : findConnectors(ctx, this.name, identity);
    const server = stringArg(args, 'Server');
    if (server !== undefined && found.some((c) => c.Server?.toLowerCase() !== server.toLowerCase())) {
      ctx.warnings.push(
        `-Server ${server} is informational in a Transit cluster: every node serves every connector of its role, so the connectors of every server are listed`,
      );
    }
    return found.map(rcItem);
  },
};

const newReceiveConnector: Cmdlet = {
  name: 'New-ReceiveConnector',
  params: {
    ...RECEIVE_CONNECTOR_PROPERTIES,
    Usage: { one: RECEIVE_CONNECTOR_USAGES },
    Client: 'switch',
    Custom: 'switch',
    Internal: 'switch',
    Internet: 'switch',
    Partner: 'switch',
    Confirm: 'switch',
  },
  positional: 'Name',
  output: 'ReceiveConnector',
  run(ctx, args) {
    const name = requireString(this.name, args, 'Name');
    const chosen = [...new Set([stringArg(args, 'Usage'), ...RECEIVE_CONNECTOR_USAGES.filter((u) => args.get(u) === true)].filter((u) => u !== undefined))];
    if (chosen.length > 1) throw new EmsError(`${this.name}: choose one usage type, not ${chosen.join(' and ')}`);
    const usage = (chosen[0] ?? 'Custom') as ReceiveConnectorUsage;
    const rule = USAGE_RULES[usage];
    const missing = rule.required.filter((p) => !args.has(p));
    if (missing.length > 0) {
      const implicit = chosen.length === 0 ? ' (without -Usage or a usage switch such as -Internet, a connector is Custom)' : '';
      throw new EmsError(`${this.name}: a ${usage} connector needs ${missing.map((p) => `-${p}`).join(' and ')}${implicit}`);
    }
    const defaults = USAGE_DEFAULTS[usage];
    const base = {
      Name: name,
      TransportRole: 'FrontendTransport',
      PermissionGroups: [...defaults.PermissionGroups],
      AuthMechanism: [...defaults.AuthMechanism],
      ...(rule.Bindings ? { Bindings: rule.Bindings } : {}),
      ...(rule.RemoteIPRanges ? { RemoteIPRanges: rule.RemoteIPRanges } : {}),
    };
    const connector = applyProperties(ctx, this.name, base, args, RECEIVE_CONNECTOR_PROPERTIES);
    commit(ctx, this.name, { ...ctx.config, ReceiveConnectors: [...ctx.config.ReceiveConnectors, connector] });
    const created = byName(ctx, name)!;
    warnIntegrated(ctx, created);
    if (created.PermissionGroups.includes('None')) {
      ctx.warnings.push(
        `${rcIdentity(created)}: PermissionGroups is None, so no session has any right here until you add groups (Set-ReceiveConnector -PermissionGroups) or rights (Add-ADPermission)`,
      );
    }
    return [rcItem(created)];
  },
};

const setReceiveConnector: Cmdlet = {
  name: 'Set-ReceiveConnector',
  params: { Identity: 'string', ...RECEIVE_CONNECTOR_PROPERTIES, Confirm: 'switch' },
  positional: 'Identity',
  input: 'ReceiveConnector',
  run(ctx, args, input) {
    const receive = [...ctx.config.ReceiveConnectors];
    let permissions = ctx.config.Permissions;
    const updated: ReceiveConnector[] = [];
    for (const c of connectorTargets(ctx, this.name, args, input, true)) {
      const next = applyProperties(ctx, this.name, c, args, RECEIVE_CONNECTOR_PROPERTIES);
      if (JSON.stringify(next) === JSON.stringify(c)) {
        ctx.warnings.push(`${this.name}: the command completed but no settings of ${rcIdentity(c)} were modified`);
        continue;
      }
      // A rename keeps the connector's Add-ADPermission entries attached to it.
      if (next.Name !== c.Name) permissions = permissions.map((p) => (entryOn(p.Identity, c) ? { ...p, Identity: next.Name } : p));
      receive[receive.indexOf(c)] = next;
      updated.push(next);
    }
    if (updated.length === 0) return [];
    commit(ctx, this.name, { ...ctx.config, ReceiveConnectors: receive, Permissions: permissions });
    if (args.has('AuthMechanism')) updated.forEach((c) => warnIntegrated(ctx, byName(ctx, c.Name)!));
    return [];
  },
};

const removeReceiveConnector: Cmdlet = {
  name: 'Remove-ReceiveConnector',
  params: { Identity: 'string', Confirm: 'switch' },
  positional: 'Identity',
  input: 'ReceiveConnector',
  run(ctx, args, input) {
    const gone = connectorTargets(ctx, this.name, args, input, true);
    commit(ctx, this.name, {
      ...ctx.config,
      ReceiveConnectors: ctx.config.ReceiveConnectors.filter((c) => !gone.includes(c)),
      Permissions: ctx.config.Permissions.filter((p) => !gone.some((c) => entryOn(p.Identity, c))),
    });
    return [];
  },
};

/** The principal as the directory writes it; an unknown name is Exchange's "wasn't found" error. */
function principalName(config: OrganizationConfig, name: string): string | undefined {
  const dir = directoryOf(config);
  const p = resolvePrincipal(dir, name);
  if (!p) return undefined;
  return p.kind === 'well-known' ? p.name : p.kind === 'group' ? `${dir.netBiosName}\\${p.group.Name}` : accountIdentity(dir, p.account);
}

function requirePrincipal(ctx: Ctx, cmdlet: string, args: Args): string {
  const written = requireString(cmdlet, args, 'User');
  const name = principalName(ctx.config, written);
  if (name === undefined) {
    throw new EmsError(
      `${cmdlet}: user or group "${written}" wasn't found; make sure you typed it correctly (a well-known principal such as ${WELL_KNOWN_PRINCIPALS.anonymous}, or a Users, Groups or Mailboxes entry)`,
    );
  }
  return name;
}

const samePrincipal = (config: OrganizationConfig, a: string, b: string) =>
  (principalName(config, a) ?? a).toLowerCase() === (principalName(config, b) ?? b).toLowerCase();

function requireRights(cmdlet: string, args: Args): ExtendedRight[] {
  const arg: Arg | undefined = args.get('ExtendedRights');
  if (arg === undefined || arg === null) throw new EmsError(`${cmdlet}: -ExtendedRights is required`);
  if (isListEdit(arg) && arg.remove.length > 0) throw new EmsError(`${cmdlet}: -ExtendedRights @{Remove=…} is not valid here; use Remove-ADPermission`);
  const names = isListEdit(arg) ? arg.add : (arg as string[]);
  if (names.length === 0) throw new EmsError(`${cmdlet}: -ExtendedRights is empty`);
  const rights: ExtendedRight[] = [];
  for (const n of names) {
    const right = normalizeExtendedRight(n);
    if (!right)
      throw new EmsError(
        `${cmdlet}: -ExtendedRights ${n} is not an extended right Transit knows (known: ${EXTENDED_RIGHTS.map((r) => `ms-Exch-${r}`).join(', ')})`,
      );
    if (!rights.includes(right)) rights.push(right);
  }
  return rights;
}

type Ace = { Identity: string; User: string; Deny: boolean; Inherited: boolean; Rights: string; Source: string };
const aceItem = (c: ReceiveConnector, user: string, deny: boolean, right: ExtendedRight, source: string): Item => ({
  kind: 'ADPermission',
  key: c.Name,
  row: { Identity: rcIdentity(c), User: user, Deny: deny, Inherited: false, Rights: `ms-Exch-${right}`, Source: source } satisfies Ace,
});

/** Rights the connector's PermissionGroups imply (one row per principal and right, as Exchange lists them), then its Add-ADPermission entries. */
function permissionItems(config: OrganizationConfig, c: ReceiveConnector): Item[] {
  const items: Item[] = [];
  for (const group of c.PermissionGroups) {
    if (group === 'None' || group === 'Custom') continue;
    for (const grant of PERMISSION_GROUP_GRANTS[group])
      grant.rights.forEach((r) => items.push(aceItem(c, grant.principal, false, r, `PermissionGroups ${group}`)));
  }
  for (const p of config.Permissions) {
    if (entryOn(p.Identity, c)) p.ExtendedRights.forEach((r) => items.push(aceItem(c, principalName(config, p.User) ?? p.User, p.Deny, r, 'Add-ADPermission')));
  }
  return items;
}

const PERMISSION_PARAMS = { Identity: 'string', User: 'string', ExtendedRights: 'list', Deny: 'switch', Confirm: 'switch' } as const;

const addADPermission: Cmdlet = {
  name: 'Add-ADPermission',
  params: PERMISSION_PARAMS,
  positional: 'Identity',
  input: 'ReceiveConnector',
  output: 'ADPermission',
  run(ctx, args, input) {
    const connectors = connectorTargets(ctx, this.name, args, input, false);
    const user = requirePrincipal(ctx, this.name, args);
    const rights = requireRights(this.name, args);
    const deny = args.get('Deny') === true;
    let permissions = ctx.config.Permissions;
    let added = false;
    for (const c of connectors) {
      const i = permissions.findIndex((p) => entryOn(p.Identity, c) && p.Deny === deny && samePrincipal(ctx.config, p.User, user));
      const have = permissions[i]?.ExtendedRights ?? [];
      const fresh = rights.filter((r) => !have.includes(r));
      if (fresh.length === 0) {
        ctx.warnings.push(`${this.name}: ${user} already has ${deny ? 'a deny of ' : ''}${rights.map((r) => `ms-Exch-${r}`).join(', ')} on ${rcIdentity(c)}`);
        continue;
      }
      permissions =
        i >= 0
          ? permissions.with(i, { ...permissions[i]!, ExtendedRights: [...have, ...fresh] })
          : [...permissions, { Identity: c.Name, User: user, ExtendedRights: fresh, Deny: deny }];
      added = true;
    }
    if (added) commit(ctx, this.name, { ...ctx.config, Permissions: permissions });
    // Like Exchange, list the access control entries the command stands for.
    return connectors.flatMap((c) => rights.map((r) => aceItem(c, user, deny, r, 'Add-ADPermission')));
  },
};

const removeADPermission: Cmdlet = {
  name: 'Remove-ADPermission',
  params: PERMISSION_PARAMS,
  positional: 'Identity',
  input: 'ReceiveConnector',
  run(ctx, args, input) {
    const connectors = connectorTargets(ctx, this.name, args, input, false);
    const user = requirePrincipal(ctx, this.name, args);
    const rights = requireRights(this.name, args);
    const deny = args.get('Deny') === true;
    const removed = new Set<ExtendedRight>();
    const permissions = ctx.config.Permissions.map((p) => {
      if (p.Deny !== deny || !connectors.some((c) => entryOn(p.Identity, c)) || !samePrincipal(ctx.config, p.User, user)) return p;
      p.ExtendedRights.filter((r) => rights.includes(r)).forEach((r) => removed.add(r));
      return { ...p, ExtendedRights: p.ExtendedRights.filter((r) => !rights.includes(r)) };
    }).filter((p) => p.ExtendedRights.length > 0);
    const where = connectors.map(rcIdentity).join(', ');
    if (removed.size === 0) {
      // The usual surprise: the right comes from a permission group, not an entry.
      const viaGroup = connectors
        .flatMap((c) => permissionItems(ctx.config, c))
        .map((i) => i.row as Ace)
        .find((a) => a.Source.startsWith('PermissionGroups') && a.User.toLowerCase() === user.toLowerCase() && rights.some((r) => a.Rights === `ms-Exch-${r}`));
      const hint = viaGroup ? `; ${viaGroup.Rights} comes from ${viaGroup.Source} on ${viaGroup.Identity}: change its -PermissionGroups instead` : '';
      throw new EmsError(
        `${this.name}: no Add-ADPermission entry on ${where} ${deny ? 'denies' : 'grants'} ${rights.map((r) => `ms-Exch-${r}`).join(', ')} to ${user}${hint}`,
      );
    }
    for (const r of rights) if (!removed.has(r)) ctx.warnings.push(`${this.name}: ${user} had no ms-Exch-${r} entry on ${where}`);
    commit(ctx, this.name, { ...ctx.config, Permissions: permissions });
    return [];
  },
};

const getADPermission: Cmdlet = {
  name: 'Get-ADPermission',
  params: { Identity: 'string', User: 'string' },
  positional: 'Identity',
  input: 'ReceiveConnector',
  output: 'ADPermission',
  run(ctx, args, input) {
    const user = args.has('User') ? requirePrincipal(ctx, this.name, args).toLowerCase() : undefined;
    return connectorTargets(ctx, this.name, args, input, false)
      .flatMap((c) => permissionItems(ctx.config, c))
      .filter((i) => user === undefined || (i.row as Ace).User.toLowerCase() === user);
  },
};

export const RECEIVE_CMDLETS: Cmdlet[] = [
  getReceiveConnector,
  newReceiveConnector,
  setReceiveConnector,
  removeReceiveConnector,
  addADPermission,
  removeADPermission,
  getADPermission,
];
