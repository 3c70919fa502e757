/**
 * Cluster health as the admin service reports it: every role, its live replicas (from the
 * heartbeats in the nodes bucket) and whether each is ready. Pure over the heartbeats; the
 * result is GET /api/health's answer as it goes on the wire (api-types.ts).
 */
import { ROLES, type NodeHeartbeat } from '@transit/service';
import type { ClusterHealth, RoleHealth } from './api-types.ts';

export function clusterHealth(beats: readonly NodeHeartbeat[], now: number, staleAfterMs = 15_000): ClusterHealth {
  const live = beats.filter((b) => now - b.at <= staleAfterMs);
  const roles = ROLES.map((role): RoleHealth => {
    const mine = live.filter((b) => b.role === role);
    return {
      role,
      replicas: mine.length,
      ready: mine.filter((b) => b.ready).length,
      nodes: mine.map((b) => ({ node: b.node, pid: b.pid, ready: b.ready, http: b.http, facts: b.facts, ageMs: now - b.at })),
    };
  });
  return { status: roles.every((r) => r.ready > 0) ? 'healthy' : 'degraded', roles };
}
