import { BodyStore } from '@transit/bus';
import type { ServiceContext } from '@transit/service';
import { startReceiveEngine, type ReceiveEngine } from './engine.ts';
import { receiveConnectorsFor, type ListeningRole } from './roles.ts';

/** Opens a role's SMTP listeners and shows them in its health facts; the role closes the engine on stop. */
export async function startListenersFor(role: ListeningRole, ctx: ServiceContext, bodies: BodyStore = new BodyStore(ctx.bus)): Promise<ReceiveEngine> {
  const engine = await startReceiveEngine({ connectors: receiveConnectorsFor(role, ctx.config.ReceiveConnectors), config: ctx.config, settings: ctx.settings, bus: ctx.bus, bodies, log: ctx.log });
  ctx.facts.listeners = engine.endpoints.map((e) => ({ address: `${e.host}:${e.port}`, connectors: e.connectors.map((c) => c.Name) }));
  return engine;
}
