/**
 * Admin: the cluster's management HTTP surface. Health of every role from the heartbeats in
 * the nodes bucket; the JSON API (queues, message tracking and timelines, configuration,
 * connectors, throughput) and the dashboard, behind the bootstrap admin credential
 * (TRANSIT_ADMIN_PASSWORD or TRANSIT_ADMIN_PASSWORD_FILE; without one they answer 503).
 * /healthz, /readyz and /metrics stay open, as on every role.
 */
import { Kvm } from '@nats-io/kv';
import { ConfigStore, NODES_BUCKET } from '@transit/bus';
import { runService, type NodeHeartbeat } from '@transit/service';
import { apiRoutes } from './api.ts';
import { loadDashboardAssets } from './assets.ts';
import { AdminAuth, loadAdminCredential } from './auth.ts';
import { queueBackend } from './queues.ts';
import { adminSurface } from './surface.ts';

await runService('admin', async (ctx) => {
  const kv = await new Kvm(ctx.bus.js).open(NODES_BUCKET);
  const heartbeats = async (): Promise<NodeHeartbeat[]> => {
    const beats: NodeHeartbeat[] = [];
    for await (const key of await kv.keys()) {
      const entry = await kv.get(key);
      if (entry && entry.operation === 'PUT') beats.push(entry.json<NodeHeartbeat>());
    }
    return beats;
  };
  const credential = await loadAdminCredential(process.env);
  if (credential.configured) ctx.log.info({ user: 'admin', from: credential.from }, 'admin API and dashboard enabled');
  else ctx.log.warn({ reason: credential.reason }, 'admin API and dashboard disabled');
  const assets = await loadDashboardAssets(ctx.log);
  ctx.facts.dashboard = credential.configured ? assets.bundledBy : 'disabled';
  const store = await ConfigStore.open(ctx.bus, ctx.settings.streamReplicas);
  const api = apiRoutes({
    bus: ctx.bus,
    store,
    config: () => ctx.config,
    heartbeats,
    heartbeatStaleMs: ctx.settings.nodeTtlMs,
    queues: queueBackend(ctx),
    log: ctx.log,
  });
  return {
    stop: () => Promise.resolve(),
    routes: [
      adminSurface({
        auth: credential.configured ? new AdminAuth(credential.hash) : undefined,
        disabledReason: credential.configured ? '' : credential.reason,
        assets,
        api,
        log: ctx.log,
      }),
    ],
  };
});
