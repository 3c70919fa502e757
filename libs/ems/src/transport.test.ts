import { ENVIRONMENT_KEYS, ORGANISATION, ORGANISATION_KEYS, transportSettingsSchema } from '@transit/config';
import { describe, expect, it } from 'vitest';
import { contoso, deepFreeze, last, runScript } from './fixture.ts';
import { runEmsLine } from './index.ts';
import { TRANSPORT_SETTINGS_PROPERTIES } from './transport.ts';

const run = (line: string, env: NodeJS.ProcessEnv = {}) => runEmsLine(line, contoso(), env);
const settings = (script: string) => last(runScript(script, contoso())).config.TransportSettings;

describe('Get-TransportConfig', () => {
  it('lists every setting of the register with its value and source', () => {
    const r = run('Get-TransportConfig', { TRANSIT_DRAIN_TIMEOUT_MS: '5000' });
    expect(r.changed).toBe(false);
    expect(r.output.objects).toHaveLength(ORGANISATION_KEYS.length + ENVIRONMENT_KEYS.length);
    const lines = r.output.text.split('\n');
    expect(lines[0]).toMatch(/^Name +Value +Source$/);
    // Column widths follow the longest value (a default path holds the checkout's directory), so match by shape.
    expect(lines.find((l) => l.startsWith('MessageExpirationTimeout '))).toMatch(/^MessageExpirationTimeout +2\.00:00:00 +default$/);
    expect(lines.find((l) => l.startsWith('DsnMaxReturnedMessageBytes '))).toMatch(/ 10 MB \(10,485,760 bytes\) +default$/);
    expect(lines.find((l) => l.startsWith('TRANSIT_DRAIN_TIMEOUT_MS '))).toMatch(/ 5000 +environment$/);
    expect(lines.find((l) => l.startsWith('TRANSIT_ACK_WAIT_SECONDS '))).toMatch(/ 15 +default$/);
  });

  it('shows what the organisation set as organisation, in Exchange’s notation', () => {
    const config = { ...contoso(), TransportSettings: transportSettingsSchema.parse({ MessageExpirationTimeout: 86_400, TransientRetrySchedule: [60, 900] }) };
    const r = runEmsLine('Get-TransportConfig Message*,Transient* | Format-List', config);
    expect(r.output.text).toContain(
      [
        'Name    : MessageExpirationTimeout',
        'Value   : 1.00:00:00',
        'Source  : organisation',
        'Scope   : organisation',
        'Default : 2.00:00:00',
        'Unit    : s',
        'SetWith : Set-TransportService -MessageExpirationTimeout',
        'Meaning : a message still undelivered after this long is failed with 4.4.7 and reported to its sender',
      ].join('\n'),
    );
    expect(r.output.objects.find((o) => o.Name === 'TransientRetrySchedule')).toMatchObject({
      Value: '{00:01:00, 00:15:00}',
      Source: 'organisation',
      Default: '(unset)',
    });
  });

  it('picks settings by name, with wildcards, and says when none matches', () => {
    expect(run('Get-TransportConfig TRANSIT_OUTBOUND_*').output.objects.map((o) => o.Name)).toEqual([
      'TRANSIT_OUTBOUND_CONCURRENCY',
      'TRANSIT_OUTBOUND_MAX_CONNECTIONS',
      'TRANSIT_OUTBOUND_MAX_MESSAGES_PER_CONNECTION',
      'TRANSIT_OUTBOUND_CONNECTION_TIMEOUT_MS',
      'TRANSIT_OUTBOUND_GREETING_TIMEOUT_MS',
      'TRANSIT_OUTBOUND_SOCKET_TIMEOUT_MS',
    ]);
    expect(() => run('Get-TransportConfig MaxSendSize')).toThrow("Get-TransportConfig: no setting is named 'MaxSendSize'");
  });

  it('never shows a secret', () => {
    const r = run('Get-TransportConfig TRANSIT_CLUSTER_SECRET', { TRANSIT_CLUSTER_SECRET: 'hush-hush' });
    expect(r.output.objects[0]).toMatchObject({ Value: '(set)', Source: 'environment' });
    expect(JSON.stringify(r.output)).not.toContain('hush-hush');
  });

  it('shows an environment value the process would refuse', () => {
    expect(run('Get-TransportConfig TRANSIT_STREAM_REPLICAS', { TRANSIT_STREAM_REPLICAS: '9' }).output.objects[0]).toMatchObject({
      Value: 'invalid: TRANSIT_STREAM_REPLICAS must be a whole number from 1 to 5, not "9"',
      Source: 'environment',
    });
  });
});

describe('Get-TransportService', () => {
  it('lists what Exchange sets per server, saying a server identity is informational', () => {
    const r = run('Get-TransportService EXCH01');
    expect(r.output.objects.map((o) => o.Name)).toEqual([
      'TransientFailureRetryCount',
      'TransientFailureRetryInterval',
      'OutboundConnectionFailureRetryInterval',
      'MessageExpirationTimeout',
      'DelayNotificationTimeout',
      'PickupDirectoryMaxRecipientsPerMessage',
      'PickupDirectoryMaxHeaderSize',
      'MaxPerDomainOutboundConnections',
      'MaxPerDomainOutboundMessagesPerMinute',
    ]);
    expect(r.warnings).toEqual([
      "Get-TransportService: -Identity EXCH01 is informational in a Transit cluster: every node runs with the organisation's one TransportSettings",
    ]);
  });
});

describe('Set-TransportService and Set-TransportConfig', () => {
  it('sets the per-destination limits, cluster-wide', () => {
    const r = run('Set-TransportService EXCH01 -MaxPerDomainOutboundConnections 10 -MaxPerDomainOutboundMessagesPerMinute 120');
    expect(r.config.TransportSettings).toMatchObject({ MaxPerDomainOutboundConnections: 10, MaxPerDomainOutboundMessagesPerMinute: 120 });
    expect(() => run('Set-TransportService -MaxPerDomainOutboundConnections 0')).toThrow(/MaxPerDomainOutboundConnections/);
  });

  it.each([
    [
      'Exchange’s time spans',
      'Set-TransportService EXCH01 -MessageExpirationTimeout 3.00:00:00 -DelayNotificationTimeout 02:00:00',
      { MessageExpirationTimeout: 259_200, DelayNotificationTimeout: 7200 },
    ],
    [
      'retry counts and intervals',
      'Set-TransportService -TransientFailureRetryCount 3 -TransientFailureRetryInterval 00:02:00 -OutboundConnectionFailureRetryInterval 900',
      { TransientFailureRetryCount: 3, TransientFailureRetryInterval: 120, OutboundConnectionFailureRetryInterval: 900 },
    ],
    [
      'pickup limits, sizes as Exchange writes them',
      'Set-TransportService -PickupDirectoryMaxHeaderSize 128KB -PickupDirectoryMaxRecipientsPerMessage 500',
      { PickupDirectoryMaxHeaderSize: 131_072, PickupDirectoryMaxRecipientsPerMessage: 500 },
    ],
    ['a retry schedule as time spans', 'Set-TransportConfig -TransientRetrySchedule 60,300,00:15:00', { TransientRetrySchedule: [60, 300, 900] }],
    [
      'organisation-wide sizes and counts',
      'Set-TransportConfig -DsnMaxReturnedMessageBytes 5MB -InlineBodyMaxBytes 128KB -GlitchRetryCount 2 -GlitchRetryInterval 00:00:30',
      { DsnMaxReturnedMessageBytes: 5 * 1024 * 1024, InlineBodyMaxBytes: 131_072, GlitchRetryCount: 2, GlitchRetryInterval: 30 },
    ],
    ['-Param:value and -Confirm:$false', 'Set-TransportService -MessageExpirationTimeout:1.00:00:00 -Confirm:$false', { MessageExpirationTimeout: 86_400 }],
  ])('sets %s', (_name, line, expected) => {
    const r = run(line);
    expect(r.changed).toBe(true);
    expect(r.config.TransportSettings).toMatchObject(expected);
  });

  it('clears the explicit schedule with $null (Exchange’s intervals apply again)', () => {
    const after = settings('Set-TransportConfig -TransientRetrySchedule 60\nSet-TransportConfig -TransientRetrySchedule $null');
    expect('TransientRetrySchedule' in after).toBe(false);
  });

  it('shows the change in Get-TransportConfig', () => {
    const [set, get] = runScript('Set-TransportService -MessageExpirationTimeout 1.00:00:00\nGet-TransportConfig MessageExpirationTimeout', contoso());
    expect(set!.changed).toBe(true);
    expect(get!.output.objects[0]).toMatchObject({ Value: '1.00:00:00', Source: 'organisation' });
  });

  it('says when nothing changed', () => {
    const r = run('Set-TransportService -DelayNotificationTimeout 04:00:00');
    expect(r.changed).toBe(false);
    expect(r.warnings).toEqual(['Set-TransportService: the command completed but no settings were modified']);
  });

  it('never modifies the configuration it is given', () => {
    const input = deepFreeze(contoso());
    const snapshot = structuredClone(input);
    expect(runEmsLine('Set-TransportService -MessageExpirationTimeout 1.00:00:00', input).changed).toBe(true);
    expect(runEmsLine('Set-TransportConfig -TransientRetrySchedule 60,120', input).changed).toBe(true);
    expect(input).toEqual(snapshot);
  });

  it.each([
    [
      'a per-server setting on Set-TransportConfig',
      'Set-TransportConfig -MessageExpirationTimeout 1.00:00:00',
      'Set-TransportConfig: -MessageExpirationTimeout is set with Set-TransportService (as in Exchange, where it is a transport service (per server) setting): Set-TransportService -MessageExpirationTimeout ...',
    ],
    [
      'an organisation-wide one on Set-TransportService',
      'Set-TransportService -TransientRetrySchedule 60,300',
      'Set-TransportService: -TransientRetrySchedule is set with Set-TransportConfig (Transit keeps it with the organisation-wide settings): Set-TransportConfig -TransientRetrySchedule ...',
    ],
    [
      'Exchange’s MaxSendSize, which Transit has not',
      'Set-TransportConfig -MaxSendSize 25MB',
      "Set-TransportConfig: -MaxSendSize is not supported: Transit has no organisation-wide MaxSendSize; each receive connector's and send connector's MaxMessageSize limits the size (Set-ReceiveConnector, Set-SendConnector -MaxMessageSize)",
    ],
    [
      'SafetyNetHoldTime, an environment setting here',
      'Set-TransportConfig -SafetyNetHoldTime 3.00:00:00',
      /SafetyNetHoldTime is the environment variable TRANSIT_SAFETY_NET_HOLD_SECONDS/,
    ],
    [
      'an environment variable',
      'Set-TransportConfig -TRANSIT_DRAIN_TIMEOUT_MS 5000',
      /^Set-TransportConfig: parameter -TRANSIT_DRAIN_TIMEOUT_MS is not supported: TRANSIT_DRAIN_TIMEOUT_MS is an environment setting, read by each process at start.*\(supported: -Identity, -InlineBodyMaxBytes, -GlitchRetryCount, -GlitchRetryInterval, -TransientRetrySchedule, -DsnMaxReturnedMessageBytes, -PickupDirectoryPollInterval, -Confirm\)$/,
    ],
    [
      'an expiry beyond the schema’s 90 days',
      'Set-TransportService -MessageExpirationTimeout 100.00:00:00',
      /^Set-TransportService: nothing was changed: .*\n {2}TransportSettings\.MessageExpirationTimeout: Too big: expected number to be <=7776000$/,
    ],
    ['a count out of bounds', 'Set-TransportService -TransientFailureRetryCount 16', /TransportSettings\.TransientFailureRetryCount: Too big/],
    [
      'a schedule that is not time spans',
      'Set-TransportConfig -TransientRetrySchedule 60,soon',
      'Set-TransportConfig: -TransientRetrySchedule 60,soon is not valid: expected a list of time spans such as 60,300,00:15:00',
    ],
    [
      'a time span that is not one',
      'Set-TransportService -DelayNotificationTimeout tomorrow',
      'Set-TransportService: -DelayNotificationTimeout tomorrow is not valid: expected a time span such as 00:05:00',
    ],
  ])('refuses %s', (_name, line, message) => {
    expect(() => run(line)).toThrow(message);
  });

  it('offers every TransportSettings field on exactly one of the two cmdlets, as the register says', () => {
    expect(Object.keys(TRANSPORT_SETTINGS_PROPERTIES).sort()).toEqual(Object.keys(transportSettingsSchema.shape).sort());
    for (const key of ORGANISATION_KEYS) {
      const own = ORGANISATION[key].cmdlet;
      const other = own === 'Set-TransportConfig' ? 'Set-TransportService' : 'Set-TransportConfig';
      expect(() => run(`${other} -${key} 1`), key).toThrow(`${other}: -${key} is set with ${own}`);
    }
  });
});
