import { parseOrganizationConfig } from '@transit/config';
import { describe, expect, it } from 'vitest';
import {
  CliError,
  findKind,
  getObjects,
  isTransportConfig,
  newObject,
  parseFields,
  removeObject,
  renderTable,
  setObject,
  setTransportSettings,
  transportConfigRows,
} from './objects.ts';

const config = parseOrganizationConfig({
  Organization: { Name: 'Contoso' },
  AcceptedDomains: [{ DomainName: 'contoso.test', Default: true }],
  Users: [{ Name: 'relay1' }],
  ReceiveConnectors: [
    { Name: 'Default Frontend', TransportRole: 'FrontendTransport', Bindings: ['0.0.0.0:25'], PermissionGroups: ['AnonymousUsers'] },
    { Name: 'Client Frontend', TransportRole: 'FrontendTransport', Bindings: ['0.0.0.0:587'], PermissionGroups: ['ExchangeUsers'] },
  ],
  Permissions: [{ Identity: 'Default Frontend', User: 'relay1', ExtendedRights: ['SMTP-Submit'] }],
});

describe('transitctl objects', () => {
  it.each([
    [
      ['--Name', 'X', '--Bindings', '0.0.0.0:25,[::]:25', '--MaxRecipientsPerMessage', '10', '--Enabled', 'false', '--RequireTLS'],
      { Name: 'X', Bindings: ['0.0.0.0:25', '[::]:25'], MaxRecipientsPerMessage: 10, Enabled: false, RequireTLS: true },
    ],
    [['--TarpitInterval=00:00:05', '--Name=123'], { TarpitInterval: '00:00:05', Name: '123' }],
    [['--ExtendedRights', 'ms-Exch-SMTP-Submit'], { ExtendedRights: ['ms-Exch-SMTP-Submit'] }],
  ])('parses %j', (args, expected) => {
    expect(parseFields(args)).toEqual(expected);
  });
  it('refuses stray arguments and unknown kinds, naming them', () => {
    expect(() => parseFields(['Name'])).toThrow(/unexpected argument "Name"/);
    expect(() => findKind('connector')).toThrow(CliError);
    expect(() => findKind('connector')).toThrow(/unknown object kind "connector"; one of: receiveconnector/);
  });
  it('gets by wildcard, case-insensitively, and says when nothing matches', () => {
    expect(getObjects(config, findKind('rc'), '*FRONTEND').map((c) => c.Name)).toEqual(['Default Frontend', 'Client Frontend']);
    expect(() => getObjects(config, findKind('rc'), 'nope*')).toThrow(/no receiveconnector matches "nope\*"/);
  });
  it('creates, refusing duplicates, and leaves the input untouched', () => {
    const next = newObject(config, findKind('user'), { Name: 'relay2' });
    expect((next.Users as unknown[]).length).toBe(2);
    expect(config.Users).toHaveLength(1);
    expect(() => newObject(config, findKind('user'), { Name: 'RELAY1' })).toThrow(/already exists/);
  });
  it('renames a connector together with its permissions, and removes them with it', () => {
    const renamed = parseOrganizationConfig(setObject(config, findKind('rc'), 'default frontend', { Name: 'Internet' }));
    expect(renamed.Permissions[0]!.Identity).toBe('Internet');
    const removed = parseOrganizationConfig(removeObject(config, findKind('rc'), 'Default Frontend'));
    expect(removed.Permissions).toEqual([]);
    expect(() => setObject(config, findKind('rc'), 'Ghost', {})).toThrow(/no receiveconnector named "Ghost"/);
  });
  it('creates, changes and removes load balancers (PROXY protocol), validated against the connectors', () => {
    const lb = findKind('lb');
    const created = parseOrganizationConfig(
      newObject(config, lb, parseFields(['--Name', 'haproxy', '--Bindings', '0.0.0.0:25', '--RemoteIPRanges', '10.0.0.10,10.0.0.11'])),
    );
    expect(created.LoadBalancers).toEqual([{ Name: 'haproxy', Bindings: ['0.0.0.0:25'], RemoteIPRanges: ['10.0.0.10', '10.0.0.11'] }]);
    const widened = parseOrganizationConfig(setObject(created, lb, 'HAPROXY', parseFields(['--Bindings', '0.0.0.0:25,0.0.0.0:587'])));
    expect(widened.LoadBalancers[0]!.Bindings).toEqual(['0.0.0.0:25', '0.0.0.0:587']);
    expect(() => parseOrganizationConfig(setObject(created, lb, 'haproxy', { Bindings: ['0.0.0.0:2525'] }))).toThrow(
      /LoadBalancers\.0\.Bindings\.0: no receive connector has binding 0\.0\.0\.0:2525/,
    );
    expect(parseOrganizationConfig(removeObject(widened, lb, 'haproxy')).LoadBalancers).toEqual([]);
  });
  it('renders a table with lists joined', () => {
    expect(renderTable([{ Name: 'A', Bindings: ['0.0.0.0:25', '[::]:25'] }], ['Name', 'Bindings'])).toBe(
      'Name Bindings\n---- -------------------\nA    0.0.0.0:25, [::]:25\n',
    );
  });
  it('gets the transport settings with their sources, and sets TransportSettings fields only', () => {
    expect(isTransportConfig('TransportConfig')).toBe(true);
    const rows = transportConfigRows(config, { TRANSIT_ACK_WAIT_SECONDS: '30' }, '*ACK_WAIT*');
    expect(rows).toEqual([expect.objectContaining({ Name: 'TRANSIT_ACK_WAIT_SECONDS', Value: 30, Source: 'environment', Scope: 'environment' })]);
    expect(() => transportConfigRows(config, {}, 'Nothing*')).toThrow('no setting matches "Nothing*"');
    const changed = parseOrganizationConfig(
      setTransportSettings(
        config,
        parseFields(['--MessageExpirationTimeout', '3.00:00:00', '--DsnMaxReturnedMessageBytes', '5MB', '--TransientRetrySchedule', '60,300']),
      ),
    );
    expect(changed.TransportSettings).toMatchObject({
      MessageExpirationTimeout: 259_200,
      DsnMaxReturnedMessageBytes: 5 * 1024 * 1024,
      TransientRetrySchedule: [60, 300],
    });
    expect(transportConfigRows(changed, {}, 'MessageExpirationTimeout')[0]).toMatchObject({ Value: 259_200, Source: 'organisation' });
    expect(() => setTransportSettings(config, { TRANSIT_DRAIN_TIMEOUT_MS: 5 })).toThrow(
      /^TRANSIT_DRAIN_TIMEOUT_MS: not a TransportSettings field \(InlineBodyMaxBytes, .*\); environment settings are read by each process at start/,
    );
  });
});
