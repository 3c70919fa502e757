/**
 * Transport settings: Get-TransportConfig (every setting of the register, organisation and
 * environment, with its value and where the value comes from), Get-TransportService, and
 * Set-TransportConfig and Set-TransportService on OrganizationConfig.TransportSettings.
 * Which cmdlet sets which field follows Exchange (libs/config settings.ts ORGANISATION):
 * Set-TransportService takes what Exchange keeps per server, Set-TransportConfig the rest.
 * A Transit cluster has one TransportSettings for all its nodes, so a server identity
 * restricts nothing. Values are checked by the schema when the change commits, as for
 * Set-ReceiveConnector; environment settings are read at start and cannot be set here.
 */
import { ORGANISATION, ORGANISATION_KEYS, settingRows, type SettingRow, type TransportSettings } from '@transit/config';
import { applyProperties, commit, identityPattern, stringArg, type Args, type Cmdlet, type Ctx, type Item, type ParamType } from './binding.ts';
import { EmsError } from './errors.ts';
import { display } from './format.ts';

/** Every TransportSettings field is a parameter of one of the two Set- cmdlets; `satisfies` keeps this in step with the schema. */
export const TRANSPORT_SETTINGS_PROPERTIES = {
  InlineBodyMaxBytes: 'bytes',
  GlitchRetryCount: 'int',
  GlitchRetryInterval: 'timespan',
  TransientFailureRetryCount: 'int',
  TransientFailureRetryInterval: 'timespan',
  OutboundConnectionFailureRetryInterval: 'timespan',
  TransientRetrySchedule: 'timespans',
  MessageExpirationTimeout: 'timespan',
  DelayNotificationTimeout: 'timespan',
  DsnMaxReturnedMessageBytes: 'bytes',
  PickupDirectoryPollInterval: 'int',
  PickupDirectoryMaxRecipientsPerMessage: 'int',
  PickupDirectoryMaxHeaderSize: 'bytes',
  MaxPerDomainOutboundConnections: 'int',
  MaxPerDomainOutboundMessagesPerMinute: 'int',
} as const satisfies Record<keyof TransportSettings, ParamType>;

type Field = keyof TransportSettings;
type SetCmdlet = 'Set-TransportConfig' | 'Set-TransportService';

const fieldsOf = (cmdlet: SetCmdlet): Field[] => ORGANISATION_KEYS.filter((k) => ORGANISATION[k].cmdlet === cmdlet);
const paramsOf = (fields: readonly Field[]): Record<string, ParamType> => Object.fromEntries(fields.map((k) => [k, TRANSPORT_SETTINGS_PROPERTIES[k]]));
const isField = (name: string): name is Field => name in TRANSPORT_SETTINGS_PROPERTIES;

/** Exchange organisation limits Transit does not have as such: what limits the same thing here. */
const NOT_IN_TRANSIT: Record<string, string> = {
  MaxSendSize:
    "Transit has no organisation-wide MaxSendSize; each receive connector's and send connector's MaxMessageSize limits the size (Set-ReceiveConnector, Set-SendConnector -MaxMessageSize)",
  MaxReceiveSize:
    "Transit has no organisation-wide MaxReceiveSize; each receive connector's MaxMessageSize limits the size (Set-ReceiveConnector -MaxMessageSize)",
  MaxRecipientEnvelopeLimit:
    "Transit has no organisation-wide MaxRecipientEnvelopeLimit; each receive connector's MaxRecipientsPerMessage limits recipients (Set-ReceiveConnector -MaxRecipientsPerMessage)",
  SafetyNetHoldTime: 'in Transit SafetyNetHoldTime is the environment variable TRANSIT_SAFETY_NET_HOLD_SECONDS, read by each process at start',
};

/** A row as the shell prints it: values in Exchange's notation (time spans d.hh:mm:ss, sizes "10 MB (10,485,760 bytes)"). */
function settingItem(row: SettingRow): Item {
  const type: ParamType | undefined = row.Scope === 'organisation' && isField(row.Name) ? TRANSPORT_SETTINGS_PROPERTIES[row.Name] : undefined;
  const shown = (v: unknown) => (v === undefined ? '(unset)' : display(v, type === 'timespans' ? 'timespan' : type));
  const list = (v: unknown) => (Array.isArray(v) ? `{${v.map(shown).join(', ')}}` : shown(v));
  return {
    kind: 'TransportSetting',
    key: row.Name,
    row: {
      Name: row.Name,
      Value: list(row.Value),
      Source: row.Source,
      Scope: row.Scope,
      Default: list(row.Default),
      Unit: row.Unit,
      SetWith: row.SetWith,
      Meaning: row.Meaning,
    },
  };
}

const rowsOf = (ctx: Ctx) => settingRows(ctx.config.TransportSettings, ctx.env);

const getTransportConfig: Cmdlet = {
  name: 'Get-TransportConfig',
  // Transit: -Name picks settings by name (wildcards, several allowed); Exchange's Get-TransportConfig writes one object.
  params: { Name: 'list' },
  positional: 'Name',
  output: 'TransportSetting',
  run(ctx, args) {
    const names = args.get('Name');
    const rows = rowsOf(ctx);
    if (!Array.isArray(names) || names.length === 0) return rows.map(settingItem);
    const patterns = names.map((n) => identityPattern(n, false));
    const found = rows.filter((r) => patterns.some((p) => p.test(r.Name)));
    if (found.length === 0)
      throw new EmsError(
        `${this.name}: no setting is named '${names.join(', ')}' (Get-TransportConfig lists them all; environment settings go by their variable, e.g. TRANSIT_DRAIN_TIMEOUT_MS)`,
      );
    return found.map(settingItem);
  },
};

function informationalServer(ctx: Ctx, cmdlet: string, args: Args): void {
  const identity = stringArg(args, 'Identity');
  if (identity !== undefined)
    ctx.warnings.push(`${cmdlet}: -Identity ${identity} is informational in a Transit cluster: every node runs with the organisation's one TransportSettings`);
}

const getTransportService: Cmdlet = {
  name: 'Get-TransportService',
  params: { Identity: 'string' },
  positional: 'Identity',
  output: 'TransportSetting',
  run(ctx, args) {
    informationalServer(ctx, this.name, args);
    const fields = new Set<string>(fieldsOf('Set-TransportService'));
    return rowsOf(ctx)
      .filter((r) => r.Scope === 'organisation' && fields.has(r.Name))
      .map(settingItem);
  },
};

function setTransport(cmdlet: SetCmdlet, other: SetCmdlet): Cmdlet {
  const own = paramsOf(fieldsOf(cmdlet));
  const elsewhere = paramsOf(fieldsOf(other));
  const hidden = [...Object.keys(elsewhere), ...Object.keys(NOT_IN_TRANSIT)];
  return {
    name: cmdlet,
    // The other cmdlet's fields are bound (any value) only to say where they belong; Exchange's names Transit lacks likewise.
    params: { Identity: 'string', ...own, ...Object.fromEntries(hidden.map((k) => [k, 'list' as const])), Confirm: 'switch' },
    positional: 'Identity',
    hidden,
    unknownHint: (written) =>
      /^(TRANSIT_|NATS_URL$|REDIS_URL$)/i.test(written)
        ? `${written.toUpperCase()} is an environment setting, read by each process at start: set it in the environment of every process that reads it (docs/configuration.md)`
        : undefined,
    run(ctx, args) {
      for (const key of args.keys()) {
        const hint = NOT_IN_TRANSIT[key];
        if (hint) throw new EmsError(`${cmdlet}: -${key} is not supported: ${hint}`);
        if (key in elsewhere) {
          const why = ORGANISATION[key as Field].exchange
            ? 'as in Exchange, where it is a transport service (per server) setting'
            : 'Transit keeps it with the organisation-wide settings';
          throw new EmsError(`${cmdlet}: -${key} is set with ${other} (${why}): ${other} -${key} ...`);
        }
      }
      informationalServer(ctx, cmdlet, args);
      const current = ctx.config.TransportSettings;
      const next = applyProperties(ctx, cmdlet, current, args, own);
      if (JSON.stringify(next) === JSON.stringify(current)) {
        ctx.warnings.push(`${cmdlet}: the command completed but no settings were modified`);
        return [];
      }
      commit(ctx, cmdlet, { ...ctx.config, TransportSettings: next });
      return [];
    },
  };
}

export const TRANSPORT_CMDLETS: Cmdlet[] = [
  getTransportConfig,
  setTransport('Set-TransportConfig', 'Set-TransportService'),
  getTransportService,
  setTransport('Set-TransportService', 'Set-TransportConfig'),
];
