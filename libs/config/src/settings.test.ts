import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  ENVIRONMENT_KEYS,
  ORGANISATION_KEYS,
  environmentDefault,
  environmentMeta,
  organisationDefault,
  organisationType,
  readEnvironment,
  readEnvironmentSetting,
  retentionProblems,
  runtimeSettings,
  settingRows,
  transportSettingsSchema,
} from './index.ts';

describe('the register of environment settings', () => {
  it('keeps the values Transit had before the register (no change by default)', () => {
    const s = runtimeSettings({});
    expect(s).toMatchObject({
      natsServers: ['nats://127.0.0.1:4222'],
      redisUrl: 'redis://127.0.0.1:6379',
      configPath: resolve('config/examples/contoso.yaml'),
      nodeName: hostname(),
      portOffset: 0,
      varDir: resolve('var'),
      mailDir: resolve('var/mail'),
      pickupDir: resolve('var/pickup'),
      replayDir: resolve('var/replay'),
      protocolLogDir: resolve('var/logs/ProtocolLog'),
      streamReplicas: 1,
      logLevel: 'info',
      submitQueueMaxMessages: -1,
      submitQueueMaxBytes: -1,
      drainTimeoutMs: 20_000,
      safetyNetHoldSeconds: 2 * 86_400,
      ackWaitSeconds: 15,
      publishBudgetMs: 15_000,
      stallSeconds: 120,
      // Hard-coded until the register: services' main.ts, sender.ts, leases.ts, engine.ts, topology.ts, run.ts.
      hubConcurrency: 32,
      mailboxDeliveryConcurrency: 16,
      outboundConcurrency: 32,
      outboundMaxConnections: 5,
      outboundMaxMessagesPerConnection: 1000,
      outboundConnectionTimeoutMs: 30_000,
      outboundGreetingTimeoutMs: 30_000,
      outboundSocketTimeoutMs: 600_000,
      shadowLeaseTtlMs: 15_000,
      shadowHeartbeatTtlMs: 3000,
      backPressureHoldMs: 5000,
      eventRetentionSeconds: 7 * 86_400,
      bodyRetentionSeconds: 7 * 86_400,
      stopTimeoutMs: 30_000,
      // Hard-coded until they joined the register: leases store.ts, topology.ts, consume.ts, engine.ts.
      deliveredTtlSeconds: 9 * 86_400,
      duplicateWindowSeconds: 120,
      poisonRetentionSeconds: 30 * 86_400,
      poisonMarkerTtlSeconds: 600,
      nodeTtlMs: 15_000,
      pullExpiresMs: 10_000,
      workerCheckMs: 5000,
      pullRestartAfterMs: 10_000,
      strandedGraceMs: 10_000,
      shadowCheckAfterMs: 10_000,
      shadowMaxRecheckMs: 300_000,
      shadowMissingGraceMs: 10_000,
      proxyHeaderTimeoutMs: 5000,
    });
    for (const unset of ['listenHost', 'httpPort', 'tlsCertPath', 'tlsKeyPath', 'clusterSecret']) expect(s).not.toHaveProperty(unset, expect.anything());
  });

  it('reads each variable, paths against the working directory', () => {
    const s = runtimeSettings({
      NATS_URL: 'nats://a:4222, nats://b:4222',
      TRANSIT_VAR_DIR: '/srv/t',
      TRANSIT_MAIL_DIR: 'm',
      TRANSIT_HTTP_PORT: '9000',
      TRANSIT_SUBMIT_QUEUE_MAX_MESSAGES: '-1',
      TRANSIT_STALL_SECONDS: '2.5',
      TRANSIT_LISTEN_HOST: '',
    });
    expect(s).toMatchObject({
      natsServers: ['nats://a:4222', 'nats://b:4222'],
      varDir: '/srv/t',
      pickupDir: '/srv/t/pickup',
      mailDir: resolve('m'),
      httpPort: 9000,
      submitQueueMaxMessages: -1,
      stallSeconds: 10,
    });
    expect(s.listenHost).toBeUndefined();
  });

  it('names every variable at fault, with what it must be', () => {
    const r = readEnvironment({
      TRANSIT_DRAIN_TIMEOUT_MS: '20s',
      TRANSIT_STREAM_REPLICAS: '0',
      TRANSIT_LOG_LEVEL: 'loud',
      NATS_URL: ',',
      TRANSIT_ACK_WAIT_SECONDS: '1.5',
    });
    expect(r.problems.sort()).toEqual([
      'NATS_URL must be one or more URLs, comma separated, not ","',
      'TRANSIT_ACK_WAIT_SECONDS must be a whole number ≥ 1 (s), not "1.5"',
      'TRANSIT_DRAIN_TIMEOUT_MS must be a whole number ≥ 0 (ms), not "20s"',
      'TRANSIT_LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent, not "loud"',
      'TRANSIT_STREAM_REPLICAS must be a whole number from 1 to 5, not "0"',
    ]);
    // The others keep their values (so Get-TransportConfig can still show them).
    expect(r.values.drainTimeoutMs).toBe(20_000);
    expect(() => runtimeSettings({ TRANSIT_PORT_OFFSET: 'ten' })).toThrow(
      new ConfigError('environment settings are invalid:\n  TRANSIT_PORT_OFFSET must be a whole number from 0 to 65535, not "ten"'),
    );
  });

  it('gives a default without reading the environment', () => {
    expect(environmentDefault('shadowLeaseTtlMs')).toBe(15_000);
    expect(environmentDefault('deliveredTtlSeconds')).toBe(9 * 86_400);
    expect(environmentDefault('nodeName')).toBeUndefined();
  });

  it('reads one variable alone', () => {
    expect(readEnvironmentSetting({ TRANSIT_STALL_SECONDS: '30', TRANSIT_PORT_OFFSET: 'bad' }, 'stallSeconds')).toBe(30);
    expect(() => readEnvironmentSetting({ TRANSIT_STALL_SECONDS: '-1' }, 'stallSeconds')).toThrow(
      'TRANSIT_STALL_SECONDS must be a positive number of seconds (s), not "-1"',
    );
  });

  it('has a variable, a meaning and a default (or what unset means) for every field', () => {
    const variables = ENVIRONMENT_KEYS.map((k) => environmentMeta(k).variable);
    expect(new Set(variables).size).toBe(variables.length);
    for (const key of ENVIRONMENT_KEYS) {
      const meta = environmentMeta(key);
      expect(meta.variable, key).toMatch(/^(TRANSIT_[A-Z0-9_]+|NATS_URL|REDIS_URL)$/);
      expect(meta.meaning.length, key).toBeGreaterThan(10);
      expect(meta.default ?? meta.defaultText, key).toBeDefined();
    }
  });
});

describe('rules between settings', () => {
  it('refuses a drain the forced exit would cut short', () => {
    expect(() => runtimeSettings({ TRANSIT_DRAIN_TIMEOUT_MS: '30000' })).toThrow(
      /TRANSIT_DRAIN_TIMEOUT_MS \(30000 ms\) must be shorter than TRANSIT_STOP_TIMEOUT_MS \(30000 ms\): the forced exit would otherwise cut the drain short/,
    );
    expect(runtimeSettings({ TRANSIT_DRAIN_TIMEOUT_MS: '60000', TRANSIT_STOP_TIMEOUT_MS: '75000' }).drainTimeoutMs).toBe(60_000);
  });

  it('refuses a heartbeat that could outlive a lease', () => {
    expect(() => runtimeSettings({ TRANSIT_SHADOW_HEARTBEAT_TTL_MS: '10001' })).toThrow(
      /TRANSIT_SHADOW_HEARTBEAT_TTL_MS \(10001 ms\) must be at most two thirds of TRANSIT_SHADOW_LEASE_TTL_MS \(15000 ms\)/,
    );
    expect(runtimeSettings({ TRANSIT_SHADOW_HEARTBEAT_TTL_MS: '10000' }).shadowHeartbeatTtlMs).toBe(10_000);
  });

  it('refuses a publish budget the duplicate window does not cover', () => {
    expect(() => runtimeSettings({ TRANSIT_DUPLICATE_WINDOW_SECONDS: '10' })).toThrow(
      /TRANSIT_PUBLISH_BUDGET_MS \(15000 ms\) must not be longer than TRANSIT_DUPLICATE_WINDOW_SECONDS \(10 s\)/,
    );
    expect(runtimeSettings({ TRANSIT_DUPLICATE_WINDOW_SECONDS: '15' }).duplicateWindowSeconds).toBe(15);
    expect(runtimeSettings({ TRANSIT_DUPLICATE_WINDOW_SECONDS: '10', TRANSIT_PUBLISH_BUDGET_MS: '2000' }).duplicateWindowSeconds).toBe(10);
  });

  it('refuses a duplicate window longer than the Safety Net keeps messages (JetStream would refuse the stream)', () => {
    expect(() => runtimeSettings({ TRANSIT_SAFETY_NET_HOLD_SECONDS: '60' })).toThrow(
      /TRANSIT_DUPLICATE_WINDOW_SECONDS \(120 s\) must not be longer than TRANSIT_SAFETY_NET_HOLD_SECONDS \(60 s\)/,
    );
    expect(runtimeSettings({ TRANSIT_SAFETY_NET_HOLD_SECONDS: '60', TRANSIT_DUPLICATE_WINDOW_SECONDS: '60' }).safetyNetHoldSeconds).toBe(60);
  });

  it('accepts the ack waits the test suite runs with, shorter and longer than the lease', () => {
    for (const ackWait of ['2', '3', '120']) expect(runtimeSettings({ TRANSIT_ACK_WAIT_SECONDS: ackWait }).ackWaitSeconds).toBe(Number(ackWait));
  });

  it('keeps bodies and events a day longer than the longest a message may live', () => {
    const kept = { eventRetentionSeconds: 7 * 86_400, bodyRetentionSeconds: 7 * 86_400 };
    expect(retentionProblems(kept, { MessageExpirationTimeout: 2 * 86_400 })).toEqual([]);
    expect(retentionProblems(kept, { MessageExpirationTimeout: 6 * 86_400 })).toEqual([]);
    const problems = retentionProblems(kept, { MessageExpirationTimeout: 10 * 86_400 });
    expect(problems).toEqual([
      'MessageExpirationTimeout (10.00:00:00) is too long for TRANSIT_BODY_RETENTION_SECONDS in this environment (604800 s = 7.00:00:00): a message body must outlive every message by a day, so it needs at least 950400 s (11.00:00:00). Lower MessageExpirationTimeout (Set-TransportService -MessageExpirationTimeout 6.00:00:00) or raise TRANSIT_BODY_RETENTION_SECONDS on every role',
      "MessageExpirationTimeout (10.00:00:00) is too long for TRANSIT_EVENT_RETENTION_SECONDS in this environment (604800 s = 7.00:00:00): a message's event log must outlive every message by a day, so it needs at least 950400 s (11.00:00:00). Lower MessageExpirationTimeout (Set-TransportService -MessageExpirationTimeout 6.00:00:00) or raise TRANSIT_EVENT_RETENTION_SECONDS on every role",
    ]);
    expect(retentionProblems({ bodyRetentionSeconds: 86_400 }, { MessageExpirationTimeout: 3600 })).toEqual([
      expect.stringMatching(/needs at least 90000 s \(1\.01:00:00\)\. Raise TRANSIT_BODY_RETENTION_SECONDS on every role$/),
    ]);
    // The delivered recipients in Redis, too (an outbound proxy's own setting).
    expect(retentionProblems({ deliveredTtlSeconds: 9 * 86_400 }, { MessageExpirationTimeout: 8 * 86_400 })).toEqual([]);
    expect(retentionProblems({ deliveredTtlSeconds: 9 * 86_400 }, { MessageExpirationTimeout: 8 * 86_400 + 1 })).toEqual([
      expect.stringMatching(
        /^MessageExpirationTimeout \(8\.00:00:01\) is too long for TRANSIT_DELIVERED_TTL_SECONDS .* raise TRANSIT_DELIVERED_TTL_SECONDS on every outbound proxy$/,
      ),
    ]);
    // What is unknown (a stream not created yet) is not checked.
    expect(retentionProblems({ bodyRetentionSeconds: 30 * 86_400 }, { MessageExpirationTimeout: 10 * 86_400 }, 'in the cluster')).toEqual([]);
  });
});

describe('the register of organisation settings', () => {
  it('covers every TransportSettings field, with the schema’s defaults and bounds', () => {
    expect(ORGANISATION_KEYS.sort()).toEqual(Object.keys(transportSettingsSchema.shape).sort());
    expect(organisationDefault('MessageExpirationTimeout')).toBe(2 * 86_400);
    expect(organisationDefault('TransientRetrySchedule')).toBeUndefined();
    expect(organisationType('MessageExpirationTimeout')).toBe('time span (seconds or d.hh:mm:ss) 1 s–7776000 s');
    expect(organisationType('DsnMaxReturnedMessageBytes')).toBe('size (bytes, KB, MB) 0–104857600');
    expect(organisationType('TransientRetrySchedule')).toBe('list of integers ≥ 1 s');
    expect(organisationType('PickupDirectoryMaxRecipientsPerMessage')).toBe('integer ≥ 1');
  });
});

describe('settingRows (Get-TransportConfig)', () => {
  const config = transportSettingsSchema.parse({ MessageExpirationTimeout: 86_400 });
  const rows = settingRows(config, { TRANSIT_DRAIN_TIMEOUT_MS: '5000', TRANSIT_CLUSTER_SECRET: 'hush', TRANSIT_PORT_OFFSET: 'x' });
  const row = (name: string) => rows.find((r) => r.Name === name);

  it('says where each value comes from', () => {
    expect(row('MessageExpirationTimeout')).toMatchObject({
      Value: 86_400,
      Source: 'organisation',
      Scope: 'organisation',
      Default: 172_800,
      SetWith: 'Set-TransportService -MessageExpirationTimeout',
    });
    expect(row('DelayNotificationTimeout')).toMatchObject({ Value: 14_400, Source: 'default' });
    expect(row('TRANSIT_DRAIN_TIMEOUT_MS')).toMatchObject({ Value: 5000, Source: 'environment', Scope: 'environment', Default: '20000', Unit: 'ms' });
    expect(row('TRANSIT_ACK_WAIT_SECONDS')).toMatchObject({ Value: 15, Source: 'default' });
    expect(row('TRANSIT_MAIL_DIR')).toMatchObject({ Value: resolve('var/mail'), Source: 'default', Default: '`$TRANSIT_VAR_DIR/mail`' });
  });

  it('hides secrets and shows a bad value as such', () => {
    expect(row('TRANSIT_CLUSTER_SECRET')?.Value).toBe('(set)');
    expect(row('TRANSIT_ADMIN_PASSWORD')?.Value).toBe('(unset)');
    expect(row('TRANSIT_PORT_OFFSET')?.Value).toBe('invalid: TRANSIT_PORT_OFFSET must be a whole number from 0 to 65535, not "x"');
    expect(JSON.stringify(rows)).not.toContain('hush');
  });

  it('lists every setting once', () => {
    expect(rows).toHaveLength(ORGANISATION_KEYS.length + ENVIRONMENT_KEYS.length);
    expect(settingRows(undefined, {}).every((r) => r.Source === 'default')).toBe(true);
  });
});
