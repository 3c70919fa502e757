/**
 * Front End Transport: SMTP listeners for the FrontendTransport receive connectors
 * (Default Frontend 25, Client Frontend 587, custom connectors). Promises: a 250 only after
 * JetStream acknowledged the message; no relay without SMTP-Accept-Any-Recipient. Never
 * routes or delivers; hands every message to `mail.submit`.
 */
import { BodyStore } from '@transit/bus';
import { receiveConnectorsFor, startReceiveEngine } from '@transit/receive';
import { runService } from '@transit/service';

await runService('frontend', async (ctx) => {
  const connectors = receiveConnectorsFor('frontend', ctx.config.ReceiveConnectors);
  const engine = await startReceiveEngine({ connectors, config: ctx.config, settings: ctx.settings, bus: ctx.bus, bodies: new BodyStore(ctx.bus), log: ctx.log });
  ctx.facts.listeners = engine.endpoints.map((e) => ({ address: `${e.host}:${e.port}`, connectors: e.connectors.map((c) => c.Name) }));
  return { stop: () => engine.close() };
});
