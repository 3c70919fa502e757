/**
 * Admin: the cluster's management HTTP surface. This first version reports the health of
 * every role (GET /api/health) from the heartbeats each service writes to the nodes bucket.
 * The management API and dashboard arrive with the operations issue (metrics: GET /metrics, as every role).
 */
import { Kvm } from '@nats-io/kv';
import { NODES_BUCKET } from '@transit/bus';
import { runService, type NodeHeartbeat } from '@transit/service';
import { clusterHealth } from './cluster-health.ts';

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
  return {
    stop: () => Promise.resolve(),
    routes: [
      async (req, res) => {
        if (req.url !== '/api/health') return false;
        const health = clusterHealth(await heartbeats(), Date.now());
        res.writeHead(health.status === 'healthy' ? 200 : 503, { 'content-type': 'application/json' });
        res.end(JSON.stringify(health, null, 2));
        return true;
      },
    ],
  };
});
