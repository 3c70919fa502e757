import type { ReceiveConnector } from '@transit/config';
import { parseBinding } from '@transit/config';

/** Exchange's Outbound Proxy Frontend port; in Transit the outbound-proxy role serves it. */
export const OUTBOUND_PROXY_PORT = 717;

export type ListeningRole = 'frontend' | 'hub' | 'outbound-proxy';

/** Which receive connectors a role listens for: FrontendTransport ones split between the frontend and the outbound proxy (717), HubTransport ones on the hub. */
export function receiveConnectorsFor(role: ListeningRole, connectors: readonly ReceiveConnector[]): ReceiveConnector[] {
  const on717 = (c: ReceiveConnector) => c.Bindings.some((b) => parseBinding(b).port === OUTBOUND_PROXY_PORT);
  return connectors.filter((c) => {
    if (role === 'hub') return c.TransportRole === 'HubTransport';
    if (c.TransportRole !== 'FrontendTransport') return false;
    return role === 'outbound-proxy' ? on717(c) : !on717(c);
  });
}
