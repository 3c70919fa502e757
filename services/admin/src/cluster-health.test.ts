import { describe, expect, it } from 'vitest';
import type { NodeHeartbeat } from '@transit/service';
import { clusterHealth } from './cluster-health.ts';

const beat = (role: NodeHeartbeat['role'], at: number, ready = true): NodeHeartbeat => ({
  role,
  node: 'n',
  pid: 1,
  startedAt: 0,
  at,
  ready,
  http: 'h',
  facts: {},
});

describe('cluster health', () => {
  const all = (['frontend', 'hub', 'mailbox-delivery', 'submission', 'outbound-proxy', 'admin'] as const).map((r) => beat(r, 100_000));
  it('is healthy when every role has a ready replica', () => {
    expect(clusterHealth(all, 100_000).status).toBe('healthy');
  });
  it('is degraded when a role is missing, not ready, or its heartbeat is stale', () => {
    expect(
      clusterHealth(
        all.filter((b) => b.role !== 'hub'),
        100_000,
      ).status,
    ).toBe('degraded');
    expect(clusterHealth([...all.filter((b) => b.role !== 'hub'), beat('hub', 100_000, false)], 100_000).roles.find((r) => r.role === 'hub')).toMatchObject({
      replicas: 1,
      ready: 0,
    });
    expect(clusterHealth(all, 120_000).status).toBe('degraded');
  });
});
