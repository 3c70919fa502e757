/**
 * Front End Transport: SMTP listeners for the FrontendTransport receive connectors
 * (Default Frontend 25, Client Frontend 587, custom connectors). Promises: a 250 only after
 * JetStream acknowledged the message; no relay without SMTP-Accept-Any-Recipient. Never
 * routes or delivers; hands every message to `mail.submit`. When `mail.submit` is full it
 * answers 452 4.3.1 (back pressure) instead of buffering.
 */
import { startListenersFor } from '@transit/receive';
import { runService } from '@transit/service';

await runService('frontend', async (ctx) => {
  const engine = await startListenersFor('frontend', ctx);
  // SIGTERM drains: /readyz turns false (the load balancer stops sending), new sessions get
  // 421 4.3.2, sessions in a transaction finish it, then the listeners close.
  return { stop: () => engine.close(ctx.settings.drainTimeoutMs), ready: () => !engine.draining() };
});
