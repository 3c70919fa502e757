/**
 * kubectl-style verbs over the configuration's objects: pure functions from a
 * configuration and arguments to rows or to a new (not yet validated) configuration. The
 * store validates the whole document before writing, so a bad value never lands.
 */
import { ORGANISATION_KEYS, settingRows, type OrganizationConfig, type SettingRow } from '@transit/config';

export class CliError extends Error {
  readonly code = 'CLI_USAGE';
  constructor(message: string) {
    super(message);
    this.name = 'CliError';
  }
}

type Collection = 'ReceiveConnectors' | 'SendConnectors' | 'AcceptedDomains' | 'Mailboxes' | 'Users' | 'Groups' | 'Permissions' | 'LoadBalancers';
type Item = Record<string, unknown>;

export type Kind = { name: string; aliases: string[]; collection: Collection; key: (item: Item) => string; columns: string[] };

const byName = (item: Item) => String(item.Name);

export const KINDS: Kind[] = [
  {
    name: 'receiveconnector',
    aliases: ['receiveconnectors', 'rc'],
    collection: 'ReceiveConnectors',
    key: byName,
    columns: ['Name', 'TransportRole', 'Bindings', 'RemoteIPRanges', 'AuthMechanism', 'PermissionGroups', 'Enabled'],
  },
  {
    name: 'sendconnector',
    aliases: ['sendconnectors', 'sc'],
    collection: 'SendConnectors',
    key: byName,
    columns: ['Name', 'AddressSpaces', 'SmartHosts', 'DNSRoutingEnabled', 'Enabled'],
  },
  {
    name: 'accepteddomain',
    aliases: ['accepteddomains', 'domain', 'domains'],
    collection: 'AcceptedDomains',
    key: (d) => String(d.Name ?? d.DomainName),
    columns: ['DomainName', 'DomainType', 'Default'],
  },
  {
    name: 'mailbox',
    aliases: ['mailboxes', 'mb'],
    collection: 'Mailboxes',
    key: byName,
    columns: ['Name', 'PrimarySmtpAddress', 'EmailAddresses', 'UserPrincipalName', 'Database'],
  },
  { name: 'user', aliases: ['users'], collection: 'Users', key: byName, columns: ['Name', 'SamAccountName', 'UserPrincipalName'] },
  { name: 'group', aliases: ['groups'], collection: 'Groups', key: byName, columns: ['Name', 'Members'] },
  {
    name: 'permission',
    aliases: ['permissions', 'perm', 'adpermission'],
    collection: 'Permissions',
    key: (p) => `${String(p.Identity)}|${String(p.User)}`,
    columns: ['Identity', 'User', 'ExtendedRights', 'Deny'],
  },
  {
    name: 'loadbalancer',
    aliases: ['loadbalancers', 'lb'],
    collection: 'LoadBalancers',
    key: byName,
    columns: ['Name', 'Bindings', 'RemoteIPRanges', 'Comment'],
  },
];

/** Fields that hold lists: `--Bindings 0.0.0.0:25,[::]:25`. */
const LIST_FIELDS = new Set([
  'Bindings',
  'RemoteIPRanges',
  'AuthMechanism',
  'PermissionGroups',
  'AddressSpaces',
  'SmartHosts',
  'EmailAddresses',
  'Members',
  'ExtendedRights',
  'TransientRetrySchedule',
]);
/** Fields whose values stay text even when they look like numbers. */
const TEXT_FIELDS = new Set([
  'Name',
  'Identity',
  'User',
  'Fqdn',
  'Banner',
  'Comment',
  'Server',
  'DomainName',
  'SamAccountName',
  'Database',
  'ConnectionTimeout',
  'ConnectionInactivityTimeout',
  'TarpitInterval',
  'AuthTarpitInterval',
  'MaxMessageSize',
  'MaxHeaderSize',
]);

export function findKind(word: string | undefined): Kind {
  const w = (word ?? '').toLowerCase();
  const kind = KINDS.find((k) => k.name === w || k.aliases.includes(w));
  if (!kind) throw new CliError(`unknown object kind "${word ?? ''}"; one of: ${KINDS.map((k) => k.name).join(', ')}`);
  return kind;
}

function value(field: string, raw: string): unknown {
  if (LIST_FIELDS.has(field))
    return raw === ''
      ? []
      : raw
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean)
          .map((s) => (field === 'TransientRetrySchedule' ? Number(s) : s));
  if (raw === 'true' || raw === 'false') return raw === 'true';
  if (!TEXT_FIELDS.has(field) && /^\d+$/.test(raw)) return Number(raw);
  return raw;
}

/** `--Field value` pairs (and `--Flag` for true) into an object; field names as in the YAML. */
export function parseFields(args: readonly string[]): Item {
  const fields: Item = {};
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (!arg.startsWith('--')) throw new CliError(`unexpected argument "${arg}"; fields are written --Field value`);
    const eq = arg.indexOf('=');
    const field = arg.slice(2, eq > 0 ? eq : undefined);
    if (!/^[A-Za-z][A-Za-z0-9]*$/.test(field)) throw new CliError(`"${arg}" is not a field name`);
    const next = args[i + 1];
    const raw = eq > 0 ? arg.slice(eq + 1) : next !== undefined && !next.startsWith('--') ? (i++, next) : 'true';
    fields[field] = value(field, raw);
  }
  return fields;
}

function wildcard(pattern: string): RegExp {
  return new RegExp(
    `^${pattern
      .split('*')
      .map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
      .join('.*')}$`,
    'i',
  );
}

const itemsOf = (config: OrganizationConfig, kind: Kind) => config[kind.collection] as unknown as Item[];

export function getObjects(config: OrganizationConfig, kind: Kind, pattern?: string): Item[] {
  const items = itemsOf(config, kind);
  if (!pattern) return items;
  const re = wildcard(pattern);
  const found = items.filter((i) => re.test(kind.key(i)) || re.test(typeof i.Name === 'string' ? i.Name : ''));
  if (found.length === 0) throw new CliError(`no ${kind.name} matches "${pattern}"`);
  return found;
}

function one(config: OrganizationConfig, kind: Kind, name: string): Item {
  const found = itemsOf(config, kind).filter((i) => kind.key(i).toLowerCase() === name.toLowerCase());
  if (found.length !== 1) throw new CliError(`no ${kind.name} named "${name}"`);
  return found[0]!;
}

function replaceCollection(config: OrganizationConfig, kind: Kind, items: Item[]): Record<string, unknown> {
  return { ...config, [kind.collection]: items };
}

export function newObject(config: OrganizationConfig, kind: Kind, fields: Item): Record<string, unknown> {
  const key = kind.key(fields);
  if (itemsOf(config, kind).some((i) => kind.key(i).toLowerCase() === key.toLowerCase())) throw new CliError(`${kind.name} "${key}" already exists; use set`);
  return replaceCollection(config, kind, [...itemsOf(config, kind), fields]);
}

export function setObject(config: OrganizationConfig, kind: Kind, name: string, fields: Item): Record<string, unknown> {
  const current = one(config, kind, name);
  const updated = { ...current, ...fields };
  const next = replaceCollection(
    config,
    kind,
    itemsOf(config, kind).map((i) => (i === current ? updated : i)),
  );
  if (kind.collection === 'ReceiveConnectors' && typeof fields.Name === 'string' && fields.Name !== current.Name) {
    // A rename carries the connector's permissions along.
    next.Permissions = config.Permissions.map((p) =>
      p.Identity.toLowerCase() === String(current.Name).toLowerCase() ? { ...p, Identity: fields.Name as string } : p,
    );
  }
  return next;
}

export function removeObject(config: OrganizationConfig, kind: Kind, name: string): Record<string, unknown> {
  const current = one(config, kind, name);
  const next = replaceCollection(
    config,
    kind,
    itemsOf(config, kind).filter((i) => i !== current),
  );
  if (kind.collection === 'ReceiveConnectors')
    next.Permissions = config.Permissions.filter((p) => p.Identity.toLowerCase() !== String(current.Name).toLowerCase());
  return next;
}

function cell(v: unknown): string {
  if (Array.isArray(v)) return v.map((x) => cell(x)).join(', ');
  if (v === undefined || v === null) return '';
  return typeof v === 'string' ? v : JSON.stringify(v);
}

/** A fixed-width table like PowerShell's Format-Table. */
export function renderTable(rows: Item[], columns: string[]): string {
  if (rows.length === 0) return '';
  const widths = columns.map((c) => Math.min(60, Math.max(c.length, ...rows.map((r) => cell(r[c]).length))));
  const line = (vals: string[]) =>
    vals
      .map((v, i) => (v.length > widths[i]! ? `${v.slice(0, widths[i]! - 3)}...` : v.padEnd(widths[i]!)))
      .join(' ')
      .trimEnd();
  return [line(columns), line(widths.map((w) => '-'.repeat(w))), ...rows.map((r) => line(columns.map((c) => cell(r[c]))))].join('\n') + '\n';
}

/** `transitctl get|set transportconfig`: the register's settings rather than a collection of objects. */
export const TRANSPORT_CONFIG_WORDS = ['transportconfig', 'transportsettings', 'tc'];
export const isTransportConfig = (word: string | undefined) => TRANSPORT_CONFIG_WORDS.includes((word ?? '').toLowerCase());
export const TRANSPORT_CONFIG_COLUMNS = ['Name', 'Value', 'Unit', 'Source', 'SetWith'];

/** Every setting (organisation ones from `config`, environment ones as `env` gives them), optionally by name pattern. */
export function transportConfigRows(config: OrganizationConfig | undefined, env: NodeJS.ProcessEnv, pattern?: string): SettingRow[] {
  const rows = settingRows(config?.TransportSettings, env);
  if (!pattern) return rows;
  const re = wildcard(pattern);
  const found = rows.filter((r) => re.test(r.Name));
  if (found.length === 0) throw new CliError(`no setting matches "${pattern}"`);
  return found;
}

/** The configuration with these TransportSettings fields changed; the store validates the result. */
export function setTransportSettings(config: OrganizationConfig, fields: Item): Record<string, unknown> {
  const known = new Set<string>(ORGANISATION_KEYS);
  const unknown = Object.keys(fields).filter((f) => !known.has(f));
  if (unknown.length) {
    throw new CliError(
      `${unknown.join(', ')}: not a TransportSettings field (${ORGANISATION_KEYS.join(', ')}); environment settings are read by each process at start, set them in its environment`,
    );
  }
  return { ...config, TransportSettings: { ...config.TransportSettings, ...fields } };
}
