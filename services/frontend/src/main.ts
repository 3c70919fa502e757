/**
 * Front End Transport: SMTP listeners for the FrontendTransport receive connectors
 * (Default Frontend 25, Client Frontend 587, custom connectors). Promises: a 250 only after
 * JetStream acknowledged the message; no relay without SMTP-Accept-Any-Recipient. Never
 * routes or delivers; hands every message to `mail.submit`.
 */
import { startListenersFor } from '@transit/receive';
import { runService } from '@transit/service';

await runService('frontend', async (ctx) => {
  const engine = await startListenersFor('frontend', ctx);
  return { stop: () => engine.close() };
});
