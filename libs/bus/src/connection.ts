/**
 * One NATS connection per process, reconnecting forever: a service outlives nats-server
 * restarts and resumes on its own. Once nats-server is back, mail flows again without
 * restarting any Transit process.
 */
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { connect } from '@nats-io/transport-node';
import { setSha256Backend } from '@nats-io/obj';

setSha256Backend('native');

export type Bus = { nc: NatsConnection; js: JetStreamClient; jsm: JetStreamManager; connected(): boolean; close(): Promise<void> };

/** `once`: a command-line tool that should fail fast instead of waiting for the server forever. */
export async function connectBus(servers: string[], name: string, mode: 'service' | 'once' = 'service'): Promise<Bus> {
  const nc = await connect(
    mode === 'service'
      ? { servers, name, maxReconnectAttempts: -1, reconnectTimeWait: 250, waitOnFirstConnect: true, timeout: 5000 }
      : { servers, name, maxReconnectAttempts: 0, timeout: 3000 },
  );
  let up = true;
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect') up = false;
      else if (s.type === 'reconnect') up = true;
    }
  })();
  // No API check here: while a NATS node is down and leaders are being elected it can time
  // out, and a service starting then must wait for JetStream (ensureTopology retries), not die.
  const jsm = await jetstreamManager(nc, { timeout: 5000, checkAPI: false });
  return {
    nc,
    js: jetstream(nc, { timeout: 5000 }),
    jsm,
    connected: () => up && !nc.isClosed(),
    close: async () => {
      if (!nc.isClosed()) await nc.drain();
    },
  };
}
