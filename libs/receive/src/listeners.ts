import { join } from 'node:path';
import { BodyStore } from '@transit/bus';
import { ProtocolLog } from '@transit/logs';
import type { ServiceContext } from '@transit/service';
import { startReceiveEngine, type ReceiveEngine } from './engine.ts';
import { receiveConnectorsFor, type ListeningRole } from './roles.ts';
import { loadTlsMaterial } from './tls.ts';

/** Exchange's protocol-log folders: FrontEnd\ProtocolLog\SmtpReceive, Hub\ProtocolLog\SmtpReceive. */
const LOG_FOLDER: Record<ListeningRole, string> = { frontend: 'FrontEnd', hub: 'Hub', 'outbound-proxy': 'OutboundProxy' };

/** Opens a role's SMTP listeners (following live configuration changes) and shows them in its health facts; the role closes the engine on stop. */
export async function startListenersFor(role: ListeningRole, ctx: ServiceContext, bodies: BodyStore = new BodyStore(ctx.bus)): Promise<ReceiveEngine> {
  const tls = await loadTlsMaterial(ctx.settings);
  const protocolLog = new ProtocolLog({
    dir: join(ctx.settings.protocolLogDir, LOG_FOLDER[role], 'SmtpReceive'),
    kind: 'Receive',
    onError: (err) => ctx.log.error({ err: err.message }, 'protocol log write failed'),
  });
  const engine = await startReceiveEngine({
    connectorsFor: (config) => receiveConnectorsFor(role, config.ReceiveConnectors),
    live: ctx.live,
    settings: ctx.settings,
    bus: ctx.bus,
    bodies,
    log: ctx.log,
    tls,
    protocolLog,
  });
  Object.defineProperty(ctx.facts, 'listeners', {
    enumerable: true,
    get: () => engine.endpoints().map((e) => ({ address: `${e.host}:${e.port}`, connectors: e.connectors.map((c) => c.Name) })),
  });
  return {
    ...engine,
    close: async (drainMs?: number) => {
      await engine.close(drainMs);
      await protocolLog.close();
    },
  };
}
