/**
 * Accepted domains (Get/New/Set/Remove-AcceptedDomain) and send connectors
 * (Get/New/Set/Remove-SendConnector). An accepted domain's identity is its Name, falling
 * back to its DomainName; either matches.
 */
import type { AcceptedDomain, SendConnector } from '@transit/config';
import {
  applyProperties,
  commit,
  identityPattern,
  notFound,
  requireString,
  stringArg,
  targets,
  type Args,
  type Cmdlet,
  type Ctx,
  type Item,
  type ParamType,
} from './binding.ts';
import { EmsError } from './errors.ts';

const DOMAIN_TYPES = ['Authoritative', 'InternalRelay', 'ExternalRelay'] as const satisfies readonly AcceptedDomain['DomainType'][];

const adName = (d: AcceptedDomain) => d.Name ?? d.DomainName;
const adItem = (d: AcceptedDomain): Item => ({
  kind: 'AcceptedDomain',
  key: d.DomainName,
  row: { Name: adName(d), DomainName: d.DomainName, DomainType: d.DomainType, Default: d.Default },
});

function findDomains(ctx: Ctx, cmdlet: string, identity: string): AcceptedDomain[] {
  const pattern = identityPattern(identity, false);
  const found = ctx.config.AcceptedDomains.filter((d) => pattern.test(adName(d)) || pattern.test(d.DomainName));
  if (found.length === 0) throw notFound(cmdlet, identity, 'accepted domains', ctx.config.AcceptedDomains.map(adName));
  return found;
}

const domainTargets = (ctx: Ctx, cmdlet: string, args: Args, input: Item[] | undefined) =>
  targets(
    cmdlet,
    args,
    input,
    (id) => findDomains(ctx, cmdlet, id),
    (item) => ctx.config.AcceptedDomains.find((d) => d.DomainName === item.key),
  );

const getAcceptedDomain: Cmdlet = {
  name: 'Get-AcceptedDomain',
  params: { Identity: 'string' },
  positional: 'Identity',
  output: 'AcceptedDomain',
  run(ctx, args) {
    const identity = stringArg(args, 'Identity');
    return (identity === undefined ? ctx.config.AcceptedDomains : findDomains(ctx, this.name, identity)).map(adItem);
  },
};

const newAcceptedDomain: Cmdlet = {
  name: 'New-AcceptedDomain',
  params: { Name: 'string', DomainName: 'string', DomainType: { one: DOMAIN_TYPES }, Confirm: 'switch' },
  positional: 'Name',
  output: 'AcceptedDomain',
  run(ctx, args) {
    const name = requireString(this.name, args, 'Name');
    const domainName = requireString(this.name, args, 'DomainName');
    const clash = ctx.config.AcceptedDomains.find((d) =>
      [adName(d), d.DomainName].some((n) => [name, domainName].some((m) => n.toLowerCase() === m.toLowerCase())),
    );
    if (clash) throw new EmsError(`${this.name}: an accepted domain ${adName(clash)} (${clash.DomainName}) already exists`);
    const domain = { Name: name, DomainName: domainName, DomainType: stringArg(args, 'DomainType') ?? 'Authoritative', Default: false };
    commit(ctx, this.name, { ...ctx.config, AcceptedDomains: [...ctx.config.AcceptedDomains, domain] });
    return [adItem(ctx.config.AcceptedDomains.at(-1)!)];
  },
};

const setAcceptedDomain: Cmdlet = {
  name: 'Set-AcceptedDomain',
  params: { Identity: 'string', Name: 'string', DomainType: { one: DOMAIN_TYPES }, MakeDefault: 'bool', Confirm: 'switch' },
  positional: 'Identity',
  input: 'AcceptedDomain',
  run(ctx, args, input) {
    const [domain, ...more] = domainTargets(ctx, this.name, args, input);
    if (!domain) return [];
    if (more.length > 0 && args.has('MakeDefault')) throw new EmsError(`${this.name}: only one accepted domain can be the default`);
    const makeDefault = args.get('MakeDefault');
    // Exchange has no "un-default": another domain becomes the default instead.
    if (makeDefault === false) throw new EmsError(`${this.name}: -MakeDefault $false is not valid; make another domain the default with -MakeDefault $true`);
    const changed = new Set([domain, ...more]);
    const domains = ctx.config.AcceptedDomains.map((d) => {
      const next = changed.has(d) ? applyProperties(ctx, this.name, d, args, { Name: 'string', DomainType: 'string' }) : { ...d };
      return makeDefault === true ? { ...next, Default: d === domain } : next;
    });
    commit(ctx, this.name, { ...ctx.config, AcceptedDomains: domains });
    return [];
  },
};

const removeAcceptedDomain: Cmdlet = {
  name: 'Remove-AcceptedDomain',
  params: { Identity: 'string', Confirm: 'switch' },
  positional: 'Identity',
  input: 'AcceptedDomain',
  run(ctx, args, input) {
    const gone = domainTargets(ctx, this.name, args, input);
    if (gone.some((d) => d.Default))
      throw new EmsError(
        `${this.name}: ${gone.map(adName).join(', ')} is the default accepted domain; make another domain the default first (Set-AcceptedDomain -MakeDefault $true)`,
      );
    commit(ctx, this.name, { ...ctx.config, AcceptedDomains: ctx.config.AcceptedDomains.filter((d) => !gone.includes(d)) });
    return [];
  },
};

/** Every property of the schema's SendConnector is a parameter; `satisfies` keeps the two in step. */
export const SEND_CONNECTOR_PROPERTIES = {
  Name: 'string',
  AddressSpaces: 'list',
  DNSRoutingEnabled: 'bool',
  SmartHosts: 'list',
  Port: 'int',
  Fqdn: 'string',
  MaxMessageSize: 'bytes',
  ProtocolLoggingLevel: { one: ['None', 'Verbose'] satisfies SendConnector['ProtocolLoggingLevel'][] },
  Enabled: 'bool',
  RequireTLS: 'bool',
  TlsAuthLevel: { one: ['EncryptionOnly', 'CertificateValidation', 'DomainValidation'] satisfies NonNullable<SendConnector['TlsAuthLevel']>[] },
  TlsDomain: 'string',
  SmartHostAuthMechanism: { one: ['None', 'BasicAuth', 'BasicAuthRequireTLS', 'ExternalAuthoritative'] satisfies SendConnector['SmartHostAuthMechanism'][] },
  ConnectionInactivityTimeOut: 'timespan',
  SmtpMaxMessagesPerConnection: 'int',
  MaxPerDomainOutboundConnections: 'int',
  MaxPerDomainOutboundMessagesPerMinute: 'int',
} as const satisfies Record<Exclude<keyof SendConnector, 'AuthenticationCredential'>, ParamType>;

/** Exchange takes a PSCredential here; Transit keeps passwords out of its configuration, so the line is refused with the way to do it. */
function refuseCredential(cmdlet: string, args: Args): void {
  if (args.has('AuthenticationCredential'))
    throw new EmsError(
      `${cmdlet}: -AuthenticationCredential is not taken from a shell line (the password would be stored in the configuration); set AuthenticationCredential: { UserName: ..., PasswordFile: <a file holding the password> } on the connector in the organisation file (docs/configuration.md)`,
    );
}

const scItem = (c: SendConnector): Item => ({ kind: 'SendConnector', key: c.Name, row: { Identity: c.Name, ...c } });

function findSendConnectors(ctx: Ctx, cmdlet: string, identity: string): SendConnector[] {
  const pattern = identityPattern(identity, false);
  const found = ctx.config.SendConnectors.filter((c) => pattern.test(c.Name));
  if (found.length === 0)
    throw notFound(
      cmdlet,
      identity,
      'send connectors',
      ctx.config.SendConnectors.map((c) => c.Name),
    );
  return found;
}

/** Exchange routes to smart hosts only with DNS routing off; giving smart hosts says which one is meant. */
function smartHostRouting(ctx: Ctx, args: Args, next: SendConnector): SendConnector {
  if (!args.has('SmartHosts') || args.has('DNSRoutingEnabled') || next.SmartHosts.length === 0 || next.DNSRoutingEnabled === false) return next;
  ctx.warnings.push(`${next.Name}: DNSRoutingEnabled set to $false, so mail goes to the smart hosts ${next.SmartHosts.join(', ')}`);
  return { ...next, DNSRoutingEnabled: false };
}

function ignoredServers(ctx: Ctx, cmdlet: string, args: Args): void {
  if (args.has('SourceTransportServers'))
    ctx.warnings.push(`${cmdlet}: -SourceTransportServers is ignored: every Transit HubTransport node sends through every send connector`);
}

const SEND_USAGES = ['Custom', 'Internal', 'Internet', 'Partner'] as const;

const getSendConnector: Cmdlet = {
  name: 'Get-SendConnector',
  params: { Identity: 'string' },
  positional: 'Identity',
  output: 'SendConnector',
  run(ctx, args) {
    const identity = stringArg(args, 'Identity');
    return (identity === undefined ? ctx.config.SendConnectors : findSendConnectors(ctx, this.name, identity)).map(scItem);
  },
};

const newSendConnector: Cmdlet = {
  name: 'New-SendConnector',
  // Usage and its switches only describe intent in Exchange's wizard; they change no property here.
  params: {
    ...SEND_CONNECTOR_PROPERTIES,
    Usage: { one: SEND_USAGES },
    Custom: 'switch',
    Internal: 'switch',
    Internet: 'switch',
    Partner: 'switch',
    SourceTransportServers: 'list',
    AuthenticationCredential: 'string',
    Confirm: 'switch',
  },
  positional: 'Name',
  output: 'SendConnector',
  run(ctx, args) {
    refuseCredential(this.name, args);
    const name = requireString(this.name, args, 'Name');
    if (!args.has('AddressSpaces')) throw new EmsError(`${this.name}: -AddressSpaces is required (e.g. -AddressSpaces "*" for all domains)`);
    ignoredServers(ctx, this.name, args);
    const connector = smartHostRouting(
      ctx,
      args,
      applyProperties(ctx, this.name, { Name: name, SmartHosts: [] } as unknown as SendConnector, args, SEND_CONNECTOR_PROPERTIES),
    );
    commit(ctx, this.name, { ...ctx.config, SendConnectors: [...ctx.config.SendConnectors, connector] });
    return [scItem(ctx.config.SendConnectors.at(-1)!)];
  },
};

const setSendConnector: Cmdlet = {
  name: 'Set-SendConnector',
  params: { Identity: 'string', ...SEND_CONNECTOR_PROPERTIES, SourceTransportServers: 'list', AuthenticationCredential: 'string', Confirm: 'switch' },
  positional: 'Identity',
  input: 'SendConnector',
  run(ctx, args, input) {
    refuseCredential(this.name, args);
    ignoredServers(ctx, this.name, args);
    const connectors = [...ctx.config.SendConnectors];
    const found = targets(
      this.name,
      args,
      input,
      (id) => findSendConnectors(ctx, this.name, id),
      (item) => connectors.find((c) => c.Name === item.key),
    );
    for (const c of found) connectors[connectors.indexOf(c)] = smartHostRouting(ctx, args, applyProperties(ctx, this.name, c, args, SEND_CONNECTOR_PROPERTIES));
    if (found.length > 0) commit(ctx, this.name, { ...ctx.config, SendConnectors: connectors });
    return [];
  },
};

const removeSendConnector: Cmdlet = {
  name: 'Remove-SendConnector',
  params: { Identity: 'string', Confirm: 'switch' },
  positional: 'Identity',
  input: 'SendConnector',
  run(ctx, args, input) {
    const gone = targets(
      this.name,
      args,
      input,
      (id) => findSendConnectors(ctx, this.name, id),
      (item) => ctx.config.SendConnectors.find((c) => c.Name === item.key),
    );
    commit(ctx, this.name, { ...ctx.config, SendConnectors: ctx.config.SendConnectors.filter((c) => !gone.includes(c)) });
    return [];
  },
};

export const ROUTING_CMDLETS: Cmdlet[] = [
  getAcceptedDomain,
  newAcceptedDomain,
  setAcceptedDomain,
  removeAcceptedDomain,
  getSendConnector,
  newSendConnector,
  setSendConnector,
  removeSendConnector,
];
